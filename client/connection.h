// Connection: one client connection to kmsd over its nng REQ/REP IPC socket.
//
// Call() sends one request and waits (bounded by the timeout) for its reply;
// a reply carrying an error comes back as that error's Status, transport
// failures as UNAVAILABLE. A request frame over `max_request_bytes` is not
// sent: it fails locally with FRAME_TOO_LARGE, as kmsd would refuse it (its
// transport closes a connection that sends a frame over its limit). kmsd
// closes connections it refuses (a user that may not use kmsd, too many
// connections from one uid, a frame over its limit) without a reply, and
// nng's REQ socket would quietly redial and resend until the timeout; so a
// call during which kmsd closed the connection three times ends at once with
// ACCESS_DENIED saying so. kmsd also closes idle connections: a call does not
// go out on a connection idle for 20 s or for three quarters of kmsd's idle
// timeout as last seen (how long a connection it closed between calls had
// been idle), but on a new one. A Reply owns the received bytes (wiped when it
// dies, as they may hold a plaintext or data key) and a Fields view into them.
// A Connection is not thread-safe: use one per thread. Not copyable, held by
// unique_ptr. The first Dial sets up OpenSSL's secure heap (1 MiB) if the
// process has none.
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

struct nng_aio;

namespace kmsd {
namespace internal {
struct CallWatch;  // connection.cc
}  // namespace internal

inline constexpr std::string_view kDefaultSocketPath = "/run/kmsd/kmsd.sock";
// kmsd's default limits.max_frame_bytes.
inline constexpr size_t kDefaultMaxRequestBytes = 1 << 20;
// Closes by kmsd during one call after which the call gives up.
inline constexpr int kPeerClosesBeforeDenied = 3;

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
  // `max_request_bytes`: the largest request frame Call/CallRaw will send
  // (match the daemon's limits.max_frame_bytes). `api_key`, when not empty,
  // goes with every request of this connection: the calls are its
  // principal's (kmsd's identify stage). It is kept in a SecretBuffer.
  static Result<std::unique_ptr<Connection>> Dial(
      const std::string& socket_path,
      std::chrono::milliseconds timeout = std::chrono::milliseconds(30000),
      size_t max_request_bytes = kDefaultMaxRequestBytes, SecretBuffer api_key = SecretBuffer());
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
  Connection(uint32_t socket_id, std::chrono::milliseconds timeout, size_t max_request_bytes);
  Result<SecretBuffer> RoundTrip(std::span<const uint8_t> frame);
  // Runs `start` (a send or receive on aio_) and waits for it: nng's result,
  // or kClosedByPeer once kmsd closed the connection too often in this call.
  int Await(void (*start)(uint32_t socket_id, nng_aio* aio));
  // What a reset connection means: ACCESS_DENIED when kmsd goes on closing
  // the redials, else UNAVAILABLE.
  Status ExplainReset(std::chrono::steady_clock::time_point call_deadline);

  // ACCESS_DENIED for a peer kmsd keeps closing.
  Status Refused();
  // Before each call: a fresh dialer after a refusal or a long idle time.
  Status PrepareDialer();

  uint32_t socket_id_;
  uint32_t dialer_id_ = 0;
  bool refused_ = false;  // the last call was refused
  std::string url_;
  const std::chrono::milliseconds timeout_;
  const size_t max_request_bytes_;
  SecretBuffer api_key_;  // empty: none
  nng_aio* aio_ = nullptr;
  std::unique_ptr<internal::CallWatch> watch_;
  uint64_t next_id_ = 1;
};

}  // namespace kmsd
