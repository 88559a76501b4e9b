#include "daemon/audit/log.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

#include "daemon/audit/files.h"
#include "daemon/audit/verify.h"
#include "os/system.h"

namespace kmsd::audit {
namespace {

using Json = nlohmann::json;

// A field's text, or "" when it is absent or not a string: a line of a file
// anyone could have written must not throw.
std::string TextOf(const Json& object, const char* name) {
  if (!object.is_object()) return "";
  const auto it = object.find(name);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string Dump(const Json& fields) {
  return fields.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Status Unavailable(const std::string& why) {
  return Status(Code::kAuditUnavailable,
                "the audit log cannot be written (" + why + "): nothing is served until it can");
}

// Writes all of `bytes` at the file's end; errno on failure.
int WriteAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t wrote = ::write(fd, bytes.data(), bytes.size());
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote < 0) return errno;
    if (wrote == 0) return EIO;
    bytes.remove_prefix(static_cast<size_t>(wrote));
  }
  return 0;
}

// Whether the file open as `fd` is no longer linked (removed) or cannot be
// asked. Only the link count is asked for: a stat that reads the file's times
// makes the kernel give the next write a fine-grained, journaled time update
// (multigrain timestamps, Linux 6.13+); with fstat after every entry that
// cost about 2 us per entry, more than the stat itself.
bool FileRemoved(int fd) {
  struct statx st;
  if (::statx(fd, "", AT_EMPTY_PATH, STATX_NLINK, &st) != 0) return true;
  if (st.stx_mask & STATX_NLINK) return st.stx_nlink == 0;
  struct stat full;  // a file system that does not say: asked the old way
  return ::fstat(fd, &full) != 0 || full.st_nlink == 0;
}

int FsyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  const int result = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  return result;
}

// Where the chain stands at the end of the existing log, for a new file.
struct Tail {
  uint64_t seq = 0;
  Digest head{};
  std::string last_file;
  size_t torn_bytes = 0;
  // Chain hashes of the last file's entries, for the token's head.
  std::vector<std::pair<uint64_t, Digest>> hashes;
};

Result<Tail> ReadTail(const std::string& dir) {
  Tail tail;
  ASSIGN_OR_RETURN(std::vector<LogFile> files, ListLogFiles(dir));
  // A last file without one complete line holds nothing but a part of its
  // own open entry (a start or rotation cut short by a crash): it goes, and
  // the chain goes on from the file before. Anyone who emptied it to hide
  // entries is caught by the token's head.
  std::string content;
  Lines lines;
  while (!files.empty()) {
    ASSIGN_OR_RETURN(content, ReadLogFile(dir, files.back().name));
    lines = SplitLines(content);
    if (!lines.lines.empty()) break;
    const std::string path = dir + "/" + files.back().name;
    if (::unlink(path.c_str()) != 0) {
      return Error(ErrnoStatus(Code::kInternal, "cannot remove the unfinished " + path, errno));
    }
    spdlog::warn("audit log: removed {}, which held no complete entry ({} bytes)", path,
                 content.size());
    files.pop_back();
  }
  if (files.empty()) return tail;
  tail.last_file = files.back().name;
  tail.torn_bytes = lines.torn_bytes;
  for (std::string_view line : lines.lines) {
    Result<SplitLine> split = Split(line);
    if (!split) continue;  // verification names it; the chain goes on from good entries
    const Json entry = Json::parse(split->entry, nullptr, false);
    if (!entry.is_object() || !entry.contains("seq") || !entry["seq"].is_number_unsigned())
      continue;
    tail.seq = entry["seq"].get<uint64_t>();
    tail.head = split->stated_head;
    tail.hashes.emplace_back(tail.seq, tail.head);
  }
  return tail;
}

