// Soak (issue 14): kmsd under a mixed, partly hostile load for
// KMSD_SOAK_SECONDS (default 45), all at once, on its real socket:
//  - steady clients of tenant "steady": encrypt, decrypt, generate a data key;
//    every request must be answered, OK (or THROTTLED, then retried);
//  - a flood of tenant "flood" from more threads than kmsd has workers;
//  - clients that send a whole request and hang up before the reply;
//  - clients that send half a frame and leave;
//  - clients that send requests and never read a reply.
// kmsd's resident memory and open descriptors are sampled every 2 s and
// printed. The load must not make them grow: the last third's peak RSS
// stays within 15% (+8 MiB) of the middle third's, and once the clients are
// gone the descriptors are back to where they were before the load. kmsd
// then exits 0 on SIGTERM; in the sanitizer build LeakSanitizer runs at that
// exit and any leak makes the exit status non-zero.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include "tests/e2e/e2e_fixture.h"
#include "tests/e2e/hostile_support.h"

namespace kmsd::testing {
namespace {

using Clock = std::chrono::steady_clock;

struct Sample {
  double seconds;
  long rss_kib;
  size_t fds;
};

long RssKib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

size_t OpenDescriptors(pid_t pid) {
  std::error_code error;
  size_t count = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", error);
       !error && it != std::filesystem::directory_iterator(); it.increment(error)) {
    ++count;
  }
  return count;
}

std::chrono::seconds SoakDuration() {
  const char* text = std::getenv("KMSD_SOAK_SECONDS");
  return std::chrono::seconds(text != nullptr ? std::max(10, std::atoi(text)) : 45);
}

class SoakTest : public KmsdTest {
 protected:
  void SetUp() override {
#if KMSD_UNDER_ASAN
    // ASan holds freed memory back (256 MiB of quarantine by default), which
    // would read as growth; a small quarantine keeps the check about kmsd.
    const char* options = std::getenv("ASAN_OPTIONS");
    const std::string with_quarantine =
        std::string(options != nullptr ? options : "") + ":quarantine_size_mb=16";
    setenv("ASAN_OPTIONS", with_quarantine.c_str(), 1);
#endif
    KmsdTest::SetUp();
  }

  // A well-formed request frame body for the raw clients.
  static Bytes RandomRequest(uint64_t id) {
    return Encode(Value(Envelope(id, "generate-random", {}, MapOf("number_of_bytes", 1024))));
  }

  void Unexpected(const std::string& what) {
    std::lock_guard lock(mu_);
    if (unexpected_.size() < 20) unexpected_.push_back(what);
    ++unexpected_count_;
  }

  void Steady(Clock::time_point until) {
    auto connection = daemon_->Connect();
    for (uint64_t i = 0; Clock::now() < until; ++i) {
      const std::string plaintext = "steady " + std::to_string(i);
      Value::Map args = MapOf("key", "alias/data", "plaintext", Bin(plaintext));
      auto encrypted = connection->Call("encrypt", "steady", std::move(args));
      if (!encrypted) {
        if (encrypted.error().code() == Code::kThrottled) {
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
          continue;
        }
        Unexpected("encrypt: " + encrypted.error().ToString());
        continue;
      }
      auto ciphertext = encrypted->result().Binary("ciphertext");
      auto decrypted = connection->Call(
          "decrypt", "steady", MapOf("ciphertext", Bytes(ciphertext->begin(), ciphertext->end())));
      if (!decrypted && decrypted.error().code() != Code::kThrottled) {
        Unexpected("decrypt: " + decrypted.error().ToString());
      } else if (decrypted && AsString(*decrypted->result().Binary("plaintext")) != plaintext) {
        Unexpected("decrypt gave another plaintext");
      }
      auto data_key = connection->Call("generate-data-key", "steady", MapOf("key", "alias/data"));
      if (!data_key && data_key.error().code() != Code::kThrottled) {
        Unexpected("generate-data-key: " + data_key.error().ToString());
      }
      served_ += 3;
    }
  }

  void Flood(Clock::time_point until) {
    auto connection = daemon_->Connect();
    while (Clock::now() < until) {
      auto reply = connection->Call("encrypt", "flood",
                                    MapOf("key", "alias/data", "plaintext", Bytes(4096, 1)));
      if (!reply && reply.error().code() != Code::kThrottled) {
        Unexpected("flood: " + reply.error().ToString());
      }
    }
  }

