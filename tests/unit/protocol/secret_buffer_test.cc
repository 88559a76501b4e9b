// SecretBuffer: zeroed allocation, wiping, move semantics, constant-time compare.
#include "protocol/secret_buffer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/crypto.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace kmsd {
namespace {

using ::testing::HasSubstr;

std::vector<uint8_t> Pattern(size_t n) {
  std::vector<uint8_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(1 + (i * 37) % 255);  // never zero
  return out;
}

bool AllZero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

// The VmFlags line of the mapping in /proc/self/smaps that holds `p`.
std::string VmFlagsOf(const void* p) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2) {
      inside = lo <= address && address < hi;
    } else if (inside && line.starts_with("VmFlags:")) {
      return line;
    }
  }
  return "";
}

TEST(SecretBufferTest, DefaultIsEmpty) {
  SecretBuffer b;
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.size(), 0u);
  EXPECT_EQ(b.RevealData(), nullptr);
  EXPECT_TRUE(b.RevealSpan().empty());
  EXPECT_TRUE(b.EqualsInConstantTime({}));
}

TEST(SecretBufferTest, SizedConstructorIsZeroFilled) {
  for (size_t n :
       {size_t{1}, size_t{32}, size_t{4095}, size_t{4096}, size_t{4097}, size_t{70000}}) {
    SecretBuffer b(n);
    ASSERT_EQ(b.size(), n);
    EXPECT_FALSE(b.empty());
    ASSERT_NE(b.RevealData(), nullptr);
    EXPECT_TRUE(AllZero(b.RevealData(), n)) << n;
  }
  SecretBuffer zero(0);
  EXPECT_TRUE(zero.empty());
  EXPECT_EQ(zero.RevealData(), nullptr);
}

TEST(SecretBufferTest, MemoryIsExcludedFromCoreDumps) {
  SecretBuffer b(32);
  ASSERT_FALSE(CRYPTO_secure_allocated(b.RevealData()));  // this process has no secure heap
  const std::string flags = VmFlagsOf(b.RevealData());
  ASSERT_FALSE(flags.empty()) << "no mapping for the buffer in /proc/self/smaps";
  EXPECT_THAT(flags, HasSubstr(" dd")) << "MADV_DONTDUMP missing";
}

TEST(SecretBufferTest, CopyOfHoldsExactlyTheBytes) {
  const std::vector<uint8_t> bytes = Pattern(100);
  SecretBuffer b = SecretBuffer::CopyOf(bytes);
  ASSERT_EQ(b.size(), bytes.size());
  EXPECT_NE(b.RevealData(), bytes.data());
  EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), b.RevealData()));

  const std::string_view text("pin\0with nul", 12);
  SecretBuffer s = SecretBuffer::CopyOf(text);
  ASSERT_EQ(s.size(), 12u);
  EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(s.RevealData()), s.size()), text);

  EXPECT_TRUE(SecretBuffer::CopyOf(std::string_view()).empty());
  EXPECT_TRUE(SecretBuffer::CopyOf(std::span<const uint8_t>()).empty());
}

TEST(SecretBufferTest, MutableDataWritesThrough) {
  SecretBuffer b(4);
  b.RevealMutableData()[2] = 0x7f;
  EXPECT_EQ(b.RevealSpan()[2], 0x7f);
  EXPECT_EQ(b.RevealData(), b.RevealMutableData());
}

TEST(SecretBufferTest, ShrinkKeepsThePrefixAndWipesTheTail) {
  const std::vector<uint8_t> bytes = Pattern(48);
  SecretBuffer b = SecretBuffer::CopyOf(bytes);
  const uint8_t* p = b.RevealData();
  // Before: the tail holds the secret (all pattern bytes are non-zero).
  ASSERT_FALSE(AllZero(p + 16, 32));
  b.Shrink(16);
  EXPECT_EQ(b.size(), 16u);
  EXPECT_EQ(b.RevealData(), p);  // in place, within the same allocation
  EXPECT_TRUE(std::equal(bytes.begin(), bytes.begin() + 16, p));
  EXPECT_TRUE(AllZero(p + 16, 32));  // still within capacity: the old tail
}

TEST(SecretBufferTest, ShrinkToZeroWipesEverything) {
  SecretBuffer b = SecretBuffer::CopyOf(Pattern(20));
  const uint8_t* p = b.RevealData();
  b.Shrink(0);
  EXPECT_TRUE(b.empty());
  EXPECT_TRUE(AllZero(p, 20));
}

