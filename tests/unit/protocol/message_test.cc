// Frame decoding, Fields accessors, request and reply envelopes.
#include "protocol/message.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tests/support/test_helpers.h"
#include "tests/support/value_builders.h"

namespace kmsd {
namespace {

using testing::ArrayOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::MapOf;
using testing::MustDecode;

std::vector<uint8_t> SampleRequestBytes() {
  return testing::EncodedBytes(BuildRequest(42, "encrypt", "acme",
                                            MapOf("key", "alias/data", "plaintext", Bytes{1, 2, 3},
                                                  "context", MapOf("purpose", "test"))));
}

// A decoded value with the bytes it points into.
struct Decoded {
  explicit Decoded(const Value& value)
      : bytes(testing::EncodedBytes(value)), frame(MustDecode(bytes)) {}
  explicit Decoded(std::vector<uint8_t> raw) : bytes(std::move(raw)), frame(MustDecode(bytes)) {}
  const msgpack::object& root() const { return frame.root(); }
  Fields fields(std::string_view what = "args") const {
    auto f = Fields::Of(root(), what);
    if (!f) throw std::runtime_error(f.error().ToString());
    return *f;
  }
  std::vector<uint8_t> bytes;
  Frame frame;
};

// --- Frame::Decode -------------------------------------------------------------

TEST(FrameTest, DecodesOneValueWithoutCopyingBinaries) {
  const std::vector<uint8_t> bytes = testing::EncodedBytes(Value(MapOf("data", Bytes{7, 8, 9})));
  auto frame = Frame::Decode(bytes);
  ASSERT_TRUE(frame.has_value()) << frame.error();
  const msgpack::object& data = frame->root().via.map.ptr[0].val;
  ASSERT_EQ(data.type, msgpack::type::BIN);
  const auto* p = reinterpret_cast<const uint8_t*>(data.via.bin.ptr);
  EXPECT_GE(p, bytes.data());
  EXPECT_LE(p + data.via.bin.size, bytes.data() + bytes.size());
}

TEST(FrameTest, StaysValidAfterMove) {
  const std::vector<uint8_t> bytes = testing::EncodedBytes(Value(MapOf("id", 5)));
  auto decoded = Frame::Decode(bytes);
  ASSERT_TRUE(decoded.has_value());
  Frame moved(std::move(*decoded));
  EXPECT_EQ(moved.root().type, msgpack::type::MAP);
  auto other = Frame::Decode(testing::EncodedBytes(Value(1)));  // its bytes die; only moved over
  ASSERT_TRUE(other.has_value());
  *other = std::move(moved);
  EXPECT_EQ(other->root().via.map.ptr[0].val.via.u64, 5u);
}

TEST(FrameTest, RejectsAnEmptyFrame) {
  auto frame = Frame::Decode({});
  ASSERT_EQ(CodeOf(frame), Code::kInvalidArgument);
  EXPECT_THAT(frame.error().message(), HasSubstr("empty"));
}

TEST(FrameTest, RejectsEveryTruncationOfAValidFrame) {
  const std::vector<uint8_t> bytes = SampleRequestBytes();
  ASSERT_TRUE(Frame::Decode(bytes).has_value());
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_EQ(CodeOf(Frame::Decode(std::span(bytes).first(n))), Code::kInvalidArgument)
        << "length " << n;
  }
}

TEST(FrameTest, RejectsTrailingBytes) {
  std::vector<uint8_t> bytes = SampleRequestBytes();
  for (uint8_t extra : {0x00, 0xc0, 0xff}) {
    std::vector<uint8_t> longer = bytes;
    longer.push_back(extra);
    auto frame = Frame::Decode(longer);
    ASSERT_EQ(CodeOf(frame), Code::kInvalidArgument);
    EXPECT_THAT(frame.error().message(), HasSubstr("bytes after"));
  }
  std::vector<uint8_t> two = bytes;
  two.insert(two.end(), bytes.begin(), bytes.end());
  EXPECT_EQ(CodeOf(Frame::Decode(two)), Code::kInvalidArgument);
}

TEST(FrameTest, RejectsGarbage) {
  const std::vector<std::vector<uint8_t>> garbage = {
      {0xc1},                          // never used
      {0xc1, 0x00},                    //
      {0x81},                          // map of one, no entry
      {0x81, 0xa1, 'k'},               // map entry without value
      {0xa5, 'a', 'b'},                // short string
      {0xd9},                          // str8 without length
      {0xc4, 0x05, 1, 2},              // short bin8
      {0xd4, 0x01, 0x00},              // fixext: ext is not allowed
      {0xc7, 0x01, 0x05, 0x00},        // ext8
      {0xdd, 0xff, 0xff, 0xff, 0xff},  // array of 4G entries, declared only
      {0xdf, 0xff, 0xff, 0xff, 0xff},  // map of 4G entries, declared only
      {0xdb, 0xff, 0xff, 0xff, 0xff},  // str32 of 4 GiB, declared only
      {0xc6, 0xff, 0xff, 0xff, 0xff},  // bin32 of 4 GiB, declared only
  };
  for (const auto& bytes : garbage) {
    EXPECT_EQ(CodeOf(Frame::Decode(bytes)), Code::kInvalidArgument)
        << "first byte " << static_cast<int>(bytes[0]);
  }
}

TEST(FrameTest, RejectsMapsOverTheEntryLimit) {
  Value::Map big;
  for (int i = 0; i < 4096; ++i) big.emplace_back("k" + std::to_string(i), 0);
  EXPECT_TRUE(Frame::Decode(testing::EncodedBytes(Value(std::move(big)))).has_value());
  Value::Map too_big;
  for (int i = 0; i < 4097; ++i) too_big.emplace_back("k" + std::to_string(i), 0);
  EXPECT_EQ(CodeOf(Frame::Decode(testing::EncodedBytes(Value(std::move(too_big))))),
            Code::kInvalidArgument);
}

// Containers allowed around a scalar; FrameLimits() in message.cc.
constexpr int kMaxNestingForTest = 8;  // depth=8

Value Nested(int depth) {
  Value v(1);
  for (int i = 0; i < depth; ++i) {
    Value::Array a;
    a.push_back(std::move(v));
    v = Value(std::move(a));
  }
  return v;
}

TEST(FrameTest, AcceptsNestingUpToTheLimitAndRejectsDeeper) {
  // A request is at most a few levels deep (envelope, args, batch items, context).
  EXPECT_TRUE(Frame::Decode(testing::EncodedBytes(Nested(kMaxNestingForTest))).has_value());
  auto deeper = Frame::Decode(testing::EncodedBytes(Nested(kMaxNestingForTest + 1)));
  EXPECT_EQ(CodeOf(deeper), Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(Frame::Decode(testing::EncodedBytes(Nested(1000)))), Code::kInvalidArgument);
}

TEST(FrameTest, SurvivesEveryBitFlipOfARequest) {
  // Whatever a flip does, decoding and parsing answer with a caller error.
  const std::vector<uint8_t> good = SampleRequestBytes();
  for (size_t i = 0; i < good.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::vector<uint8_t> bytes = good;
      bytes[i] ^= static_cast<uint8_t>(1 << bit);
      auto frame = Frame::Decode(bytes);
      if (!frame) {
        EXPECT_EQ(frame.error().code(), Code::kInvalidArgument);
        continue;
      }
      std::optional<uint64_t> id;
      auto request = ParseRequest(frame->root(), &id);
      if (!request) {
        EXPECT_THAT(request.error().code(),
                    ::testing::AnyOf(Code::kInvalidArgument, Code::kUnsupportedVersion))
            << "byte " << i << " bit " << bit;
      }
    }
  }
}

