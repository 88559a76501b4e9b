// Protocol v1 envelopes (docs/PROTOCOL.md is the reference).
//
// Request:  {"version": 1, "id": uint, "op": str, "tenant": str?, "args": map?,
//            "api_key": str|bin?}
// Reply ok: {"version": 1, "id": uint, "ok": true, "result": map}
// Reply err:{"version": 1, "id": uint|nil, "ok": false,
//            "error": {"code": str, "message": str, "class": str,
//                      "retry_after_ms": uint?}}
//
// Frames are decoded without copying: strings and binaries in a Frame's
// objects point into the caller's bytes, which must outlive the Frame. Fields
// is a bounds-checked view of one msgpack map; every accessor returns
// INVALID_ARGUMENT naming the field when it is missing or of the wrong type.
// All types here are cheap views; thread-compatible.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <msgpack.hpp>
#include <optional>
#include <span>
#include <string_view>

#include "protocol/ciphertext.h"
#include "protocol/status.h"
#include "protocol/value.h"

namespace kmsd {

inline constexpr uint64_t kProtocolVersion = 1;

class Fields {
 public:
  Fields() = default;
  // INVALID_ARGUMENT unless `object` is a map with string keys, each once.
  static Result<Fields> Of(const msgpack::object& object, std::string_view what);

  bool Has(std::string_view key) const { return Find(key) != nullptr; }
  // Present and not nil.
  bool HasValue(std::string_view key) const;
  // INVALID_ARGUMENT naming the first key not in `known`.
  Status OnlyKnown(std::initializer_list<std::string_view> known) const;
  Status OnlyKnown(std::span<const std::string_view> known) const;

  Result<std::string_view> String(std::string_view key) const;
  Result<std::optional<std::string_view>> OptionalString(std::string_view key) const;
  Result<std::span<const uint8_t>> Binary(std::string_view key) const;
  Result<uint64_t> Uint(std::string_view key) const;
  Result<std::optional<uint64_t>> OptionalUint(std::string_view key) const;
  Result<bool> OptionalBool(std::string_view key, bool default_value) const;
  Result<bool> Bool(std::string_view key) const;
  // Any integer that fits an int64_t.
  Result<int64_t> Int(std::string_view key) const;
  // A map of strings to strings; absent means empty.
  Result<EncryptionContext> Context(std::string_view key) const;
  Result<std::span<const msgpack::object>> Array(std::string_view key) const;
  // The nested map's error messages name it `key`, which must outlive it.
  Result<Fields> Map(std::string_view key) const;
  // Calls `visit` on every entry in wire order, for generic consumers (kmsctl's
  // --json output). The object is a view into the frame, valid as long as it.
  void ForEach(
      const std::function<void(std::string_view key, const msgpack::object& value)>& visit) const;

 private:
  const msgpack::object* Find(std::string_view key) const;
  const msgpack::object_kv* entries_ = nullptr;
  uint32_t size_ = 0;
  std::string_view what_;
};

// Owns the parse state of one frame. Move-only.
class Frame {
 public:
  // INVALID_ARGUMENT if `bytes` is not exactly one msgpack value within the
  // nesting and size limits.
  static Result<Frame> Decode(std::span<const uint8_t> bytes);
  Frame(Frame&&) noexcept;
  Frame& operator=(Frame&&) noexcept;
  ~Frame();
  const msgpack::object& root() const;

 private:
  Frame();
  struct State;
  State* state_;
};

struct RequestEnvelope {
  uint64_t id = 0;
  std::string_view op;
  std::string_view tenant;  // empty when absent
  Fields args;
  std::optional<std::string_view> api_key;  // a secret: never log it
};

// `id_out` receives the request id as soon as it is readable, so that an
// error reply can echo it even when a later field is bad.
Result<RequestEnvelope> ParseRequest(const msgpack::object& root, std::optional<uint64_t>* id_out);
// `api_key`, when given, is copied into the request as a secret (the
// encoded frame is a WipingBuffer).
Value BuildRequest(uint64_t id, std::string_view op, std::string_view tenant, Value::Map args,
                   std::optional<std::string_view> api_key = std::nullopt);

WipingBuffer EncodeOkReply(uint64_t id, Value::Map result);
// The `error` map of a reply or of a failed batch item, and back: DecodeError
// stores the error the map carries in `carried` and returns OK, or returns
// INVALID_ARGUMENT when the map is malformed.
Value::Map EncodeError(const Status& status);
Status DecodeError(const Fields& error, Status* carried);
WipingBuffer EncodeErrorReply(std::optional<uint64_t> id, const Status& status);

struct ReplyEnvelope {
  std::optional<uint64_t> id;
  Status status;  // the error carried by the reply, OK otherwise
  Fields result;  // empty on error
};
Result<ReplyEnvelope> ParseReply(const msgpack::object& root);

}  // namespace kmsd
