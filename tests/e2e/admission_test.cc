// The admit stage against a real kmsd: a tenant whose queue is full gets
// THROTTLED with a retry-after (transient), the others are served, and the
// daemon serves normally once the burst is over.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <thread>

#include "client/typed_call.h"
#include "protocol/limits.h"
#include "tests/e2e/hostile_support.h"

namespace kmsd::testing {
namespace {

struct Outcomes {
  std::atomic<int> served{0};
  std::atomic<int> throttled{0};
  std::atomic<int> throttled_without_retry_after{0};
  std::atomic<int> other{0};
};

// Batch encrypts of the largest size in `tenant`, from one connection, until
// `done`.
void Flood(const DaemonProcess& daemon, const std::string& tenant, const std::atomic<bool>& done,
           Outcomes& outcomes) {
  auto connection = daemon.Connect();
  const Bytes plaintext(512, 0x5a);
  while (!done.load()) {
    ops::BatchEncryptRequest request{.key = "alias/data", .items = {}};
    for (size_t i = 0; i < kMaxBatchItems; ++i) {
      request.items.items.push_back({.plaintext = plaintext, .context = {}});
    }
    auto reply = CallOp<ops::BatchEncrypt>(*connection, tenant, std::move(request));
    if (reply.has_value()) {
      ++outcomes.served;
    } else if (reply.error().code() == Code::kThrottled &&
               reply.error().error_class() == ErrorClass::kTransient) {
      ++outcomes.throttled;
      if (reply.error().retry_after_ms() != 50) ++outcomes.throttled_without_retry_after;
    } else {
      ++outcomes.other;
      ADD_FAILURE() << reply.error();
    }
  }
}

// Waits until `ready` holds or 30 s pass.
void WaitFor(const std::function<bool()>& ready) {
  for (int i = 0; i < 300 && !ready(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

class AdmissionTest : public ::testing::Test {
 protected:
  // One request of a tenant runs, one waits; any more is refused.
  void StartWithSmallQueues(size_t workers, size_t max_queued) {
    ConfigOptions options;
    options.admin_uids = Uids(getuid());
    options.workers = workers;
    options.max_queued_per_tenant = 1;
    options.max_queued = max_queued;
    daemon_ = host_.Start(options);
    connection_ = daemon_->Connect();
    for (const char* tenant : {"acme", "quiet"}) {
      ASSERT_TRUE(CallOp<ops::TenantCreate>(*connection_, tenant, {}).has_value());
    }
  }

  // Starts `count` flooding connections of `tenant`; StopFlood ends them.
  void StartFlood(const std::string& tenant, int count) {
    for (int i = 0; i < count; ++i) {
      flooders_.emplace_back([this, tenant] { Flood(*daemon_, tenant, done_, flood_); });
    }
  }
  void StopFlood() {
    done_.store(true);
    for (auto& flooder : flooders_) flooder.join();
    flooders_.clear();
  }
  void TearDown() override { StopFlood(); }

  Result<ops::EncryptReply> EncryptIn(const std::string& tenant) {
    const Bytes plaintext = {'h', 'e', 'l', 'l', 'o'};
    return CallOp<ops::Encrypt>(*connection_, tenant,
                                {.key = "alias/data", .plaintext = plaintext, .context = {}});
  }

  ConfiguredHost host_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<Connection> connection_;
  std::atomic<bool> done_{false};
  Outcomes flood_;
  std::vector<std::thread> flooders_;
};

TEST_F(AdmissionTest, AFullTenantQueueIsThrottledWithARetryAfter) {
  StartWithSmallQueues(/*workers=*/1, /*max_queued=*/1);
  StartFlood("acme", 8);
  WaitFor([&] { return flood_.throttled.load() > 0 || flood_.other.load() > 0; });
  StopFlood();
  EXPECT_GT(flood_.throttled.load(), 0) << "served " << flood_.served.load();
  EXPECT_EQ(flood_.throttled_without_retry_after.load(), 0);
  EXPECT_EQ(flood_.other.load(), 0);
  // The burst over, the tenant is served again.
  auto after = EncryptIn("acme");
  EXPECT_TRUE(after.has_value()) << after.error();
  EXPECT_EQ(daemon_->Stop(), 0);
}

// One tenant's flood is throttled in its own lane: another tenant that sends
// one request at a time is never throttled and is served throughout.
TEST_F(AdmissionTest, AnotherTenantIsServedThroughAFlood) {
  StartWithSmallQueues(/*workers=*/2, /*max_queued=*/4);
  StartFlood("acme", 8);
  WaitFor([&] { return flood_.throttled.load() > 0 || flood_.other.load() > 0; });
  ASSERT_GT(flood_.throttled.load(), 0);
  const int throttled_before = flood_.throttled.load();
  for (int i = 0; i < 20; ++i) {
    auto reply = EncryptIn("quiet");
    ASSERT_TRUE(reply.has_value()) << "request " << i << ": " << reply.error();
  }
  // The flood goes on (and is throttled) around the quiet tenant's requests;
  // on a loaded machine its threads may not have run during those 20.
  WaitFor([&] { return flood_.throttled.load() > throttled_before; });
  EXPECT_GT(flood_.throttled.load(), throttled_before);
  StopFlood();
  EXPECT_EQ(flood_.other.load(), 0);
  EXPECT_EQ(daemon_->Stop(), 0);
}

}  // namespace
}  // namespace kmsd::testing