// --- Fields --------------------------------------------------------------------

TEST(FieldsTest, OfRejectsANonMap) {
  for (const Value& v : {Value(1), Value("map"), Value(Bytes{}), Value(), Value(ArrayOf(1))}) {
    auto fields = Fields::Of(Decoded(v).root(), "request");
    ASSERT_EQ(CodeOf(fields), Code::kInvalidArgument);
    EXPECT_EQ(fields.error().message(), "request must be a map");
  }
}

TEST(FieldsTest, OfRejectsANonStringKey) {
  Decoded d(std::vector<uint8_t>{0x81, 0x01, 0x02});  // {1: 2}
  auto fields = Fields::Of(d.root(), "args");
  ASSERT_EQ(CodeOf(fields), Code::kInvalidArgument);
  EXPECT_THAT(fields.error().message(), HasSubstr("not a string"));
}

TEST(FieldsTest, OfRejectsARepeatedKey) {
  Decoded d(Value(MapOf("a", 1, "key", 2, "b", 3, "key", 4)));
  auto fields = Fields::Of(d.root(), "args");
  ASSERT_EQ(CodeOf(fields), Code::kInvalidArgument);
  EXPECT_THAT(fields.error().message(), HasSubstr("repeats the key 'key'"));
}

TEST(FieldsTest, DefaultIsEmpty) {
  Fields fields;
  EXPECT_FALSE(fields.Has("x"));
  EXPECT_TRUE(fields.OnlyKnown({}).ok());
  EXPECT_EQ(CodeOf(fields.String("x")), Code::kInvalidArgument);
  int visits = 0;
  fields.ForEach([&](std::string_view, const msgpack::object&) { ++visits; });
  EXPECT_EQ(visits, 0);
}