TEST(SecretBufferTest, ShrinkNeverGrows) {
  const std::vector<uint8_t> bytes = Pattern(8);
  SecretBuffer b = SecretBuffer::CopyOf(bytes);
  b.Shrink(8);
  b.Shrink(100);
  ASSERT_EQ(b.size(), 8u);
  EXPECT_TRUE(b.EqualsInConstantTime(bytes));
  SecretBuffer empty;
  empty.Shrink(0);
  empty.Shrink(5);
  EXPECT_TRUE(empty.empty());
}

TEST(SecretBufferTest, MoveConstructionTransfersAndEmptiesTheSource) {
  const std::vector<uint8_t> bytes = Pattern(32);
  SecretBuffer a = SecretBuffer::CopyOf(bytes);
  const uint8_t* p = a.RevealData();
  SecretBuffer b(std::move(a));
  EXPECT_EQ(b.RevealData(), p);
  EXPECT_TRUE(b.EqualsInConstantTime(bytes));
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): moved-from state is specified
  EXPECT_EQ(a.RevealData(), nullptr);
}

TEST(SecretBufferTest, MoveAssignmentTransfersAndEmptiesTheSource) {
  const std::vector<uint8_t> first = Pattern(16), second = Pattern(64);
  SecretBuffer a = SecretBuffer::CopyOf(first);
  SecretBuffer b = SecretBuffer::CopyOf(second);
  const uint8_t* pb = b.RevealData();
  a = std::move(b);
  EXPECT_EQ(a.RevealData(), pb);
  EXPECT_TRUE(a.EqualsInConstantTime(second));
  EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(b.RevealData(), nullptr);
  // A moved-from buffer is usable again.
  b = SecretBuffer::CopyOf(first);
  EXPECT_TRUE(b.EqualsInConstantTime(first));
}

TEST(SecretBufferTest, SelfMoveAssignmentKeepsTheBytes) {
  const std::vector<uint8_t> bytes = Pattern(16);
  SecretBuffer a = SecretBuffer::CopyOf(bytes);
  SecretBuffer& alias = a;
  a = std::move(alias);
  EXPECT_TRUE(a.EqualsInConstantTime(bytes));
}

TEST(SecretBufferTest, EqualsInConstantTimeMatchesOnlyTheSameBytes) {
  const std::vector<uint8_t> bytes = Pattern(32);
  SecretBuffer b = SecretBuffer::CopyOf(bytes);
  EXPECT_TRUE(b.EqualsInConstantTime(bytes));
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::vector<uint8_t> other = bytes;
      other[i] ^= static_cast<uint8_t>(1 << bit);
      EXPECT_FALSE(b.EqualsInConstantTime(other)) << "byte " << i << " bit " << bit;
    }
  }
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(b.EqualsInConstantTime(std::span(bytes).first(n))) << "prefix " << n;
  }
  std::vector<uint8_t> longer = bytes;
  longer.push_back(0);
  EXPECT_FALSE(b.EqualsInConstantTime(longer));
  EXPECT_FALSE(SecretBuffer().EqualsInConstantTime(bytes));
}

TEST(WipeMemoryTest, ZeroesTheRangeOnlyAndAcceptsEmptyInput) {
  std::vector<uint8_t> bytes = Pattern(16);
  WipeMemory(bytes.data() + 4, 8);
  EXPECT_TRUE(AllZero(bytes.data() + 4, 8));
  EXPECT_NE(bytes[3], 0);
  EXPECT_NE(bytes[12], 0);
  WipeMemory(nullptr, 10);
  WipeMemory(bytes.data(), 0);
  EXPECT_NE(bytes[0], 0);
}

// The secure heap is process-wide, so it is set up in a child process.
TEST(SecretBufferDeathTest, UsesTheSecureHeapOnceItIsInitialized) {
  EXPECT_EXIT(
      {
        if (!InitSecureHeap(1 << 16)) std::_Exit(2);
        if (!InitSecureHeap(1 << 16)) std::_Exit(3);  // a second call is a no-op
        SecretBuffer b = SecretBuffer::CopyOf(Pattern(40));
        if (!CRYPTO_secure_allocated(b.RevealData())) std::_Exit(4);
        const uint8_t* p = b.RevealData();
        b.Shrink(8);
        if (!AllZero(p + 8, 32)) std::_Exit(5);
        SecretBuffer moved(std::move(b));
        if (moved.RevealData() != p || moved.size() != 8) std::_Exit(6);
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace kmsd
