// Shared fixture for end-to-end tests: a fresh kmsd --dev in a temp dir per
// test, with a connection and helpers to call it.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "client/connection.h"
#include "client/typed_call.h"
#include "protocol/access_types.h"
#include "tests/support/daemon_process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_helpers.h"

namespace kmsd::testing {

inline Bytes ToBytes(std::string_view s) { return Bytes(s.begin(), s.end()); }

class KmsdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon_ = DaemonProcess::StartDev(dir_ / "kmsd");
    connection_ = daemon_->Connect();
  }

  Result<Reply> Call(std::string_view op, std::string_view tenant = {}, Value::Map args = {}) {
    return connection_->Call(op, tenant, std::move(args));
  }

  // Fails the test unless the call succeeds.
  Reply MustCall(std::string_view op, std::string_view tenant = {}, Value::Map args = {}) {
    auto reply = Call(op, tenant, std::move(args));
    if (!reply) {
      ADD_FAILURE() << op << " failed: " << reply.error().ToString();
      throw std::runtime_error("call failed");
    }
    return std::move(*reply);
  }

  static std::string ToString(std::span<const uint8_t> b) {
    return std::string(b.begin(), b.end());
  }

  Bytes Encrypt(std::string_view tenant, std::string_view key, std::string_view plaintext,
                Value::Map context = {}) {
    Value::Map args;
    args.emplace_back("key", key);
    args.emplace_back("plaintext", ToBytes(plaintext));
    if (!context.empty()) args.emplace_back("context", std::move(context));
    Reply reply = MustCall("encrypt", tenant, std::move(args));
    auto ciphertext = reply.result().Binary("ciphertext");
    EXPECT_TRUE(ciphertext.has_value());
    return Bytes(ciphertext->begin(), ciphertext->end());
  }

  Result<std::string> Decrypt(std::string_view tenant, const Bytes& ciphertext,
                              Value::Map context = {}) {
    Value::Map args;
    args.emplace_back("ciphertext", ciphertext);
    if (!context.empty()) args.emplace_back("context", std::move(context));
    ASSIGN_OR_RETURN(Reply reply, Call("decrypt", tenant, std::move(args)));
    ASSIGN_OR_RETURN(auto plaintext, reply.result().Binary("plaintext"));
    return ToString(plaintext);
  }

  // Makes principal `name` of `tenant` holding `roles` (as the admin).
  void AddPrincipal(const std::string& tenant, const std::string& name,
                    std::vector<std::string> roles) {
    auto created = CallOp<ops::PrincipalCreate>(
        *connection_, tenant,
        {.name = name, .roles = std::move(roles), .uids = std::nullopt, .gids = std::nullopt});
    EXPECT_TRUE(created) << created.error();
  }

  // A connection presenting a new API key of an existing principal.
  std::unique_ptr<Connection> DialWithNewKey(const std::string& tenant,
                                             const std::string& principal) {
    auto key = CallOp<ops::ApiKeyCreate>(
        *connection_, tenant, {.principal = principal, .expires_in_seconds = std::nullopt});
    EXPECT_TRUE(key) << key.error();
    if (!key) return nullptr;
    auto dialed =
        Connection::Dial(daemon_->socket_path(), std::chrono::milliseconds(10000),
                         kDefaultMaxRequestBytes, SecretBuffer::CopyOf(SecretText(key->secret)));
    EXPECT_TRUE(dialed) << dialed.error();
    return dialed ? std::move(*dialed) : nullptr;
  }

  // A principal of `tenant` holding `roles`, and a connection using its key.
  std::unique_ptr<Connection> Principal(const std::string& tenant, const std::string& name,
                                        std::vector<std::string> roles) {
    AddPrincipal(tenant, name, std::move(roles));
    return DialWithNewKey(tenant, name);
  }

  static std::string SecretText(const SecretBuffer& secret) {
    return std::string(reinterpret_cast<const char*>(secret.RevealData()), secret.size());
  }

  TempDir dir_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<Connection> connection_;
};

// Polls `done` every 50 ms for at most `limit`; true once it is.
inline bool Eventually(const std::function<bool()>& done,
                       std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

inline Value::Map Context(std::initializer_list<std::pair<std::string, std::string>> entries) {
  Value::Map map;
  for (const auto& [k, v] : entries) map.emplace_back(k, v);
  return map;
}

}  // namespace kmsd::testing