TEST(FieldsTest, OnlyKnownNamesTheFirstUnknownKey) {
  Decoded d(Value(MapOf("key", 1, "plaintext", 2, "bogus", 3, "worse", 4)));
  Fields f = d.fields();
  EXPECT_TRUE(f.OnlyKnown({"key", "plaintext", "bogus", "worse", "unused"}).ok());
  Status s = f.OnlyKnown({"key", "plaintext"});
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(s.message(), "args has an unknown field 'bogus'");
  EXPECT_EQ(f.OnlyKnown({}).code(), Code::kInvalidArgument);
}

TEST(FieldsTest, OnlyKnownShowsABoundedPrefixOfAHostileKey) {
  Decoded d(Value(MapOf(std::string(5000, 'k'), 1)));
  Status s = d.fields().OnlyKnown({"key"});
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_LT(s.message().size(), 200u);
}

TEST(FieldsTest, StringReturnsTheStringAndRejectsMissingOrOtherTypes) {
  Decoded d(Value(MapOf("s", "text", "n", 1, "b", Bytes{'t'}, "nil", nullptr)));
  Fields f = d.fields();
  auto s = f.String("s");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(*s, "text");
  auto missing = f.String("absent");
  ASSERT_EQ(CodeOf(missing), Code::kInvalidArgument);
  EXPECT_EQ(missing.error().message(), "args field 'absent' is required");
  for (const char* key : {"n", "b", "nil"}) {
    auto wrong = f.String(key);
    ASSERT_EQ(CodeOf(wrong), Code::kInvalidArgument) << key;
    EXPECT_EQ(wrong.error().message(), "args field '" + std::string(key) + "' must be a string");
  }
}

TEST(FieldsTest, OptionalStringTreatsAbsentAndNilAsNone) {
  Decoded d(Value(MapOf("s", "", "nil", nullptr, "n", 3)));
  Fields f = d.fields();
  ASSERT_TRUE(f.OptionalString("s").has_value());
  EXPECT_EQ(f.OptionalString("s")->value(), "");
  EXPECT_EQ(*f.OptionalString("nil"), std::nullopt);
  EXPECT_EQ(*f.OptionalString("absent"), std::nullopt);
  EXPECT_EQ(CodeOf(f.OptionalString("n")), Code::kInvalidArgument);
}

TEST(FieldsTest, BinaryReturnsTheBytesAndRejectsStrings) {
  Decoded d(Value(MapOf("b", Bytes{0, 1, 2}, "empty", Bytes{}, "s", "012")));
  Fields f = d.fields();
  auto b = f.Binary("b");
  ASSERT_TRUE(b.has_value());
  EXPECT_THAT(std::vector<uint8_t>(b->begin(), b->end()), ElementsAre(0, 1, 2));
  ASSERT_TRUE(f.Binary("empty").has_value());
  EXPECT_TRUE(f.Binary("empty")->empty());
  auto s = f.Binary("s");
  ASSERT_EQ(CodeOf(s), Code::kInvalidArgument);
  EXPECT_EQ(s.error().message(), "args field 's' must be binary");
  EXPECT_EQ(CodeOf(f.Binary("absent")), Code::kInvalidArgument);
}

