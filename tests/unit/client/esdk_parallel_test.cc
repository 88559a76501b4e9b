// Frames sealed and opened several at once (client/esdk/parallel.h): the
// same messages as one at a time, and the same refusals, with nothing of a
// batch released past its first frame that does not authenticate.
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "client/esdk/message.h"
#include "client/esdk/raw_aes_keyring.h"
#include "tests/support/test_helpers.h"

namespace kmsd::esdk {
namespace {

constexpr uint32_t kFrame = 4096;
constexpr size_t kFramed = 4 + kIvBytes + kFrame + kTagBytes;
constexpr size_t kFinalOverhead = 4 + 4 + kIvBytes + 4 + kTagBytes;
constexpr size_t kFrames = 300;  // more than one batch of 256
constexpr size_t kTail = 100;

Bytes RandomBytes(size_t size) {
  std::mt19937 random(12345);
  Bytes out(size);
  for (auto& byte : out) byte = static_cast<uint8_t>(random());
  return out;
}

struct ParallelFramesTest : ::testing::Test {
  std::unique_ptr<RawAesKeyring> keyring = std::move(*RawAesKeyring::Create(
      "escrow", "parallel", SecretBuffer::CopyOf(Bytes(32, 0x21))));
  KeyringMaterials materials{*keyring};
  const Bytes plaintext = RandomBytes(kFrames * kFrame + kTail);

  void SetUp() override { ASSERT_GE(ParallelWorkers(), 2u) << "the tests need two cores"; }

