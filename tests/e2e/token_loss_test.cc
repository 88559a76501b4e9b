// End-to-end: the token goes away under a running kmsd and comes back
// (pkcs11/token.h, "Losing the token"). kmsd runs on the faulty_pkcs11 wrapper
// module (tests/support/faulty_pkcs11), which forwards to SoftHSM2 and, while
// its control file exists, answers CKR_DEVICE_REMOVED or CKR_TOKEN_NOT_PRESENT
// and closes every session as the fault begins. Every request meanwhile is
// TOKEN_UNAVAILABLE (socket and kmsctl, exit code 7), the daemon stays up,
// nothing it keeps changes, and once the token is back the same process
// serves again, ciphertexts made before the fault included.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "client/typed_call.h"
#include "protocol/access_types.h"
#include "tests/e2e/config_fixture.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/support/value_builders.h"

namespace kmsd::testing {
namespace {

using ::testing::HasSubstr;

class TokenLossE2eTest : public ConfiguredKmsdTest,
                         public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    ConfiguredKmsdTest::SetUp();
    StartFaulty();
    ASSERT_EQ(CodeOf(Call("tenant.create", "acme")), Code::kOk);
  }

  // kmsd --config with the wrapper module in place of SoftHSM2's.
  void StartFaulty() {
    std::string yaml = ConfigYaml("");
    const std::string real = token_.module_path();
    yaml.replace(yaml.find(real), real.size(), FAULTY_PKCS11_MODULE);
    config_path_ = WriteConfig(yaml);
    auto env = Env();
    env["KMSD_FAULTY_CONTROL"] = control_;
    daemon_ = DaemonProcess::StartWithConfig(config_path_, socket_path_, dir_ / "kmsd.log", env);
    connection_ = daemon_->Connect();
    pid_ = daemon_->pid();
  }

  void FaultOn(const std::string& words) { std::ofstream(control_) << words << "\n"; }
  void FaultOff() { std::filesystem::remove(control_); }

  Result<Bytes> Encrypt(std::string_view plaintext, std::string_view key = "alias/data") {
    ASSIGN_OR_RETURN(Reply reply,
                     Call("encrypt", "acme", MapOf("key", key, "plaintext", ToBytes(plaintext))));
    ASSIGN_OR_RETURN(auto ciphertext, reply.result().Binary("ciphertext"));
    return Bytes(ciphertext.begin(), ciphertext.end());
  }
  Result<std::string> Decrypt(const Bytes& ciphertext) {
    ASSIGN_OR_RETURN(Reply reply, Call("decrypt", "acme", MapOf("ciphertext", ciphertext)));
    ASSIGN_OR_RETURN(auto plaintext, reply.result().Binary("plaintext"));
    return std::string(plaintext.begin(), plaintext.end());
  }
  uint64_t LatestVersion(std::string_view key) {
    auto reply = Call("key.describe", "acme", MapOf("key", key));
    EXPECT_TRUE(reply.has_value()) << reply.error();
    return reply ? reply->result().Uint("latest_version").value_or(0) : 0;
  }

  std::string LogTail() const {
    const std::string log = daemon_->ReadLog();
    return log.substr(log.size() > 4000 ? log.size() - 4000 : 0);
  }

  // The same process, still running.
  void ExpectSameDaemon() {
    EXPECT_FALSE(daemon_->Exited());
    EXPECT_EQ(daemon_->pid(), pid_);
  }

  // Waits (bounded) until the daemon serves again.
  void ExpectRecovers(const Bytes& before, const std::string& plaintext) {
    const auto start = std::chrono::steady_clock::now();
    EXPECT_TRUE(Eventually([&] { return CodeOf(Call("health", "")) == Code::kOk; },
                           std::chrono::seconds(5)));
    Result<std::string> opened = Decrypt(before);
    ASSERT_TRUE(opened.has_value()) << opened.error() << "\nkmsd's log:\n" << LogTail();
    EXPECT_EQ(*opened, plaintext);
    auto fresh = Encrypt("after the fault");
    ASSERT_TRUE(fresh.has_value()) << fresh.error();
    EXPECT_EQ(Decrypt(*fresh).value_or(""), "after the fault");
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
    ExpectSameDaemon();
  }

  std::string control_ = dir_ / "fault";
  pid_t pid_ = -1;
};