TEST(FieldsTest, UintAcceptsOnlyNonNegativeIntegers) {
  // {"zero": 0, "max": u64 max, "neg": -1, "float": 1.0, "str": "1", "bool": true}
  std::vector<uint8_t> bytes = {0x86, 0xa4, 'z', 'e', 'r', 'o', 0x00, 0xa3, 'm', 'a', 'x', 0xcf};
  for (int i = 0; i < 8; ++i) bytes.push_back(0xff);
  const std::vector<uint8_t> rest = {0xa3, 'n',  'e',  'g', 0xff, 0xa5, 'f', 'l', 'o', 'a',  't',
                                     0xcb, 0x3f, 0xf0, 0,   0,    0,    0,   0,   0,   0xa3, 's',
                                     't',  'r',  0xa1, '1', 0xa4, 'b',  'o', 'o', 'l', 0xc3};
  bytes.insert(bytes.end(), rest.begin(), rest.end());
  Decoded d(bytes);
  Fields f = d.fields();
  EXPECT_EQ(*f.Uint("zero"), 0u);
  EXPECT_EQ(*f.Uint("max"), UINT64_MAX);
  for (const char* key : {"neg", "float", "str", "bool"}) {
    auto r = f.Uint(key);
    ASSERT_EQ(CodeOf(r), Code::kInvalidArgument) << key;
    EXPECT_THAT(r.error().message(), HasSubstr("must be a non-negative integer"));
  }
  EXPECT_EQ(CodeOf(f.Uint("absent")), Code::kInvalidArgument);
  EXPECT_EQ(*f.OptionalUint("absent"), std::nullopt);
  EXPECT_EQ(*f.OptionalUint("zero"), std::optional<uint64_t>(0));
  for (const char* key : {"neg", "float", "str", "bool"}) {
    EXPECT_EQ(CodeOf(f.OptionalUint(key)), Code::kInvalidArgument) << key;
  }
}

TEST(FieldsTest, OptionalUintTreatsNilAsNone) {
  Decoded d(Value(MapOf("nil", nullptr)));
  EXPECT_EQ(*d.fields().OptionalUint("nil"), std::nullopt);
}

TEST(FieldsTest, OptionalBoolUsesTheDefaultOnlyWhenAbsentOrNil) {
  Decoded d(Value(MapOf("t", true, "f", false, "nil", nullptr, "n", 1, "s", "true")));
  Fields f = d.fields();
  EXPECT_TRUE(*f.OptionalBool("t", false));
  EXPECT_FALSE(*f.OptionalBool("f", true));
  EXPECT_TRUE(*f.OptionalBool("nil", true));
  EXPECT_FALSE(*f.OptionalBool("absent", false));
  EXPECT_TRUE(*f.OptionalBool("absent", true));
  for (const char* key : {"n", "s"}) {
    auto r = f.OptionalBool(key, false);
    ASSERT_EQ(CodeOf(r), Code::kInvalidArgument) << key;
    EXPECT_THAT(r.error().message(), HasSubstr("must be a boolean"));
  }
}

TEST(FieldsTest, ContextReadsAMapOfStrings) {
  Decoded d(Value(MapOf("context", MapOf("b", "2", "a", ""), "nil", nullptr)));
  Fields f = d.fields();
  auto context = f.Context("context");
  ASSERT_TRUE(context.has_value()) << context.error();
  EXPECT_EQ(*context, (EncryptionContext{{"a", ""}, {"b", "2"}}));
  EXPECT_TRUE(f.Context("absent")->empty());
  EXPECT_TRUE(f.Context("nil")->empty());
}

