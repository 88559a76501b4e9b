// The typed client (client/typed_call.h) against a real kmsd: requests built
// from their types, replies decoded into theirs, errors with their class.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "client/typed_call.h"
#include "tests/e2e/e2e_fixture.h"

namespace kmsd::testing {
namespace {

using ::testing::HasSubstr;

TEST_F(KmsdTest, TypedCallsRoundTripThroughKmsd) {
  auto tenant = CallOp<ops::TenantCreate>(*connection_, "acme", {});
  ASSERT_TRUE(tenant.has_value()) << tenant.error();
  EXPECT_EQ(tenant->name, "acme");
  EXPECT_EQ(tenant->state, "active");
  EXPECT_EQ(tenant->keys, 3u);

  const Bytes plaintext = {'t', 'y', 'p', 'e', 'd'};
  auto encrypted = CallOp<ops::Encrypt>(
      *connection_, "acme",
      {.key = "alias/data", .plaintext = plaintext, .context = {{"purpose", "typed"}}});
  ASSERT_TRUE(encrypted.has_value()) << encrypted.error();
  EXPECT_EQ(encrypted->version, 1u);
  EXPECT_EQ(encrypted->key_id.size(), 32u);

  auto decrypted = CallOp<ops::Decrypt>(
      *connection_, "acme",
      {.ciphertext = encrypted->ciphertext, .context = {{"purpose", "typed"}}, .key = {}});
  ASSERT_TRUE(decrypted.has_value()) << decrypted.error();
  const auto bytes = decrypted->plaintext.RevealSpan();
  EXPECT_EQ(Bytes(bytes.begin(), bytes.end()), plaintext);
  EXPECT_EQ(decrypted->key_id, encrypted->key_id);

  auto keys = CallOp<ops::KeyList>(*connection_, "acme", {});
  ASSERT_TRUE(keys.has_value()) << keys.error();
  EXPECT_EQ(keys->keys.size(), 3u);
}

TEST_F(KmsdTest, TypedCallsCarryTheErrorAndItsClass) {
  auto missing = CallOp<ops::KeyDescribe>(*connection_, "nobody-here", {.key = "k"});
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), Code::kNotFound);
  EXPECT_EQ(missing.error().error_class(), ErrorClass::kCaller);

  ASSERT_TRUE(CallOp<ops::TenantCreate>(*connection_, "acme", {}).has_value());
  ASSERT_TRUE(CallOp<ops::KeyDisable>(*connection_, "acme", {.key = "alias/data"}).has_value());
  const Bytes plaintext = {1};
  auto disabled = CallOp<ops::Encrypt>(
      *connection_, "acme", {.key = "alias/data", .plaintext = plaintext, .context = {}});
  ASSERT_FALSE(disabled.has_value());
  EXPECT_EQ(disabled.error().code(), Code::kKeyDisabled);
  EXPECT_EQ(disabled.error().error_class(), ErrorClass::kState);
  EXPECT_THAT(disabled.error().message(), HasSubstr("disabled"));
}

TEST_F(KmsdTest, BatchItemsFailAloneAndComeBackTyped) {
  ASSERT_TRUE(CallOp<ops::TenantCreate>(*connection_, "acme", {}).has_value());
  const Bytes good = {'o', 'k'};
  ops::BatchEncryptRequest request{.key = "alias/data", .items = {}};
  request.items.items.push_back({.plaintext = good, .context = {}});
  request.items.items.push_back({.plaintext = good, .context = {{"", "empty key"}}});
  auto reply = CallOp<ops::BatchEncrypt>(*connection_, "acme", std::move(request));
  ASSERT_TRUE(reply.has_value()) << reply.error();
  ASSERT_EQ(reply->results.size(), 2u);
  EXPECT_TRUE(reply->results[0].has_value());
  ASSERT_FALSE(reply->results[1].has_value());
  EXPECT_EQ(reply->results[1].error().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace kmsd::testing
