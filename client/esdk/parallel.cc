#include "client/esdk/parallel.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace kmsd::esdk {
namespace {

// One ParallelFor call. It lives on its caller's stack: the caller leaves
// only once no helper holds it (active == 0) and it is off the queue.
struct Job {
  const std::function<void(size_t)>* fn;
  size_t count;
  std::atomic<size_t> next{0};
  size_t active = 0;  // helpers working on it; guarded by the pool's mutex
};

// Runs fn on indices of `job` until none are left.
void Drain(Job& job) {
  for (size_t i; (i = job.next.fetch_add(1)) < job.count;) (*job.fn)(i);
}

class HelperPool {
 public:
  // Never destroyed: its threads wait for work until the process exits.
  static HelperPool& Get() {
    static HelperPool* const pool = new HelperPool();
    return *pool;
  }

  // Helpers exist only in the process that started them, not in a fork.
  size_t helpers() const { return forked_.load(std::memory_order_relaxed) ? 0 : helpers_; }

  void Run(Job& job) {
    {
      std::lock_guard lock(mu_);
      queue_.push_back(&job);
    }
    wake_.notify_all();
    Drain(job);
    std::unique_lock lock(mu_);
    if (auto it = std::find(queue_.begin(), queue_.end(), &job); it != queue_.end()) {
      queue_.erase(it);
    }
    idle_.wait(lock, [&] { return job.active == 0; });
  }

 private:
  HelperPool() {
    // A forked child has none of the threads (and must not touch the
    // mutex a helper may have held at the fork).
    pthread_atfork(nullptr, nullptr, [] { Get().forked_.store(true); });
    const unsigned cores = std::thread::hardware_concurrency();
    helpers_ = cores > 1 ? std::min<size_t>(cores - 1, 15) : 0;
    for (size_t i = 0; i < helpers_; ++i) std::thread([this] { Help(); }).detach();
  }

  void Help() {
    std::unique_lock lock(mu_);
    while (true) {
      wake_.wait(lock, [&] { return !queue_.empty(); });
      Job& job = *queue_.front();
      ++job.active;
      lock.unlock();
      Drain(job);
      lock.lock();
      // Its indices are all taken: it leaves the queue (if its caller has
      // not taken it off already).
      if (!queue_.empty() && queue_.front() == &job) queue_.pop_front();
      if (--job.active == 0) idle_.notify_all();
    }
  }

  std::atomic<bool> forked_{false};
  size_t helpers_ = 0;
  std::mutex mu_;
  std::condition_variable wake_;  // a job was queued
  std::condition_variable idle_;  // a job's last helper left it
  std::deque<Job*> queue_;        // guarded by mu_
};

}  // namespace

size_t ParallelWorkers() { return HelperPool::Get().helpers() + 1; }

void ParallelFor(size_t count, const std::function<void(size_t)>& fn) {
  Job job{.fn = &fn, .count = count};
  if (count > 1 && HelperPool::Get().helpers() > 0) {
    HelperPool::Get().Run(job);
  } else {
    Drain(job);
  }
}

Status FrameCrew::ForEachRun(
    size_t count, const std::function<void(size_t first, size_t end, AesGcm& cipher)>& work) {
  const size_t runs = std::max<size_t>(1, std::min(count, ParallelWorkers()));
  while (ciphers_.size() < runs) {
    ASSIGN_OR_RETURN(AesGcm cipher, AesGcm::Create(key_.RevealSpan(), use_));
    ciphers_.push_back(std::move(cipher));
  }
  ParallelFor(
      runs, [&](size_t run) { work(count * run / runs, count * (run + 1) / runs, ciphers_[run]); });
  return OkStatus();
}

size_t FramesPerBatch(size_t frame_length, size_t available_frames) {
  if (frame_length == 0 || frame_length > kMaxParallelFrameBytes) return 0;
  const size_t frames =
      std::min(available_frames, std::max<size_t>(2, kParallelBatchBytes / frame_length));
  if (frames < 2 || frames * frame_length < kMinParallelBatchBytes) return 0;
  return ParallelWorkers() > 1 ? frames : 0;
}

}  // namespace kmsd::esdk