TEST(FieldsTest, ContextRejectsNonStringsRepeatsAndLimits) {
  Value::Map too_many;
  for (int i = 0; i < 65; ++i) too_many.emplace_back("k" + std::to_string(i), "v");
  Decoded d(Value(MapOf("list", ArrayOf("a"), "int_value", MapOf("a", 1), "bin_value",
                        MapOf("a", Bytes{1}), "repeat", MapOf("a", "1", "a", "2"), "empty_key",
                        MapOf("", "v"), "too_many", std::move(too_many), "long_value",
                        MapOf("a", std::string(4097, 'v')))));
  Fields f = d.fields();
  for (const char* key : {"list", "int_value", "bin_value"}) {
    auto r = f.Context(key);
    ASSERT_EQ(CodeOf(r), Code::kInvalidArgument) << key;
    EXPECT_THAT(r.error().message(), HasSubstr("must be a map of strings"));
  }
  auto repeat = f.Context("repeat");
  ASSERT_EQ(CodeOf(repeat), Code::kInvalidArgument);
  EXPECT_THAT(repeat.error().message(), HasSubstr("repeats a key"));
  for (const char* key : {"empty_key", "too_many", "long_value"}) {
    EXPECT_EQ(CodeOf(f.Context(key)), Code::kInvalidArgument) << key;
  }
  // A non-string key inside the context: {"c": {1: "v"}}
  Decoded raw(std::vector<uint8_t>{0x81, 0xa1, 'c', 0x81, 0x01, 0xa1, 'v'});
  EXPECT_EQ(CodeOf(raw.fields().Context("c")), Code::kInvalidArgument);
}

TEST(FieldsTest, ArrayAndMapReturnTheirContents) {
  Decoded d(Value(MapOf("items", ArrayOf(1, "two"), "inner", MapOf("x", 1), "s", "str")));
  Fields f = d.fields();
  auto items = f.Array("items");
  ASSERT_TRUE(items.has_value());
  ASSERT_EQ(items->size(), 2u);
  EXPECT_EQ((*items)[0].via.u64, 1u);
  auto inner = f.Map("inner");
  ASSERT_TRUE(inner.has_value());
  EXPECT_EQ(*inner->Uint("x"), 1u);
  auto inner_missing = inner->Uint("y");
  ASSERT_EQ(CodeOf(inner_missing), Code::kInvalidArgument);
  EXPECT_EQ(inner_missing.error().message(), "inner field 'y' is required");

  EXPECT_EQ(CodeOf(f.Array("inner")), Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(f.Array("absent")), Code::kInvalidArgument);
  EXPECT_THAT(f.Array("s").error().message(), HasSubstr("must be an array"));
  EXPECT_EQ(CodeOf(f.Map("items")), Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(f.Map("absent")), Code::kInvalidArgument);
  EXPECT_THAT(f.Map("s").error().message(), HasSubstr("must be a map"));
}

TEST(FieldsTest, MapValidatesTheNestedMap) {
  Decoded d(Value(MapOf("inner", MapOf("a", 1, "a", 2))));
  auto inner = d.fields().Map("inner");
  ASSERT_EQ(CodeOf(inner), Code::kInvalidArgument);
  EXPECT_THAT(inner.error().message(), HasSubstr("repeats the key 'a'"));
}

TEST(FieldsTest, ForEachVisitsEveryEntryInWireOrder) {
  Decoded d(Value(MapOf("z", 1, "a", 2, "m", 3)));
  std::vector<std::string> keys;
  std::vector<uint64_t> values;
  d.fields().ForEach([&](std::string_view key, const msgpack::object& value) {
    keys.emplace_back(key);
    values.push_back(value.via.u64);
  });
  EXPECT_THAT(keys, ElementsAre("z", "a", "m"));
  EXPECT_THAT(values, ElementsAre(1, 2, 3));
}

// --- Requests ------------------------------------------------------------------