  Bytes Encrypt(bool parallel, uint16_t suite = kCommittingSuite) {
    auto message = EncryptMessage(materials,
                                  {.suite_id = suite,
                                   .frame_length = kFrame,
                                   .context = {{"tenant", "acme"}},
                                   .plaintext_bytes = std::nullopt,
                                   .parallel = parallel},
                                  plaintext);
    EXPECT_TRUE(message.has_value()) << message.error().message();
    return *message;
  }
  // Where frame `index` (0-based) of an unsigned message starts.
  size_t FrameAt(const Bytes& message, size_t index) const {
    return message.size() - kFinalOverhead - kTail - (kFrames - index) * kFramed;
  }
  // Decrypts in one Write (frames in batches) or in `piece`-byte writes;
  // `released` gets what the sink saw.
  Status Decrypt(const Bytes& message, Bytes& released, size_t piece = 0) {
    Decryptor decryptor(materials, {}, [&](std::span<const uint8_t> bytes) {
      PutBytes(released, bytes);
      return OkStatus();
    });
    const size_t step = piece == 0 ? message.size() : piece;
    for (size_t at = 0; at < message.size(); at += step) {
      RETURN_IF_ERROR(
          decryptor.Write(std::span(message).subspan(at, std::min(step, message.size() - at))));
    }
    return decryptor.Finish();
  }
};

TEST_F(ParallelFramesTest, MessagesSealedAtOnceReadOneAtATimeAndTheOtherWayRound) {
  for (bool parallel : {true, false}) {
    const Bytes message = Encrypt(parallel);
    for (size_t piece : {size_t{0}, size_t{1000}, size_t{kFramed * 20 + 7}}) {
      Bytes released;
      ASSERT_TRUE(Decrypt(message, released, piece).ok()) << parallel << " " << piece;
      EXPECT_EQ(released, plaintext) << parallel << " " << piece;
    }
  }
}

TEST_F(ParallelFramesTest, SignedMessagesToo) {
  const Bytes message = Encrypt(true, kCommittingSignedSuite);
  Bytes released;
  ASSERT_TRUE(Decrypt(message, released).ok());
  EXPECT_EQ(released, plaintext);
  Bytes tampered = message;
  tampered[tampered.size() / 2] ^= 1;
  released.clear();
  EXPECT_EQ(Decrypt(tampered, released).code(), Code::kInvalidCiphertext);
}

// Frame 101 (of a batch of 256) fails: frames 1 to 100 were released, and
// nothing after them, though their batch-mates opened.
TEST_F(ParallelFramesTest, ABatchIsReleasedUpToItsFirstFrameThatFails) {
  for (size_t bad : {size_t{0}, size_t{100}, size_t{255}, size_t{256}, size_t{299}}) {
    for (size_t offset : {size_t{4 + kIvBytes}, size_t{4 + kIvBytes + kFrame + 3}}) {
      Bytes message = Encrypt(true);
      message[FrameAt(message, bad) + offset] ^= 0x40;  // content, then tag
      Bytes released;
      const Status status = Decrypt(message, released);
      EXPECT_EQ(status.code(), Code::kInvalidCiphertext) << bad;
      EXPECT_EQ(status.message(), "frame " + std::to_string(bad + 1) + " does not authenticate");
      ASSERT_EQ(released.size(), bad * kFrame) << bad;
      EXPECT_TRUE(std::equal(released.begin(), released.end(), plaintext.begin()));
    }
  }
}

TEST_F(ParallelFramesTest, FramesOutOfOrderOrWithAForeignIvEndTheBatchAndAreRefused) {
  const Bytes message = Encrypt(true);
  // Frames 51 and 52 swapped.
  Bytes swapped = message;
  std::swap_ranges(swapped.begin() + FrameAt(message, 50), swapped.begin() + FrameAt(message, 51),
                   swapped.begin() + FrameAt(message, 51));
  Bytes released;
  Status status = Decrypt(swapped, released);
  EXPECT_EQ(status.code(), Code::kInvalidCiphertext);
  EXPECT_EQ(status.message(), "frame 52 where frame 51 belongs (frames out of order)");
  EXPECT_EQ(released.size(), 50 * kFrame);
  // Frame 51 dropped, frame 51 twice.
  Bytes dropped = message;
  dropped.erase(dropped.begin() + FrameAt(message, 50), dropped.begin() + FrameAt(message, 51));
  released.clear();
  EXPECT_EQ(Decrypt(dropped, released).code(), Code::kInvalidCiphertext);
  EXPECT_EQ(released.size(), 50 * kFrame);
  Bytes doubled = message;
  doubled.insert(doubled.begin() + FrameAt(message, 51), message.begin() + FrameAt(message, 50),
                 message.begin() + FrameAt(message, 51));
  released.clear();
  EXPECT_EQ(Decrypt(doubled, released).code(), Code::kInvalidCiphertext);
  EXPECT_EQ(released.size(), 51 * kFrame);
  // Frame 31's IV changed (the tag would fail too; the IV check comes first).
  Bytes foreign_iv = message;
  foreign_iv[FrameAt(message, 30) + 4] ^= 1;
  released.clear();
  status = Decrypt(foreign_iv, released);
  EXPECT_EQ(status.message(), "frame 31 has an IV that is not its own");
  EXPECT_EQ(released.size(), 30 * kFrame);
}

TEST_F(ParallelFramesTest, TruncatedInsideABatchIsRefused) {
  const Bytes message = Encrypt(true);
  for (size_t cut : {FrameAt(message, 10), FrameAt(message, 10) + 77, FrameAt(message, 299) + 5,
                     message.size() - 1}) {
    Bytes released;
    EXPECT_EQ(Decrypt(Bytes(message.begin(), message.begin() + cut), released).code(),
              Code::kInvalidCiphertext)
        << cut;
    EXPECT_LE(released.size(), kFrames * kFrame);
  }
}

// A forked child has none of its parent's helper threads: its batches run on
// the calling thread alone (they would wait forever for helpers otherwise).
TEST_F(ParallelFramesTest, AForkedChildSealsAndOpensOnItsOwn) {
  (void)Encrypt(true);  // the parent's helpers are running
  const pid_t child = fork();
  if (child == 0) {
    alarm(60);
    const Bytes message = Encrypt(true);
    Bytes released;
    _exit(Decrypt(message, released).ok() && released == plaintext ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(ParallelForTest, EveryIndexRunsOnceAlsoWithConcurrentCallers) {
  constexpr size_t kCount = 1000;
  std::vector<std::thread> callers;
  std::vector<std::vector<std::atomic<int>>> runs(4);
  for (auto& counts : runs) counts = std::vector<std::atomic<int>>(kCount);
  for (size_t caller = 0; caller < runs.size(); ++caller) {
    callers.emplace_back([&, caller] {
      for (int round = 0; round < 20; ++round) {
        ParallelFor(kCount, [&](size_t i) { runs[caller][i].fetch_add(1); });
      }
    });
  }
  for (auto& thread : callers) thread.join();
  for (const auto& counts : runs) {
    for (const auto& count : counts) ASSERT_EQ(count.load(), 20);
  }
}

}  // namespace
}  // namespace kmsd::esdk