TEST_P(TokenLossE2eTest, RequestsAreTokenUnavailableDuringTheFaultAndServeAgainAfter) {
  auto before = Encrypt("made before the fault");
  ASSERT_TRUE(before.has_value()) << before.error();
  ASSERT_EQ(Decrypt(*before).value_or(""), "made before the fault");
  const uint64_t versions = LatestVersion("alias/data");

  FaultOn(GetParam());
  for (int round = 0; round < 3; ++round) {
    auto encrypted = Encrypt("during the fault");
    ASSERT_EQ(CodeOf(encrypted), Code::kTokenUnavailable);
    EXPECT_THAT(encrypted.error().message(), HasSubstr("token '" + token_.label() + "'"));
    EXPECT_EQ(CodeOf(Decrypt(*before)), Code::kTokenUnavailable);
    EXPECT_EQ(CodeOf(Call("generate-data-key", "acme", MapOf("key", "alias/data"))),
              Code::kTokenUnavailable);
    EXPECT_EQ(CodeOf(Call("generate-random", "", MapOf("number_of_bytes", uint64_t{16}))),
              Code::kTokenUnavailable);
    EXPECT_EQ(CodeOf(Call("health", "")), Code::kTokenUnavailable);
    std::this_thread::sleep_for(std::chrono::milliseconds(120));
  }
  // Operations that change the keystore fail without changing it.
  EXPECT_EQ(CodeOf(Call("key.rotate", "acme", MapOf("key", "alias/data"))),
            Code::kTokenUnavailable);
  EXPECT_EQ(CodeOf(Call("key.create", "acme", MapOf("name", "during"))), Code::kTokenUnavailable);
  EXPECT_EQ(CodeOf(Call("tenant.create", "globex")), Code::kTokenUnavailable);
  // Answers that need no token still come.
  auto status = Call("status", "");
  ASSERT_TRUE(status.has_value()) << status.error();
  auto token = status->result().Map("token");
  ASSERT_TRUE(token.has_value());
  EXPECT_EQ(token->Bool("available").value_or(true), false);
  // kmsctl: exit code 7 and the code's name.
  CommandResult cli = RunKmsctl(
      socket_path_, {"encrypt", "--tenant", "acme", "--key", "alias/data"}, "from kmsctl");
  EXPECT_EQ(cli.exit_code, 7) << cli.out << cli.err;
  EXPECT_THAT(cli.err, HasSubstr("TOKEN_UNAVAILABLE"));
  ExpectSameDaemon();

  FaultOff();
  ExpectRecovers(*before, "made before the fault");
  EXPECT_EQ(LatestVersion("alias/data"), versions);
  EXPECT_EQ(CodeOf(Call("key.describe", "acme", MapOf("key", "during"))), Code::kNotFound);
  EXPECT_EQ(CodeOf(Call("tenant.describe", "globex")), Code::kNotFound);
  // What failed during the fault works now.
  EXPECT_EQ(CodeOf(Call("key.rotate", "acme", MapOf("key", "alias/data"))), Code::kOk);
  EXPECT_EQ(LatestVersion("alias/data"), versions + 1);
  EXPECT_EQ(CodeOf(Call("tenant.create", "globex")), Code::kOk);
  CommandResult after = RunKmsctl(
      socket_path_, {"encrypt", "--tenant", "acme", "--key", "alias/data"}, "from kmsctl");
  EXPECT_EQ(after.exit_code, 0) << after.err;

  // And again: a second loss after a reconnection is handled the same way.
  FaultOn(GetParam());
  EXPECT_EQ(CodeOf(Decrypt(*before)), Code::kTokenUnavailable);
  FaultOff();
  ExpectRecovers(*before, "made before the fault");
}

INSTANTIATE_TEST_SUITE_P(BothErrors, TokenLossE2eTest,
                         ::testing::Values("DEVICE_REMOVED", "TOKEN_NOT_PRESENT"));

class TokenLossAttackTest : public TokenLossE2eTest {};

// The fault begins in the middle of a batch: the items before it succeed,
// the ones after it are TOKEN_UNAVAILABLE, alone; every ciphertext the batch
// returned decrypts once the token is back.
TEST_F(TokenLossAttackTest, AFaultInTheMiddleOfABatch) {
  auto warm = Encrypt("warm up: the version is unwrapped");
  ASSERT_TRUE(warm.has_value()) << warm.error();
  ops::BatchEncryptRequest request{.key = "alias/data", .items = {}};
  const Bytes plaintext = ToBytes("batch item");
  for (int i = 0; i < 100; ++i)
    request.items.items.push_back({.plaintext = plaintext, .context = {}});
  FaultOn("DEVICE_REMOVED after=60");
  auto reply = CallOp<ops::BatchEncrypt>(*connection_, "acme", std::move(request));
  ASSERT_TRUE(reply.has_value()) << reply.error();
  ASSERT_EQ(reply->results.size(), 100u);
  std::vector<Bytes> made;
  size_t unavailable = 0;
  for (const auto& result : reply->results) {
    if (result) {
      made.push_back(result->ciphertext);
    } else {
      EXPECT_EQ(result.error().code(), Code::kTokenUnavailable) << result.error();
      ++unavailable;
    }
  }
  EXPECT_GT(made.size(), 0u);
  EXPECT_GT(unavailable, 0u);
  EXPECT_TRUE(reply->results.front().has_value());
  EXPECT_FALSE(reply->results.back().has_value());
  ops::BatchDecryptRequest decrypt;
  for (const Bytes& c : made) decrypt.items.items.push_back({.ciphertext = c, .context = {}});
  auto during = CallOp<ops::BatchDecrypt>(*connection_, "acme", ops::BatchDecryptRequest(decrypt));
  ASSERT_TRUE(during.has_value()) << during.error();
  for (const auto& result : during->results) {
    EXPECT_EQ(CodeOf(result), Code::kTokenUnavailable);
  }
  FaultOff();
  ExpectRecovers(*warm, "warm up: the version is unwrapped");
  auto opened = CallOp<ops::BatchDecrypt>(*connection_, "acme", std::move(decrypt));
  ASSERT_TRUE(opened.has_value()) << opened.error();
  for (const auto& result : opened->results) {
    ASSERT_TRUE(result.has_value()) << result.error();
    EXPECT_TRUE(result->plaintext.EqualsInConstantTime(plaintext));
  }
}