TEST(RequestTest, BuildThenParseRoundTrips) {
  Decoded d(SampleRequestBytes());
  std::optional<uint64_t> id;
  auto request = ParseRequest(d.root(), &id);
  ASSERT_TRUE(request.has_value()) << request.error();
  EXPECT_EQ(id, std::optional<uint64_t>(42));
  EXPECT_EQ(request->id, 42u);
  EXPECT_EQ(request->op, "encrypt");
  EXPECT_EQ(request->tenant, "acme");
  EXPECT_EQ(*request->args.String("key"), "alias/data");
  EXPECT_EQ(request->args.Binary("plaintext")->size(), 3u);
  EXPECT_EQ(*request->args.Context("context"), (EncryptionContext{{"purpose", "test"}}));
}

TEST(RequestTest, BuildOmitsAnEmptyTenant) {
  Decoded d(BuildRequest(1, "tenant.list", "", {}));
  Fields envelope = d.fields("request");
  EXPECT_FALSE(envelope.Has("tenant"));
  std::optional<uint64_t> id;
  auto request = ParseRequest(d.root(), &id);
  ASSERT_TRUE(request.has_value()) << request.error();
  EXPECT_EQ(request->tenant, "");
  EXPECT_FALSE(request->args.Has("anything"));
}

TEST(RequestTest, AcceptsAbsentArgsAndNilTenant) {
  Decoded d(Value(MapOf("version", 1, "id", 0, "op", "status", "tenant", nullptr)));
  std::optional<uint64_t> id;
  auto request = ParseRequest(d.root(), &id);
  ASSERT_TRUE(request.has_value()) << request.error();
  EXPECT_EQ(request->id, 0u);
  EXPECT_EQ(request->tenant, "");
  EXPECT_TRUE(request->args.OnlyKnown({}).ok());
}

TEST(RequestTest, RejectsANonMapWithoutAnId) {
  Decoded d(Value(ArrayOf(1, 42, "status")));
  std::optional<uint64_t> id;
  auto request = ParseRequest(d.root(), &id);
  EXPECT_EQ(CodeOf(request), Code::kInvalidArgument);
  EXPECT_EQ(id, std::nullopt);
}

TEST(RequestTest, RejectsAMissingOrBadIdWithoutAnId) {
  std::vector<Value::Map> envelopes;
  envelopes.push_back(MapOf("version", 1, "op", "status"));
  envelopes.push_back(MapOf("version", 1, "id", -1, "op", "status"));
  envelopes.push_back(MapOf("version", 1, "id", "7", "op", "status"));
  envelopes.push_back(MapOf("version", 1, "id", nullptr, "op", "status"));
  for (auto& m : envelopes) {
    Decoded d{Value(std::move(m))};
    std::optional<uint64_t> id;
    auto request = ParseRequest(d.root(), &id);
    EXPECT_EQ(CodeOf(request), Code::kInvalidArgument);
    EXPECT_EQ(id, std::nullopt);
  }
}

TEST(RequestTest, ReportsTheIdWhenALaterFieldIsBad) {
  struct Case {
    Value::Map envelope;
    Code code;
    std::string message;
  };
  std::vector<Case> cases;
  cases.push_back({MapOf("version", 1, "id", 9, "op", "status", "extra", 1), Code::kInvalidArgument,
                   "unknown field 'extra'"});
  cases.push_back(
      {MapOf("id", 9, "op", "status"), Code::kInvalidArgument, "'version' is required"});
  cases.push_back({MapOf("version", 2, "id", 9, "op", "status"), Code::kUnsupportedVersion,
                   "protocol version 2 is not supported"});
  cases.push_back(
      {MapOf("version", 0, "id", 9, "op", "status"), Code::kUnsupportedVersion, "version 0"});
  cases.push_back({MapOf("version", "1", "id", 9, "op", "status"), Code::kInvalidArgument,
                   "'version' must be"});
  cases.push_back({MapOf("version", 1, "id", 9), Code::kInvalidArgument, "'op' is required"});
  cases.push_back(
      {MapOf("version", 1, "id", 9, "op", Bytes{'p'}), Code::kInvalidArgument, "'op' must be"});
  cases.push_back({MapOf("version", 1, "id", 9, "op", "status", "tenant", 5),
                   Code::kInvalidArgument, "'tenant' must be"});
  cases.push_back({MapOf("version", 1, "id", 9, "op", "status", "args", ArrayOf()),
                   Code::kInvalidArgument, "'args' must be a map"});
  cases.push_back({MapOf("version", 1, "id", 9, "op", "status", "args", MapOf("a", 1, "a", 1)),
                   Code::kInvalidArgument, "repeats the key"});
  cases.push_back({MapOf("version", 1, "id", 9, "op", "status", "id", 9), Code::kInvalidArgument,
                   "repeats the key 'id'"});
  for (auto& c : cases) {
    Decoded d{Value(std::move(c.envelope))};
    std::optional<uint64_t> id;
    auto request = ParseRequest(d.root(), &id);
    ASSERT_EQ(CodeOf(request), c.code) << c.message;
    EXPECT_THAT(request.error().message(), HasSubstr(c.message));
    // A repeated key fails before the id is read; every other case echoes it.
    if (c.message.find("'id'") == std::string::npos) {
      EXPECT_EQ(id, std::optional<uint64_t>(9)) << c.message;
    }
  }
}

