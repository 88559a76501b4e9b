#include "protocol/frame_scan.h"

#include <iterator>
#include <msgpack.hpp>
#include <string>

namespace kmsd {
namespace {

// Tracks depth, the value budget and the top-level map's envelope fields.
// Returning false stops the parser; `error` then says why.
class ScanVisitor : public msgpack::null_visitor {
 public:
  ScanVisitor(size_t frame_bytes, ScanLimits limits) : frame_bytes_(frame_bytes), limits_(limits) {}

  bool visit_nil() { return Scalar(); }
  bool visit_boolean(bool) { return Scalar(); }
  bool visit_positive_integer(uint64_t v) {
    if (InRootValue() && key_ == "id") result_.id = v;
    return Scalar();
  }
  bool visit_negative_integer(int64_t) { return Scalar(); }
  bool visit_float32(float) { return Scalar(); }
  bool visit_float64(double) { return Scalar(); }
  bool visit_str(const char* data, uint32_t size) {
    const std::string_view text(data, size);
    if (in_root_key_ && depth_ == 1) return RootKey(text);
    if (InRootValue() && key_ == "op") result_.op = text;
    if (InRootValue() && key_ == "tenant") result_.tenant = text;
    if (InRootValue() && key_ == "api_key") result_.api_key = text;
    return Scalar();
  }
  bool visit_bin(const char* data, uint32_t size) {
    if (InRootValue() && key_ == "api_key") result_.api_key = std::string_view(data, size);
    return Scalar();
  }
  bool visit_ext(const char*, uint32_t) { return Fail("frame is not valid msgpack: ext values"); }

  bool start_array(uint32_t count) { return Container(count, count); }
  bool end_array() { return Leave(); }
  bool start_map(uint32_t pairs) {
    if (depth_ == 0) result_.top_level_is_map = true;
    return Container(pairs, uint64_t{pairs} * 2);
  }
  bool start_map_key() {
    in_root_key_ = depth_ == 1;
    return true;
  }
  bool end_map_key() {
    in_root_key_ = false;
    return true;
  }
  bool start_map_value() {
    in_root_value_ = depth_ == 1;
    return true;
  }
  bool end_map_value() {
    if (depth_ == 1) {
      in_root_value_ = false;
      key_ = {};
    }
    return true;
  }
  bool end_map() { return Leave(); }

  const ScannedRequest& result() const { return result_; }
  const std::string& error() const { return error_; }

 private:
  bool InRootValue() const { return in_root_value_ && depth_ == 1; }
  bool Scalar() { return true; }
  bool Fail(std::string why) {
    error_ = std::move(why);
    return false;
  }

  bool RootKey(std::string_view key) {
    key_ = key;
    int bit = -1;
    for (int i = 0; i < static_cast<int>(std::size(kEnvelopeKeys)); ++i) {
      if (key == kEnvelopeKeys[i]) bit = i;
    }
    if (bit < 0) return true;
    if (seen_ & (1u << bit)) {
      return Fail("request repeats the key '" + std::string(key) + "'");
    }
    seen_ |= 1u << bit;
    return true;
  }

  // A container holding `count` entries, which are `values` values.
  bool Container(uint32_t count, uint64_t values) {
    if (depth_ == limits_.max_depth) {
      return Fail("frame is not valid msgpack: nested deeper than " +
                  std::to_string(limits_.max_depth) + " levels");
    }
    // Every value takes at least one byte.
    if (result_.values + values > frame_bytes_) {
      return Fail("frame is not valid msgpack: a container declares " + std::to_string(count) +
                  " entries, more than the frame's " + std::to_string(frame_bytes_) +
                  " bytes can hold");
    }
    if (result_.values + values > limits_.max_values) {
      return Fail("frame holds more than " + std::to_string(limits_.max_values) + " values");
    }
    result_.values += values;
    // A container as a top-level value is not an id, op or tenant.
    if (depth_ == 1) in_root_value_ = false;
    ++depth_;
    return true;
  }

  bool Leave() {
    --depth_;
    return true;
  }

  static constexpr std::string_view kEnvelopeKeys[] = {"id",      "op",   "tenant",
                                                       "version", "args", "api_key"};

  const size_t frame_bytes_;
  const ScanLimits limits_;
  ScannedRequest result_{.values = 1};  // the root
  std::string error_;
  size_t depth_ = 0;
  bool in_root_key_ = false;
  bool in_root_value_ = false;
  std::string_view key_;
  unsigned seen_ = 0;
};

}  // namespace

Result<ScannedRequest> ScanRequestFrame(std::span<const uint8_t> frame, ScanLimits limits) {
  if (frame.empty()) return Error(Code::kInvalidArgument, "request frame is empty");
  ScanVisitor visitor(frame.size(), limits);
  size_t offset = 0;
  msgpack::parse_return parsed;
  try {
    parsed = msgpack::detail::parse_imp(reinterpret_cast<const char*>(frame.data()), frame.size(),
                                        offset, visitor);
  } catch (const std::exception& e) {
    return Error(Code::kInvalidArgument, std::string("frame is not valid msgpack: ") + e.what());
  }
  switch (parsed) {
    case msgpack::PARSE_SUCCESS:
      return visitor.result();
    case msgpack::PARSE_EXTRA_BYTES:
      return Error(Code::kInvalidArgument, "frame has bytes after its msgpack value");
    case msgpack::PARSE_STOP_VISITOR:
      return Error(Code::kInvalidArgument, visitor.error());
    case msgpack::PARSE_CONTINUE:
      return Error(Code::kInvalidArgument, "frame is not valid msgpack: it ends inside a value");
    case msgpack::PARSE_PARSE_ERROR:
      return Error(Code::kInvalidArgument,
                   "frame is not valid msgpack: a byte no type starts with");
    default:
      return Error(Code::kInvalidArgument, "frame is not valid msgpack");
  }
}

}  // namespace kmsd