// The fault cuts a rotation short (the new version is generated in the
// token): the key keeps its versions, and rotates once the token is back.
TEST_F(TokenLossAttackTest, AFaultDuringRotation) {
  auto before = Encrypt("before the rotation");
  ASSERT_TRUE(before.has_value()) << before.error();
  const uint64_t versions = LatestVersion("alias/data");
  FaultOn("TOKEN_NOT_PRESENT C_GenerateKey C_WrapKey");
  auto rotated = Call("key.rotate", "acme", MapOf("key", "alias/data"));
  ASSERT_EQ(CodeOf(rotated), Code::kTokenUnavailable);
  EXPECT_EQ(LatestVersion("alias/data"), versions);
  FaultOff();
  ExpectRecovers(*before, "before the rotation");
  ASSERT_EQ(CodeOf(Call("key.rotate", "acme", MapOf("key", "alias/data"))), Code::kOk);
  EXPECT_EQ(LatestVersion("alias/data"), versions + 1);
  auto newer = Encrypt("after the rotation");
  ASSERT_TRUE(newer.has_value()) << newer.error();
  EXPECT_EQ(Decrypt(*newer).value_or(""), "after the rotation");
  EXPECT_EQ(Decrypt(*before).value_or(""), "before the rotation");
}

// An API key presented for the first time while the token is away cannot be
// checked (its HMAC is the token's): TOKEN_UNAVAILABLE, not ACCESS_DENIED,
// and however often it is tried its holder is not locked out.
TEST_F(TokenLossAttackTest, AnApiKeyCheckedDuringTheFaultIsNotRefusedNorLockedOut) {
  ASSERT_TRUE(CallOp<ops::PrincipalCreate>(
      *connection_, "acme",
      {.name = "app", .roles = {"user"}, .uids = std::nullopt, .gids = std::nullopt}));
  auto key = CallOp<ops::ApiKeyCreate>(*connection_, "acme",
                                       {.principal = "app", .expires_in_seconds = std::nullopt});
  ASSERT_TRUE(key.has_value()) << key.error();
  auto app =
      Connection::Dial(socket_path_, std::chrono::milliseconds(10000), kDefaultMaxRequestBytes,
                       SecretBuffer::CopyOf(key->secret.RevealSpan()));
  ASSERT_TRUE(app.has_value()) << app.error();
  FaultOn("DEVICE_REMOVED");
  for (int i = 0; i < 12; ++i) {
    auto refused =
        (*app)->Call("encrypt", "acme", MapOf("key", "alias/data", "plaintext", ToBytes("x")));
    ASSERT_EQ(CodeOf(refused), Code::kTokenUnavailable) << i << ": " << refused.error();
  }
  FaultOff();
  EXPECT_TRUE(Eventually([&] { return CodeOf(Call("health", "")) == Code::kOk; }));
  auto served =
      (*app)->Call("encrypt", "acme", MapOf("key", "alias/data", "plaintext", ToBytes("x")));
  EXPECT_TRUE(served.has_value()) << served.error();
  ExpectSameDaemon();
}

// After a fault and a recovery, a restart finds everything as it was: the
// keystore was not changed by the failed requests.
TEST_F(TokenLossAttackTest, ARestartAfterTheFaultFindsTheKeystoreIntact) {
  auto before = Encrypt("kept");
  ASSERT_TRUE(before.has_value()) << before.error();
  FaultOn("DEVICE_REMOVED");
  for (int i = 0; i < 5; ++i) {
    (void)Encrypt("lost");
    (void)Call("key.rotate", "acme", MapOf("key", "alias/data"));
    (void)Call("key.create", "acme", MapOf("name", "k" + std::to_string(i)));
  }
  FaultOff();
  ExpectRecovers(*before, "kept");
  const uint64_t versions = LatestVersion("alias/data");
  Stop();
  StartFaulty();
  EXPECT_EQ(Decrypt(*before).value_or(""), "kept");
  EXPECT_EQ(LatestVersion("alias/data"), versions);
  EXPECT_EQ(CodeOf(Call("key.describe", "acme", MapOf("key", "k0"))), Code::kNotFound);
  auto verified = Call("audit.verify", "", {});
  EXPECT_TRUE(verified.has_value()) << verified.error();
}

}  // namespace
}  // namespace kmsd::testing
