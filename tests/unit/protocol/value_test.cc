// Value and EncodeValue: every type survives a trip through msgpack and
// Frame::Decode; WipingBuffer grows and moves correctly.
#include "protocol/value.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "protocol/message.h"
#include "tests/support/value_builders.h"

namespace kmsd {
namespace {

using msgpack::type::object_type;
using testing::ArrayOf;
using testing::MapOf;
using testing::MustDecode;

template <typename... F>
struct Overloaded : F... {
  using F::operator()...;
};
// Spelled out for compilers without aggregate CTAD (clang < 17).
template <typename... F>
Overloaded(F...) -> Overloaded<F...>;

std::string_view Str(const msgpack::object& o) { return {o.via.str.ptr, o.via.str.size}; }
std::span<const uint8_t> Bin(const msgpack::object& o) {
  return {reinterpret_cast<const uint8_t*>(o.via.bin.ptr), o.via.bin.size};
}

// Whether a decoded msgpack object is exactly the Value that was encoded.
::testing::AssertionResult SameAs(const msgpack::object& o, const Value& value) {
  auto fail = [&](const std::string& why) { return ::testing::AssertionFailure() << why; };
  return std::visit(
      Overloaded{
          [&](std::monostate) {
            return o.type == object_type::NIL ? ::testing::AssertionSuccess() : fail("not nil");
          },
          [&](bool b) {
            if (o.type != object_type::BOOLEAN) return fail("not a boolean");
            return o.via.boolean == b ? ::testing::AssertionSuccess() : fail("wrong boolean");
          },
          [&](int64_t n) {
            if (o.type != object_type::NEGATIVE_INTEGER) return fail("not a negative integer");
            return o.via.i64 == n ? ::testing::AssertionSuccess() : fail("wrong int64");
          },
          [&](uint64_t n) {
            if (o.type != object_type::POSITIVE_INTEGER) return fail("not a positive integer");
            return o.via.u64 == n ? ::testing::AssertionSuccess() : fail("wrong uint64");
          },
          [&](const std::string& s) {
            if (o.type != object_type::STR) return fail("not a string");
            return Str(o) == s ? ::testing::AssertionSuccess() : fail("wrong string");
          },
          [&](const Bytes& b) {
            if (o.type != object_type::BIN) return fail("not binary");
            auto got = Bin(o);
            return std::equal(got.begin(), got.end(), b.begin(), b.end())
                       ? ::testing::AssertionSuccess()
                       : fail("wrong binary");
          },
          [&](const SecretBuffer& b) {
            if (o.type != object_type::BIN) return fail("secret not binary");
            return b.EqualsInConstantTime(Bin(o)) ? ::testing::AssertionSuccess()
                                                  : fail("wrong secret");
          },
          [&](const Value::Array& a) {
            if (o.type != object_type::ARRAY) return fail("not an array");
            if (o.via.array.size != a.size()) return fail("wrong array size");
            for (size_t i = 0; i < a.size(); ++i) {
              auto r = SameAs(o.via.array.ptr[i], a[i]);
              if (!r) return fail("array[" + std::to_string(i) + "]: " + r.message());
            }
            return ::testing::AssertionSuccess();
          },
          [&](const Value::Map& m) {
            if (o.type != object_type::MAP) return fail("not a map");
            if (o.via.map.size != m.size()) return fail("wrong map size");
            for (size_t i = 0; i < m.size(); ++i) {
              const auto& kv = o.via.map.ptr[i];
              if (kv.key.type != object_type::STR || Str(kv.key) != m[i].first) {
                return fail("map key " + std::to_string(i));
              }
              auto r = SameAs(kv.val, m[i].second);
              if (!r) return fail("map[" + m[i].first + "]: " + r.message());
            }
            return ::testing::AssertionSuccess();
          },
      },
      value.variant());
}

::testing::AssertionResult RoundTrips(const Value& value) {
  WipingBuffer bytes = EncodeValue(value);
  auto frame = Frame::Decode(bytes.span());
  if (!frame) return ::testing::AssertionFailure() << frame.error();
  return SameAs(frame->root(), value);
}

TEST(ValueTest, NilAndBooleansRoundTrip) {
  EXPECT_TRUE(RoundTrips(Value()));
  EXPECT_TRUE(RoundTrips(Value(nullptr)));
  EXPECT_TRUE(RoundTrips(Value(true)));
  EXPECT_TRUE(RoundTrips(Value(false)));
}

TEST(ValueTest, UnsignedIntegersRoundTripAtEveryEncodingBoundary) {
  for (uint64_t n : {uint64_t{0}, uint64_t{1}, uint64_t{127}, uint64_t{128}, uint64_t{255},
                     uint64_t{256}, uint64_t{65535}, uint64_t{65536}, uint64_t{0xffffffff},
                     uint64_t{0x100000000}, std::numeric_limits<uint64_t>::max()}) {
    EXPECT_TRUE(RoundTrips(Value(n))) << n;
  }
}

TEST(ValueTest, NonNegativeSignedIntegersEncodeAsUnsigned) {
  EXPECT_TRUE(std::holds_alternative<uint64_t>(Value(0).variant()));
  EXPECT_TRUE(std::holds_alternative<uint64_t>(Value(int8_t{5}).variant()));
  EXPECT_TRUE(
      std::holds_alternative<uint64_t>(Value(std::numeric_limits<int64_t>::max()).variant()));
  EXPECT_TRUE(RoundTrips(Value(std::numeric_limits<int64_t>::max())));
}

TEST(ValueTest, NegativeIntegersRoundTripAtEveryEncodingBoundary) {
  for (int64_t n : {int64_t{-1}, int64_t{-32}, int64_t{-33}, int64_t{-128}, int64_t{-129},
                    int64_t{-32768}, int64_t{-32769}, int64_t{INT32_MIN}, int64_t{INT32_MIN} - 1,
                    std::numeric_limits<int64_t>::min()}) {
    Value v(n);
    EXPECT_TRUE(std::holds_alternative<int64_t>(v.variant())) << n;
    EXPECT_TRUE(RoundTrips(v)) << n;
  }
  EXPECT_TRUE(RoundTrips(Value(int8_t{-128})));
}

TEST(ValueTest, StringsRoundTripIncludingEmptyNulAndLong) {
  EXPECT_TRUE(RoundTrips(Value("")));
  EXPECT_TRUE(RoundTrips(Value("op")));
  EXPECT_TRUE(RoundTrips(Value(std::string("a\0b", 3))));
  EXPECT_TRUE(RoundTrips(Value(std::string_view("view"))));
  for (size_t n :
       {size_t{31}, size_t{32}, size_t{255}, size_t{256}, size_t{65535}, size_t{65536}}) {
    EXPECT_TRUE(RoundTrips(Value(std::string(n, 'x')))) << n;
  }
}

TEST(ValueTest, BytesRoundTripIncludingEmptyAndLong) {
  EXPECT_TRUE(RoundTrips(Value(Bytes{})));
  EXPECT_TRUE(RoundTrips(Value(Bytes{0, 1, 0xff})));
  for (size_t n : {size_t{255}, size_t{256}, size_t{65535}, size_t{65536}}) {
    Bytes b(n);
    for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i * 7);
    EXPECT_TRUE(RoundTrips(Value(std::move(b)))) << n;
  }
}

TEST(ValueTest, SecretBufferEncodesAsBinary) {
  EXPECT_TRUE(RoundTrips(Value(SecretBuffer::CopyOf(std::string_view("data key bytes")))));
  EXPECT_TRUE(RoundTrips(Value(SecretBuffer(32))));
  EXPECT_TRUE(RoundTrips(Value(SecretBuffer())));
}

TEST(ValueTest, NestedArraysAndMapsRoundTripInOrder) {
  Value::Map inner;
  inner.emplace_back("zeta", 1);
  inner.emplace_back("alpha", -2);
  inner.emplace_back("secret", SecretBuffer::CopyOf(std::string_view("s")));
  Value::Array array;
  array.emplace_back(nullptr);
  array.emplace_back(true);
  array.emplace_back("x");
  array.emplace_back(Bytes{9});
  array.emplace_back(Value::Array{});
  array.emplace_back(Value::Map{});
  Value::Map root;
  root.emplace_back("inner", std::move(inner));
  root.emplace_back("array", std::move(array));
  root.emplace_back("", "empty key");
  EXPECT_TRUE(RoundTrips(Value(std::move(root))));
  EXPECT_TRUE(RoundTrips(Value(Value::Array{})));
  EXPECT_TRUE(RoundTrips(Value(Value::Map{})));
}

TEST(ValueTest, SameAsDetectsADifferentValue) {
  // The comparison above must be able to fail, or the round trips prove nothing.
  WipingBuffer bytes = EncodeValue(Value(MapOf("a", 1)));
  Frame frame = MustDecode(bytes.span());
  EXPECT_FALSE(SameAs(frame.root(), Value(MapOf("a", 2))));
  EXPECT_FALSE(SameAs(frame.root(), Value(MapOf("b", 1))));
  EXPECT_FALSE(SameAs(frame.root(), Value(MapOf("a", -1))));
  EXPECT_FALSE(SameAs(frame.root(), Value(ArrayOf(1))));
}

TEST(ValueTest, EncodesCompactMsgpack) {
  WipingBuffer bytes = EncodeValue(Value(MapOf("id", 1, "ok", true)));
  const std::vector<uint8_t> expected = {0x82, 0xa2, 'i', 'd', 0x01, 0xa2, 'o', 'k', 0xc3};
  EXPECT_THAT(std::vector<uint8_t>(bytes.data(), bytes.data() + bytes.size()),
              ::testing::ElementsAreArray(expected));
}

// --- WipingBuffer --------------------------------------------------------------

TEST(WipingBufferTest, StartsEmpty) {
  WipingBuffer b;
  EXPECT_EQ(b.size(), 0u);
  EXPECT_EQ(b.data(), nullptr);
  EXPECT_TRUE(b.span().empty());
}

TEST(WipingBufferTest, KeepsEveryByteAcrossManyGrowths) {
  WipingBuffer b;
  std::string expected;
  for (int i = 0; i < 5000; ++i) {
    const char c = static_cast<char>(i * 13);
    b.write(&c, 1);
    expected += c;
  }
  ASSERT_EQ(b.size(), expected.size());
  EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()), expected);
}

TEST(WipingBufferTest, GrowsForOneLargeWrite) {
  WipingBuffer b;
  const std::string head = "head";
  b.write(head.data(), head.size());
  const std::string big(100000, 'q');
  b.write(big.data(), big.size());
  ASSERT_EQ(b.size(), head.size() + big.size());
  EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()), head + big);
}

TEST(WipingBufferTest, MovesOwnership) {
  WipingBuffer a;
  a.write("abc", 3);
  const uint8_t* p = a.data();
  WipingBuffer b(std::move(a));
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(b.size(), 3u);
  EXPECT_EQ(a.size(), 0u);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(a.data(), nullptr);
  WipingBuffer c;
  c.write("zz", 2);
  c = std::move(b);
  EXPECT_EQ(c.data(), p);
  EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(c.data()), c.size()), "abc");
  EXPECT_EQ(b.data(), nullptr);  // NOLINT(bugprone-use-after-move)
  b.write("x", 1);               // a moved-from buffer is usable again
  EXPECT_EQ(b.size(), 1u);
}

}  // namespace
}  // namespace kmsd
