// FairQueue: round robin across tenants' lanes, idle lanes first, the cap on
// items in flight per lane, queue limits (THROTTLED, nothing changed), Close,
// tickets; a simulated flood on a fake clock; a multi-thread stress test.
#include "daemon/fair_queue.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace kmsd {
namespace {

using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;
using Queue = FairQueue<std::string>;

std::unique_ptr<Queue> MakeQueue(FairQueueOptions options = {},
                                 const MonotonicClock& clock = RealMonotonicClock()) {
  auto queue = Queue::Create(options, clock);
  EXPECT_TRUE(queue.has_value());
  return std::move(queue).value();
}

Status PushCopy(Queue& queue, std::string_view lane, std::string item) {
  return queue.Push(lane, std::move(item));
}

// Pops everything that can be served now, keeping the tickets.
std::vector<std::string> Drain(Queue& queue, std::vector<Queue::Ticket>& tickets) {
  std::vector<std::string> out;
  while (auto popped = queue.TryPop()) {
    out.push_back(popped->item);
    tickets.push_back(std::move(popped->ticket));
  }
  return out;
}

TEST(FairQueueTest, CreateRejectsOptionsOutOfRange) {
  for (FairQueueOptions bad :
       {FairQueueOptions{.max_in_flight_per_lane = 0}, FairQueueOptions{.max_queued_per_lane = 0},
        FairQueueOptions{.max_queued_per_lane = 10, .max_queued_total = 9}}) {
    auto queue = Queue::Create(bad);
    ASSERT_FALSE(queue.has_value());
    EXPECT_EQ(queue.error().code(), Code::kInvalidArgument);
  }
}

TEST(FairQueueTest, ServesLanesInRoundRobin) {
  auto queue = MakeQueue({.max_in_flight_per_lane = 10});
  for (auto [lane, item] :
       {std::pair{"a", "a1"}, {"a", "a2"}, {"a", "a3"}, {"b", "b1"}, {"b", "b2"}, {"c", "c1"}}) {
    ASSERT_TRUE(PushCopy(*queue, lane, item).ok());
  }
  std::vector<Queue::Ticket> tickets;
  EXPECT_THAT(Drain(*queue, tickets), ElementsAre("a1", "b1", "c1", "a2", "b2", "a3"));
}

TEST(FairQueueTest, WithinALaneItemsKeepTheirOrder) {
  auto queue = MakeQueue({.max_in_flight_per_lane = 10});
  for (const char* item : {"1", "2", "3", "4"}) ASSERT_TRUE(PushCopy(*queue, "a", item).ok());
  std::vector<Queue::Ticket> tickets;
  EXPECT_THAT(Drain(*queue, tickets), ElementsAre("1", "2", "3", "4"));
}

TEST(FairQueueTest, EmptyTenantIsALaneOfItsOwn) {
  auto queue = MakeQueue({.max_in_flight_per_lane = 1});
  ASSERT_TRUE(PushCopy(*queue, "", "service1").ok());
  ASSERT_TRUE(PushCopy(*queue, "", "service2").ok());
  ASSERT_TRUE(PushCopy(*queue, "a", "a1").ok());
  std::vector<Queue::Ticket> tickets;
  EXPECT_THAT(Drain(*queue, tickets), ElementsAre("service1", "a1"));
  EXPECT_EQ(queue->queued(""), 1u);
  EXPECT_EQ(queue->in_flight(""), 1u);
}

TEST(FairQueueTest, AnIdleLaneIsServedBeforeBusyLanes) {
  auto queue = MakeQueue({.max_in_flight_per_lane = 10});
  for (const char* item : {"a1", "a2", "a3"}) ASSERT_TRUE(PushCopy(*queue, "a", item).ok());
  auto first = queue->TryPop();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->item, "a1");
  ASSERT_TRUE(PushCopy(*queue, "b", "b1").ok());
  std::vector<Queue::Ticket> tickets;
  EXPECT_THAT(Drain(*queue, tickets), ElementsAre("b1", "a2", "a3"));
}