// --- Replies -------------------------------------------------------------------

TEST(ReplyTest, OkReplyRoundTrips) {
  WipingBuffer bytes = EncodeOkReply(
      77, MapOf("plaintext", SecretBuffer::CopyOf(std::string_view("pt")), "version", 3));
  Frame frame = MustDecode(bytes.span());
  auto reply = ParseReply(frame.root());
  ASSERT_TRUE(reply.has_value()) << reply.error();
  EXPECT_EQ(reply->id, std::optional<uint64_t>(77));
  EXPECT_TRUE(reply->status.ok());
  auto pt = reply->result.Binary("plaintext");
  ASSERT_TRUE(pt.has_value());
  EXPECT_EQ(std::string(pt->begin(), pt->end()), "pt");
  EXPECT_EQ(*reply->result.Uint("version"), 3u);
}

TEST(ReplyTest, ErrorReplyRoundTripsEveryCode) {
  for (Code code :
       {Code::kInvalidArgument, Code::kNotFound, Code::kAlreadyExists, Code::kAccessDenied,
        Code::kInvalidCiphertext, Code::kKeyDisabled, Code::kKeyPendingDeletion,
        Code::kFrameTooLarge, Code::kUnsupportedVersion, Code::kUnknownOperation, Code::kThrottled,
        Code::kQuotaExceeded, Code::kTokenUnavailable, Code::kUnavailable, Code::kInternal}) {
    WipingBuffer bytes = EncodeErrorReply(5, Status(code, "why: " + std::string(CodeName(code))));
    Frame frame = MustDecode(bytes.span());
    auto reply = ParseReply(frame.root());
    ASSERT_TRUE(reply.has_value()) << reply.error();
    EXPECT_EQ(reply->id, std::optional<uint64_t>(5));
    EXPECT_EQ(reply->status.code(), code);
    EXPECT_EQ(reply->status.message(), "why: " + std::string(CodeName(code)));
    EXPECT_FALSE(reply->result.Has("anything"));
  }
}

TEST(ReplyTest, ErrorCarriesItsClassAndRetryAfter) {
  WipingBuffer bytes =
      EncodeErrorReply(9, Status(Code::kThrottled, "tenant 'acme' is busy").WithRetryAfter(40));
  Frame frame = MustDecode(bytes.span());
  Fields envelope = *Fields::Of(frame.root(), "reply");
  Fields error = *envelope.Map("error");
  EXPECT_EQ(*error.String("class"), "transient");
  EXPECT_EQ(*error.Uint("retry_after_ms"), 40u);
  auto reply = ParseReply(frame.root());
  ASSERT_TRUE(reply.has_value()) << reply.error();
  EXPECT_EQ(reply->status.code(), Code::kThrottled);
  EXPECT_EQ(reply->status.retry_after_ms(), std::optional<uint32_t>(40));

  WipingBuffer plain = EncodeErrorReply(9, Status(Code::kNotFound, "no key"));
  Frame plain_frame = MustDecode(plain.span());
  Fields plain_error = *Fields::Of(plain_frame.root(), "reply")->Map("error");
  EXPECT_EQ(*plain_error.String("class"), "caller");
  EXPECT_FALSE(plain_error.Has("retry_after_ms"));
}