// What the token's head says about the tail, when they disagree.
std::optional<std::string> Mismatch(const Tail& tail, const SealedHead& token) {
  if (token.covers == 0) return std::nullopt;
  if (token.covers > tail.seq) {
    return "the log ends at entry " + std::to_string(tail.seq) +
           " but the token sealed entries up to " + std::to_string(token.covers) +
           ": its tail was cut or an older copy was put back";
  }
  for (const auto& [seq, hash] : tail.hashes) {
    if (seq == token.covers && hash != token.head) {
      return "entry " + std::to_string(seq) +
             " does not match the head sealed in the token: the log was replaced";
    }
  }
  return std::nullopt;
}

}  // namespace

Log::Log(LogOptions options, Sealer& sealer) : options_(std::move(options)), sealer_(sealer) {}

Result<std::unique_ptr<Log>> Log::Open(LogOptions options, Sealer& sealer) {
  std::unique_ptr<Log> log(new Log(std::move(options), sealer));
  RETURN_IF_ERROR(log->Start());
  return log;
}

int64_t Log::Now() const {
  if (options_.now_nanos) return options_.now_nanos();
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Status Log::Start() {
  if (options_.discard) {
    fd_ = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (fd_ < 0) return ErrnoStatus(Code::kInternal, "cannot open /dev/null", errno);
    std::lock_guard lock(mu_);
    return AppendLocked(Dump({{"type", "open"}, {"reason", "start"}, {"discard", true}}));
  }
  ASSIGN_OR_RETURN(Tail tail, ReadTail(options_.dir));
  ASSIGN_OR_RETURN(SealedHead token, sealer_.ReadHead());
  std::optional<std::string> problem = Mismatch(tail, token);
  if (!problem && !tail.last_file.empty()) {
    // The whole log, against the token's head, before this start seals
    // anything after it: what was changed while kmsd was stopped stays
    // reported (a start would otherwise seal a rewritten chain).
    ASSIGN_OR_RETURN(VerifyReport report, Verify({.dir = options_.dir,
                                                  .last_file = std::nullopt,
                                                  .last_file_bytes = 0,
                                                  .token = token,
                                                  .torn_last_allowed = true},
                                                 sealer_));
    if (report.problem) {
      const Problem& p = *report.problem;
      problem =
          (p.file.empty() ? "" : "file " + p.file + " line " + std::to_string(p.line) + ": ") +
          p.message;
    }
  }
  Json extra = Json::object();
  if (tail.torn_bytes > 0) {
    extra["torn_tail"] = {{"file", tail.last_file}, {"bytes", tail.torn_bytes}};
  }
  if (problem) {
    spdlog::critical("audit log {}: {}; kmsd serves on, and every verification reports it",
                     options_.dir, *problem);
    extra["token_mismatch"] = *problem;
    extra["token_covers"] = token.covers;
  }
  {
    std::lock_guard lock(mu_);
    seq_ = tail.seq;
    head_ = tail.head;
    RETURN_IF_ERROR(CreateFileLocked("start", Dump(extra)));
    RETURN_IF_ERROR(KeepReserveLocked());
  }
  RETURN_IF_ERROR(Commit());
  committer_ = std::jthread([this](std::stop_token stop) { RunCommitter(stop); });
  return OkStatus();
}

Log::~Log() {
  if (committer_.joinable()) {
    committer_.request_stop();
    committer_.join();
  }
  if (!options_.discard && fd_ >= 0) {
    if (Status committed = Commit(); !committed.ok()) {
      spdlog::error("audit log: the last commit failed: {}", committed.ToString());
    }
    std::lock_guard lock(mu_);
    (void)::ftruncate(fd_, static_cast<off_t>(file_bytes_));  // gives the reserve back
  }
  if (fd_ >= 0) ::close(fd_);
}

Status Log::Ready() const {
  if (healthy_.load(std::memory_order_acquire)) return OkStatus();
  std::lock_guard lock(mu_);
  return failure_.empty() ? OkStatus() : Unavailable(failure_);
}

uint64_t Log::last_seq() const {
  std::lock_guard lock(mu_);
  return seq_;
}

Status Log::Append(std::string_view fields) {
  std::lock_guard lock(mu_);
  // A request let in before the log began failing still gets its entry when
  // the file takes it (the reserve is there for that); only a file that can
  // take nothing more refuses at once.
  if (need_new_file_) return Unavailable(failure_);
  return AppendLocked(fields);
}

Status Log::AppendLocked(std::string_view fields) {
  Digest head = head_;
  const std::string line = MakeLine(seq_ + 1, fields, &head);
  if (const int error = WriteAll(fd_, line); error != 0) {
    if (!options_.discard && ::ftruncate(fd_, static_cast<off_t>(file_bytes_)) != 0) {
      need_new_file_ = true;  // a part of the line may stay: it ends this file
    }
    return FailLocked(std::strerror(error));
  }
  if (!options_.discard) {
    if (FileRemoved(fd_)) {
      need_new_file_ = true;
      return FailLocked("the file " + file_name_ + " was removed");
    }
    file_bytes_ += line.size();
  }
  ++seq_;
  head_ = head;
  return OkStatus();
}

Status Log::FailLocked(std::string why) {
  if (healthy_.load(std::memory_order_relaxed)) {
    spdlog::critical("audit log {}: {}; requests are refused until it can be written", options_.dir,
                     why);
  }
  failure_ = std::move(why);
  healthy_.store(false, std::memory_order_release);
  return Unavailable(failure_);
}

Status Log::CreateFileLocked(std::string_view reason, std::string_view extra_fields) {
  const std::string name = FileName(seq_ + 1);
  const std::string path = options_.dir + "/" + name;
  const int fd =
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return FailLocked(ErrnoStatus(Code::kInternal, "cannot create " + path, errno).message());
  if (fd_ >= 0) {
    ::fsync(fd_);
    (void)::ftruncate(fd_, static_cast<off_t>(file_bytes_));
    ::close(fd_);
  }
  const std::string previous = file_name_;
  fd_ = fd;
  file_name_ = name;
  file_bytes_ = 0;
  allocated_ = 0;
  need_new_file_ = false;
  Json fields = Json::parse(extra_fields.empty() ? "{}" : extra_fields);
  fields["type"] = "open";
  fields["reason"] = reason;
  fields["file"] = name;
  fields["previous_head"] = Hex(head_);
  if (!previous.empty()) fields["previous_file"] = previous;
  fields["time"] = Rfc3339Micros(Now());
  fields["kmsd_version"] = options_.kmsd_version;
  RETURN_IF_ERROR(AppendLocked(Dump(fields)));
  if (const int error = FsyncDir(options_.dir); error != 0) {
    return FailLocked(
        ErrnoStatus(Code::kInternal, "cannot fsync " + options_.dir, error).message());
  }
  return OkStatus();
}

Status Log::KeepReserveLocked() {
  if (allocated_ >= file_bytes_ + options_.reserve_bytes / 2) return OkStatus();
  const int result = ::fallocate(fd_, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(file_bytes_),
                                 static_cast<off_t>(options_.reserve_bytes));
  if (result != 0) {
    const int error = errno;
    if (error != EOPNOTSUPP) {
      return FailLocked("cannot keep " + std::to_string(options_.reserve_bytes) +
                        " bytes in reserve: " + std::strerror(error));
    }
  }
  allocated_ = file_bytes_ + options_.reserve_bytes;
  return OkStatus();
}

void Log::RecoverLocked() {
  if (!need_new_file_ && FileRemoved(fd_)) need_new_file_ = true;
  const std::string was = failure_;
  failure_.clear();
  if (need_new_file_) {
    Json extra = {{"after", was}};
    // A part of a line the file kept (it could not be cut back) is declared.
    struct stat st;
    if (::fstat(fd_, &st) == 0 && st.st_nlink > 0 &&
        static_cast<uint64_t>(st.st_size) > file_bytes_) {
      extra["torn_tail"] = {{"file", file_name_},
                            {"bytes", static_cast<uint64_t>(st.st_size) - file_bytes_}};
    }
    if (!CreateFileLocked("recover", Dump(extra)).ok()) return;
  }
  if (!KeepReserveLocked().ok()) return;
  healthy_.store(true, std::memory_order_release);
  spdlog::warn("audit log {}: writable again after: {}", options_.dir, was);
}

Status Log::Commit() {
  if (options_.discard) return OkStatus();
  std::lock_guard commit(commit_mu_);
  {
    std::lock_guard lock(mu_);
    if (!failure_.empty()) RecoverLocked();
    if (!failure_.empty()) return Unavailable(failure_);
  }
  return Seal();
}

// commit_mu_ held.
Status Log::Seal() {
  uint64_t covers;
  Digest head;
  int fd;
  {
    std::lock_guard lock(mu_);
    RETURN_IF_ERROR(KeepReserveLocked());
    covers = seq_;
    head = head_;
    fd = fd_;
  }
  // Nothing new since the last seal (its own entry needs none).
  if (covers == sealed_ || covers == seal_entry_) return OkStatus();
  // The entries a seal covers are on disk before the token says so.
  if (::fdatasync(fd) != 0) {
    const int error = errno;
    std::lock_guard lock(mu_);
    return FailLocked(std::string("fdatasync: ") + std::strerror(error));
  }
  Result<Digest> mac = sealer_.Mac(SealMacInput(covers, head));
  if (!mac) {
    spdlog::error("audit log: cannot seal entries up to {}: {}", covers, mac.error().ToString());
    return mac.error();
  }
  {
    std::lock_guard lock(mu_);
    RETURN_IF_ERROR(AppendLocked(Dump({{"type", "seal"},
                                       {"time", Rfc3339Micros(Now())},
                                       {"covers", covers},
                                       {"head", Hex(head)},
                                       {"mac", Hex(*mac)}})));
    seal_entry_ = seq_;
  }
  if (Status kept = sealer_.WriteHead({covers, head}); !kept.ok()) {
    spdlog::error("audit log: cannot keep the sealed head in the token: {}", kept.ToString());
    return kept;
  }
  sealed_ = covers;
  std::lock_guard lock(mu_);
  if (file_bytes_ >= options_.max_file_bytes) {
    RETURN_IF_ERROR(CreateFileLocked("rotate", ""));
    RETURN_IF_ERROR(KeepReserveLocked());
  }
  return OkStatus();
}

void Log::RunCommitter(std::stop_token stop) {
  CurrentSystem().NameThisThread("kmsd:audit");
  auto last_prune = std::chrono::steady_clock::now();
  while (!stop.stop_requested()) {
    {
      std::unique_lock lock(wake_mu_);
      wake_.wait_for(lock, stop, options_.commit_interval, [] { return false; });
    }
    if (stop.stop_requested()) break;
    (void)Commit();  // a failure is logged and marks the log failing
    if (options_.retention_nanos &&
        std::chrono::steady_clock::now() - last_prune >= options_.prune_interval) {
      last_prune = std::chrono::steady_clock::now();
      if (Result<uint64_t> pruned = Prune(); !pruned) {
        spdlog::error("audit log: pruning failed: {}", pruned.error().ToString());
      } else if (*pruned > 0) {
        spdlog::info("audit log: {} entries past their tenant's retention pruned", *pruned);
      }
    }
  }
}

Result<uint64_t> Log::Prune() {
  if (options_.discard || !options_.retention_nanos) return uint64_t{0};
  std::lock_guard commit(commit_mu_);
  ASSIGN_OR_RETURN(std::vector<LogFile> files, ListLogFiles(options_.dir));
  std::string live;
  {
    std::lock_guard lock(mu_);
    live = file_name_;
  }
  const int64_t now = Now();
  uint64_t pruned = 0;
  for (const LogFile& file : files) {
    if (file.name == live) continue;
    ASSIGN_OR_RETURN(uint64_t count, PruneFile(file.name, now));
    pruned += count;
  }
  return pruned;
}

Result<uint64_t> Log::PruneFile(const std::string& name, int64_t now) {
  ASSIGN_OR_RETURN(std::string content, ReadLogFile(options_.dir, name));
  const Lines lines = SplitLines(content);
  std::string rewritten;
  Json ranges = Json::array();
  std::map<std::string, uint64_t> tenants;
  uint64_t count = 0;
  for (std::string_view line : lines.lines) {
    Result<SplitLine> split = Split(line);
    const Json entry = split ? Json::parse(split->entry, nullptr, false) : Json();
    std::string tenant;
    const bool request = TextOf(entry, "type") == "request" && entry.contains("seq") &&
                         entry["seq"].is_number_unsigned();
    if (request) {
      tenant = TextOf(entry, "tenant");
      if (tenant.empty() && entry.contains("principal"))
        tenant = TextOf(entry["principal"], "tenant");
    }
    const std::optional<int64_t> keep =
        tenant.empty() ? std::nullopt : options_.retention_nanos(tenant);
    if (!keep || TextOf(entry, "time") >= Rfc3339Micros(now - *keep)) {
      rewritten.append(line);
      rewritten.push_back('\n');
      continue;
    }
    const uint64_t seq = entry["seq"].get<uint64_t>();
    rewritten += PrunedLine(seq, Sha256(split->entry), split->stated_head);
    if (!ranges.empty() && ranges.back()[1].get<uint64_t>() + 1 == seq) {
      ranges.back()[1] = seq;
    } else {
      ranges.push_back({seq, seq});
    }
    ++tenants[tenant];
    ++count;
  }
  if (count == 0) return count;
  rewritten.append(content.substr(content.size() - lines.torn_bytes));
  // The checkpoint first, sealed: a prune entry may name entries still whole
  // (a crash before the file is replaced), never the other way round.
  {
    std::lock_guard lock(mu_);
    RETURN_IF_ERROR(AppendLocked(Dump({{"type", "prune"},
                                       {"time", Rfc3339Micros(Now())},
                                       {"file", name},
                                       {"ranges", ranges},
                                       {"tenants", tenants}})));
  }
  RETURN_IF_ERROR(Seal());
  {
    // The seal of the prune entry is on disk before any entry is pruned.
    std::lock_guard lock(mu_);
    if (::fdatasync(fd_) != 0) {
      return Error(FailLocked(std::string("fdatasync: ") + std::strerror(errno)));
    }
  }
  const std::string path = options_.dir + "/" + name;
  const std::string temporary = options_.dir + "/.prune-" + name;
  const int fd =
      ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return Error(ErrnoStatus(Code::kInternal, "cannot create " + temporary, errno));
  const int written = WriteAll(fd, rewritten);
  const int synced = written == 0 && ::fsync(fd) != 0 ? errno : 0;
  ::close(fd);
  if (written != 0 || synced != 0 || ::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = written != 0 ? written : synced != 0 ? synced : errno;
    ::unlink(temporary.c_str());
    return Error(ErrnoStatus(Code::kInternal, "cannot replace " + path, error));
  }
  if (const int error = FsyncDir(options_.dir); error != 0) {
    return Error(ErrnoStatus(Code::kInternal, "cannot fsync " + options_.dir, error));
  }
  return count;
}

Result<LiveScope> Log::Freeze() {
  std::lock_guard commit(commit_mu_);
  LiveScope scope;
  scope.dir = options_.dir;
  {
    std::lock_guard lock(mu_);
    scope.last_file = file_name_;
    scope.last_file_bytes = file_bytes_;
  }
  ASSIGN_OR_RETURN(scope.token, sealer_.ReadHead());
  return scope;
}

}  // namespace kmsd::audit