TEST(FairQueueTest, ALaneWithItemsInFlightCannotJumpTheRound) {
  auto queue = MakeQueue({.max_in_flight_per_lane = 10});
  ASSERT_TRUE(PushCopy(*queue, "b", "b1").ok());
  ASSERT_TRUE(PushCopy(*queue, "b", "b2").ok());
  std::vector<Queue::Ticket> tickets;
  EXPECT_THAT(Drain(*queue, tickets), ElementsAre("b1", "b2"));
  ASSERT_TRUE(PushCopy(*queue, "b", "b3").ok());  // b has items in flight: into the round
  ASSERT_TRUE(PushCopy(*queue, "a", "a1").ok());  // a is idle: first
  ASSERT_TRUE(PushCopy(*queue, "a", "a2").ok());
  EXPECT_THAT(Drain(*queue, tickets), ElementsAre("a1", "b3", "a2"));
}

TEST(FairQueueTest, ALaneAtItsCapIsSkippedUntilAnItemFinishes) {
  auto queue = MakeQueue({.max_in_flight_per_lane = 2});
  for (const char* item : {"a1", "a2", "a3"}) ASSERT_TRUE(PushCopy(*queue, "a", item).ok());
  ASSERT_TRUE(PushCopy(*queue, "b", "b1").ok());
  std::vector<Queue::Ticket> tickets;
  EXPECT_THAT(Drain(*queue, tickets), ElementsAre("a1", "b1", "a2"));
  EXPECT_EQ(queue->in_flight("a"), 2u);
  EXPECT_EQ(queue->queued("a"), 1u);
  EXPECT_FALSE(queue->TryPop());

  tickets[1].Release();  // b1: b is not at a cap, a still is
  EXPECT_FALSE(queue->TryPop());
  tickets[0].Release();  // a1
  EXPECT_EQ(queue->in_flight("a"), 1u);
  auto a3 = queue->TryPop();
  ASSERT_TRUE(a3);
  EXPECT_EQ(a3->item, "a3");
  EXPECT_EQ(a3->lane, "a");
}

TEST(FairQueueTest, AFullLaneIsThrottledAndNothingChanges) {
  auto queue = MakeQueue({.max_queued_per_lane = 2, .max_queued_total = 10});
  ASSERT_TRUE(PushCopy(*queue, "a", "a1").ok());
  ASSERT_TRUE(PushCopy(*queue, "a", "a2").ok());
  std::string refused = "a3";
  Status status = queue->Push("a", std::move(refused));
  EXPECT_EQ(status.code(), Code::kThrottled);
  EXPECT_EQ(refused, "a3");  // left for the caller to answer
  EXPECT_EQ(queue->queued("a"), 2u);
  EXPECT_EQ(queue->queued(), 2u);
  EXPECT_TRUE(PushCopy(*queue, "b", "b1").ok());  // other lanes still take items
  std::vector<Queue::Ticket> tickets;
  EXPECT_THAT(Drain(*queue, tickets), UnorderedElementsAre("a1", "a2", "b1"));
}

TEST(FairQueueTest, AFullQueueIsThrottledAndNothingChanges) {
  auto queue = MakeQueue({.max_queued_per_lane = 2, .max_queued_total = 3});
  ASSERT_TRUE(PushCopy(*queue, "a", "a1").ok());
  ASSERT_TRUE(PushCopy(*queue, "a", "a2").ok());
  ASSERT_TRUE(PushCopy(*queue, "b", "b1").ok());
  std::string refused = "c1";
  EXPECT_EQ(queue->Push("c", std::move(refused)).code(), Code::kThrottled);
  EXPECT_EQ(refused, "c1");
  EXPECT_EQ(queue->queued(), 3u);
  EXPECT_EQ(queue->queued("c"), 0u);
  EXPECT_EQ(queue->lanes(), 2u);  // no lane was made for the refused item
  // Popping makes room again.
  auto popped = queue->TryPop();
  ASSERT_TRUE(popped);
  EXPECT_TRUE(PushCopy(*queue, "c", "c1").ok());
}

