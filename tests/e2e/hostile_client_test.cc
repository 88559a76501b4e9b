// End-to-end: secrets never reach kmsd's log (DESIGN.md invariant 1, STYLE.md
// convention 9), and the daemon survives clients that vanish mid-request or
// arrive in crowds.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <thread>

#include "tests/e2e/hostile_support.h"

namespace kmsd::testing {
namespace {

using ::testing::HasSubstr;

std::string Hex(std::string_view bytes, bool upper) {
  const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 0xf];
  }
  return out;
}

std::string Base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(n);
  return out;
}

// The forms a secret could take in a text log.
std::vector<std::string> Forms(std::string_view secret) {
  std::string b64 = Base64(secret);
  std::string b64url = b64;
  for (char& c : b64url) c = c == '+' ? '-' : c == '/' ? '_' : c;
  while (!b64url.empty() && b64url.back() == '=') b64url.pop_back();
  return {std::string(secret), Hex(secret, false), Hex(secret, true), b64, b64url};
}

std::string FirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

class HostileClientTest : public HostileDaemonTest {};

TEST_F(HostileClientTest, SecretsNeverReachTheLog) {
  std::vector<std::string> secrets = {
      "PLAINTEXT-ALPHA-4f1c9e27b3d8",    "PLAINTEXT-BRAVO-90aa71c3e5f2",
      "PLAINTEXT-CHARLIE-d7e6b5a49382",  "PLAINTEXT-DELTA-1b2c3d4e5f60",
      "PLAINTEXT-ECHO-refused-c0ffee11",
  };
  auto record = [&](std::span<const uint8_t> bytes) { secrets.push_back(ToString(bytes)); };

  // encrypt / decrypt, with and without context, and a failing decrypt.
  const Bytes alpha = Encrypt("acme", "alias/data", secrets[0], Context({{"app", "log"}}));
  EXPECT_EQ(Decrypt("acme", alpha, Context({{"app", "log"}})).value(), secrets[0]);
  EXPECT_FALSE(Decrypt("acme", alpha, Context({{"app", "wrong"}})));
  // generate-data-key, both key specs and a byte count.
  for (int i = 0; i < 3; ++i) {
    Value::Map args = MapOf("key", "alias/data");
    if (i == 1) args.emplace_back("key_spec", "AES_128");
    if (i == 2) args.emplace_back("number_of_bytes", 64);
    Reply reply = MustCall("generate-data-key", "acme", std::move(args));
    record(reply.result().Binary("plaintext").value());
    auto wrapped = reply.result().Binary("ciphertext").value();
    EXPECT_EQ(Decrypt("acme", Bytes(wrapped.begin(), wrapped.end())).value(), secrets.back());
  }
  // re-encrypt to another key.
  Reply moved =
      MustCall("re-encrypt", "acme",
               MapOf("ciphertext", alpha, "context", MapOf("app", "log"), "destination_key",
                     "billing", "destination_context", MapOf("app", "moved")));
  EXPECT_EQ(moved.result().String("key_name").value(), "billing");
  // batch forms.
  Value::Array items;
  items.emplace_back(MapOf("plaintext", Bin(secrets[1])));
  items.emplace_back(MapOf("plaintext", Bin(secrets[2]), "context", MapOf("n", "2")));
  Reply batch =
      MustCall("batch-encrypt", "acme", MapOf("key", "billing", "items", std::move(items)));
  Value::Array decrypt_items;
  auto batch_results = batch.result().Array("results").value();
  ASSERT_EQ(batch_results.size(), 2u);
  for (size_t i = 0; i < batch_results.size(); ++i) {
    auto ciphertext = Fields::Of(batch_results[i], "r")->Binary("ciphertext").value();
    Value::Map item = MapOf("ciphertext", Bytes(ciphertext.begin(), ciphertext.end()));
    if (i == 1) item.emplace_back("context", MapOf("n", "2"));
    decrypt_items.emplace_back(std::move(item));
  }
  MustCall("batch-decrypt", "acme", MapOf("items", std::move(decrypt_items)));
  // generate-random output, and plaintexts in requests that fail.
  record(MustCall("generate-random", {}, MapOf("number_of_bytes", 48))
             .result()
             .Binary("random")
             .value());
  EXPECT_FALSE(Call("encrypt", "acme", MapOf("key", "nope", "plaintext", Bin(secrets[3]))));
  EXPECT_FALSE(Call("encrypt", "acme", MapOf("key", "alias/data", "plaintext", secrets[4])));
  Bytes broken = Encode(
      Envelope(7, "encrypt", "acme", MapOf("key", "alias/data", "plaintext", Bin(secrets[3]))));
  broken.push_back(0x00);
  ASSERT_TRUE(connection_->CallRaw(broken));
  // The dev token's PINs.
  const std::string user_pin = FirstLine(dir_ / "kmsd/user-pin");
  const std::string so_pin = FirstLine(dir_ / "kmsd/so-pin");
  ASSERT_GE(user_pin.size(), 16u);
  ASSERT_GE(so_pin.size(), 16u);
  secrets.push_back(user_pin);
  secrets.push_back(so_pin);

  connection_.reset();
  ASSERT_EQ(daemon_->Stop(), 0);
  const std::string log = daemon_->ReadLog();
  // The log is there and records the requests, so this test can fail.
  for (const char* op : {"op=encrypt", "op=decrypt", "op=generate-data-key", "op=re-encrypt",
                         "op=batch-encrypt", "op=batch-decrypt", "op=generate-random",
                         "code=INVALID_CIPHERTEXT", "code=NOT_FOUND", "code=INVALID_ARGUMENT"}) {
    EXPECT_THAT(log, HasSubstr(op));
  }
  for (size_t i = 0; i < secrets.size(); ++i) {
    for (const std::string& form : Forms(secrets[i])) {
      EXPECT_EQ(log.find(form), std::string::npos)
          << "secret " << i << " appears in the log as " << Hex(form, false);
    }
  }
}

