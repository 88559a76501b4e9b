// Connection: one client connection to kmsd over its nng REQ/REP IPC socket.
//
// Call() sends one request and waits (bounded by the timeout) for its reply;
// a reply carrying an error comes back as that error's Status, transport
// failures as UNAVAILABLE. A Reply owns the received bytes (wiped when it
// dies, as they may hold a plaintext or data key) and a Fields view into them.
// A Connection is not thread-safe: use one per thread. Move-only. The first
// Dial sets up OpenSSL's secure heap (1 MiB) if the process has none.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "protocol/message.h"
#include "protocol/secret_buffer.h"
#include "protocol/status.h"
#include "protocol/value.h"

namespace kmsd {

inline constexpr std::string_view kDefaultSocketPath = "/run/kmsd/kmsd.sock";

// --socket value if given, else $KMSD_SOCKET, else kDefaultSocketPath.
std::string ResolveSocketPath(std::string_view flag_value);

class Reply {
 public:
  Reply(Reply&&) noexcept = default;
  Reply& operator=(Reply&&) noexcept = default;
  uint64_t id() const { return id_; }
  const Fields& result() const { return result_; }
  // The whole reply frame, for tests that look at the raw encoding.
  std::span<const uint8_t> raw() const { return bytes_.RevealSpan(); }

 private:
  friend class Connection;
  Reply(SecretBuffer bytes, Frame frame) : bytes_(std::move(bytes)), frame_(std::move(frame)) {}
  SecretBuffer bytes_;
  Frame frame_;
  Fields result_;
  uint64_t id_ = 0;
};

class Connection {
 public:
  static Result<std::unique_ptr<Connection>> Dial(
      const std::string& socket_path,
      std::chrono::milliseconds timeout = std::chrono::milliseconds(30000));
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  Result<Reply> Call(std::string_view op, std::string_view tenant = {}, Value::Map args = {});

  // Sends `frame` as is and returns the decoded reply envelope, error replies
  // included, as a Reply whose result() is empty and `status` set. For tests
  // of malformed input.
  struct RawReply {
    std::optional<uint64_t> id;
    Status status;
  };
  Result<RawReply> CallRaw(std::span<const uint8_t> frame);

 private:
  explicit Connection(uint32_t socket_id) : socket_id_(socket_id) {}
  Result<SecretBuffer> RoundTrip(std::span<const uint8_t> frame);
  uint32_t socket_id_;
  uint64_t next_id_ = 1;
};

}  // namespace kmsd
