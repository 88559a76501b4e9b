#include "daemon/policy_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "daemon/pipeline.h"
#include "daemon/tenant_rules.h"
#include "keystore/hierarchy.h"
#include "policy/tenant_policy.h"
#include "protocol/names.h"
#include "protocol/operations.h"

namespace kmsd {
namespace {

constexpr std::string_view kSuffix = ".yaml";

struct FileCloser {
  void operator()(const int* fd) const {
    ::close(*fd);
    delete fd;
  }
};
using OwnedFd = std::unique_ptr<const int, FileCloser>;

Status Refused(const std::string& what, const std::string& why) {
  return Status(Code::kInvalidArgument, "policies.dir: " + what + " " + why + "; nothing applied");
}

// Owned by root or by kmsd's uid, not writable by group or others.
Status CheckTrusted(int fd, const std::string& what, bool want_directory) {
  struct stat st;
  if (::fstat(fd, &st) != 0)
    return Refused(what, std::string("cannot be read: ") + strerror(errno));
  if (want_directory ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
    return Refused(what, want_directory ? "is not a directory" : "is not a regular file");
  }
  if (st.st_uid != 0 && st.st_uid != ::geteuid()) {
    return Refused(what, "is owned by uid " + std::to_string(st.st_uid) +
                             ", neither root nor kmsd's uid " + std::to_string(::geteuid()));
  }
  if (st.st_mode & 022) return Refused(what, "is writable by group or others");
  return OkStatus();
}

Result<std::string> ReadTrustedFile(int dir_fd, const std::string& name, const std::string& what) {
  const int raw = ::openat(dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (raw < 0) {
    return Error(Refused(what, errno == ELOOP
                                   ? std::string("is a symbolic link")
                                   : std::string("cannot be opened: ") + strerror(errno)));
  }
  const OwnedFd fd(new int(raw));
  RETURN_IF_ERROR(CheckTrusted(raw, what, false));
  std::string document;
  char chunk[4096];
  while (true) {
    const ssize_t got = ::read(raw, chunk, sizeof chunk);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return Error(Refused(what, std::string("cannot be read: ") + strerror(errno)));
    if (got == 0) break;
    document.append(chunk, static_cast<size_t>(got));
    if (document.size() > kMaxPolicyDocumentBytes) {
      return Error(Refused(what, "is over " + std::to_string(kMaxPolicyDocumentBytes) + " bytes"));
    }
  }
  return document;
}

struct PolicyFile {
  std::string tenant;
  std::string document;
};

// The directory's `<tenant>.yaml` files, sorted by name, each checked.
Result<std::vector<PolicyFile>> ReadPolicyFiles(const std::string& dir,
                                                const KeyHierarchy& hierarchy) {
  const int raw = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (raw < 0) {
    return Error(Refused(dir, std::string("cannot be opened as a directory: ") + strerror(errno)));
  }
  const OwnedFd dir_fd(new int(raw));
  RETURN_IF_ERROR(CheckTrusted(raw, dir, true));
  const int listed = ::dup(raw);
  DIR* stream = listed < 0 ? nullptr : ::fdopendir(listed);
  if (stream == nullptr) {
    if (listed >= 0) ::close(listed);
    return Error(Refused(dir, std::string("cannot be listed: ") + strerror(errno)));
  }
  std::vector<std::string> names;
  while (const dirent* entry = ::readdir(stream)) {
    const std::string_view name = entry->d_name;
    if (name.starts_with('.') || name.size() <= kSuffix.size() || !name.ends_with(kSuffix))
      continue;
    names.emplace_back(name);
  }
  ::closedir(stream);
  std::sort(names.begin(), names.end());

  std::vector<PolicyFile> files;
  for (const std::string& name : names) {
    const std::string what = dir + "/" + name;
    PolicyFile file{.tenant = name.substr(0, name.size() - kSuffix.size()), .document = {}};
    if (Status valid = ValidateTenantName(file.tenant); !valid.ok()) {
      return Error(Refused(what, "does not name a tenant: " + valid.message()));
    }
    if (auto tenant = hierarchy.DescribeTenant(file.tenant); !tenant) {
      return Error(
          Refused(what, "is for a tenant kmsd cannot apply it to: " + tenant.error().ToString()));
    }
    ASSIGN_OR_RETURN(file.document, ReadTrustedFile(raw, name, what));
    if (auto parsed = ParseTenantPolicy(file.document, file.tenant); !parsed) {
      return Error(Refused(what, "does not read: " + parsed.error().message()));
    }
    files.push_back(std::move(file));
  }
  return files;
}

}  // namespace

PolicyFileRecorder RecordPolicyFilePuts(Recorder& recorder) {
  return [&recorder](std::string_view tenant, const Status& outcome) {
    RequestContext context;
    context.caller = {.uid = ::geteuid(), .gid = ::getegid(), .pid = uint64_t(::getpid())};
    context.op = FindOperation("tenant.put-policy");
    context.op_name = context.op->name;
    context.tenant = std::string(tenant);
    context.decision = {.decided = true,
                        .allowed = true,
                        .resource_pending = false,
                        .resource_checked = false,
                        .permission = context.op->permission,
                        .reason = "policies.dir",
                        .grants = {}};
    context.outcome = outcome;
    context.received = context.started = context.finished = RequestContext::Clock::now();
    if (Status recorded = recorder.Record(context); !recorded.ok()) {
      spdlog::error("tenant {}: the policy put from policies.dir was not recorded: {}", tenant,
                    recorded.ToString());
    }
  };
}

Result<PolicyFilesOutcome> ApplyPolicyFiles(const std::string& dir, TenantRules& rules,
                                            const KeyHierarchy& hierarchy,
                                            const PolicyFileRecorder& record) {
  ASSIGN_OR_RETURN(std::vector<PolicyFile> files, ReadPolicyFiles(dir, hierarchy));
  PolicyFilesOutcome outcome;
  for (const PolicyFile& file : files) {
    Result<TenantPolicyView> current = rules.Get(file.tenant);
    if (current && current->record != nullptr && current->record->document == file.document) {
      ++outcome.unchanged;
      continue;
    }
    Result<TenantPolicyView> put = rules.Put(file.tenant, file.document, /*may_loosen=*/true);
    if (record) record(file.tenant, put ? OkStatus() : put.error());
    if (!put) return Error(put.error());
    outcome.applied.push_back(file.tenant);
  }
  return outcome;
}

}  // namespace kmsd