TEST(ReplyTest, DecodeErrorRejectsABadRetryAfterAndClampsAHugeOne) {
  Decoded bad(Value(MapOf("code", "THROTTLED", "message", "m", "retry_after_ms", "soon")));
  Status carried;
  EXPECT_EQ(DecodeError(*Fields::Of(bad.root(), "error"), &carried).code(), Code::kInvalidArgument);
  Decoded huge(
      Value(MapOf("code", "THROTTLED", "message", "m", "retry_after_ms", uint64_t{1} << 40)));
  ASSERT_TRUE(DecodeError(*Fields::Of(huge.root(), "error"), &carried).ok());
  EXPECT_EQ(carried.code(), Code::kThrottled);
  EXPECT_EQ(carried.retry_after_ms(), std::optional<uint32_t>(UINT32_MAX));
}

TEST(ReplyTest, ErrorReplyWithoutIdCarriesNil) {
  WipingBuffer bytes = EncodeErrorReply(std::nullopt, Status(Code::kFrameTooLarge, "big"));
  Frame frame = MustDecode(bytes.span());
  Fields envelope = *Fields::Of(frame.root(), "reply");
  ASSERT_TRUE(envelope.Has("id"));  // present, as nil
  auto reply = ParseReply(frame.root());
  ASSERT_TRUE(reply.has_value()) << reply.error();
  EXPECT_EQ(reply->id, std::nullopt);
  EXPECT_EQ(reply->status.code(), Code::kFrameTooLarge);
}

TEST(ReplyTest, ErrorReplyWithCodeOkBecomesInternal) {
  WipingBuffer bytes = EncodeErrorReply(1, OkStatus());
  Frame frame = MustDecode(bytes.span());
  auto reply = ParseReply(frame.root());
  ASSERT_TRUE(reply.has_value()) << reply.error();
  EXPECT_EQ(reply->status.code(), Code::kInternal);
  EXPECT_THAT(reply->status.message(), HasSubstr("code OK"));
}

TEST(ReplyTest, UnknownErrorCodeBecomesInternalKeepingTheMessage) {
  Decoded d(Value(MapOf("version", 1, "id", 1, "ok", false, "error",
                        MapOf("code", "FROM_THE_FUTURE", "message", "m"))));
  auto reply = ParseReply(d.root());
  ASSERT_TRUE(reply.has_value()) << reply.error();
  EXPECT_EQ(reply->status.code(), Code::kInternal);
  EXPECT_EQ(reply->status.message(), "m");
}

TEST(ReplyTest, RejectsMalformedReplies) {
  std::vector<Value::Map> bad;
  bad.push_back(MapOf("version", 1, "id", 1, "ok", true));  // no result
  bad.push_back(MapOf("version", 1, "id", 1, "ok", true, "result", "x"));
  bad.push_back(MapOf("version", 1, "id", 1, "ok", false));  // no error
  bad.push_back(MapOf("version", 1, "id", 1));               // ok absent means error
  bad.push_back(MapOf("version", 1, "id", 1, "ok", "yes", "result", MapOf()));
  bad.push_back(MapOf("version", 1, "id", -1, "ok", true, "result", MapOf()));
  bad.push_back(MapOf("version", 1, "id", 1, "ok", false, "error", MapOf("code", "NOT_FOUND")));
  bad.push_back(MapOf("version", 1, "id", 1, "ok", false, "error", MapOf("message", "m")));
  bad.push_back(
      MapOf("version", 1, "id", 1, "ok", false, "error", MapOf("code", 10, "message", "m")));
  for (auto& m : bad) {
    Decoded d{Value(std::move(m))};
    EXPECT_EQ(CodeOf(ParseReply(d.root())), Code::kInvalidArgument);
  }
  Decoded not_a_map{Value(ArrayOf())};
  EXPECT_EQ(CodeOf(ParseReply(not_a_map.root())), Code::kInvalidArgument);
}

}  // namespace
}  // namespace kmsd
