// FairQueue<Item>: the admit stage's queue in front of the worker threads, so
// that one tenant's burst cannot hold every worker.
//
// Items wait in lanes, one per tenant (the empty tenant is a lane of its own,
// for service-level requests). Pop serves the lanes that have items in round
// robin, one item per turn, a served lane going to the end of the round. A
// lane that was idle (nothing queued, nothing in flight) when it got an item
// is served before the round, once, as fq_codel's new flows are (RFC 8290,
// section 4.2): a quiet tenant's request waits for the next worker that comes
// free, at most one job, not for a turn behind every busy lane. A lane can
// jump the round only after it has had nothing in flight, so flooding cannot
// use it. A lane with `max_in_flight_per_lane` items popped and not yet
// finished is skipped until one of them finishes: with that cap below the
// worker count, no lane holds every worker.
//
// Push refuses an item (THROTTLED, and nothing changes) when its lane already
// holds `max_queued_per_lane` items or the queue `max_queued_total`. An item is
// finished when the Ticket Pop returned with it is destroyed; tickets must not
// outlive their queue. Pop reports how long the item waited, measured on the
// MonotonicClock given at construction.
//
// Close() ends the queue for shutdown: it wakes every blocked Pop (they and
// all later ones return nullopt), refuses later Pushes (UNAVAILABLE) and hands
// back the items still queued so the caller can answer them.
//
// Thread-safe: any number of threads may Push, Pop and finish items at once
// (one mutex; blocked poppers sleep on a condition variable, no polling). Not
// copyable or movable. Lanes are forgotten once empty and idle, so tenant
// names do not accumulate.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "protocol/monotonic_clock.h"
#include "protocol/status.h"

namespace kmsd {

struct FairQueueOptions {
  size_t max_in_flight_per_lane = 4;  // >= 1; the worker count means no cap
  size_t max_queued_per_lane = 256;   // >= 1
  size_t max_queued_total = 4096;     // >= max_queued_per_lane
};

template <typename Item>
class FairQueue {
  struct Lane;

 public:
  // Marks a popped item finished in its lane when destroyed. Move-only.
  class Ticket {
   public:
    Ticket() = default;
    Ticket(Ticket&& other) noexcept
        : queue_(std::exchange(other.queue_, nullptr)), lane_(other.lane_) {}
    Ticket& operator=(Ticket&& other) noexcept {
      if (this != &other) {
        Release();
        queue_ = std::exchange(other.queue_, nullptr);
        lane_ = other.lane_;
      }
      return *this;
    }
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    ~Ticket() { Release(); }

    // Finishes the item now rather than at destruction; then a no-op.
    void Release() {
      if (queue_ != nullptr) std::exchange(queue_, nullptr)->Finish(lane_);
    }
    bool active() const { return queue_ != nullptr; }

   private:
    friend class FairQueue;
    Ticket(FairQueue* queue, Lane* lane) : queue_(queue), lane_(lane) {}
    FairQueue* queue_ = nullptr;
    Lane* lane_ = nullptr;
  };

  struct Popped {
    Item item;
    std::string lane;                 // the tenant it was pushed for
    std::chrono::nanoseconds waited;  // from Push to Pop, on the queue's clock
    Ticket ticket;
  };

  // INVALID_ARGUMENT for options outside the ranges above. `clock` must
  // outlive the queue.
  static Result<std::unique_ptr<FairQueue>> Create(
      FairQueueOptions options, const MonotonicClock& clock = RealMonotonicClock()) {
    if (options.max_in_flight_per_lane == 0 || options.max_queued_per_lane == 0 ||
        options.max_queued_total < options.max_queued_per_lane) {
      return Error(Code::kInvalidArgument,
                   "fair queue: caps and lengths must be at least 1, and the total at least "
                   "the length per lane");
    }
    return std::unique_ptr<FairQueue>(new FairQueue(options, clock));
  }
  FairQueue(const FairQueue&) = delete;
  FairQueue& operator=(const FairQueue&) = delete;

  // Queues `item` in `lane`'s lane. On success `item` is moved from; on an
  // error (THROTTLED when full, UNAVAILABLE once closed) it is left as it was
  // so the caller can still answer it.
  Status Push(std::string_view lane, Item&& item) {
    std::unique_lock lock(mu_);
    if (closed_) return Status(Code::kUnavailable, "kmsd is shutting down");
    auto found = lanes_.find(std::string(lane));
    const size_t lane_queued = found == lanes_.end() ? 0 : found->second.queue.size();
    if (lane_queued >= options_.max_queued_per_lane) {
      // retry-after: a lane's turn comes about once per round; estimate from
      // its queue length and recent service times when Status carries it.
      return Status(Code::kThrottled, "too many requests queued for this tenant (" +
                                          std::to_string(lane_queued) + ")");
    }
    if (queued_total_ >= options_.max_queued_total) {
      // retry-after: as above, from the total queue length.
      return Status(Code::kThrottled,
                    "too many requests queued (" + std::to_string(queued_total_) + ")");
    }
    const bool idle = found == lanes_.end();
    if (idle) {
      found = lanes_.try_emplace(std::string(lane)).first;
      found->second.name = found->first;
    }
    Lane& target = found->second;
    target.queue.push_back(Entry{std::move(item), clock_.NowNanos()});
    ++queued_total_;
    if (idle) {
      target.ready = true;  // in flight 0 < cap
      fresh_.push_back(&target);
    } else {
      MakeReadyIfEligible(target);
    }
    const bool servable = target.ready;
    lock.unlock();
    if (servable) ready_cv_.notify_one();
    return OkStatus();
  }

