// Support for end-to-end tests that attack kmsd through its real socket with
// bad input (DESIGN.md invariant 5) and forbidden callers: raw frame builders,
// a logical snapshot of the keystore taken through the protocol, a fixture
// that checks after every attack that nothing changed and the daemon still
// serves, a raw socket client that speaks just enough of nng's IPC transport
// to misbehave, and a daemon started from a YAML config on a private SoftHSM2
// token.
// Test-only; not thread-safe.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "client/connection.h"
#include "protocol/message.h"
#include "protocol/value.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/support/daemon_process.h"
#include "tests/support/softhsm_token.h"
#include "tests/support/temp_dir.h"
#include "tests/support/value_builders.h"

namespace kmsd::testing {

inline Bytes Bin(std::string_view s) { return Bytes(s.begin(), s.end()); }
inline std::string AsString(std::span<const uint8_t> b) { return std::string(b.begin(), b.end()); }

inline Bytes Encode(Value value) {
  WipingBuffer buffer = EncodeValue(value);
  return Bytes(buffer.span().begin(), buffer.span().end());
}

// A well-formed request envelope; tests then break one thing in it.
inline Value::Map Envelope(uint64_t id, std::string_view op, std::string_view tenant = {},
                           Value::Map args = {}) {
  Value::Map envelope = MapOf("version", 1, "id", id, "op", op);
  if (!tenant.empty()) envelope.emplace_back("tenant", tenant);
  envelope.emplace_back("args", std::move(args));
  return envelope;
}

// Renders every field of a reply's result, in wire order.
inline std::string RenderResult(const Reply& reply) {
  std::ostringstream out;
  reply.result().ForEach([&](std::string_view key, const msgpack::object& value) {
    out << key << '=' << value << ';';
  });
  return out.str();
}

// The keystore as the protocol shows it: every tenant, and per tenant every
// key (description and versions) and every alias. Two equal snapshots mean
// no tenant, key, version or alias was added, removed or changed.
inline Result<std::string> Snapshot(Connection& connection) {
  std::ostringstream out;
  ASSIGN_OR_RETURN(Reply tenants, connection.Call("tenant.list"));
  ASSIGN_OR_RETURN(auto tenant_list, tenants.result().Array("tenants"));
  for (const auto& tenant_object : tenant_list) {
    ASSIGN_OR_RETURN(Fields tenant, Fields::Of(tenant_object, "tenant"));
    ASSIGN_OR_RETURN(std::string_view name, tenant.String("name"));
    out << "tenant " << tenant_object << '\n';
    ASSIGN_OR_RETURN(Reply keys, connection.Call("key.list", name));
    ASSIGN_OR_RETURN(auto key_list, keys.result().Array("keys"));
    for (const auto& key_object : key_list) {
      ASSIGN_OR_RETURN(Fields key, Fields::Of(key_object, "key"));
      ASSIGN_OR_RETURN(std::string_view key_name, key.String("name"));
      out << "  key " << key_object << '\n';
      ASSIGN_OR_RETURN(Reply versions,
                       connection.Call("key.list-versions", name, MapOf("key", key_name)));
      // Encryption counts are usage, not state: a test's own encryptions move them.
      ASSIGN_OR_RETURN(auto version_list, versions.result().Array("versions"));
      for (const auto& version_object : version_list) {
        ASSIGN_OR_RETURN(Fields version, Fields::Of(version_object, "version"));
        ASSIGN_OR_RETURN(uint64_t number, version.Uint("version"));
        ASSIGN_OR_RETURN(uint64_t created_at, version.Uint("created_at"));
        out << "    version " << number << " created_at " << created_at << '\n';
      }
    }
    ASSIGN_OR_RETURN(Reply aliases, connection.Call("alias.list", name));
    out << "  " << RenderResult(aliases) << '\n';
  }
  return out.str();
}

// True when every byte of `message` is printable ASCII: hostile names must
// not come back raw in an error message.
inline bool IsPrintable(std::string_view message) {
  for (char c : message) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

// A fresh kmsd --dev with two tenants, a rotated custom key and a custom
// alias, and a baseline snapshot. Attacks are followed by ExpectUnchanged().
class HostileDaemonTest : public KmsdTest {
 protected:
  void SetUp() override {
    KmsdTest::SetUp();
    MustCall("tenant.create", "acme");
    MustCall("tenant.create", "globex");
    MustCall("key.create", "acme", MapOf("name", "billing", "description", "invoices"));
    MustCall("key.rotate", "acme", MapOf("key", "billing"));
    MustCall("alias.create", "acme", MapOf("alias", "alias/bill", "key", "billing"));
    auto snapshot = Snapshot(*connection_);
    ASSERT_TRUE(snapshot) << snapshot.error();
    baseline_ = *snapshot;
  }

  // The keystore is as it was after SetUp and the daemon answers health.
  void ExpectUnchanged() {
    auto health = connection_->Call("health");
    EXPECT_TRUE(health) << "daemon stopped serving: " << health.error();
    auto snapshot = Snapshot(*connection_);
    ASSERT_TRUE(snapshot) << snapshot.error();
    EXPECT_EQ(*snapshot, baseline_) << "the keystore changed";
  }

  // A call that must fail with `code` and a message containing `substring`,
  // and change nothing.
  void ExpectRejected(std::string_view op, std::string_view tenant, Value::Map args, Code code,
                      std::string_view substring) {
    SCOPED_TRACE(::testing::Message() << "op=" << op << " tenant=" << tenant);
    auto reply = Call(op, tenant, std::move(args));
    ASSERT_FALSE(reply) << "accepted: " << RenderResult(*reply);
    EXPECT_EQ(reply.error().code(), code) << reply.error();
    EXPECT_THAT(reply.error().message(), ::testing::HasSubstr(std::string(substring)));
    EXPECT_TRUE(IsPrintable(reply.error().message())) << reply.error();
    ExpectUnchanged();
  }

  // A raw frame that must fail with `code`, a message containing `substring`
  // and the reply id `id` (nullopt: nil), and change nothing.
  void ExpectRawRejected(std::span<const uint8_t> frame, Code code, std::string_view substring,
                         std::optional<uint64_t> id) {
    auto reply = connection_->CallRaw(frame);
    ASSERT_TRUE(reply) << "no reply: " << reply.error();
    EXPECT_EQ(reply->status.code(), code) << reply->status;
    EXPECT_THAT(reply->status.message(), ::testing::HasSubstr(std::string(substring)));
    EXPECT_TRUE(IsPrintable(reply->status.message())) << reply->status;
    EXPECT_EQ(reply->id, id);
    ExpectUnchanged();
  }

  std::string baseline_;
};

// A raw Unix-socket client, to misbehave below nng's REQ socket.
class RawClient {
 public:
  explicit RawClient(const std::string& socket_path) {
    fd_ = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, socket_path.data(),
                std::min(socket_path.size(), sizeof(address.sun_path) - 1));
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
    SetReceiveTimeout(std::chrono::seconds(5));  // no test waits forever
  }
  ~RawClient() { close(fd_); }
  bool connected() const { return connected_; }

  // Waits up to `timeout` for the daemon to close the connection; true if
  // it did (without sending a reply first).
  bool ClosedByPeer(std::chrono::milliseconds timeout) {
    SetReceiveTimeout(timeout);
    uint8_t byte;
    // A peer that closes with our bytes unread resets instead of FIN.
    const ssize_t n = recv(fd_, &byte, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

  // nng's IPC handshake as a REQ v0 peer, or its first `length` bytes; true
  // once the daemon's own header came back.
  bool Handshake(size_t length = 8) {
    const Bytes header = {0x00, 'S', 'P', 0x00, 0x00, 0x30, 0x00, 0x00};
    if (!Send(Bytes(header.begin(), header.begin() + std::min<size_t>(length, 8)))) return false;
    uint8_t reply[8];
    size_t got = 0;
    while (got < sizeof(reply)) {
      ssize_t n = recv(fd_, reply + got, sizeof(reply) - got, 0);
      if (n <= 0) return false;
      got += static_cast<size_t>(n);
    }
    return reply[1] == 'S' && reply[2] == 'P';
  }

  // One IPC message: type 1, a length that may lie, a REQ request id, `body`.
  bool SendFrame(uint64_t declared_length, const Bytes& body) {
    Bytes wire = {0x01};
    for (int i = 7; i >= 0; --i) wire.push_back(static_cast<uint8_t>(declared_length >> (8 * i)));
    const Bytes request_id = {0x80, 0x00, 0x00, 0x01};
    wire.insert(wire.end(), request_id.begin(), request_id.end());
    wire.insert(wire.end(), body.begin(), body.end());
    return Send(wire);
  }

  // The rest of a frame, a byte every 50 us while `go_on()`: every read the
  // daemon's nng makes is then part of a frame. True if the daemon closed
  // the connection meanwhile.
  bool SendAByteAtATimeWhile(const std::function<bool()>& go_on) {
    while (go_on()) {
      if (!Send({0xc0})) return true;
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    return false;
  }

 private:
  void SetReceiveTimeout(std::chrono::milliseconds timeout) {
    timeval tv{static_cast<time_t>(timeout.count() / 1000),
               static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  bool Send(const Bytes& bytes) {
    return send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }
  int fd_ = -1;
  bool connected_ = false;
};

// What a config-file daemon needs besides its token: the knobs tests vary.
// A YAML flow list of one id, for ConfigOptions::admin_uids.
inline std::string Uids(uint64_t uid) { return "[" + std::to_string(uid) + "]"; }

struct ConfigOptions {
  std::string admin_uids = "[]";  // YAML flow list
  std::string admin_gids;         // empty: no gids key
  std::string socket_mode = "0660";
  size_t max_frame_bytes = 1 << 20;
  size_t workers = 4;
  size_t max_connections_per_uid = 0;  // 0: the default
  size_t max_connections = 0;          // 0: the default
  size_t idle_timeout_ms = 0;          // 0: the default
  size_t max_queued_per_tenant = 0;    // 0: the default
  size_t max_queued = 0;               // 0: the default
  std::string api_key_peer_uids;       // YAML flow list; empty: no api_key_peers
  int64_t first_lockout_ms = 0;        // 0: the default
  std::string log_level;               // empty: the default
};

// A private SoftHSM2 token, a PIN file (0600), a keystore path and a socket
// path in one temp dir; writes YAML configs for them and starts kmsd on them.
// The token and keystore outlive any daemon started here, so a test can
// restart with another config over the same state.
class ConfiguredHost {
 public:
  ConfiguredHost() {
    const std::string pin = dir_ / "user.pin";
    std::ofstream(pin) << token_.user_pin() << "\n";
    chmod(pin.c_str(), 0600);
  }

  std::string socket_path() const { return dir_ / "kmsd.sock"; }
  std::string pin_path() const { return dir_ / "user.pin"; }
  const SoftHsmToken& token() const { return token_; }
  const TempDir& dir() const { return dir_; }
  std::map<std::string, std::string> env() const { return {{"SOFTHSM2_CONF", token_.conf_path()}}; }

  std::string ConfigYaml(const ConfigOptions& options) const {
    std::ostringstream yaml;
    yaml << "pkcs11:\n"
         << "  module: " << token_.module_path() << "\n"
         << "  token_label: " << token_.label() << "\n"
         << "  pin_file: " << pin_path() << "\n"
         << "socket:\n"
         << "  path: " << socket_path() << "\n"
         << "  mode: \"" << options.socket_mode << "\"\n"
         << "keystore:\n"
         << "  path: " << (dir_ / "keystore.db") << "\n"
         << "  backup_dir: " << (dir_ / "backups") << "\n"
         << "admins:\n"
         << "  uids: " << options.admin_uids << "\n";
    if (!options.admin_gids.empty()) yaml << "  gids: " << options.admin_gids << "\n";
    if (!options.api_key_peer_uids.empty()) {
      yaml << "api_key_peers:\n  uids: " << options.api_key_peer_uids << "\n";
    }
    yaml << "limits:\n"
         << "  max_frame_bytes: " << options.max_frame_bytes << "\n"
         << "  workers: " << options.workers << "\n";
    if (options.max_connections_per_uid != 0) {
      yaml << "  max_connections_per_uid: " << options.max_connections_per_uid << "\n";
    }
    if (options.max_connections != 0) {
      yaml << "  max_connections: " << options.max_connections << "\n";
    }
    if (options.idle_timeout_ms != 0) {
      yaml << "  idle_timeout_ms: " << options.idle_timeout_ms << "\n";
    }
    if (options.max_queued_per_tenant != 0) {
      yaml << "  max_queued_per_tenant: " << options.max_queued_per_tenant << "\n";
    }
    if (options.max_queued != 0) yaml << "  max_queued: " << options.max_queued << "\n";
    if (options.first_lockout_ms != 0) {
      yaml << "  first_lockout_ms: " << options.first_lockout_ms << "\n";
    }
    if (!options.log_level.empty()) yaml << "log:\n  level: " << options.log_level << "\n";
    return yaml.str();
  }

  // Writes `yaml` to NAME.yaml in the host's dir and returns its path.
  std::string WriteConfig(const std::string& name, const std::string& yaml) const {
    const std::string path = dir_ / (name + ".yaml");
    std::ofstream(path) << yaml;
    return path;
  }

  std::unique_ptr<DaemonProcess> Start(const ConfigOptions& options) {
    const std::string name = "run" + std::to_string(++runs_);
    return DaemonProcess::StartWithConfig(WriteConfig(name, ConfigYaml(options)), socket_path(),
                                          dir_ / (name + ".log"), env());
  }

 private:
  TempDir dir_;
  SoftHsmToken token_;
  int runs_ = 0;
};

// True once a new client gets an answer from the daemon at `socket_path`,
// polling until `limit` passes. Polled from kmsctl child processes, so that
// whatever a client's nng leaks on a reset is not pinned on this process by
// LeakSanitizer.
inline bool ServedWithin(const std::string& socket_path, std::chrono::seconds limit) {
  return Eventually(
      [&] {
        return RunKmsctl(socket_path, {"--timeout", "1", "health"}).exit_code == 0;
      },
      limit);
}

}  // namespace kmsd::testing