TEST(FairQueueTest, TicketFinishesItsItemOnDestructionOnceEvenWhenMoved) {
  auto queue = MakeQueue({.max_in_flight_per_lane = 1});
  ASSERT_TRUE(PushCopy(*queue, "a", "a1").ok());
  ASSERT_TRUE(PushCopy(*queue, "a", "a2").ok());
  {
    auto popped = queue->TryPop();
    ASSERT_TRUE(popped);
    Queue::Ticket moved = std::move(popped->ticket);
    EXPECT_FALSE(popped->ticket.active());
    EXPECT_TRUE(moved.active());
    Queue::Ticket assigned;
    assigned = std::move(moved);
    EXPECT_EQ(queue->in_flight("a"), 1u);
    EXPECT_FALSE(queue->TryPop());  // a is at its cap
  }
  EXPECT_EQ(queue->in_flight("a"), 0u);
  auto second = queue->TryPop();
  ASSERT_TRUE(second);
  second->ticket.Release();
  second->ticket.Release();  // a no-op the second time
  EXPECT_EQ(queue->in_flight("a"), 0u);
  EXPECT_EQ(queue->lanes(), 0u);  // an idle lane is forgotten
}

TEST(FairQueueTest, PopReportsTheTimeWaitedOnTheQueuesClock) {
  FakeClock clock(5'000'000'000);
  auto queue = MakeQueue({}, clock);
  ASSERT_TRUE(PushCopy(*queue, "a", "a1").ok());
  clock.AdvanceMillis(250);
  ASSERT_TRUE(PushCopy(*queue, "a", "a2").ok());
  clock.AdvanceMillis(40);
  auto first = queue->TryPop();
  auto second = queue->TryPop();
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->waited, std::chrono::milliseconds(290));
  EXPECT_EQ(second->waited, std::chrono::milliseconds(40));
}

TEST(FairQueueTest, CloseWakesEveryBlockedPopper) {
  auto queue = MakeQueue();
  std::atomic<int> returned_empty{0};
  std::vector<std::thread> poppers;
  for (int i = 0; i < 4; ++i) {
    poppers.emplace_back([&] {
      if (!queue->Pop()) returned_empty.fetch_add(1);
    });
  }
  // Whether they block before Close or call Pop after it, each returns nullopt.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_TRUE(queue->Close().empty());
  for (auto& popper : poppers) popper.join();
  EXPECT_EQ(returned_empty.load(), 4);
}

TEST(FairQueueTest, CloseHandsBackQueuedItemsAndRefusesNewOnes) {
  auto queue = MakeQueue({.max_in_flight_per_lane = 1});
  ASSERT_TRUE(PushCopy(*queue, "a", "a1").ok());
  ASSERT_TRUE(PushCopy(*queue, "a", "a2").ok());
  ASSERT_TRUE(PushCopy(*queue, "b", "b1").ok());
  auto in_flight = queue->TryPop();
  ASSERT_TRUE(in_flight);
  EXPECT_THAT(queue->Close(), UnorderedElementsAre("a2", "b1"));
  EXPECT_EQ(queue->queued(), 0u);
  std::string late = "late";
  EXPECT_EQ(queue->Push("a", std::move(late)).code(), Code::kUnavailable);
  EXPECT_EQ(late, "late");
  EXPECT_FALSE(queue->Pop());
  in_flight->ticket.Release();  // an item popped before Close still finishes
  EXPECT_EQ(queue->lanes(), 0u);
}

TEST(FairQueueTest, APopperBlockedOnACappedLaneWakesWhenAnItemFinishes) {
  auto queue = MakeQueue({.max_in_flight_per_lane = 1});
  ASSERT_TRUE(PushCopy(*queue, "a", "a1").ok());
  ASSERT_TRUE(PushCopy(*queue, "a", "a2").ok());
  auto first = queue->TryPop();
  ASSERT_TRUE(first);
  std::string got;
  std::thread popper([&] {
    if (auto popped = queue->Pop()) got = popped->item;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  first->ticket.Release();
  popper.join();
  EXPECT_EQ(got, "a2");
}

}  // namespace
}  // namespace kmsd
