// ScanRequestFrame: depth, the value budget and declared counts are refused
// before anything is built; the envelope's id, op and tenant are read.
#include "protocol/frame_scan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "protocol/message.h"
#include "tests/support/value_builders.h"

namespace kmsd {
namespace {

using ::testing::HasSubstr;
using testing::MapOf;
using Bytes = std::vector<uint8_t>;

// An array32 header declaring `count` entries.
Bytes Array32(uint32_t count) {
  return {0xdd, uint8_t(count >> 24), uint8_t(count >> 16), uint8_t(count >> 8), uint8_t(count)};
}

void ExpectRefused(const Bytes& frame, const std::string& message,
                   ScanLimits limits = ScanLimits()) {
  auto scanned = ScanRequestFrame(frame, limits);
  ASSERT_FALSE(scanned) << "accepted a frame of " << frame.size() << " bytes";
  EXPECT_EQ(scanned.error().code(), Code::kInvalidArgument);
  EXPECT_EQ(scanned.error().message(), message);
}

TEST(FrameScanTest, ReadsIdOpAndTenantOfAnEnvelope) {
  const Bytes frame =
      testing::EncodedBytes(BuildRequest(7, "encrypt", "acme", MapOf("key", "alias/data")));
  auto scanned = ScanRequestFrame(frame);
  ASSERT_TRUE(scanned) << scanned.error();
  EXPECT_EQ(scanned->id, 7u);
  EXPECT_EQ(scanned->op, "encrypt");
  EXPECT_EQ(scanned->tenant, "acme");
  EXPECT_TRUE(scanned->top_level_is_map);
  // The root, 5 keys, 5 values, and args' key and value.
  EXPECT_EQ(scanned->values, 13u);
}

TEST(FrameScanTest, FieldsOfTheWrongTypeOrNestedAreNotTakenForTheEnvelope) {
  const Bytes frame = testing::EncodedBytes(
      MapOf("id", -1, "op", 5, "args", MapOf("op", "tenant.create", "tenant", "x", "id", 9)));
  auto scanned = ScanRequestFrame(frame);
  ASSERT_TRUE(scanned) << scanned.error();
  EXPECT_EQ(scanned->id, std::nullopt);
  EXPECT_EQ(scanned->op, std::nullopt);
  EXPECT_EQ(scanned->tenant, std::nullopt);
  // A container as the value of "op".
  auto nested = ScanRequestFrame(testing::EncodedBytes(MapOf("op", MapOf("op", "status"))));
  ASSERT_TRUE(nested);
  EXPECT_EQ(nested->op, std::nullopt);
}

TEST(FrameScanTest, NonMapTopLevelIsLeftToTheDecoder) {
  auto scanned = ScanRequestFrame(testing::EncodedBytes(Value("encrypt")));
  ASSERT_TRUE(scanned);
  EXPECT_FALSE(scanned->top_level_is_map);
  EXPECT_EQ(scanned->op, std::nullopt);
}

TEST(FrameScanTest, EmptyFrameIsRefused) { ExpectRefused({}, "request frame is empty"); }

TEST(FrameScanTest, RepeatedEnvelopeKeyIsRefused) {
  Value::Map envelope = MapOf("version", 1, "id", 1, "op", "tenant.list");
  envelope.emplace_back("op", "tenant.create");
  ExpectRefused(testing::EncodedBytes(Value(std::move(envelope))), "request repeats the key 'op'");
  Value::Map tenants = MapOf("tenant", "a", "op", "key.list");
  tenants.emplace_back("tenant", "b");
  ExpectRefused(testing::EncodedBytes(Value(std::move(tenants))),
                "request repeats the key 'tenant'");
  // Repeats below the top level are the decoder's to refuse.
  EXPECT_TRUE(ScanRequestFrame(testing::EncodedBytes(MapOf("args", MapOf("op", 1, "op", 2)))));
}

TEST(FrameScanTest, EightLevelsOfNestingPassAndNineAreRefused) {
  Bytes eight(8, 0x91);
  eight.push_back(0xc0);
  EXPECT_TRUE(ScanRequestFrame(eight));
  Bytes nine(9, 0x91);
  nine.push_back(0xc0);
  ExpectRefused(nine, "frame is not valid msgpack: nested deeper than 8 levels");
  Bytes deep(100000, 0x91);
  deep.push_back(0xc0);
  ExpectRefused(deep, "frame is not valid msgpack: nested deeper than 8 levels");
}

TEST(FrameScanTest, MegabyteOfNilsIsRefusedAtItsHeader) {
  // One array declaring a million nils, and a byte no value starts with at
  // the end: the budget error shows the scan stopped long before it.
  Bytes frame = Array32(1 << 20);
  frame.insert(frame.end(), 1 << 20, 0xc0);
  frame.push_back(0xc1);
  ExpectRefused(frame, "frame holds more than 65536 values");
}

TEST(FrameScanTest, MegabyteOfNilsInNestedArraysIsRefusedEarly) {
  // 1000 arrays of 1000 nils: the budget runs out at the 66th inner array.
  Bytes frame = {0xdc, 0x03, 0xe8};
  for (int i = 0; i < 1000; ++i) {
    frame.insert(frame.end(), {0xdc, 0x03, 0xe8});
    frame.insert(frame.end(), 1000, 0xc0);
  }
  frame.back() = 0xc1;
  ExpectRefused(frame, "frame holds more than 65536 values");
}

TEST(FrameScanTest, MapEntriesCountTwice) {
  // 40,000 pairs of fixints are 80,001 values.
  Bytes frame = {0xdf, 0x00, 0x00, 0x9c, 0x40};
  frame.insert(frame.end(), 80000, 0x01);
  ExpectRefused(frame, "frame holds more than 65536 values");
  // 30,000 pairs fit the budget.
  Bytes fits = {0xdf, 0x00, 0x00, 0x75, 0x30};
  for (int i = 0; i < 30000; ++i) fits.insert(fits.end(), {0x01, 0xc0});
  auto scanned = ScanRequestFrame(fits);
  ASSERT_TRUE(scanned) << scanned.error();
  EXPECT_EQ(scanned->values, 60001u);
}

TEST(FrameScanTest, DeclaredCountsTheBytesCannotHoldAreRefused) {
  ExpectRefused(Array32(0xffffffff),
                "frame is not valid msgpack: a container declares 4294967295 entries, more than "
                "the frame's 5 bytes can hold");
  ExpectRefused({0xdf, 0xff, 0xff, 0xff, 0xff},
                "frame is not valid msgpack: a container declares 4294967295 entries, more than "
                "the frame's 5 bytes can hold");
  // 100 nils declared, 90 present: 101 values cannot fit in 95 bytes.
  Bytes short_frame = Array32(100);
  short_frame.insert(short_frame.end(), 90, 0xc0);
  ExpectRefused(short_frame,
                "frame is not valid msgpack: a container declares 100 entries, more than the "
                "frame's 95 bytes can hold");
}

TEST(FrameScanTest, SmallerBudgetsAreHonoured) {
  const ScanLimits limits{.max_depth = 2, .max_values = 10};
  EXPECT_TRUE(
      ScanRequestFrame(Bytes{0x99, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0}, limits));
  ExpectRefused({0x9a, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0},
                "frame holds more than 10 values", limits);
  ExpectRefused({0x91, 0x91, 0x91, 0xc0}, "frame is not valid msgpack: nested deeper than 2 levels",
                limits);
}

TEST(FrameScanTest, BrokenBytesAreRefusedLikeTheDecoderDoes) {
  ExpectRefused({0xc1}, "frame is not valid msgpack: a byte no type starts with");
  ExpectRefused({0xd4, 0x01, 0x00}, "frame is not valid msgpack: ext values");
  ExpectRefused({0x81, 0xa2, 'i'}, "frame is not valid msgpack: it ends inside a value");
  ExpectRefused({0xc6, 0xff, 0xff, 0xff, 0xff},
                "frame is not valid msgpack: it ends inside a value");
  ExpectRefused({0xc0, 0xc0}, "frame has bytes after its msgpack value");
}

TEST(FrameScanTest, EveryTruncationOfARequestIsRefused) {
  const Bytes frame = testing::EncodedBytes(
      BuildRequest(3, "encrypt", "acme", MapOf("key", "k", "context", MapOf("a", "b"))));
  for (size_t n = 1; n < frame.size(); ++n) {
    auto scanned = ScanRequestFrame(std::span(frame).first(n));
    ASSERT_FALSE(scanned) << "length " << n;
    EXPECT_EQ(scanned.error().code(), Code::kInvalidArgument);
    EXPECT_THAT(scanned.error().message(), HasSubstr("not valid msgpack"));
  }
}

}  // namespace
}  // namespace kmsd