// Speaks just enough of nng's IPC transport to leave in the middle: the SP
// handshake for a REQ peer, then `body` framed with a length that may lie.
void SendPartialRequest(const std::string& socket_path, size_t declared_length, const Bytes& body) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  ASSERT_LT(socket_path.size(), sizeof(address.sun_path));
  std::memcpy(address.sun_path, socket_path.data(), socket_path.size());
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  // SP header: 0, 'S', 'P', version 0, protocol 0x30 (REQ v0), reserved.
  Bytes wire = {0x00, 'S', 'P', 0x00, 0x00, 0x30, 0x00, 0x00};
  wire.push_back(0x01);  // IPC message type
  for (int i = 7; i >= 0; --i) wire.push_back(static_cast<uint8_t>(declared_length >> (8 * i)));
  const Bytes request_id = {0x80, 0x00, 0x00, 0x01};
  wire.insert(wire.end(), request_id.begin(), request_id.end());
  wire.insert(wire.end(), body.begin(), body.end());
  EXPECT_EQ(send(fd, wire.data(), wire.size(), MSG_NOSIGNAL), static_cast<ssize_t>(wire.size()));
  close(fd);
}

TEST_F(HostileClientTest, ClientsThatDisconnectMidRequestDoNotHurtTheDaemon) {
  const Bytes request =
      Encode(Envelope(1, "encrypt", "acme", MapOf("key", "alias/data", "plaintext", Bin("gone"))));
  // Cut off in the transport: a frame that promises more than it sends, a
  // handshake alone, a frame promising 1 GiB.
  SendPartialRequest(daemon_->socket_path(), 4 + request.size(),
                     Bytes(request.begin(), request.begin() + request.size() / 2));
  SendPartialRequest(daemon_->socket_path(), 4 + request.size(), {});
  SendPartialRequest(daemon_->socket_path(), size_t{1} << 30, request);
  // A whole request, then gone before the reply: the daemon's reply has
  // nowhere to go.
  SendPartialRequest(daemon_->socket_path(), 4 + request.size(), request);
  // Gone while a slow request runs.
  for (int i = 0; i < 10; ++i) {
    auto impatient = Connection::Dial(daemon_->socket_path(), std::chrono::milliseconds(1));
    ASSERT_TRUE(impatient);
    Value::Array items;
    for (int j = 0; j < 1024; ++j) items.emplace_back(MapOf("plaintext", Bytes(64, 'q')));
    [[maybe_unused]] auto reply =
        (*impatient)
            ->Call("batch-encrypt", "acme", MapOf("key", "alias/data", "items", std::move(items)));
    impatient->reset();
  }
  ExpectUnchanged();
  auto fresh = daemon_->Connect();
  EXPECT_TRUE(fresh->Call("health"));
  EXPECT_EQ(Decrypt("acme", Encrypt("acme", "alias/data", "still here")).value(), "still here");
}

TEST_F(HostileClientTest, ManyConcurrentClientsEachGetTheirOwnPlaintext) {
  constexpr int kThreads = 8;
  constexpr int kRounds = 200;
  std::atomic<int> failures{0};
  std::atomic<int> mixups{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto connection = Connection::Dial(daemon_->socket_path(), std::chrono::milliseconds(30000));
      if (!connection) {
        failures += kRounds;
        return;
      }
      const std::string tenant = t % 2 ? "globex" : "acme";
      for (int i = 0; i < kRounds; ++i) {
        const std::string plaintext = "thread " + std::to_string(t) + " round " + std::to_string(i);
        auto encrypted = (*connection)
                             ->Call("encrypt", tenant,
                                    MapOf("key", "alias/data", "plaintext", Bin(plaintext),
                                          "context", MapOf("thread", std::to_string(t))));
        if (!encrypted) {
          ++failures;
          continue;
        }
        auto ciphertext = encrypted->result().Binary("ciphertext").value();
        auto decrypted = (*connection)
                             ->Call("decrypt", tenant,
                                    MapOf("ciphertext", Bytes(ciphertext.begin(), ciphertext.end()),
                                          "context", MapOf("thread", std::to_string(t))));
        if (!decrypted) {
          ++failures;
          continue;
        }
        if (ToString(decrypted->result().Binary("plaintext").value()) != plaintext) ++mixups;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(mixups.load(), 0);
  ExpectUnchanged();
}

}  // namespace
}  // namespace kmsd::testing
