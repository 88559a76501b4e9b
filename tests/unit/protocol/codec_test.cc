// The typed messages: the operation table, and Decode/Encode of every kind
// of member through real msgpack bytes.
#include "protocol/codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "protocol/operation_types.h"
#include "tests/support/value_builders.h"

namespace kmsd {
namespace {

using ::testing::HasSubstr;
using testing::MapOf;
using testing::MustDecode;

// Encodes `map`, decodes the bytes and keeps both alive for views.
struct Wire {
  explicit Wire(Value::Map map) {
    WipingBuffer buffer = EncodeValue(Value(std::move(map)));
    bytes.assign(buffer.data(), buffer.data() + buffer.size());
    frame.emplace(MustDecode(bytes));
  }
  Fields fields() const { return *Fields::Of(frame->root(), "args"); }
  std::vector<uint8_t> bytes;
  std::optional<Frame> frame;
};

std::string Text(std::span<const uint8_t> bytes) { return {bytes.begin(), bytes.end()}; }

TEST(OperationTableTest, NamesAreUniqueAndFoundAgain) {
  std::set<std::string_view> names;
  for (const auto& info : Operations()) {
    EXPECT_TRUE(names.insert(info.name).second) << info.name;
    const OperationInfo* found = FindOperation(info.name);
    ASSERT_NE(found, nullptr) << info.name;
    EXPECT_EQ(found->id, info.id);
    EXPECT_EQ(&InfoOf(info.id), found);
    EXPECT_NE(PermissionName(info.permission), "unknown");
    EXPECT_NE(ResourceName(info.resource), "unknown");
  }
  EXPECT_EQ(names.size(), kOperationCount);
  EXPECT_EQ(FindOperation("encrypt "), nullptr);
  EXPECT_EQ(FindOperation(""), nullptr);
}

TEST(OperationTableTest, TenantRulesMatchTheProtocol) {
  for (const auto& info : Operations()) {
    // Only tenant operations can be served for a pending tenant.
    if (info.serves_pending_tenant) {
      EXPECT_TRUE(info.needs_tenant) << info.name;
    }
  }
  EXPECT_FALSE(InfoOf(OpId::kStatus).needs_tenant);
  EXPECT_FALSE(InfoOf(OpId::kGenerateRandom).needs_tenant);
  EXPECT_TRUE(InfoOf(OpId::kTenantCancelDeletion).serves_pending_tenant);
  EXPECT_FALSE(InfoOf(OpId::kTenantScheduleDeletion).serves_pending_tenant);
  EXPECT_EQ(ops::Encrypt::Name(), "encrypt");
  EXPECT_EQ(PermissionName(InfoOf(OpId::kReEncrypt).permission), "crypto:re-encrypt-from");
}

TEST(CodecTest, RequestRoundTripsWithViewsIntoTheFrame) {
  const Bytes plaintext = {'s', 'e', 'c', 'r', 'e', 't'};
  ops::EncryptRequest request{
      .key = "alias/data", .plaintext = plaintext, .context = {{"purpose", "test"}}};
  Wire wire(Encode(ops::EncryptRequest(request)));
  auto decoded = Decode<ops::EncryptRequest>(wire.fields());
  ASSERT_TRUE(decoded.has_value()) << decoded.error();
  EXPECT_EQ(decoded->key, "alias/data");
  EXPECT_EQ(Text(decoded->plaintext), "secret");
  EXPECT_EQ(decoded->context, (EncryptionContext{{"purpose", "test"}}));
  // A view: it points into the frame's bytes, not a copy.
  EXPECT_GE(decoded->plaintext.data(), wire.bytes.data());
  EXPECT_LT(decoded->plaintext.data(), wire.bytes.data() + wire.bytes.size());
}

TEST(CodecTest, AnEmptyContextAndAbsentOptionalsAreNotSent) {
  Value::Map map = Encode(ops::DecryptRequest{.ciphertext = {}, .context = {}, .key = {}});
  ASSERT_EQ(map.size(), 1u);
  EXPECT_EQ(map[0].first, "ciphertext");
}

TEST(CodecTest, StrictDecodingRefusesUnknownFieldsAndNamesTheBadOne) {
  Wire unknown(MapOf("key", "k", "plaintext", Bytes{1}, "colour", "red"));
  auto a = Decode<ops::EncryptRequest>(unknown.fields());
  ASSERT_FALSE(a.has_value());
  EXPECT_EQ(a.error().code(), Code::kInvalidArgument);
  EXPECT_THAT(a.error().message(), HasSubstr("unknown field 'colour'"));

  Wire missing(MapOf("plaintext", Bytes{1}));
  auto b = Decode<ops::EncryptRequest>(missing.fields());
  ASSERT_FALSE(b.has_value());
  EXPECT_THAT(b.error().message(), HasSubstr("'key' is required"));

  Wire wrong(MapOf("key", "k", "plaintext", "not binary"));
  auto c = Decode<ops::EncryptRequest>(wrong.fields());
  ASSERT_FALSE(c.has_value());
  EXPECT_THAT(c.error().message(), HasSubstr("'plaintext' must be binary"));
}

TEST(CodecTest, LenientDecodingIgnoresUnknownReplyFields) {
  Wire reply(MapOf("healthy", true, "from_the_future", 1));
  EXPECT_FALSE(Decode<ops::HealthReply>(reply.fields()).has_value());
  auto lenient = Decode<ops::HealthReply>(reply.fields(), Strictness::kLenient);
  ASSERT_TRUE(lenient.has_value()) << lenient.error();
  EXPECT_TRUE(lenient->healthy);
}

TEST(CodecTest, OptionalsTreatNilAsAbsent) {
  Wire nil(
      MapOf("ciphertext", Bytes{1}, "destination_key", nullptr, "destination_context", nullptr));
  auto decoded = Decode<ops::ReEncryptRequest>(nil.fields());
  ASSERT_TRUE(decoded.has_value()) << decoded.error();
  EXPECT_FALSE(decoded->destination_key.has_value());
  EXPECT_FALSE(decoded->destination_context.has_value());

  Wire given(MapOf("ciphertext", Bytes{1}, "destination_context", MapOf()));
  auto empty_context = Decode<ops::ReEncryptRequest>(given.fields());
  ASSERT_TRUE(empty_context.has_value()) << empty_context.error();
  ASSERT_TRUE(empty_context->destination_context.has_value());
  EXPECT_TRUE(empty_context->destination_context->empty());
}

TEST(CodecTest, NestedRepliesRoundTrip) {
  ops::StatusReply status;
  status.version = "0.1.0";
  status.protocol = 1;
  status.token = {.label = "kmsd", .manufacturer = "SoftHSM", .model = "v2", .available = true};
  status.keystore = {.backend = "sqlite", .schema_version = 4};
  status.uptime_seconds = -1;  // an int64 keeps its sign
  Wire wire(Encode(std::move(status)));
  auto decoded = Decode<ops::StatusReply>(wire.fields(), Strictness::kLenient);
  ASSERT_TRUE(decoded.has_value()) << decoded.error();
  EXPECT_EQ(decoded->token.manufacturer, "SoftHSM");
  EXPECT_TRUE(decoded->token.available);
  EXPECT_EQ(decoded->keystore.schema_version, 4u);
  EXPECT_EQ(decoded->uptime_seconds, -1);

  ops::KeyListReply list;
  list.keys.resize(2);
  list.keys[0].id = "00";
  list.keys[0].aliases = {"alias/x", "alias/y"};
  list.keys[1].id = "01";
  list.keys[1].rotation_period_seconds = 86400;
  Wire keys(Encode(std::move(list)));
  auto back = Decode<ops::KeyListReply>(keys.fields(), Strictness::kLenient);
  ASSERT_TRUE(back.has_value()) << back.error();
  ASSERT_EQ(back->keys.size(), 2u);
  EXPECT_EQ(back->keys[0].aliases, (std::vector<std::string>{"alias/x", "alias/y"}));
  EXPECT_EQ(back->keys[1].rotation_period_seconds, std::optional<int64_t>(86400));
  EXPECT_FALSE(back->keys[0].rotation_period_seconds.has_value());
}

TEST(CodecTest, BatchItemsAreDecodedOneByOne) {
  Value::Array items;
  items.emplace_back(MapOf("plaintext", Bytes{'a'}));
  items.emplace_back(MapOf("plaintext", "not binary"));
  items.emplace_back("not a map");
  Wire wire(MapOf("key", "k", "items", std::move(items)));
  auto batch = Decode<ops::BatchEncryptRequest>(wire.fields());
  ASSERT_TRUE(batch.has_value()) << batch.error();
  ASSERT_EQ(batch->items.size(), 3u);
  auto first = DecodeItem(batch->items, 0);
  ASSERT_TRUE(first.has_value()) << first.error();
  EXPECT_EQ(Text(first->plaintext), "a");
  auto second = DecodeItem(batch->items, 1);
  ASSERT_FALSE(second.has_value());
  EXPECT_THAT(second.error().message(), HasSubstr("'plaintext' must be binary"));
  auto third = DecodeItem(batch->items, 2);
  ASSERT_FALSE(third.has_value());
  EXPECT_THAT(third.error().message(), HasSubstr("must be a map"));
}

TEST(CodecTest, ItemResultsCarryValuesAndErrors) {
  ops::BatchReply<ops::BatchEncryptResult> reply;
  reply.results.emplace_back(ops::BatchEncryptResult{.ciphertext = {1, 2}, .version = 3});
  reply.results.emplace_back(Error(Status(Code::kThrottled, "busy").WithRetryAfter(10)));
  Wire wire(Encode(std::move(reply)));
  auto decoded = Decode<ops::BatchReply<ops::BatchEncryptResult>>(wire.fields());
  ASSERT_TRUE(decoded.has_value()) << decoded.error();
  ASSERT_EQ(decoded->results.size(), 2u);
  ASSERT_TRUE(decoded->results[0].has_value());
  EXPECT_EQ(decoded->results[0]->version, 3u);
  EXPECT_EQ(decoded->results[0]->ciphertext, (Bytes{1, 2}));
  ASSERT_FALSE(decoded->results[1].has_value());
  EXPECT_EQ(decoded->results[1].error().code(), Code::kThrottled);
  EXPECT_EQ(decoded->results[1].error().retry_after_ms(), std::optional<uint32_t>(10));
}

TEST(CodecTest, ASecretStaysASecretBuffer) {
  ops::DecryptReply reply;
  reply.plaintext = SecretBuffer::CopyOf(std::string_view("pt"));
  reply.version = 1;
  Value::Map map = Encode(std::move(reply));
  ASSERT_FALSE(map.empty());
  EXPECT_TRUE(std::holds_alternative<SecretBuffer>(map[0].second.variant()));
  // A borrowed plaintext in a request is copied into locked memory too.
  const Bytes bytes = {1, 2, 3};
  Value::Map request = Encode(ops::PlaintextItem{.plaintext = bytes, .context = {}});
  EXPECT_TRUE(std::holds_alternative<SecretBuffer>(request[0].second.variant()));
}

TEST(CodecTest, NarrowIntegersAreRangeChecked) {
  Wire negative(MapOf("number_of_bytes", -1));
  EXPECT_FALSE(Decode<ops::RandomRequest>(negative.fields()).has_value());
}

}  // namespace
}  // namespace kmsd
