// PeerGate: admission by the access policy, the per-uid limit and the limit
// on all connections (kmsd's own process exempt), release, requests in flight, and which
// connections Tick names idle (each connection on its own, not by process).
#include "daemon/peer_gate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <thread>

namespace kmsd {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

constexpr uint64_t kAdmin = 1000;

Peer PeerOf(uint64_t uid, uint64_t pid) {
  return {.uid = uid, .gid = uid, .pid = pid, .groups = {}};
}

class PeerGateTest : public ::testing::Test {
 protected:
  AccessPolicy access_{{kAdmin}, {}};
  PeerGate gate_{access_,
                 {.max_connections_per_uid = 2, .idle_timeout = std::chrono::milliseconds(50)}};
};

TEST_F(PeerGateTest, RefusesPeersThePolicyRefusesAndCountsThem) {
  EXPECT_FALSE(gate_.Admit(1, PeerOf(4242, 10)));
  EXPECT_FALSE(gate_.Admit(2, UnknownPeer()));
  EXPECT_EQ(gate_.refused(), 2u);
  EXPECT_EQ(gate_.connections(), 0u);
  EXPECT_FALSE(gate_.BeginRequest(1));
}

TEST_F(PeerGateTest, HoldsAUidToItsLimitUntilOneIsReleased) {
  EXPECT_TRUE(gate_.Admit(1, PeerOf(kAdmin, 10)));
  EXPECT_TRUE(gate_.Admit(2, PeerOf(kAdmin, 11)));
  EXPECT_FALSE(gate_.Admit(3, PeerOf(kAdmin, 12)));
  EXPECT_EQ(gate_.refused(), 1u);
  gate_.Release(1);
  gate_.Release(1);  // a second release changes nothing
  EXPECT_TRUE(gate_.Admit(4, PeerOf(kAdmin, 12)));
  EXPECT_FALSE(gate_.Admit(5, PeerOf(kAdmin, 13)));
  EXPECT_EQ(gate_.connections(), 2u);
}

TEST_F(PeerGateTest, AllPeersTogetherAreHeldToMaxConnections) {
  AccessPolicy everyone{{kAdmin, 1001, 1002}, {}};
  PeerGate gate(everyone, {.max_connections_per_uid = 2,
                           .idle_timeout = std::chrono::seconds(30),
                           .max_connections = 3});
  EXPECT_TRUE(gate.Admit(1, PeerOf(kAdmin, 10)));
  EXPECT_TRUE(gate.Admit(2, PeerOf(1001, 11)));
  EXPECT_TRUE(gate.Admit(3, PeerOf(1001, 12)));
  // A uid under its own cap, but all are at theirs.
  EXPECT_FALSE(gate.Admit(4, PeerOf(1002, 13)));
  EXPECT_EQ(gate.refused(), 1u);
  // kmsd's own probe is let in regardless.
  EXPECT_TRUE(gate.Admit(5, PeerOf(4242, static_cast<uint64_t>(getpid()))));
  gate.Release(5);
  EXPECT_FALSE(gate.Admit(6, PeerOf(1002, 13)));
  gate.Release(2);
  EXPECT_TRUE(gate.Admit(7, PeerOf(1002, 13)));
  EXPECT_FALSE(gate.Admit(8, PeerOf(kAdmin, 14)));
  EXPECT_EQ(gate.connections(), 3u);
  // A refusal of a uid that holds nothing leaves no count behind: after all
  // are released, each uid gets its full cap again.
  for (uint64_t id : {1, 3, 7}) gate.Release(id);
  EXPECT_EQ(gate.connections(), 0u);
  EXPECT_TRUE(gate.Admit(9, PeerOf(1002, 15)));
  EXPECT_TRUE(gate.Admit(10, PeerOf(1002, 16)));
  EXPECT_FALSE(gate.Admit(11, PeerOf(1002, 17)));  // its own cap of 2
}

TEST_F(PeerGateTest, KmsdsOwnProcessIsLetInAndNotCounted) {
  const auto self = static_cast<uint64_t>(getpid());
  // A uid the policy refuses, over the limit: still in.
  for (uint32_t id = 1; id <= 3; ++id) EXPECT_TRUE(gate_.Admit(id, PeerOf(4242, self)));
  EXPECT_TRUE(gate_.Admit(10, PeerOf(kAdmin, 10)));
  EXPECT_TRUE(gate_.Admit(11, PeerOf(kAdmin, 11)));
  EXPECT_EQ(gate_.refused(), 0u);
}

TEST_F(PeerGateTest, BeginRequestGivesTheAdmittedPeer) {
  ASSERT_TRUE(gate_.Admit(7, PeerOf(kAdmin, 77)));
  auto peer = gate_.BeginRequest(7);
  ASSERT_TRUE(peer);
  EXPECT_EQ(peer->pid, 77u);
  gate_.EndRequest(7);
  gate_.Release(7);
  EXPECT_FALSE(gate_.BeginRequest(7));
  gate_.EndRequest(7);  // released meanwhile: nothing
}

TEST_F(PeerGateTest, TickNamesEachIdleConnectionOnceAndNotOneInFlight) {
  ASSERT_TRUE(gate_.Admit(1, PeerOf(kAdmin, 10)));
  ASSERT_TRUE(gate_.Admit(2, PeerOf(kAdmin, 10)));  // the same process
  EXPECT_THAT(gate_.Tick(), IsEmpty());
  ASSERT_TRUE(gate_.BeginRequest(2));
  std::this_thread::sleep_for(std::chrono::milliseconds(80));
  // 1 is idle although its process has a request in flight on 2.
  EXPECT_THAT(gate_.Tick(), ElementsAre(1u));
  EXPECT_THAT(gate_.Tick(), IsEmpty());  // named once
  gate_.EndRequest(2);
  std::this_thread::sleep_for(std::chrono::milliseconds(80));
  EXPECT_THAT(gate_.Tick(), UnorderedElementsAre(2u));
}

TEST_F(PeerGateTest, NewLimitsApplyToNewConnections) {
  ASSERT_TRUE(gate_.Admit(1, PeerOf(kAdmin, 10)));
  ASSERT_TRUE(gate_.Admit(2, PeerOf(kAdmin, 10)));
  gate_.SetOptions({.max_connections_per_uid = 1, .idle_timeout = std::chrono::seconds(30)});
  EXPECT_EQ(gate_.connections(), 2u);  // open ones stay
  EXPECT_FALSE(gate_.Admit(3, PeerOf(kAdmin, 10)));
  std::this_thread::sleep_for(std::chrono::milliseconds(80));
  EXPECT_THAT(gate_.Tick(), IsEmpty());  // the longer idle timeout
}

}  // namespace
}  // namespace kmsd
