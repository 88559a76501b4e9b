#include "client/backup/file_writers.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "client/store/atomic_file.h"

namespace kmsd::backup {
namespace {

// What one thread may have queued before the caller waits; each job counts
// at least kJobCost (an Open holds a descriptor: thousands of small files
// queued behind a large one would run out of them).
constexpr size_t kMaxQueuedBytes = 8 << 20;
constexpr size_t kJobCost = 64 << 10;

size_t CostOf(size_t bytes) { return std::max(bytes, kJobCost); }

bool AllZeros(std::span<const uint8_t> bytes) {
  // The first byte is zero and each equals the next: memcmp's speed.
  return !bytes.empty() && bytes[0] == 0 &&
         std::memcmp(bytes.data(), bytes.data() + 1, bytes.size() - 1) == 0;
}

}  // namespace

timespec TimeOf(int64_t ns) {
  int64_t seconds = ns / 1'000'000'000, rest = ns % 1'000'000'000;
  if (rest < 0) {
    --seconds;
    rest += 1'000'000'000;
  }
  return {static_cast<time_t>(seconds), static_cast<long>(rest)};
}

FileWriters::FileWriters(size_t threads) {
  for (size_t i = 0; i < std::max<size_t>(threads, 1); ++i) {
    workers_.push_back(std::make_unique<Worker>());
  }
  for (auto& worker : workers_) {
    worker->thread = std::thread([this, w = worker.get()] { Run(*w); });
  }
}

FileWriters::~FileWriters() {
  stopping_ = true;
  for (auto& worker : workers_) {
    std::lock_guard lock(worker->mu);
    worker->changed.notify_all();
  }
  for (auto& worker : workers_) worker->thread.join();
}

Status FileWriters::Failed() {
  std::lock_guard lock(failure_mu_);
  return failure_ ? *failure_ : OkStatus();
}

Status FileWriters::Push(Job job) {
  RETURN_IF_ERROR(Failed());
  Worker& worker = *workers_[current_];
  std::unique_lock lock(worker.mu);
  worker.changed.wait(lock, [&] {
    return worker.queued_bytes + CostOf(job.bytes.size()) <= kMaxQueuedBytes || worker.jobs.empty();
  });
  worker.queued_bytes += CostOf(job.bytes.size());
  worker.jobs.push_back(std::move(job));
  worker.changed.notify_all();
  return OkStatus();
}

Status FileWriters::Open(store::Fd file) {
  current_ = next_;
  next_ = (next_ + 1) % workers_.size();
  Job job;
  job.kind = Job::Kind::kOpen;
  job.file = std::move(file);
  return Push(std::move(job));
}

Status FileWriters::Write(std::span<const uint8_t> bytes) {
  Job job;
  job.kind = Job::Kind::kWrite;
  job.bytes.assign(bytes.begin(), bytes.end());
  return Push(std::move(job));
}

Status FileWriters::Close(uint32_t mode, int64_t mtime_ns, uint64_t size, std::string path) {
  Job job;
  job.kind = Job::Kind::kClose;
  job.mode = mode;
  job.mtime_ns = mtime_ns;
  job.size = size;
  job.path = std::move(path);
  return Push(std::move(job));
}

Status FileWriters::Finish() {
  for (auto& worker : workers_) {
    std::unique_lock lock(worker->mu);
    worker->changed.wait(lock, [&] { return worker->jobs.empty() && worker->idle; });
  }
  return Failed();
}

void FileWriters::Run(Worker& worker) {
  std::unique_lock lock(worker.mu);
  while (true) {
    worker.changed.wait(lock, [&] { return stopping_ || !worker.jobs.empty(); });
    if (worker.jobs.empty()) return;  // stopping, nothing left
    Job job = std::move(worker.jobs.front());
    worker.jobs.pop_front();
    worker.idle = false;
    lock.unlock();
    bool failed;
    {
      std::lock_guard failure(failure_mu_);
      failed = failure_.has_value();
    }
    // After a failure the rest is dropped: the restore is abandoned.
    Status status = failed ? OkStatus() : Execute(worker, job);
    if (!status.ok()) {
      std::lock_guard failure(failure_mu_);
      if (!failure_) failure_ = std::move(status);
    }
    OPENSSL_cleanse(job.bytes.data(), job.bytes.size());  // a restored file's plaintext
    lock.lock();
    worker.queued_bytes -= CostOf(job.bytes.size());
    worker.idle = true;
    worker.changed.notify_all();
  }
}

Status FileWriters::Execute(Worker& worker, Job& job) {
  switch (job.kind) {
    case Job::Kind::kOpen:
      worker.file = std::move(job.file);
      worker.ends_in_hole = false;
      return OkStatus();
    case Job::Kind::kWrite:
      if (AllZeros(job.bytes)) {
        if (::lseek(worker.file.get(), static_cast<off_t>(job.bytes.size()), SEEK_CUR) < 0) {
          return ErrnoStatus(Code::kInternal, "cannot seek in a restored file", errno);
        }
        worker.ends_in_hole = true;
        return OkStatus();
      }
      worker.ends_in_hole = false;
      return store::WriteAll(worker.file.get(), job.bytes);
    case Job::Kind::kClose: {
      const int fd = worker.file.get();
      const timespec times[2] = {TimeOf(job.mtime_ns), TimeOf(job.mtime_ns)};
      // A file that ends in a hole gets its length.
      if ((worker.ends_in_hole && ::ftruncate(fd, static_cast<off_t>(job.size)) != 0) ||
          ::fchmod(fd, job.mode & 0777) != 0 || ::futimens(fd, times) != 0) {
        return ErrnoStatus(Code::kInternal, "cannot finish '" + job.path + "'", errno);
      }
      worker.file = store::Fd();
      return OkStatus();
    }
  }
  return OkStatus();
}

}  // namespace kmsd::backup
