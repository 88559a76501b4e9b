// SpStream: kmsd's end of nng's scalability protocol (REP v0, answering REQ
// v0 peers) over one nng IPC byte stream (nng_stream). nng does the I/O and
// the socket (accept, permissions, the peer's credentials); the protocol's
// few bytes are written here, so that a request takes one wake-up from the
// stream to the thread that serves it instead of a hop through each of nng's
// protocol layers (an echo server measured 120 us per round trip this way
// against 180 through nng's REP; kmsd_bench's figures are in README).
//
// The wire (nng's IPC transport, as the client library's nng speaks it):
//  - each side sends 8 bytes first: 0x00 'S' 'P' 0x00, its protocol id
//    (big-endian: REQ 0x0030, REP 0x0031), 0x0000;
//  - then each message is 0x01, its length (8 bytes, big-endian), and that
//    many bytes: a REQ request starts with its backtrace (4-byte words, the
//    last, the request id, with its top bit set), then the body. A reply
//    starts with the same backtrace.
//
// Every call waits on the caller's own aio (no callback: the stream's
// poller wakes the caller directly). A send gives up when all of it is not
// out within `send_timeout`; a receive waits for good (the caller ends it
// with nng_aio_stop, after which no receive on that aio starts).
// A frame over `max_body_bytes` (plus one hop's backtrace), of another type,
// or without a request id is an error: the caller drops the connection
// without reading the rest, so nothing larger is ever allocated.
#pragma once

#include <nng/nng.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "protocol/status.h"

namespace kmsd {

// The REQ header of one hop: the request id.
constexpr size_t kReqHeaderBytes = 4;
// Hops nng's REP accepts in a backtrace (devices between REQ and REP).
constexpr size_t kMaxHops = 8;

// The protocols' ids, and the 8 bytes each side sends first.
constexpr uint16_t kSpReqProtocol = 0x0030;
constexpr uint16_t kSpRepProtocol = 0x0031;
using SpHeader = std::array<uint8_t, 8>;
constexpr SpHeader SpHeaderOf(uint16_t protocol) {
  return {0x00,
          'S',
          'P',
          0x00,
          static_cast<uint8_t>(protocol >> 8),
          static_cast<uint8_t>(protocol & 0xff),
          0x00,
          0x00};
}

enum class SpError {
  kClosed,    // the stream ended, was closed, or the wait was cancelled
  kProtocol,  // not an SP REQ peer, or a frame that breaks the rules above
  kTooLarge,  // a frame declared over the limit
};

// Sends kmsd's 8 header bytes. False when the stream ended.
bool SendSpHeader(nng_stream* stream, nng_aio* aio, nng_duration send_timeout);
// Reads the peer's 8 header bytes: kProtocol unless it says SP and REQ v0.
std::optional<SpError> ReadSpHeader(nng_stream* stream, nng_aio* aio);

// One request as received: its frame (the backtrace, then the body), in
// memory wiped when it goes (a request may hold a plaintext).
class SpRequest {
 public:
  SpRequest() = default;
  SpRequest(SpRequest&& other) noexcept
      : frame_(std::move(other.frame_)), backtrace_bytes_(other.backtrace_bytes_) {
    other.frame_.clear();
  }
  // The frame replaced is wiped first.
  SpRequest& operator=(SpRequest&& other) noexcept;
  ~SpRequest() { Wipe(); }
  std::span<const uint8_t> backtrace() const { return {frame_.data(), backtrace_bytes_}; }
  std::span<const uint8_t> body() const {
    return std::span<const uint8_t>(frame_).subspan(backtrace_bytes_);
  }
  size_t size() const { return frame_.size(); }

 private:
  friend std::optional<SpError> ParseSpFrame(SpRequest& request);
  friend SpRequest SpRequestOf(std::vector<uint8_t> frame);
  friend tl::expected<SpRequest, SpError> ReadSpRequest(nng_stream*, nng_aio*, size_t);
  void Wipe();
  std::vector<uint8_t> frame_;
  size_t backtrace_bytes_ = 0;
};

// Finds the backtrace in a request's frame: kProtocol when no word within
// kMaxHops has its top bit set. (ReadSpRequest calls it; tests too.)
std::optional<SpError> ParseSpFrame(SpRequest& request);
// A request made of `frame` as it came off the wire (for tests).
SpRequest SpRequestOf(std::vector<uint8_t> frame);

// The next request on the stream. The wait for its first byte is the one a
// cancel is meant for; a peer that stops half way is left to the caller's
// idle timeout.
tl::expected<SpRequest, SpError> ReadSpRequest(nng_stream* stream, nng_aio* aio,
                                               size_t max_body_bytes);

// Sends `body` as the reply to the request with `backtrace`. False when it
// could not all be written (the stream is then unusable: part of a frame
// may be out).
bool SendSpReply(nng_stream* stream, nng_aio* aio, std::span<const uint8_t> backtrace,
                 std::span<const uint8_t> body, nng_duration send_timeout);

}  // namespace kmsd
