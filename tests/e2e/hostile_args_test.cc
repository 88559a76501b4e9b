// End-to-end: arguments of the wrong type or size, bad tenant, key and alias
// names, and references to things that do not exist or already do, sent
// through the real socket (DESIGN.md invariant 5, docs/PROTOCOL.md "Names").
// Every one gets its exact error and changes nothing.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/e2e/hostile_support.h"

namespace kmsd::testing {
namespace {

using ::testing::HasSubstr;

class HostileArgsTest : public HostileDaemonTest {};

// Every operation that acts in a tenant, with arguments that would be valid
// in tenant acme; `ciphertext` is one of acme's.
std::vector<std::pair<std::string, Value::Map>> TenantOperations(const Bytes& ciphertext) {
  std::vector<std::pair<std::string, Value::Map>> ops;
  auto add = [&](std::string op, Value::Map args) {
    ops.emplace_back(std::move(op), std::move(args));
  };
  add("tenant.create", {});
  add("tenant.describe", {});
  add("key.create", MapOf("name", "new-key"));
  add("key.describe", MapOf("key", "alias/data"));
  add("key.list", {});
  add("key.rotate", MapOf("key", "alias/data"));
  add("key.list-versions", MapOf("key", "alias/data"));
  add("key.set-rotation", MapOf("key", "alias/data", "rotation_period_seconds", 86400));
  add("key.set-min-decryption-version", MapOf("key", "alias/data", "version", 1));
  add("alias.create", MapOf("alias", "alias/new", "key", "billing"));
  add("alias.update", MapOf("alias", "alias/bill", "key", "secrets-key"));
  add("alias.delete", MapOf("alias", "alias/bill"));
  add("alias.list", {});
  add("encrypt", MapOf("key", "alias/data", "plaintext", Bin("x")));
  add("decrypt", MapOf("ciphertext", ciphertext));
  add("re-encrypt", MapOf("ciphertext", ciphertext));
  Value::Array items;
  items.emplace_back(MapOf("plaintext", Bin("x")));
  add("batch-encrypt", MapOf("key", "alias/data", "items", std::move(items)));
  Value::Array decrypt_items;
  decrypt_items.emplace_back(MapOf("ciphertext", ciphertext));
  add("batch-decrypt", MapOf("items", std::move(decrypt_items)));
  Value::Array reencrypt_items;
  reencrypt_items.emplace_back(MapOf("ciphertext", ciphertext));
  add("batch-re-encrypt", MapOf("items", std::move(reencrypt_items)));
  add("generate-data-key", MapOf("key", "alias/data"));
  add("generate-data-key-without-plaintext", MapOf("key", "alias/data"));
  return ops;
}

TEST_F(HostileArgsTest, PlaintextAsStringIsInvalidArgument) {
  ExpectRejected("encrypt", "acme", MapOf("key", "alias/data", "plaintext", "text not binary"),
                 Code::kInvalidArgument, "'plaintext' must be binary");
  ExpectRejected("encrypt", "acme", MapOf("key", "alias/data", "plaintext", 12),
                 Code::kInvalidArgument, "'plaintext' must be binary");
  ExpectRejected("encrypt", "acme", MapOf("key", "alias/data", "plaintext", nullptr),
                 Code::kInvalidArgument, "'plaintext' must be binary");
  ExpectRejected("encrypt", "acme", MapOf("key", "alias/data"), Code::kInvalidArgument,
                 "'plaintext' is required");
}

TEST_F(HostileArgsTest, CiphertextAsStringIsInvalidArgument) {
  ExpectRejected("decrypt", "acme", MapOf("ciphertext", "k1 as text"), Code::kInvalidArgument,
                 "'ciphertext' must be binary");
  ExpectRejected("re-encrypt", "acme", MapOf("ciphertext", 3), Code::kInvalidArgument,
                 "'ciphertext' must be binary");
  ExpectRejected("decrypt", "acme", {}, Code::kInvalidArgument, "'ciphertext' is required");
}

TEST_F(HostileArgsTest, KeyOfTheWrongTypeIsInvalidArgument) {
  ExpectRejected("encrypt", "acme", MapOf("key", 1, "plaintext", Bin("x")), Code::kInvalidArgument,
                 "'key' must be a string");
  ExpectRejected("encrypt", "acme", MapOf("key", Bin("alias/data"), "plaintext", Bin("x")),
                 Code::kInvalidArgument, "'key' must be a string");
  ExpectRejected("key.rotate", "acme", MapOf("key", true), Code::kInvalidArgument,
                 "'key' must be a string");
  ExpectRejected("key.create", "acme", MapOf("name", 7), Code::kInvalidArgument,
                 "'name' must be a string");
  ExpectRejected("key.create", "acme", MapOf("name", "described", "description", 7),
                 Code::kInvalidArgument, "'description' must be a string");
  ExpectRejected("alias.create", "acme", MapOf("alias", "alias/x", "key", 9),
                 Code::kInvalidArgument, "'key' must be a string");
  ExpectRejected("decrypt", "acme", MapOf("ciphertext", Bytes(60, 0), "key", 4),
                 Code::kInvalidArgument, "'key' must be a string");
  ExpectRejected("re-encrypt", "acme", MapOf("ciphertext", Bytes(60, 0), "destination_key", 4),
                 Code::kInvalidArgument, "'destination_key' must be a string");
  ExpectRejected("generate-data-key", "acme", MapOf("key", -3), Code::kInvalidArgument,
                 "'key' must be a string");
}

TEST_F(HostileArgsTest, ContextThatIsNotAMapOfStringsIsInvalidArgument) {
  Value::Array array;
  array.emplace_back("app");
  array.emplace_back("billing");
  std::vector<Value::Map> bad;
  bad.push_back(MapOf("app", 1));
  bad.push_back(MapOf("app", Bin("billing")));
  bad.push_back(MapOf("app", MapOf("nested", "map")));
  bad.push_back(MapOf("app", nullptr));
  for (auto& context : bad) {
    ExpectRejected("encrypt", "acme",
                   MapOf("key", "alias/data", "plaintext", Bin("x"), "context", std::move(context)),
                   Code::kInvalidArgument, "'context' must be a map of strings");
  }
  ExpectRejected("encrypt", "acme",
                 MapOf("key", "alias/data", "plaintext", Bin("x"), "context", std::move(array)),
                 Code::kInvalidArgument, "'context' must be a map of strings");
  ExpectRejected("encrypt", "acme",
                 MapOf("key", "alias/data", "plaintext", Bin("x"), "context", "app=billing"),
                 Code::kInvalidArgument, "'context' must be a map of strings");
  ExpectRejected("decrypt", "acme", MapOf("ciphertext", Bytes(60, 0), "context", 5),
                 Code::kInvalidArgument, "'context' must be a map of strings");
  ExpectRejected("re-encrypt", "acme",
                 MapOf("ciphertext", Bytes(60, 0), "destination_context", MapOf("a", 1)),
                 Code::kInvalidArgument, "'destination_context' must be a map of strings");
  ExpectRejected("generate-data-key", "acme", MapOf("key", "alias/data", "context", true),
                 Code::kInvalidArgument, "'context' must be a map of strings");
}

TEST_F(HostileArgsTest, ContextOverItsLimitsIsInvalidArgument) {
  ExpectRejected("encrypt", "acme",
                 MapOf("key", "alias/data", "plaintext", Bin("x"), "context", MapOf("", "v")),
                 Code::kInvalidArgument, "keys must be 1-256 bytes");
  ExpectRejected("encrypt", "acme",
                 MapOf("key", "alias/data", "plaintext", Bin("x"), "context",
                       MapOf(std::string(257, 'k'), "v")),
                 Code::kInvalidArgument, "keys must be 1-256 bytes");
  ExpectRejected("encrypt", "acme",
                 MapOf("key", "alias/data", "plaintext", Bin("x"), "context",
                       MapOf("k", std::string(4097, 'v'))),
                 Code::kInvalidArgument, "values must be at most 4096 bytes");
  Value::Map many;
  for (int i = 0; i < 65; ++i) many.emplace_back("k" + std::to_string(i), "v");
  ExpectRejected("encrypt", "acme",
                 MapOf("key", "alias/data", "plaintext", Bin("x"), "context", std::move(many)),
                 Code::kInvalidArgument, "more than 64 entries");
}

TEST_F(HostileArgsTest, NumberOfBytesOutOfRangeOrMistypedIsInvalidArgument) {
  for (const char* op : {"generate-random", "generate-data-key"}) {
    const std::string_view tenant = std::string_view(op) == "generate-random" ? "" : "acme";
    auto args = [&](Value n) {
      Value::Map map;
      if (!tenant.empty()) map.emplace_back("key", "alias/data");
      map.emplace_back("number_of_bytes", std::move(n));
      return map;
    };
    ExpectRejected(op, tenant, args(-1), Code::kInvalidArgument,
                   "'number_of_bytes' must be a non-negative integer");
    ExpectRejected(op, tenant, args(0), Code::kInvalidArgument,
                   "number_of_bytes must be 1 to 1024");
    ExpectRejected(op, tenant, args(1025), Code::kInvalidArgument,
                   "number_of_bytes must be 1 to 1024");
    ExpectRejected(op, tenant, args(uint64_t{1} << 63), Code::kInvalidArgument,
                   "number_of_bytes must be 1 to 1024");
    ExpectRejected(op, tenant, args("32"), Code::kInvalidArgument,
                   "'number_of_bytes' must be a non-negative integer");
    ExpectRejected(op, tenant, args(Bin("\x20")), Code::kInvalidArgument,
                   "'number_of_bytes' must be a non-negative integer");
  }
  ExpectRejected("generate-random", {}, {}, Code::kInvalidArgument,
                 "'number_of_bytes' is required");
  ExpectRejected("generate-data-key", "acme",
                 MapOf("key", "alias/data", "key_spec", "AES_256", "number_of_bytes", 32),
                 Code::kInvalidArgument, "not both");
  ExpectRejected("generate-data-key", "acme", MapOf("key", "alias/data", "key_spec", "AES_512"),
                 Code::kInvalidArgument, "key_spec must be AES_256 or AES_128");
  ExpectRejected("generate-data-key-without-plaintext", "acme",
                 MapOf("key", "alias/data", "key_spec", 256), Code::kInvalidArgument,
                 "'key_spec' must be a string");
}

TEST_F(HostileArgsTest, NumberOfBytesAtItsLimitsIsServed) {
  for (uint64_t n : {1u, 1024u}) {
    Reply random = MustCall("generate-random", {}, MapOf("number_of_bytes", n));
    EXPECT_EQ(random.result().Binary("random")->size(), n);
    Reply data_key =
        MustCall("generate-data-key", "acme", MapOf("key", "alias/data", "number_of_bytes", n));
    EXPECT_EQ(data_key.result().Binary("plaintext")->size(), n);
  }
  ExpectUnchanged();
}

TEST_F(HostileArgsTest, ItemsThatAreNotAnArrayAreInvalidArgument) {
  ExpectRejected("batch-encrypt", "acme",
                 MapOf("key", "alias/data", "items", MapOf("plaintext", Bin("x"))),
                 Code::kInvalidArgument, "'items' must be an array");
  ExpectRejected("batch-encrypt", "acme", MapOf("key", "alias/data", "items", Bin("x")),
                 Code::kInvalidArgument, "'items' must be an array");
  ExpectRejected("batch-decrypt", "acme", MapOf("items", "ciphertexts"), Code::kInvalidArgument,
                 "'items' must be an array");
  ExpectRejected("batch-decrypt", "acme", MapOf("items", nullptr), Code::kInvalidArgument,
                 "'items' must be an array");
  ExpectRejected("batch-decrypt", "acme", {}, Code::kInvalidArgument, "'items' is required");
}

TEST_F(HostileArgsTest, BatchesOutsideOneTo1024ItemsAreInvalidArgument) {
  for (size_t count : {0u, 1025u}) {
    SCOPED_TRACE(::testing::Message() << count << " items");
    Value::Array encrypt_items, decrypt_items;
    for (size_t i = 0; i < count; ++i) {
      encrypt_items.emplace_back(MapOf("plaintext", Bin("item")));
      decrypt_items.emplace_back(MapOf("ciphertext", Bytes(60, 0)));
    }
    ExpectRejected("batch-encrypt", "acme",
                   MapOf("key", "alias/data", "items", std::move(encrypt_items)),
                   Code::kInvalidArgument, "items must hold 1 to 1024 entries");
    ExpectRejected("batch-decrypt", "acme", MapOf("items", std::move(decrypt_items)),
                   Code::kInvalidArgument, "items must hold 1 to 1024 entries");
  }
}

TEST_F(HostileArgsTest, BadBatchItemsFailAloneAndTheOthersSucceed) {
  Value::Array items;
  items.emplace_back(MapOf("plaintext", Bin("first")));
  items.emplace_back(7);                                               // not a map
  items.emplace_back(MapOf("plaintext", "a string"));                  // wrong type
  items.emplace_back(MapOf("plaintext", Bin("x"), "context", 1));      // bad context
  items.emplace_back(MapOf("plaintext", Bin("x"), "key", "billing"));  // unknown field
  items.emplace_back(MapOf("plaintext", Bin("last"), "context", MapOf("app", "a")));
  Reply reply =
      MustCall("batch-encrypt", "acme", MapOf("key", "alias/data", "items", std::move(items)));
  auto results = reply.result().Array("results").value();
  ASSERT_EQ(results.size(), 6u);
  const std::vector<std::string> expected_errors = {"",
                                                    "item must be a map",
                                                    "'plaintext' must be binary",
                                                    "'context' must be a map of strings",
                                                    "unknown field 'key'",
                                                    ""};
  Value::Array decrypt_items;
  for (size_t i = 0; i < results.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << "item " << i);
    Fields result = Fields::Of(results[i], "result").value();
    if (expected_errors[i].empty()) {
      ASSERT_TRUE(result.OptionalBool("ok", false).value());
      auto ciphertext = result.Binary("ciphertext").value();
      Value::Map item = MapOf("ciphertext", Bytes(ciphertext.begin(), ciphertext.end()));
      if (i == 5) item.emplace_back("context", MapOf("app", "a"));
      decrypt_items.emplace_back(std::move(item));
      continue;
    }
    EXPECT_FALSE(result.OptionalBool("ok", true).value());
    Fields error = result.Map("error").value();
    EXPECT_EQ(error.String("code").value(), "INVALID_ARGUMENT");
    EXPECT_THAT(std::string(error.String("message").value()), HasSubstr(expected_errors[i]));
  }
  Reply decrypted = MustCall("batch-decrypt", "acme", MapOf("items", std::move(decrypt_items)));
  auto plaintexts = decrypted.result().Array("results").value();
  ASSERT_EQ(plaintexts.size(), 2u);
  EXPECT_EQ(ToString(Fields::Of(plaintexts[0], "r")->Binary("plaintext").value()), "first");
  EXPECT_EQ(ToString(Fields::Of(plaintexts[1], "r")->Binary("plaintext").value()), "last");
  ExpectUnchanged();
}

TEST_F(HostileArgsTest, RotationPeriodsOutOfRangeOrMistypedAreInvalidArgument) {
  auto set = [&](Value period, std::string_view message) {
    ExpectRejected("key.set-rotation", "acme",
                   MapOf("key", "billing", "rotation_period_seconds", std::move(period)),
                   Code::kInvalidArgument, message);
  };
  set(Value("86400"), "'rotation_period_seconds' must be a non-negative integer");
  set(Value(int64_t{-1}), "'rotation_period_seconds' must be a non-negative integer");
  set(Value(3600), "the rotation period must be 86400 to 315360000 seconds");
  set(Value(uint64_t{315360001}), "rotation_period_seconds must be at most 315360000");
  set(Value(~uint64_t{0}), "rotation_period_seconds must be at most 315360000");
  ExpectRejected("key.set-rotation", "acme", MapOf("key", "billing"), Code::kInvalidArgument,
                 "'rotation_period_seconds' is required");
  ExpectRejected("key.set-rotation", "acme", MapOf("key", "nope", "rotation_period_seconds", 0),
                 Code::kNotFound, "key 'nope' does not exist");
}

TEST_F(HostileArgsTest, MinimumDecryptionVersionsOutOfRangeOrMistypedAreInvalidArgument) {
  auto set = [&](Value version, std::string_view message) {
    ExpectRejected("key.set-min-decryption-version", "acme",
                   MapOf("key", "billing", "version", std::move(version)), Code::kInvalidArgument,
                   message);
  };
  set(Value(0), "version must be 1 to 4294967295");
  set(Value(uint64_t{1} << 32), "version must be 1 to 4294967295");
  set(Value(3), "must be 1 to 2");  // billing has two versions
  set(Value("2"), "'version' must be a non-negative integer");
  ExpectRejected("key.set-min-decryption-version", "acme", MapOf("key", "billing"),
                 Code::kInvalidArgument, "'version' is required");
  ExpectRejected("key.set-min-decryption-version", "acme", MapOf("key", "nope", "version", 1),
                 Code::kNotFound, "key 'nope' does not exist");
}

TEST_F(HostileArgsTest, BadBatchReEncryptCallsChangeNothing) {
  ExpectRejected("batch-re-encrypt", "acme", MapOf("items", Value::Array{}), Code::kInvalidArgument,
                 "items must hold 1 to 1024 entries");
  ExpectRejected("batch-re-encrypt", "acme", MapOf("items", "not an array"), Code::kInvalidArgument,
                 "'items' must be");
  Value::Array items;
  items.emplace_back(MapOf("ciphertext", Encrypt("acme", "alias/data", "x")));
  ExpectRejected("batch-re-encrypt", "acme",
                 MapOf("items", std::move(items), "destination_key", "nope"), Code::kNotFound,
                 "key 'nope' does not exist");
  // A bad item fails alone, with the same code as re-encrypt would give.
  Value::Array mixed;
  mixed.emplace_back(MapOf("ciphertext", Bin("not a ciphertext")));
  mixed.emplace_back(MapOf("ciphertext", Encrypt("acme", "billing", "y")));
  Reply reply = MustCall("batch-re-encrypt", "acme", MapOf("items", std::move(mixed)));
  auto results = reply.result().Array("results");
  ASSERT_TRUE(results.has_value());
  ASSERT_EQ(results->size(), 2u);
  auto first = Fields::Of((*results)[0], "item");
  auto second = Fields::Of((*results)[1], "item");
  ASSERT_TRUE(first && second);
  EXPECT_FALSE(first->OptionalBool("ok", true).value_or(true));
  EXPECT_EQ(first->Map("error")->String("code").value_or(""), "INVALID_CIPHERTEXT");
  EXPECT_TRUE(second->OptionalBool("ok", false).value_or(false));
  EXPECT_EQ(second->Uint("source_version").value_or(0), 2u);
  ExpectUnchanged();
}

TEST_F(HostileArgsTest, KeyDescriptionOver1024BytesIsInvalidArgument) {
  ExpectRejected("key.create", "acme",
                 MapOf("name", "verbose", "description", std::string(1025, 'd')),
                 Code::kInvalidArgument, "description is longer than 1024 bytes");
}

// Names that must never be accepted as a tenant or key name, with why.
std::vector<std::string> BadNames() {
  return {
      "Acme",                    // upper case
      "ACME",                    //
      "-acme",                   // leading '-'
      std::string(64, 'a'),      // one over 63
      std::string(10000, 'a'),   // far over
      "a/b",                     // path separator
      "..",                      // parent directory
      "../globex",               //
      ".",                       //
      "acme ",                   // space
      "acme_1",                  // underscore
      "acm\xc3\xa9",             // non-ASCII (UTF-8 e acute)
      std::string("ac\0me", 5),  // NUL inside
      std::string("acme\0", 5),  // NUL at the end: not "acme"
      "acme\n",                  // control character
      "\xff\xfe",                // not UTF-8
      "alias/data",              // an alias is not a name
  };
}

TEST_F(HostileArgsTest, BadTenantNamesAreInvalidArgument) {
  for (const std::string& name : BadNames()) {
    SCOPED_TRACE(::testing::Message() << "tenant of " << name.size() << " bytes");
    ExpectRejected("tenant.create", name, {}, Code::kInvalidArgument, "is not valid");
    ExpectRejected("key.create", name, MapOf("name", "k"), Code::kInvalidArgument, "is not valid");
    ExpectRejected("encrypt", name, MapOf("key", "alias/data", "plaintext", Bin("x")),
                   Code::kInvalidArgument, "is not valid");
  }
}

TEST_F(HostileArgsTest, EmptyTenantNameIsInvalidArgument) {
  ExpectRejected("tenant.create", "", {}, Code::kInvalidArgument, "'tenant'");
  // Sent explicitly as an empty string, not left out.
  ExpectRawRejected(Encode(MapOf("version", 1, "id", 5, "op", "tenant.create", "tenant", "", "args",
                                 Value::Map{})),
                    Code::kInvalidArgument, "'tenant'", 5);
}

TEST_F(HostileArgsTest, BadKeyNamesAreInvalidArgument) {
  for (std::string name : BadNames()) {
    if (name.starts_with("alias/")) continue;  // a key reference: tested below
    SCOPED_TRACE(::testing::Message() << "key name of " << name.size() << " bytes");
    ExpectRejected("key.create", "acme", MapOf("name", name), Code::kInvalidArgument,
                   "is not valid");
    ExpectRejected("key.describe", "acme", MapOf("key", name), Code::kInvalidArgument,
                   "is not valid");
    ExpectRejected("encrypt", "acme", MapOf("key", name, "plaintext", Bin("x")),
                   Code::kInvalidArgument, "is not valid");
  }
  ExpectRejected("key.create", "acme", MapOf("name", ""), Code::kInvalidArgument, "is not valid");
  ExpectRejected("key.create", "acme", MapOf("name", "alias/data"), Code::kInvalidArgument,
                 "is not valid");
}

TEST_F(HostileArgsTest, NamesAtTheLengthLimitAreAccepted) {
  const std::string longest(63, 'z');
  EXPECT_TRUE(Call("tenant.create", longest));
  EXPECT_TRUE(Call("key.create", "acme", MapOf("name", longest)));
  EXPECT_TRUE(Call("alias.create", "acme", MapOf("alias", "alias/" + longest, "key", longest)));
  EXPECT_TRUE(Call("key.describe", "acme", MapOf("key", "alias/" + longest)));
}

TEST_F(HostileArgsTest, BadAliasNamesAreInvalidArgument) {
  ExpectRejected("alias.create", "acme", MapOf("alias", "bill2", "key", "billing"),
                 Code::kInvalidArgument, "must start with 'alias/'");
  ExpectRejected("alias.create", "acme", MapOf("alias", "Alias/bill2", "key", "billing"),
                 Code::kInvalidArgument, "must start with 'alias/'");
  ExpectRejected("alias.update", "acme", MapOf("alias", "bill", "key", "billing"),
                 Code::kInvalidArgument, "must start with 'alias/'");
  ExpectRejected("alias.delete", "acme", MapOf("alias", "bill"), Code::kInvalidArgument,
                 "must start with 'alias/'");
  for (std::string name : BadNames()) {
    SCOPED_TRACE(::testing::Message() << "alias/ + " << name.size() << " bytes");
    ExpectRejected("alias.create", "acme", MapOf("alias", "alias/" + name, "key", "billing"),
                   Code::kInvalidArgument, "is not valid");
    ExpectRejected("key.describe", "acme", MapOf("key", "alias/" + name), Code::kInvalidArgument,
                   "is not valid");
  }
  ExpectRejected("alias.create", "acme", MapOf("alias", "alias/", "key", "billing"),
                 Code::kInvalidArgument, "is not valid");
}

TEST_F(HostileArgsTest, AliasPointingAtAnAliasIsInvalidArgument) {
  ExpectRejected("alias.create", "acme", MapOf("alias", "alias/chained", "key", "alias/bill"),
                 Code::kInvalidArgument, "key name 'alias/bill' is not valid");
  ExpectRejected("alias.update", "acme", MapOf("alias", "alias/data", "key", "alias/bill"),
                 Code::kInvalidArgument, "key name 'alias/bill' is not valid");
  ExpectRejected("alias.update", "acme", MapOf("alias", "alias/bill", "key", "alias/bill"),
                 Code::kInvalidArgument, "key name 'alias/bill' is not valid");
}

TEST_F(HostileArgsTest, TenantOperationsWithoutATenantAreInvalidArgument) {
  for (auto& [op, args] : TenantOperations(Encrypt("acme", "alias/data", "x"))) {
    ExpectRejected(op, {}, std::move(args), Code::kInvalidArgument,
                   "operation '" + op + "' needs the request's 'tenant' field");
  }
}

TEST_F(HostileArgsTest, GlobalOperationsWithATenantAreInvalidArgument) {
  ExpectRejected("status", "acme", {}, Code::kInvalidArgument,
                 "operation 'status' takes no tenant");
  ExpectRejected("health", "acme", {}, Code::kInvalidArgument,
                 "operation 'health' takes no tenant");
  ExpectRejected("tenant.list", "acme", {}, Code::kInvalidArgument,
                 "operation 'tenant.list' takes no tenant");
  ExpectRejected("generate-random", "acme", MapOf("number_of_bytes", 16), Code::kInvalidArgument,
                 "operation 'generate-random' takes no tenant");
}

TEST_F(HostileArgsTest, UnknownTenantIsNotFound) {
  for (auto& [op, args] : TenantOperations(Encrypt("acme", "alias/data", "x"))) {
    if (op == "tenant.create") continue;
    ExpectRejected(op, "ghost", std::move(args), Code::kNotFound, "tenant 'ghost' does not exist");
  }
}

TEST_F(HostileArgsTest, UnknownKeyIsNotFound) {
  ExpectRejected("key.describe", "acme", MapOf("key", "nope"), Code::kNotFound,
                 "key 'nope' does not exist in tenant 'acme'");
  ExpectRejected("key.rotate", "acme", MapOf("key", "nope"), Code::kNotFound,
                 "key 'nope' does not exist");
  ExpectRejected("key.list-versions", "acme", MapOf("key", "nope"), Code::kNotFound,
                 "key 'nope' does not exist");
  ExpectRejected("encrypt", "acme", MapOf("key", "nope", "plaintext", Bin("x")), Code::kNotFound,
                 "key 'nope' does not exist");
  ExpectRejected("generate-data-key", "acme", MapOf("key", "nope"), Code::kNotFound,
                 "key 'nope' does not exist");
  Value::Array items;
  items.emplace_back(MapOf("plaintext", Bin("x")));
  ExpectRejected("batch-encrypt", "acme", MapOf("key", "nope", "items", std::move(items)),
                 Code::kNotFound, "key 'nope' does not exist");
  ExpectRejected("alias.create", "acme", MapOf("alias", "alias/dangling", "key", "nope"),
                 Code::kNotFound, "key 'nope' does not exist");
  ExpectRejected("alias.update", "acme", MapOf("alias", "alias/bill", "key", "nope"),
                 Code::kNotFound, "key 'nope' does not exist");
  // Keys are per tenant: globex has no "billing".
  ExpectRejected("key.describe", "globex", MapOf("key", "billing"), Code::kNotFound,
                 "key 'billing' does not exist in tenant 'globex'");
}

TEST_F(HostileArgsTest, UnknownAliasIsNotFound) {
  ExpectRejected("key.describe", "acme", MapOf("key", "alias/nope"), Code::kNotFound,
                 "alias 'alias/nope' does not exist");
  ExpectRejected("encrypt", "acme", MapOf("key", "alias/nope", "plaintext", Bin("x")),
                 Code::kNotFound, "alias 'alias/nope' does not exist");
  ExpectRejected("alias.update", "acme", MapOf("alias", "alias/nope", "key", "billing"),
                 Code::kNotFound, "alias 'alias/nope' does not exist");
  ExpectRejected("alias.delete", "acme", MapOf("alias", "alias/nope"), Code::kNotFound,
                 "alias 'alias/nope' does not exist");
  // Aliases are per tenant: globex has no alias/bill.
  ExpectRejected("alias.delete", "globex", MapOf("alias", "alias/bill"), Code::kNotFound,
                 "alias 'alias/bill' does not exist");
}

TEST_F(HostileArgsTest, DuplicateKeyNameIsAlreadyExists) {
  ExpectRejected("key.create", "acme", MapOf("name", "billing"), Code::kAlreadyExists,
                 "key 'billing' already exists in tenant 'acme'");
  ExpectRejected("key.create", "acme", MapOf("name", "data-encryption-key", "description", "x"),
                 Code::kAlreadyExists, "key 'data-encryption-key' already exists");
}

TEST_F(HostileArgsTest, DuplicateAliasIsAlreadyExists) {
  ExpectRejected("alias.create", "acme", MapOf("alias", "alias/bill", "key", "secrets-key"),
                 Code::kAlreadyExists, "alias 'alias/bill' already exists");
  ExpectRejected("alias.create", "acme", MapOf("alias", "alias/data", "key", "billing"),
                 Code::kAlreadyExists, "alias 'alias/data' already exists");
}

}  // namespace
}  // namespace kmsd::testing
