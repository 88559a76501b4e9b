// End-to-end: key and tenant lifecycle (enable, disable, schedule and cancel
// deletion) through the socket and through kmsctl, on a real kmsd.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>
#include <type_traits>
#include <variant>
#include <vector>

#include "protocol/clock.h"
#include "tests/e2e/config_fixture.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/support/softhsm_token.h"

namespace kmsd::testing {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

constexpr int64_t kDay = 86400;

// Request arguments as plain copyable values (Value is move-only).
struct OneItem {  // a batch's items: [{field: value}]
  std::string field;
  Bytes value;
};
using Arg = std::variant<std::string, uint64_t, bool, Bytes, OneItem>;
using ArgList = std::vector<std::pair<std::string, Arg>>;

Value ToValue(const Arg& arg) {
  if (const auto* item = std::get_if<OneItem>(&arg)) {
    Value::Map map;
    map.emplace_back(item->field, item->value);
    Value::Array items;
    items.emplace_back(std::move(map));
    return Value(std::move(items));
  }
  return std::visit(
      [](const auto& v) -> Value {
        if constexpr (std::is_same_v<std::decay_t<decltype(v)>, OneItem>) {
          return Value();
        } else {
          return Value(v);
        }
      },
      arg);
}

Value::Map Args(const ArgList& list) {
  Value::Map map;
  for (const auto& [k, v] : list) map.emplace_back(k, ToValue(v));
  return map;
}

ArgList KeyArgs(std::string_view key) { return {{"key", std::string(key)}}; }
Value::Map KeyArg(std::string_view key) { return Args(KeyArgs(key)); }

// kmsd's clock: time() reads the coarse realtime clock, which can lag it by a tick and so
// land a second behind a date kmsd set just before.
int64_t Now() { return SystemClock().NowSeconds(); }

class LifecycleTest : public KmsdTest {
 protected:
  void SetUp() override {
    KmsdTest::SetUp();
    MustCall("tenant.create", "acme");
  }

  std::string StateOf(std::string_view tenant, std::string_view key) {
    Reply reply = MustCall("key.describe", tenant, KeyArg(key));
    return std::string(reply.result().String("state").value_or("?"));
  }

  // Every use of `key` in acme fails with `code`; `old` is an earlier
  // ciphertext of it, `other` one of an unaffected key.
  void ExpectEveryUseFails(std::string_view key, const Bytes& old, const Bytes& other, Code code) {
    SCOPED_TRACE(std::string(key));
    EXPECT_EQ(CodeOf(Call("encrypt", "acme",
                          Args({{"key", std::string(key)}, {"plaintext", ToBytes("x")}}))),
              code);
    EXPECT_EQ(CodeOf(Call("decrypt", "acme", Args({{"ciphertext", old}}))), code);
    for (const char* op : {"generate-data-key", "generate-data-key-without-plaintext"}) {
      EXPECT_EQ(CodeOf(Call(op, "acme", KeyArg(key))), code) << op;
    }
    EXPECT_EQ(CodeOf(Call("re-encrypt", "acme", Args({{"ciphertext", old}}))), code);
    EXPECT_EQ(CodeOf(Call("re-encrypt", "acme",
                          Args({{"ciphertext", other}, {"destination_key", std::string(key)}}))),
              code);
    Reply batch =
        MustCall("batch-encrypt", "acme",
                 Args({{"key", std::string(key)}, {"items", OneItem{"plaintext", ToBytes("x")}}}));
    EXPECT_EQ(ItemCode(batch), std::string(CodeName(code)));
    Reply batch_decrypt =
        MustCall("batch-decrypt", "acme", Args({{"items", OneItem{"ciphertext", old}}}));
    EXPECT_EQ(ItemCode(batch_decrypt), std::string(CodeName(code)));
  }

  // The error code of a batch reply's single item ("" if it succeeded).
  static std::string ItemCode(const Reply& reply) {
    auto results = reply.result().Array("results");
    if (!results || results->size() != 1) return "<no results>";
    auto item = Fields::Of((*results)[0], "item");
    if (!item) return "<bad item>";
    auto error = item->Map("error");
    if (!error) return "";
    return std::string(error->String("code").value_or("?"));
  }

