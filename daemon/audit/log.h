// Log: the audit log kmsd writes (docs/AUDIT.md). Every request's entry is
// written with write(2) before its reply is sent (a SIGKILL of kmsd cannot
// lose it); a committer thread, every `commit_interval`, fsyncs the file,
// seals the chain head in the token (an HMAC with global/audit-log-key, as a
// "seal" entry) and then keeps the sealed head in the token's data object
// (Sealer::WriteHead), rotates the file past `max_file_bytes`, and keeps
// `reserve_bytes` of disk allocated ahead of the file's end (fallocate).
//
// Fail closed: when an entry cannot be written (disk full, the file removed,
// an I/O error) or the reserve cannot be kept, Ready() answers
// AUDIT_UNAVAILABLE and the pipeline lets no new request in; the committer
// retries every interval and serving resumes by itself once writing works
// again. A request already let in still writes its entry into the reserve;
// Append() refuses at once only when the file can take nothing more (removed,
// or a part of a line it could not cut back), and then the request's result
// is not sent (it may have changed something: docs/AUDIT.md says what).
//
// At start Open() continues the chain from the last entry of the last file in
// a new file, and checks the log against the token's sealed head: a log cut
// short or replaced is noted in the new file's "open" entry (and so reported
// by every verification after), and kmsd serves on.
//
// Thread-safe. Entries are numbered in the order Append() takes them.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "daemon/audit/sealer.h"
#include "protocol/audit_entry.h"

namespace kmsd::audit {

struct LogOptions {
  std::string dir;  // exists, kmsd's own (the caller checks it)
  std::chrono::milliseconds commit_interval{200};
  uint64_t max_file_bytes = 64ull << 20;
  uint64_t reserve_bytes = 1ull << 20;
  // Entries are made and chained as usual, then written to /dev/null, with
  // no commits (benchmarks measure the audit log's cost with it).
  bool discard = false;
  std::string kmsd_version;
  std::function<int64_t()> now_nanos;  // wall clock; the system's when empty
  // Retention (docs/AUDIT.md, "Retention"): how long a tenant's request
  // entries are kept, in nanoseconds (nullopt: for ever), and how often the
  // committer prunes closed files. Absent: nothing is pruned.
  std::function<std::optional<int64_t>(std::string_view tenant)> retention_nanos = nullptr;
  std::chrono::milliseconds prune_interval{3600000};
};

// What a verification of the live log reads: the files as written when it
// began, and the token's head then.
struct LiveScope {
  std::string dir;
  std::string last_file;
  uint64_t last_file_bytes = 0;
  SealedHead token;
};

class Log {
 public:
  static Result<std::unique_ptr<Log>> Open(LogOptions options, Sealer& sealer);
  // Commits what is written and stops the committer.
  ~Log();
  Log(const Log&) = delete;
  Log& operator=(const Log&) = delete;

  // OK, or AUDIT_UNAVAILABLE saying why entries cannot be written now.
  Status Ready() const;
  // Writes one entry: `fields` is a JSON object without "seq" (entry.h).
  Status Append(std::string_view fields);
  // What the committer does each interval (tests call it to seal now).
  Status Commit();
  Result<LiveScope> Freeze();
  // Replaces the request entries of closed files that are past their
  // tenant's retention by their digests, after a sealed prune entry names
  // them; each file is rewritten whole (a temporary file renamed over it).
  // Returns how many entries were pruned. The committer calls it every
  // prune_interval.
  Result<uint64_t> Prune();
  uint64_t last_seq() const;
  const std::string& dir() const { return options_.dir; }

 private:
  Log(LogOptions options, Sealer& sealer);
  Status Start();
  // Writes a whole line at the end of the file; mu_ held. On failure the
  // file is cut back to its length before (or a new file is due) and the
  // log is marked failing.
  Status AppendLocked(std::string_view fields);
  Status CreateFileLocked(std::string_view reason, std::string_view extra_fields);
  Status KeepReserveLocked();
  Status FailLocked(std::string why);
  void RecoverLocked();
  Status Seal();
  void RunCommitter(std::stop_token stop);
  // Prunes one closed file; commit_mu_ held.
  Result<uint64_t> PruneFile(const std::string& name, int64_t now);
  int64_t Now() const;

  const LogOptions options_;
  Sealer& sealer_;

  std::mutex commit_mu_;     // one commit at a time; taken before mu_
  uint64_t sealed_ = 0;      // entries the token's head covers; guarded by commit_mu_
  uint64_t seal_entry_ = 0;  // the last seal's own entry; guarded by commit_mu_

  mutable std::mutex mu_;
  int fd_ = -1;
  std::string file_name_;
  uint64_t file_bytes_ = 0;
  uint64_t allocated_ = 0;  // the file's blocks reach this far
  uint64_t seq_ = 0;        // the last entry written
  Digest head_{};
  bool need_new_file_ = false;
  std::string failure_;  // why entries cannot be written; empty when they can
  std::atomic<bool> healthy_{true};

  std::mutex wake_mu_;
  std::condition_variable_any wake_;
  std::jthread committer_;
};

}  // namespace kmsd::audit
