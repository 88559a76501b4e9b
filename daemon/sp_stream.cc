#include "daemon/sp_stream.h"

#include <algorithm>
#include <array>
#include <chrono>

#include "protocol/secret_buffer.h"

namespace kmsd {
namespace {

constexpr uint8_t kMessageType = 0x01;
constexpr size_t kFrameHeadBytes = 9;  // the type, then the length

using Clock = std::chrono::steady_clock;

// Moves all of `buffers` through the stream (a stream's send or receive may
// move only part) within `timeout` in all, then says whether it could.
bool Transfer(nng_stream* stream, nng_aio* aio, std::span<nng_iov> buffers, bool send,
              nng_duration timeout) {
  const bool bounded = timeout != NNG_DURATION_INFINITE;
  const auto deadline = Clock::now() + std::chrono::milliseconds(bounded ? timeout : 0);
  size_t first = 0;
  while (first < buffers.size()) {
    if (bounded) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      nng_aio_set_timeout(aio, static_cast<nng_duration>(left));
    } else {
      nng_aio_set_timeout(aio, NNG_DURATION_INFINITE);
    }
    if (nng_aio_set_iov(aio, static_cast<unsigned>(buffers.size() - first), &buffers[first]) != 0) {
      return false;
    }
    send ? nng_stream_send(stream, aio) : nng_stream_recv(stream, aio);
    nng_aio_wait(aio);
    if (nng_aio_result(aio) != 0) return false;
    size_t moved = nng_aio_count(aio);
    if (moved == 0) return false;
    while (first < buffers.size() && moved >= buffers[first].iov_len) {
      moved -= buffers[first].iov_len;
      ++first;
    }
    if (moved > 0) {
      buffers[first].iov_buf = static_cast<uint8_t*>(buffers[first].iov_buf) + moved;
      buffers[first].iov_len -= moved;
    }
  }
  return true;
}

bool Receive(nng_stream* stream, nng_aio* aio, void* data, size_t size) {
  nng_iov buffer{data, size};
  return Transfer(stream, aio, {&buffer, 1}, false, NNG_DURATION_INFINITE);
}

}  // namespace

bool SendSpHeader(nng_stream* stream, nng_aio* aio, nng_duration send_timeout) {
  SpHeader header = SpHeaderOf(kSpRepProtocol);
  nng_iov buffer{header.data(), header.size()};
  return Transfer(stream, aio, {&buffer, 1}, true, send_timeout);
}

std::optional<SpError> ReadSpHeader(nng_stream* stream, nng_aio* aio) {
  SpHeader header{};
  if (!Receive(stream, aio, header.data(), header.size())) return SpError::kClosed;
  if (header != SpHeaderOf(kSpReqProtocol)) return SpError::kProtocol;
  return std::nullopt;
}

void SpRequest::Wipe() {
  if (!frame_.empty()) WipeMemory(frame_.data(), frame_.size());
}

SpRequest& SpRequest::operator=(SpRequest&& other) noexcept {
  if (this != &other) {
    Wipe();
    frame_ = std::move(other.frame_);
    other.frame_.clear();
    backtrace_bytes_ = other.backtrace_bytes_;
  }
  return *this;
}

SpRequest SpRequestOf(std::vector<uint8_t> frame) {
  SpRequest request;
  request.frame_ = std::move(frame);
  return request;
}

std::optional<SpError> ParseSpFrame(SpRequest& request) {
  const std::vector<uint8_t>& frame = request.frame_;
  for (size_t hop = 0; hop < kMaxHops && (hop + 1) * 4 <= frame.size(); ++hop) {
    if (frame[hop * 4] & 0x80) {
      request.backtrace_bytes_ = (hop + 1) * 4;
      return std::nullopt;
    }
  }
  return SpError::kProtocol;
}

tl::expected<SpRequest, SpError> ReadSpRequest(nng_stream* stream, nng_aio* aio,
                                               size_t max_body_bytes) {
  std::array<uint8_t, kFrameHeadBytes> head{};
  if (!Receive(stream, aio, head.data(), head.size())) return tl::unexpected(SpError::kClosed);
  if (head[0] != kMessageType) return tl::unexpected(SpError::kProtocol);
  uint64_t length = 0;
  for (size_t i = 1; i < head.size(); ++i) length = length << 8 | head[i];
  // One hop, as a REQ peer connected to kmsd sends; a longer backtrace
  // counts against the body's room.
  if (length > max_body_bytes + kReqHeaderBytes) return tl::unexpected(SpError::kTooLarge);
  SpRequest request;
  request.frame_.resize(length);
  if (length > 0 && !Receive(stream, aio, request.frame_.data(), length)) {
    return tl::unexpected(SpError::kClosed);
  }
  if (std::optional<SpError> error = ParseSpFrame(request)) return tl::unexpected(*error);
  return request;
}

bool SendSpReply(nng_stream* stream, nng_aio* aio, std::span<const uint8_t> backtrace,
                 std::span<const uint8_t> body, nng_duration send_timeout) {
  std::array<uint8_t, kFrameHeadBytes + kMaxHops * 4> head{};
  const size_t head_bytes = kFrameHeadBytes + std::min(backtrace.size(), kMaxHops * 4);
  const uint64_t length = head_bytes - kFrameHeadBytes + body.size();
  head[0] = kMessageType;
  for (size_t i = 0; i < 8; ++i) head[1 + i] = static_cast<uint8_t>(length >> (56 - 8 * i));
  std::copy_n(backtrace.begin(), head_bytes - kFrameHeadBytes, head.begin() + kFrameHeadBytes);
  std::array<nng_iov, 2> buffers = {nng_iov{head.data(), head_bytes},
                                    nng_iov{const_cast<uint8_t*>(body.data()), body.size()}};
  return Transfer(stream, aio, std::span(buffers).first(body.empty() ? 1 : 2), true, send_timeout);
}

}  // namespace kmsd