  void HangUps(Clock::time_point until) {
    for (uint64_t id = 1; Clock::now() < until; ++id) {
      RawClient client(daemon_->socket_path());
      if (!client.connected() || !client.Handshake()) continue;
      const Bytes body = RandomRequest(id);
      client.SendFrame(body.size() + 4, body);  // then closes without reading
    }
  }

  void HalfFrames(Clock::time_point until) {
    while (Clock::now() < until) {
      RawClient client(daemon_->socket_path());
      if (!client.connected() || !client.Handshake()) continue;
      const Bytes body = RandomRequest(7);
      client.SendFrame(body.size() + 4, Bytes(body.begin(), body.begin() + body.size() / 2));
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // Keeps `clients` connections that each sent 64 requests and read nothing.
  void NeverRead(Clock::time_point until, size_t clients) {
    std::vector<std::unique_ptr<RawClient>> open;
    while (Clock::now() < until) {
      if (open.size() == clients) open.erase(open.begin());  // one leaves, another comes
      auto client = std::make_unique<RawClient>(daemon_->socket_path());
      if (client->connected() && client->Handshake()) {
        for (uint64_t id = 1; id <= 64; ++id) {
          const Bytes body = RandomRequest(id);
          client->SendFrame(body.size() + 4, body);
        }
        open.push_back(std::move(client));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }

  std::mutex mu_;
  std::vector<std::string> unexpected_;  // guarded by mu_
  std::atomic<uint64_t> unexpected_count_{0};
  std::atomic<uint64_t> served_{0};
};

TEST_F(SoakTest, RssAndDescriptorsStayFlatAndEveryWellFormedRequestIsAnswered) {
  MustCall("tenant.create", "steady");
  MustCall("tenant.create", "flood");
  const pid_t pid = daemon_->pid();
  const size_t fds_before = OpenDescriptors(pid);
  const auto duration = SoakDuration();
  const auto started = Clock::now();
  const auto until = started + duration;

  std::vector<std::thread> load;
  for (int i = 0; i < 3; ++i) load.emplace_back([&] { Steady(until); });
  for (int i = 0; i < 10; ++i) load.emplace_back([&] { Flood(until); });
  load.emplace_back([&] { HangUps(until); });
  load.emplace_back([&] { HalfFrames(until); });
  load.emplace_back([&] { NeverRead(until, 4); });

  std::vector<Sample> samples;
  while (Clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::seconds(2));
    samples.push_back({std::chrono::duration<double>(Clock::now() - started).count(), RssKib(pid),
                       OpenDescriptors(pid)});
    std::cout << "soak t=" << static_cast<int>(samples.back().seconds)
              << "s rss=" << samples.back().rss_kib << "KiB fds=" << samples.back().fds
              << " served=" << served_.load() << std::endl;
  }
  for (auto& thread : load) thread.join();

  EXPECT_EQ(unexpected_count_.load(), 0u) << ::testing::PrintToString(unexpected_);
  EXPECT_GT(served_.load(), 300u);
  // Steady state: the last third of the run against the middle third.
  ASSERT_GE(samples.size(), 6u);
  const size_t third = samples.size() / 3;
  long middle_peak = 0, last_peak = 0;
  for (size_t i = third; i < 2 * third; ++i)
    middle_peak = std::max(middle_peak, samples[i].rss_kib);
  for (size_t i = 2 * third; i < samples.size(); ++i) {
    last_peak = std::max(last_peak, samples[i].rss_kib);
  }
  EXPECT_LE(last_peak, middle_peak * 115 / 100 + 8 * 1024)
      << "RSS grew from " << middle_peak << " KiB to " << last_peak << " KiB";
  // The clients are gone: kmsd closes their connections (the half frames'
  // and the unread ones' too) and is back to its descriptors before the load.
  size_t fds_after = OpenDescriptors(pid);
  for (int i = 0; i < 100 && fds_after > fds_before + 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    fds_after = OpenDescriptors(pid);
  }
  std::cout << "soak: " << served_.load() << " steady requests served; fds " << fds_before
            << " before, " << fds_after << " after; RSS peak " << middle_peak
            << " KiB (middle third), " << last_peak << " KiB (last third)" << std::endl;
  EXPECT_LE(fds_after, fds_before + 2);
  EXPECT_TRUE(Call("health"));
  connection_.reset();
  EXPECT_EQ(daemon_->Stop(), 0) << "kmsd's exit status (LeakSanitizer's in the sanitizer build)";
}

}  // namespace
}  // namespace kmsd::testing
