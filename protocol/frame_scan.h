// ScanRequestFrame: a first pass over an untrusted request frame that
// allocates nothing per value and builds no objects.
//
// It walks the msgpack bytes with msgpack-c's visitor parser and refuses,
// before anything large is allocated: nesting deeper than `max_depth`
// containers; more than `max_values` values in all (every scalar, array, map,
// key and value counts one), judged from the counts containers declare, so a
// huge declared count is refused at its header; a declared count that the
// bytes left could not hold; ext values; truncated or trailing bytes. It also
// returns the top-level map's `id`, `op`, `tenant` and `api_key` when they
// have the right types, so that the caller can be identified and authorized
// before the full decode (Frame::Decode) and the envelope checks
// (ParseRequest). A top-level `id`, `op`, `tenant`, `version`, `args` or
// `api_key` given twice is refused here.
//
// Errors are INVALID_ARGUMENT, with messages matching Frame::Decode's
// ("frame is not valid msgpack: ...", "frame has bytes after its msgpack
// value", "request frame is empty"). Pure function; thread-safe. The views in
// the result point into `frame`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "protocol/status.h"

namespace kmsd {

struct ScanLimits {
  size_t max_depth = 8;
  size_t max_values = 65536;
};

struct ScannedRequest {
  std::optional<uint64_t> id = {};
  std::optional<std::string_view> op = {};
  std::optional<std::string_view> tenant = {};
  std::optional<std::string_view> api_key = {};
  bool top_level_is_map = false;
  size_t values = 0;  // values the frame declares in all
};

Result<ScannedRequest> ScanRequestFrame(std::span<const uint8_t> frame, ScanLimits limits = {});

}  // namespace kmsd
