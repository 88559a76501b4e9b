// FairQueue under load: a simulated flood on a fake clock (one tenant's 1,000
// requests do not delay another's by more than one job), and many threads
// pushing and popping at once (every item served exactly once).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "daemon/fair_queue.h"

namespace kmsd {
namespace {

struct Job {
  std::string tenant;
  int sequence = 0;
};
using JobQueue = FairQueue<Job>;

struct SimulationResult {
  int64_t b_waited_nanos = -1;
  int a_started_after_b_arrived = 0;  // before B started
  int a_finished = 0;
};

// N simulated workers, each job lasting `job_nanos` on a fake clock. Tenant A
// queues 1,000 jobs at time 0; tenant B queues one at `b_arrives_nanos`. Runs
// until B's job has started.
SimulationResult SimulateFlood(size_t workers, size_t cap, int64_t job_nanos,
                               int64_t b_arrives_nanos) {
  FakeClock clock;
  auto created = JobQueue::Create(
      {.max_in_flight_per_lane = cap, .max_queued_per_lane = 1000, .max_queued_total = 2000},
      clock);
  EXPECT_TRUE(created.has_value());
  JobQueue& queue = **created;
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(queue.Push("a", Job{"a", i}).ok());

  struct Worker {
    std::optional<JobQueue::Popped> job;
    int64_t ends_at = 0;
  };
  std::vector<Worker> pool(workers);
  SimulationResult result;
  bool b_pushed = false;
  // Idle workers take what the queue serves; returns true once B started.
  auto start_idle = [&] {
    for (Worker& worker : pool) {
      if (worker.job) continue;
      auto popped = queue.TryPop();
      if (!popped) return false;
      worker.ends_at = clock.NowNanos() + job_nanos;
      if (popped->item.tenant == "b") {
        result.b_waited_nanos = popped->waited.count();
        return true;
      }
      if (b_pushed) ++result.a_started_after_b_arrived;
      worker.job = std::move(popped);
    }
    return false;
  };
  start_idle();
  for (int64_t now = 0;; now = clock.NowNanos()) {
    // The next event: B arriving, or the earliest job ending.
    int64_t next = b_pushed ? INT64_MAX : b_arrives_nanos;
    for (const Worker& worker : pool) {
      if (worker.job) next = std::min(next, worker.ends_at);
    }
    EXPECT_NE(next, INT64_MAX) << "nothing left to happen before B started";
    if (next == INT64_MAX) return result;
    clock.AdvanceNanos(next - now);
    for (Worker& worker : pool) {
      if (worker.job && worker.ends_at == next) {
        worker.job.reset();  // the ticket finishes the item
        ++result.a_finished;
      }
    }
    if (!b_pushed && next == b_arrives_nanos) {
      EXPECT_TRUE(queue.Push("b", Job{"b", 0}).ok());
      b_pushed = true;
    }
    if (start_idle()) return result;
  }
}

TEST(FairQueueLoadTest, AFloodDelaysAnotherTenantByAtMostOneJob) {
  constexpr int64_t kJob = 10'000'000;  // 10 ms
  for (size_t workers : {1, 2, 4, 8}) {
    // Caps below, at and above the worker count; B arriving at a job's
    // start, in the middle of one, and just before one ends.
    for (size_t cap : {size_t{1}, workers, 2 * workers}) {
      for (int64_t arrives : {kJob * 3, kJob * 3 + kJob / 2, kJob * 4 - 1}) {
        SCOPED_TRACE("workers " + std::to_string(workers) + ", cap " + std::to_string(cap) +
                     ", B arrives at " + std::to_string(arrives) + " ns");
        const SimulationResult r = SimulateFlood(workers, cap, kJob, arrives);
        ASSERT_GE(r.b_waited_nanos, 0);
        EXPECT_LE(r.b_waited_nanos, kJob);
        EXPECT_LE(r.a_started_after_b_arrived, static_cast<int>(workers));
        EXPECT_GT(r.a_finished, 0);
      }
    }
  }
}

TEST(FairQueueLoadTest, ManyProducersAndConsumersServeEveryItemExactlyOnce) {
  constexpr int kProducers = 6;
  constexpr int kConsumers = 4;
  constexpr int kPerProducer = 5000;
  constexpr size_t kCap = 2;
  auto created = JobQueue::Create(
      {.max_in_flight_per_lane = kCap, .max_queued_per_lane = 64, .max_queued_total = 256});
  ASSERT_TRUE(created.has_value());
  JobQueue& queue = **created;

  std::vector<std::atomic<int>> served(kProducers * kPerProducer);
  std::atomic<int> throttled{0};
  std::atomic<int> over_cap{0};
  std::vector<std::atomic<int>> running(3);  // per tenant: items between Pop and finish

  std::vector<std::thread> consumers;
  for (int c = 0; c < kConsumers; ++c) {
    consumers.emplace_back([&] {
      // Mostly blocking Pops, some TryPops; only a Pop's nullopt means closed.
      for (int n = 0;; ++n) {
        const bool try_pop = n % 3 == 0;
        auto popped = try_pop ? queue.TryPop() : queue.Pop();
        if (!popped && try_pop) continue;
        if (!popped) break;
        std::atomic<int>& now_running = running[popped->item.tenant[0] - 'a'];
        if (now_running.fetch_add(1) + 1 > static_cast<int>(kCap)) over_cap.fetch_add(1);
        served[popped->item.sequence].fetch_add(1);
        now_running.fetch_sub(1);  // before the ticket finishes the item
      }
    });
  }
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      const std::string tenant(1, static_cast<char>('a' + p % 3));
      for (int i = 0; i < kPerProducer; ++i) {
        Job job{tenant, p * kPerProducer + i};
        while (!queue.Push(tenant, std::move(job)).ok()) {
          throttled.fetch_add(1);
          std::this_thread::yield();
        }
      }
    });
  }
  for (auto& producer : producers) producer.join();
  // Wait for the queue to empty, then close it.
  while (queue.queued() > 0) std::this_thread::yield();
  EXPECT_TRUE(queue.Close().empty());
  for (auto& consumer : consumers) consumer.join();

  for (size_t i = 0; i < served.size(); ++i) ASSERT_EQ(served[i].load(), 1) << "item " << i;
  EXPECT_EQ(over_cap.load(), 0);
  EXPECT_EQ(queue.lanes(), 0u);
  EXPECT_EQ(queue.queued(), 0u);
}

}  // namespace
}  // namespace kmsd