  // Waits for an item whose lane is under its cap; nullopt once closed.
  std::optional<Popped> Pop() {
    std::unique_lock lock(mu_);
    ready_cv_.wait(lock, [this] { return closed_ || !fresh_.empty() || !round_.empty(); });
    return TakeLocked(lock);
  }

  // The next item if one can be served now, else nullopt.
  std::optional<Popped> TryPop() {
    std::unique_lock lock(mu_);
    return TakeLocked(lock);
  }

  // See the header comment. Returns the items that were still queued, in no
  // particular order; items already popped finish as usual.
  std::vector<Item> Close() {
    std::vector<Item> left;
    {
      std::lock_guard lock(mu_);
      closed_ = true;
      for (auto& [name, lane] : lanes_) {
        for (Entry& entry : lane.queue) left.push_back(std::move(entry.item));
        lane.queue.clear();
        lane.ready = false;
      }
      fresh_.clear();
      round_.clear();
      queued_total_ = 0;
      std::erase_if(lanes_, [](const auto& named) { return named.second.in_flight == 0; });
    }
    ready_cv_.notify_all();
    return left;
  }

  size_t queued() const {
    std::lock_guard lock(mu_);
    return queued_total_;
  }
  size_t queued(std::string_view lane) const {
    std::lock_guard lock(mu_);
    auto it = lanes_.find(std::string(lane));
    return it == lanes_.end() ? 0 : it->second.queue.size();
  }
  size_t in_flight(std::string_view lane) const {
    std::lock_guard lock(mu_);
    auto it = lanes_.find(std::string(lane));
    return it == lanes_.end() ? 0 : it->second.in_flight;
  }
  // Lanes with an item queued or in flight.
  size_t lanes() const {
    std::lock_guard lock(mu_);
    return lanes_.size();
  }

 private:
  struct Entry {
    Item item;
    int64_t pushed_nanos;
  };
  struct Lane {
    std::string name;
    std::deque<Entry> queue;
    size_t in_flight = 0;
    // In fresh_ or round_; true exactly when queue is non-empty and in_flight
    // under the cap.
    bool ready = false;
  };

  FairQueue(FairQueueOptions options, const MonotonicClock& clock)
      : options_(options), clock_(clock) {}

  // Puts a lane that is not idle at the end of the round if it has work and
  // room. Requires mu_.
  bool MakeReadyIfEligible(Lane& lane) {
    if (lane.ready || lane.queue.empty() || lane.in_flight >= options_.max_in_flight_per_lane) {
      return false;
    }
    lane.ready = true;
    round_.push_back(&lane);
    return true;
  }

  // Serves the lane at the head of the round. Requires mu_ (held by `lock`).
  std::optional<Popped> TakeLocked(std::unique_lock<std::mutex>& lock) {
    if (closed_ || (fresh_.empty() && round_.empty())) return std::nullopt;
    std::deque<Lane*>& from = fresh_.empty() ? round_ : fresh_;
    Lane* lane = from.front();
    from.pop_front();
    lane->ready = false;
    Entry entry = std::move(lane->queue.front());
    lane->queue.pop_front();
    --queued_total_;
    ++lane->in_flight;
    MakeReadyIfEligible(*lane);
    const auto waited = std::chrono::nanoseconds(clock_.NowNanos() - entry.pushed_nanos);
    const bool more = !fresh_.empty() || !round_.empty();
    Popped popped{std::move(entry.item), lane->name, waited, Ticket(this, lane)};
    lock.unlock();
    // Each Push wakes one popper; pass the turn on while work is left so
    // that no item waits for a popper that was not woken.
    if (more) ready_cv_.notify_one();
    return popped;
  }

  // A Ticket's release. Forgets the lane once it is empty and idle.
  void Finish(Lane* lane) {
    bool woke_lane = false;
    {
      std::lock_guard lock(mu_);
      --lane->in_flight;
      woke_lane = !closed_ && MakeReadyIfEligible(*lane);
      if (lane->in_flight == 0 && lane->queue.empty()) lanes_.erase(lanes_.find(lane->name));
    }
    if (woke_lane) ready_cv_.notify_one();
  }

  // Constant after construction.
  const FairQueueOptions options_;
  const MonotonicClock& clock_;

  mutable std::mutex mu_;
  std::condition_variable ready_cv_;  // signalled when a lane becomes ready, and on Close
  // Guarded by mu_. Lane addresses are stable (node-based map); a lane stays
  // in the map while it has items queued or in flight, so tickets and the
  // lists below may point at it. A lane not in the map is idle.
  std::unordered_map<std::string, Lane> lanes_;
  std::deque<Lane*> fresh_;  // ready lanes that were idle, served first, in arrival order
  std::deque<Lane*> round_;  // the other ready lanes, in serving order
  size_t queued_total_ = 0;
  bool closed_ = false;
};

}  // namespace kmsd
