#include "client/store/rewrap.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "client/esdk/kmsd_keyring.h"
#include "client/esdk/rewrap.h"
#include "client/store/atomic_file.h"
#include "client/typed_call.h"
#include "protocol/limits.h"

namespace kmsd::store {
namespace {

// One file on its way: what was read of it, and its EDKs' new forms.
struct Candidate {
  std::string name;
  std::optional<Beneath> parent;
  std::string leaf;
  Fd fd;
  struct stat read_as {};
  esdk::ParsedHeader parsed;
  std::vector<size_t> ours;  // indices of this tenant's kmsd EDKs
  std::vector<ops::ReEncryptReply> moved;
  std::optional<Status> failed;
};

bool IsOurs(const esdk::EncryptedDataKey& edk, const std::string& tenant) {
  const std::string_view info(reinterpret_cast<const char*>(edk.provider_info.data()),
                              edk.provider_info.size());
  return edk.provider_id == esdk::kKmsdProviderId && info.starts_with(tenant + "/");
}

// Opens and reads the header of `name`; a file that cannot be re-wrapped
// comes back with `failed` set.
Candidate Load(const TenantStore& store, const std::string& name) {
  Candidate file;
  file.name = name;
  auto fail = [&](Status status) {
    file.failed = std::move(status);
    return std::move(file);
  };
  auto parent = store.directory().Parent(name, /*create=*/false);
  if (!parent.has_value()) return fail(parent.error());
  auto fd = parent->first.OpenFile(parent->second, O_RDONLY | O_NONBLOCK);
  if (!fd.has_value()) {
    return fail(fd.error().code() == Code::kNotFound
                    ? Status(Code::kNotFound, "no file '" + name + "' in the store")
                    : fd.error());
  }
  file.parent = std::move(parent->first);
  file.leaf = std::move(parent->second);
  file.fd = std::move(*fd);
  if (::fstat(file.fd.get(), &file.read_as) != 0 || !S_ISREG(file.read_as.st_mode)) {
    return fail(Status(Code::kInvalidArgument, "'" + name + "' is not a regular file"));
  }
  std::optional<esdk::ParsedHeader> parsed = ReadHeader(file.fd.get());
  if (!parsed) return fail(Status(Code::kInvalidCiphertext, "'" + name + "' is not a message"));
  file.parsed = std::move(*parsed);
  const esdk::Header& header = file.parsed.header;
  for (const auto& [key, value] : store.ContextOf(name)) {
    const auto found = header.context.find(key);
    if (found == header.context.end() || found->second != value) {
      return fail(Status(Code::kInvalidCiphertext,
                         "'" + name + "' is not this tenant's file of that name (" + key + ")"));
    }
  }
  if (header.suite->signature != esdk::Signature::kNone) {
    return fail(
        Status(Code::kInvalidArgument, "'" + name +
                                           "' is a signed message: its signature "
                                           "covers the header, so it cannot be re-wrapped"));
  }
  for (size_t i = 0; i < header.edks.size(); ++i) {
    if (IsOurs(header.edks[i], store.tenant())) file.ours.push_back(i);
  }
  if (file.ours.empty()) {
    return fail(Status(Code::kInvalidArgument,
                       "'" + name + "' has no data key of kmsd's tenant " + store.tenant()));
  }
  return file;
}

// One batch-re-encrypt of every kmsd EDK of the files not failed yet.
Status MoveEdks(Connection& connection, const std::string& tenant, std::vector<Candidate>& files) {
  ops::BatchReEncryptRequest request;
  for (const Candidate& file : files) {
    if (file.failed) continue;
    for (size_t index : file.ours) {
      request.items.items.push_back({.ciphertext = file.parsed.header.edks[index].ciphertext,
                                     .context = file.parsed.header.context});
    }
  }
  if (request.items.items.empty()) return OkStatus();
  const size_t sent = request.items.items.size();
  ASSIGN_OR_RETURN(auto reply, CallOp<ops::BatchReEncrypt>(connection, tenant, std::move(request)));
  if (reply.results.size() != sent) {
    return Status(Code::kInternal, "kmsd answered a batch with the wrong number of results");
  }
  size_t at = 0;
  for (Candidate& file : files) {
    if (file.failed) continue;
    for (size_t i = 0; i < file.ours.size(); ++i, ++at) {
      if (!reply.results[at].has_value()) {
        if (!file.failed) file.failed = reply.results[at].error();
        continue;
      }
      file.moved.push_back(std::move(*reply.results[at]));
    }
  }
  return OkStatus();
}

bool AlreadyNewest(const Candidate& file) {
  return std::all_of(file.moved.begin(), file.moved.end(), [](const ops::ReEncryptReply& r) {
    return r.version == r.source_version && r.key_id == r.source_key_id;
  });
}

// The body as it was: copied from the old file after its header.
Status CopyBody(int from, uint64_t offset, uint64_t end, int to) {
  std::vector<uint8_t> chunk(1 << 20);
  while (offset < end) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(chunk.size(), end - offset));
    const ssize_t n = ::pread(from, chunk.data(), want, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status(Code::kInternal, "cannot read a stored file's body");
    RETURN_IF_ERROR(WriteAll(to, {chunk.data(), static_cast<size_t>(n)}));
    offset += static_cast<uint64_t>(n);
  }
  return OkStatus();
}

// The new header under `data_key`, then the old body, renamed over the file
// if it is still the one read.
Status Replace(const TenantStore& store, Candidate& file, const SecretBuffer& data_key) {
  const esdk::Header& header = file.parsed.header;
  std::vector<esdk::EncryptedDataKey> edks = header.edks;
  for (size_t i = 0; i < file.ours.size(); ++i) {
    esdk::EncryptedDataKey& edk = edks[file.ours[i]];
    edk.provider_info.clear();
    esdk::PutBytes(edk.provider_info, store.tenant() + "/" + file.moved[i].key_id);
    edk.ciphertext = std::move(file.moved[i].ciphertext);
  }
  ASSIGN_OR_RETURN(const Bytes new_header,
                   esdk::RewrapHeader(header, data_key.RevealSpan(), std::move(edks)));
  // Made under the tenant's lock, as a writer's: a writer measuring the
  // tree must never see it before it is locked (it would take it for a
  // dead writer's and remove it).
  ASSIGN_OR_RETURN(Fd lock, LockTenant(store.directory()));
  ASSIGN_OR_RETURN(AtomicFile temporary,
                   AtomicFile::Create(*file.parent, TemporaryName(0, /*replacing=*/true)));
  lock = Fd();
  RETURN_IF_ERROR(WriteAll(temporary.fd(), new_header));
  RETURN_IF_ERROR(CopyBody(file.fd.get(), file.parsed.size,
                           static_cast<uint64_t>(file.read_as.st_size), temporary.fd()));
  const auto unchanged = [&]() -> Status {
    struct stat now {};
    if (::fstatat(file.parent->fd(), file.leaf.c_str(), &now, AT_SYMLINK_NOFOLLOW) != 0 ||
        now.st_ino != file.read_as.st_ino || now.st_dev != file.read_as.st_dev ||
        now.st_size != file.read_as.st_size ||
        now.st_mtim.tv_nsec != file.read_as.st_mtim.tv_nsec ||
        now.st_mtim.tv_sec != file.read_as.st_mtim.tv_sec) {
      return Status(Code::kUnavailable,
                    "'" + file.name + "' changed while it was re-wrapped: left as it is");
    }
    return OkStatus();
  };
  return temporary.Commit(store.directory(), file.leaf, file.name, unchanged);
}

// One batch-decrypt of the moved EDKs (the new ones: that they open is
// checked too), then each file replaced.
Status RewrapMoved(const TenantStore& store, Connection& connection, std::vector<Candidate*>& files,
                   RewrapSummary& summary) {
  if (files.empty()) return OkStatus();
  ops::BatchDecryptRequest request;
  for (const Candidate* file : files) {
    request.items.items.push_back(
        {.ciphertext = file->moved.front().ciphertext, .context = file->parsed.header.context});
  }
  ASSIGN_OR_RETURN(auto reply,
                   CallOp<ops::BatchDecrypt>(connection, store.tenant(), std::move(request)));
  if (reply.results.size() != files.size()) {
    return Status(Code::kInternal, "kmsd answered a batch with the wrong number of results");
  }
  for (size_t i = 0; i < files.size(); ++i) {
    Candidate& file = *files[i];
    Status status = reply.results[i].has_value() ? Replace(store, file, reply.results[i]->plaintext)
                                                 : reply.results[i].error();
    if (status.ok()) {
      ++summary.rewrapped;
    } else {
      summary.failed.emplace_back(file.name, std::move(status));
    }
  }
  return OkStatus();
}

}  // namespace

Result<RewrapSummary> Rewrap(const TenantStore& store, Connection& connection,
                             const std::vector<std::string>& names, const RewrapOptions& options) {
  RewrapSummary summary;
  const size_t batch = std::clamp<size_t>(options.batch, 1, kMaxBatchItems);
  for (size_t start = 0; start < names.size();) {
    // Files until the batch is full of files or of EDKs.
    std::vector<Candidate> files;
    size_t items = 0;
    while (start < names.size() && files.size() < batch) {
      Candidate file = Load(store, names[start]);
      if (!file.failed && items + file.ours.size() > kMaxBatchItems && !files.empty()) break;
      items += file.failed ? 0 : file.ours.size();
      files.push_back(std::move(file));
      ++start;
    }
    RETURN_IF_ERROR(MoveEdks(connection, store.tenant(), files));
    std::vector<Candidate*> moved;
    for (Candidate& file : files) {
      if (file.failed) {
        summary.failed.emplace_back(file.name, std::move(*file.failed));
      } else if (AlreadyNewest(file)) {
        ++summary.current;
      } else {
        moved.push_back(&file);
      }
    }
    RETURN_IF_ERROR(RewrapMoved(store, connection, moved, summary));
  }
  return summary;
}

}  // namespace kmsd::store