  CommandResult Kmsctl(const std::vector<std::string>& args, const std::string& input = "") {
    return RunKmsctl(daemon_->socket_path(), args, input);
  }

  json KmsctlJson(const std::vector<std::string>& args) {
    std::vector<std::string> with_json = {"--json"};
    with_json.insert(with_json.end(), args.begin(), args.end());
    CommandResult result = Kmsctl(with_json);
    EXPECT_EQ(result.exit_code, 0) << result.out << result.err;
    return json::parse(result.out);
  }
};

TEST_F(LifecycleTest, DisabledKeyRefusesEveryUseUntilEnabled) {
  const Bytes old = Encrypt("acme", "alias/data", "before");
  const Bytes other = Encrypt("acme", "alias/secrets", "other");
  Reply disabled = MustCall("key.disable", "acme", KeyArg("alias/data"));
  EXPECT_EQ(disabled.result().OptionalBool("enabled", true).value_or(true), false);
  EXPECT_EQ(disabled.result().String("state").value_or(""), "disabled");
  EXPECT_FALSE(disabled.result().Has("deletion_date"));

  ExpectEveryUseFails("alias/data", old, other, Code::kKeyDisabled);
  auto message = Call("encrypt", "acme",
                      Args({{"key", std::string("alias/data")}, {"plaintext", ToBytes("x")}}));
  ASSERT_FALSE(message.has_value());
  EXPECT_THAT(message.error().message(), HasSubstr("'data-encryption-key' is disabled"));
  // Managing it still works, and the other keys are unaffected.
  EXPECT_EQ(CodeOf(Call("key.rotate", "acme", KeyArg("alias/data"))), Code::kOk);
  EXPECT_EQ(CodeOf(Decrypt("acme", other)), Code::kOk);

  Reply enabled = MustCall("key.enable", "acme", KeyArg("alias/data"));
  EXPECT_EQ(enabled.result().String("state").value_or(""), "enabled");
  EXPECT_EQ(Decrypt("acme", old).value_or("<error>"), "before");
  EXPECT_EQ(Decrypt("acme", Encrypt("acme", "alias/data", "after")).value_or("<error>"), "after");
}

TEST_F(LifecycleTest, KeyPendingDeletionRefusesEveryUseAndCancelLeavesItDisabled) {
  const Bytes old = Encrypt("acme", "alias/data", "old");
  const Bytes other = Encrypt("acme", "alias/secrets", "other");
  const int64_t before = Now();
  Reply scheduled = MustCall("key.schedule-deletion", "acme", KeyArg("alias/data"));
  EXPECT_EQ(scheduled.result().String("state").value_or(""), "pending_deletion");
  EXPECT_EQ(scheduled.result().OptionalBool("enabled", true).value_or(true), false);
  const uint64_t due = scheduled.result().Uint("deletion_date").value_or(0);
  EXPECT_GE(due, static_cast<uint64_t>(before + 30 * kDay));  // default window: 30 days
  EXPECT_LE(due, static_cast<uint64_t>(Now() + 30 * kDay));

  ExpectEveryUseFails("alias/data", old, other, Code::kKeyPendingDeletion);
  auto message = Call("decrypt", "acme", Args({{"ciphertext", old}}));
  ASSERT_FALSE(message.has_value());
  EXPECT_THAT(message.error().message(), HasSubstr("'data-encryption-key' is pending deletion"));
  for (const char* op : {"key.rotate", "key.enable", "key.disable", "key.schedule-deletion"}) {
    EXPECT_EQ(CodeOf(Call(op, "acme", KeyArg("alias/data"))), Code::kKeyPendingDeletion) << op;
  }
  EXPECT_EQ(CodeOf(Call("alias.create", "acme",
                        Args({{"alias", std::string("alias/new")},
                              {"key", std::string("data-encryption-key")}}))),
            Code::kKeyPendingDeletion);
  EXPECT_EQ(CodeOf(Call("alias.update", "acme",
                        Args({{"alias", std::string("alias/secrets")},
                              {"key", std::string("data-encryption-key")}}))),
            Code::kKeyPendingDeletion);
  EXPECT_EQ(StateOf("acme", "alias/data"), "pending_deletion");
  EXPECT_EQ(Decrypt("acme", other).value_or("<error>"), "other");

  Reply cancelled = MustCall("key.cancel-deletion", "acme", KeyArg("alias/data"));
  EXPECT_EQ(cancelled.result().String("state").value_or(""), "disabled");
  EXPECT_FALSE(cancelled.result().Has("deletion_date"));
  EXPECT_EQ(CodeOf(Decrypt("acme", old)), Code::kKeyDisabled);
  EXPECT_EQ(CodeOf(Call("key.cancel-deletion", "acme", KeyArg("alias/data"))),
            Code::kInvalidArgument);
  MustCall("key.enable", "acme", KeyArg("alias/data"));
  EXPECT_EQ(Decrypt("acme", old).value_or("<error>"), "old");
}

TEST_F(LifecycleTest, PendingWindowIsSevenToThirtyDays) {
  auto schedule = [&](Value::Map args) {
    args.emplace_back("key", std::string("alias/data"));
    return Call("key.schedule-deletion", "acme", std::move(args));
  };
  for (uint64_t days : {0, 6, 31, 1000}) {
    auto reply = schedule(Args({{"pending_window_days", days}}));
    ASSERT_EQ(CodeOf(reply), Code::kInvalidArgument) << days;
    EXPECT_THAT(reply.error().message(), HasSubstr("pending_window_days must be 7 to 30"));
    EXPECT_EQ(
        CodeOf(Call("tenant.schedule-deletion", "acme", Args({{"pending_window_days", days}}))),
        Code::kInvalidArgument);
  }
  auto seconds = schedule(Args({{"pending_window_seconds", uint64_t{30 * kDay}}}));
  ASSERT_EQ(CodeOf(seconds), Code::kInvalidArgument);
  EXPECT_THAT(seconds.error().message(), HasSubstr("lifecycle.min_pending_window_seconds"));
  EXPECT_EQ(CodeOf(Call("tenant.schedule-deletion", "acme",
                        Args({{"pending_window_seconds", uint64_t{30 * kDay}}}))),
            Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(schedule(Args({{"pending_window_days", uint64_t{7}},
                                  {"pending_window_seconds", uint64_t{7 * kDay}}}))),
            Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(schedule(Args({{"pending_window_days", std::string("7")}}))),
            Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(schedule(Args({{"window", uint64_t{7}}}))), Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(Call("key.schedule-deletion", "acme", {})), Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(Call("key.schedule-deletion", "acme", KeyArg("nope"))), Code::kNotFound);
  EXPECT_EQ(CodeOf(Call("key.schedule-deletion", "globex", KeyArg("alias/data"))), Code::kNotFound);
  EXPECT_EQ(CodeOf(Call("tenant.schedule-deletion", "globex")), Code::kNotFound);
  EXPECT_EQ(CodeOf(Call("tenant.cancel-deletion", "globex")), Code::kNotFound);
  EXPECT_EQ(CodeOf(Call("tenant.cancel-deletion", "acme")), Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(Call("key.cancel-deletion", "acme", KeyArg("alias/data"))),
            Code::kInvalidArgument);
  for (const char* op : {"key.enable", "key.disable", "key.cancel-deletion"}) {
    EXPECT_EQ(CodeOf(Call(op, "acme", Args({{"key", std::string("alias/data")}, {"extra", true}}))),
              Code::kInvalidArgument)
        << op;
    EXPECT_EQ(CodeOf(Call(op, "acme", KeyArg("Bad Name"))), Code::kInvalidArgument) << op;
  }
  EXPECT_EQ(StateOf("acme", "alias/data"), "enabled");  // nothing above changed it

  const int64_t before = Now();
  Reply seven =
      MustCall("key.schedule-deletion", "acme",
               Args({{"key", std::string("alias/data")}, {"pending_window_days", uint64_t{7}}}));
  const uint64_t due = seven.result().Uint("deletion_date").value_or(0);
  EXPECT_GE(due, static_cast<uint64_t>(before + 7 * kDay));
  EXPECT_LE(due, static_cast<uint64_t>(Now() + 7 * kDay));
  EXPECT_EQ(CodeOf(Call("key.schedule-deletion", "acme",
                        Args({{"key", std::string("alias/secrets")},
                              {"pending_window_days", uint64_t{30}}}))),
            Code::kOk);
}

TEST_F(LifecycleTest, StatesSurviveARestart) {
  MustCall("tenant.create", "globex");
  const Bytes old = Encrypt("acme", "alias/secrets", "kept");
  MustCall("key.disable", "acme", KeyArg("alias/data"));
  Reply scheduled = MustCall("key.schedule-deletion", "acme", KeyArg("alias/secrets"));
  Reply tenant = MustCall("tenant.schedule-deletion", "globex");
  connection_.reset();
  ASSERT_EQ(daemon_->Stop(), 0);
  daemon_ = DaemonProcess::StartDev(dir_ / "kmsd");
  connection_ = daemon_->Connect();

  EXPECT_EQ(StateOf("acme", "alias/data"), "disabled");
  Reply described = MustCall("key.describe", "acme", KeyArg("alias/secrets"));
  EXPECT_EQ(described.result().String("state").value_or(""), "pending_deletion");
  EXPECT_EQ(described.result().Uint("deletion_date").value_or(0),
            scheduled.result().Uint("deletion_date").value_or(1));
  EXPECT_EQ(CodeOf(Decrypt("acme", old)), Code::kKeyPendingDeletion);
  Reply globex = MustCall("tenant.describe", "globex");
  EXPECT_EQ(globex.result().String("state").value_or(""), "pending_deletion");
  EXPECT_EQ(globex.result().Uint("deletion_date").value_or(0),
            tenant.result().Uint("deletion_date").value_or(1));
  EXPECT_EQ(CodeOf(Call("key.list", "globex")), Code::kKeyPendingDeletion);
}

TEST_F(LifecycleTest, TenantPendingDeletionServesNothingAndCancelRestoresIt) {
  MustCall("tenant.create", "globex");
  const Bytes old = Encrypt("acme", "alias/data", "old");
  Reply scheduled =
      MustCall("tenant.schedule-deletion", "acme", Args({{"pending_window_days", uint64_t{7}}}));
  EXPECT_EQ(scheduled.result().String("state").value_or(""), "pending_deletion");
  EXPECT_TRUE(scheduled.result().Has("deletion_date"));

  const std::vector<std::pair<std::string, ArgList>> calls = {
      {"key.create", {{"name", std::string("k")}}},
      {"key.describe", KeyArgs("alias/data")},
      {"key.list", {}},
      {"key.rotate", KeyArgs("alias/data")},
      {"key.list-versions", KeyArgs("alias/data")},
      {"key.enable", KeyArgs("alias/data")},
      {"key.disable", KeyArgs("alias/data")},
      {"key.schedule-deletion", KeyArgs("alias/data")},
      {"key.cancel-deletion", KeyArgs("alias/data")},
      {"alias.create", {{"alias", std::string("alias/x")}, {"key", std::string("secrets-key")}}},
      {"alias.update", {{"alias", std::string("alias/data")}, {"key", std::string("secrets-key")}}},
      {"alias.delete", {{"alias", std::string("alias/data")}}},
      {"alias.list", {}},
      {"encrypt", {{"key", std::string("alias/data")}, {"plaintext", ToBytes("x")}}},
      {"decrypt", {{"ciphertext", old}}},
      {"re-encrypt", {{"ciphertext", old}}},
      {"batch-encrypt",
       {{"key", std::string("alias/data")}, {"items", OneItem{"plaintext", ToBytes("x")}}}},
      {"batch-decrypt", {{"items", OneItem{"ciphertext", old}}}},
      {"generate-data-key", KeyArgs("alias/data")},
      {"generate-data-key-without-plaintext", KeyArgs("alias/data")},
      {"tenant.schedule-deletion", {}},
  };
  for (const auto& [op, args] : calls) {
    auto reply = Call(op, "acme", Args(args));
    ASSERT_EQ(CodeOf(reply), Code::kKeyPendingDeletion) << op;
    EXPECT_THAT(reply.error().message(), HasSubstr("tenant 'acme' is pending deletion")) << op;
  }
  EXPECT_EQ(CodeOf(Call("tenant.create", "acme")), Code::kAlreadyExists);
  Reply described = MustCall("tenant.describe", "acme");
  EXPECT_EQ(described.result().String("state").value_or(""), "pending_deletion");
  EXPECT_EQ(described.result().Uint("deletion_date").value_or(0),
            scheduled.result().Uint("deletion_date").value_or(1));
  json list = json::parse(Kmsctl({"--json", "tenant", "list"}).out);
  EXPECT_EQ(list["tenants"][0]["state"], "pending_deletion");
  EXPECT_EQ(list["tenants"][1]["state"], "active");
  // Another tenant is served as before.
  EXPECT_EQ(Decrypt("globex", Encrypt("globex", "alias/data", "g")).value_or("<error>"), "g");

  Reply cancelled = MustCall("tenant.cancel-deletion", "acme");
  EXPECT_EQ(cancelled.result().String("state").value_or(""), "active");
  EXPECT_FALSE(cancelled.result().Has("deletion_date"));
  EXPECT_EQ(Decrypt("acme", old).value_or("<error>"), "old");
  EXPECT_EQ(StateOf("acme", "alias/data"), "enabled");
}

TEST_F(LifecycleTest, KmsctlDrivesTheLifecycle) {
  ASSERT_EQ(
      Kmsctl({"encrypt", "--tenant", "acme", "--key", "alias/data", "--out", dir_ / "old.enc"},
             "old")
          .exit_code,
      0);
  json disabled = KmsctlJson({"key", "disable", "--tenant", "acme", "alias/data"});
  EXPECT_EQ(disabled["state"], "disabled");
  CommandResult refused = Kmsctl({"encrypt", "--tenant", "acme", "--key", "alias/data"}, "x");
  EXPECT_EQ(refused.exit_code, 6);
  EXPECT_THAT(refused.err, HasSubstr("KEY_DISABLED"));
  EXPECT_EQ(KmsctlJson({"key", "enable", "--tenant", "acme", "alias/data"})["state"], "enabled");

  CommandResult six_days =
      Kmsctl({"key", "schedule-deletion", "--tenant", "acme", "alias/data", "--days", "6"});
  EXPECT_EQ(six_days.exit_code, 3);
  EXPECT_THAT(six_days.err, HasSubstr("INVALID_ARGUMENT"));
  EXPECT_EQ(Kmsctl({"key", "schedule-deletion", "--tenant", "acme", "alias/data", "--days", "31"})
                .exit_code,
            3);
  EXPECT_EQ(
      Kmsctl({"key", "schedule-deletion", "--tenant", "acme", "alias/data", "--seconds", "60"})
          .exit_code,
      3);
  EXPECT_EQ(Kmsctl({"key", "schedule-deletion", "--tenant", "acme", "alias/data", "--days", "7",
                    "--seconds", "60"})
                .exit_code,
            2);
  EXPECT_EQ(Kmsctl({"key", "schedule-deletion", "--tenant", "acme", "alias/data", "--days", "-1"})
                .exit_code,
            2);
  EXPECT_EQ(Kmsctl({"key", "schedule-deletion", "--tenant", "acme", "alias/data", "--days", "x"})
                .exit_code,
            2);

  json scheduled =
      KmsctlJson({"key", "schedule-deletion", "--tenant", "acme", "alias/data", "--days", "7"});
  EXPECT_EQ(scheduled["state"], "pending_deletion");
  EXPECT_TRUE(scheduled["deletion_date"].is_number());
  CommandResult pending = Kmsctl({"decrypt", "--tenant", "acme", "--in", dir_ / "old.enc"});
  EXPECT_EQ(pending.exit_code, 6);
  EXPECT_THAT(pending.err, HasSubstr("KEY_PENDING_DELETION"));
  CommandResult described = Kmsctl({"key", "describe", "--tenant", "acme", "alias/data"});
  EXPECT_THAT(described.out, HasSubstr("state: pending_deletion"));
  EXPECT_THAT(Kmsctl({"key", "list", "--tenant", "acme"}).out,
              ::testing::ContainsRegex("data-encryption-key .* false +pending_deletion "));
  EXPECT_EQ(KmsctlJson({"key", "cancel-deletion", "--tenant", "acme", "alias/data"})["state"],
            "disabled");
  KmsctlJson({"key", "enable", "--tenant", "acme", "alias/data"});
  CommandResult decrypted = Kmsctl({"decrypt", "--tenant", "acme", "--in", dir_ / "old.enc"});
  EXPECT_EQ(decrypted.exit_code, 0) << decrypted.err;
  EXPECT_EQ(decrypted.out, "old");

  json tenant = KmsctlJson({"tenant", "schedule-deletion", "acme"});
  EXPECT_EQ(tenant["state"], "pending_deletion");
  CommandResult served = Kmsctl({"key", "list", "--tenant", "acme"});
  EXPECT_EQ(served.exit_code, 6);
  EXPECT_THAT(served.err, HasSubstr("tenant 'acme' is pending deletion"));
  EXPECT_EQ(Kmsctl({"tenant", "schedule-deletion", "acme", "--days", "7"}).exit_code, 6);
  EXPECT_EQ(KmsctlJson({"tenant", "cancel-deletion", "acme"})["state"], "active");
  EXPECT_EQ(Kmsctl({"tenant", "cancel-deletion", "acme"}).exit_code, 3);
  EXPECT_EQ(Kmsctl({"tenant", "schedule-deletion", "acme", "--days", "6"}).exit_code, 3);
  EXPECT_EQ(Kmsctl({"key", "list", "--tenant", "acme"}).exit_code, 0);
}

// A kmsd started from a config file whose lifecycle section lowers the
// shortest pending window, so that windows can be given in seconds.
class LifecycleConfigTest : public ConfiguredKmsdTest {};

TEST_F(LifecycleConfigTest, ALoweredMinimumAcceptsWindowsInSeconds) {
  ASSERT_NO_FATAL_FAILURE(Start("lifecycle:\n  min_pending_window_seconds: 2\n"));
  ASSERT_EQ(CodeOf(Call("tenant.create", "acme")), Code::kOk);
  auto encrypted =
      Call("encrypt", "acme",
           Args({{"key", std::string("alias/data")}, {"plaintext", Bytes{'o', 'l', 'd'}}}));
  ASSERT_TRUE(encrypted.has_value());
  const Bytes old(encrypted->result().Binary("ciphertext")->begin(),
                  encrypted->result().Binary("ciphertext")->end());

  auto schedule = [&](std::string key, Value::Map window) {
    window.emplace_back("key", std::move(key));
    return Call("key.schedule-deletion", "acme", std::move(window));
  };
  auto too_short = schedule("alias/data", Args({{"pending_window_seconds", uint64_t{1}}}));
  ASSERT_EQ(CodeOf(too_short), Code::kInvalidArgument);
  EXPECT_THAT(too_short.error().message(), HasSubstr("must be 2 to 2592000"));
  EXPECT_EQ(
      CodeOf(schedule("alias/data", Args({{"pending_window_seconds", uint64_t{30 * kDay + 1}}}))),
      Code::kInvalidArgument);
  // Days keep their 7 to 30 bounds.
  EXPECT_EQ(CodeOf(schedule("alias/data", Args({{"pending_window_days", uint64_t{6}}}))),
            Code::kInvalidArgument);

  const int64_t before = Now();
  auto scheduled = schedule("alias/data", Args({{"pending_window_seconds", uint64_t{2}}}));
  ASSERT_TRUE(scheduled.has_value()) << scheduled.error();
  const uint64_t due = scheduled->result().Uint("deletion_date").value_or(0);
  EXPECT_GE(due, static_cast<uint64_t>(before + 2));
  EXPECT_LE(due, static_cast<uint64_t>(Now() + 2));

  // kmsctl --seconds, and a tenant window in seconds.
  CommandResult by_kmsctl = RunKmsctl(socket_path_, {"key", "schedule-deletion", "--tenant", "acme",
                                                     "alias/secrets", "--seconds", "60"});
  EXPECT_EQ(by_kmsctl.exit_code, 0) << by_kmsctl.err;
  EXPECT_THAT(by_kmsctl.out, HasSubstr("state: pending_deletion"));
  ASSERT_EQ(CodeOf(Call("tenant.create", "globex")), Code::kOk);
  EXPECT_EQ(CodeOf(Call("tenant.schedule-deletion", "globex",
                        Args({{"pending_window_seconds", uint64_t{2}}}))),
            Code::kOk);

  // The windows end: the key and the tenant are shredded (shredding_test.cc
  // looks closer); the key that is still in its window stays pending.
  Eventually(
      [&] {
        return CodeOf(Call("key.describe", "acme", KeyArg("data-encryption-key"))) ==
                   Code::kNotFound &&
               CodeOf(Call("tenant.describe", "globex")) == Code::kNotFound;
      },
      std::chrono::seconds(15));
  EXPECT_EQ(CodeOf(Call("decrypt", "acme", Args({{"ciphertext", old}}))), Code::kInvalidCiphertext);
  EXPECT_EQ(CodeOf(Call("key.describe", "acme", KeyArg("data-encryption-key"))), Code::kNotFound);
  EXPECT_EQ(CodeOf(Call("key.cancel-deletion", "acme", KeyArg("alias/data"))), Code::kNotFound);
  EXPECT_EQ(CodeOf(Call("tenant.describe", "globex")), Code::kNotFound);
  auto pending = Call("key.describe", "acme", KeyArg("alias/secrets"));
  ASSERT_TRUE(pending.has_value()) << pending.error();
  EXPECT_EQ(pending->result().String("state").value_or(""), "pending_deletion");
}

TEST_F(LifecycleConfigTest, BadLifecycleSectionsAreConfigurationErrors) {
  for (const auto& [lifecycle, message] : std::vector<std::pair<std::string, std::string>>{
           {"lifecycle:\n  min_pending_window_seconds: 0\n",
            "field 'lifecycle.min_pending_window_seconds' must be between 1 and 604800"},
           {"lifecycle:\n  min_pending_window_seconds: 604801\n",
            "field 'lifecycle.min_pending_window_seconds' must be between 1 and 604800"},
           {"lifecycle:\n  min_pending_window_seconds: soon\n",
            "field 'lifecycle.min_pending_window_seconds' must be a non-negative integer"},
           {"lifecycle:\n  min_window: 5\n", "field 'lifecycle.min_window' is not a known field"},
           {"lifecycle:\n  min_rotation_period_seconds: 0\n",
            "field 'lifecycle.min_rotation_period_seconds' must be between 1 and 86400"},
           {"lifecycle:\n  min_rotation_period_seconds: 86401\n",
            "field 'lifecycle.min_rotation_period_seconds' must be between 1 and 86400"},
           {"lifecycle:\n  max_encryptions_per_version: 0\n",
            "field 'lifecycle.max_encryptions_per_version' must be between 1 and 4294967296"},
           {"lifecycle:\n  max_encryptions_per_version: 4294967297\n",
            "field 'lifecycle.max_encryptions_per_version' must be between 1 and 4294967296"},
           {"lifecycle:\n  check_interval_ms: 99\n",
            "field 'lifecycle.check_interval_ms' must be between 100 and 60000"},
           {"lifecycle: 5\n", "field 'lifecycle' must be a map"},
       }) {
    CommandResult result = RunKmsd({"--config", WriteConfig(ConfigYaml(lifecycle))}, Env());
    EXPECT_EQ(result.exit_code, 2) << lifecycle;
    EXPECT_THAT(result.err + result.out, HasSubstr(message)) << lifecycle;
  }
}

}  // namespace
}  // namespace kmsd::testing
