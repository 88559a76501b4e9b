// FileWriters: threads that write a restore's files, so that the kernel's
// work of writing (most of a restore's time) overlaps the decrypting and
// parsing of the archive in the caller's thread, and is spread over the
// cores. Each file goes to one thread, in turn, and its pieces are written
// there in order: Open (a descriptor the caller opened safely), Write (the
// bytes are copied; runs of zeros become holes), Close (length, mode, time).
// Queues are bounded (Write waits while its thread is behind), so memory
// stays constant. After a thread fails, every call reports its error.
// Methods are called from one thread.
#pragma once

#include <time.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "client/store/beneath.h"

namespace kmsd::backup {

// Nanoseconds since the epoch as a timespec (floor division: a time before
// 1970 has a negative second and tv_nsec in [0, 1e9), as futimens wants).
timespec TimeOf(int64_t ns);

class FileWriters {
 public:
  explicit FileWriters(size_t threads);
  ~FileWriters();
  FileWriters(const FileWriters&) = delete;
  FileWriters& operator=(const FileWriters&) = delete;

  Status Open(store::Fd file);
  Status Write(std::span<const uint8_t> bytes);
  // `mode` (permission bits), `mtime_ns` and `size` are applied; `path`
  // names the file in errors.
  Status Close(uint32_t mode, int64_t mtime_ns, uint64_t size, std::string path);
  // Waits until every thread is done; the first error any met.
  Status Finish();

 private:
  struct Job {
    enum class Kind { kOpen, kWrite, kClose } kind = Kind::kOpen;
    store::Fd file;
    std::vector<uint8_t> bytes;
    uint32_t mode = 0;
    int64_t mtime_ns = 0;
    uint64_t size = 0;
    std::string path;
  };
  struct Worker {
    std::mutex mu;
    std::condition_variable changed;
    std::deque<Job> jobs;     // guarded by mu
    size_t queued_bytes = 0;  // guarded by mu
    bool idle = true;         // guarded by mu: no job being run
    std::thread thread;
    // The thread's own: the file it writes.
    store::Fd file;
    bool ends_in_hole = false;
  };

  Status Push(Job job);
  void Run(Worker& worker);
  Status Execute(Worker& worker, Job& job);
  Status Failed();

  std::vector<std::unique_ptr<Worker>> workers_;
  size_t next_ = 0;     // the thread the next file goes to
  size_t current_ = 0;  // the thread of the file being written
  std::atomic<bool> stopping_{false};
  std::mutex failure_mu_;
  std::optional<Status> failure_;  // guarded by failure_mu_
};

}  // namespace kmsd::backup
