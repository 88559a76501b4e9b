#include "protocol/message.h"

#include <algorithm>
#include <limits>
#include <msgpack.hpp>

namespace kmsd {
namespace {

using msgpack::type::object_type;

// Bounds for untrusted frames: deep nesting and huge declared counts are
// rejected by the unpacker before any allocation.
msgpack::unpack_limit FrameLimits() {
  return msgpack::unpack_limit(/*array=*/100000, /*map=*/4096, /*str=*/64 * 1024 * 1024,
                               /*bin=*/64 * 1024 * 1024, /*ext=*/0, /*depth=*/8);
}

std::string_view AsView(const msgpack::object& o) { return {o.via.str.ptr, o.via.str.size}; }

Status WrongType(std::string_view what, std::string_view key, std::string_view type) {
  return Status(Code::kInvalidArgument, std::string(what) + " field '" + std::string(key) +
                                            "' must be " + std::string(type));
}

Status Missing(std::string_view what, std::string_view key) {
  return Status(Code::kInvalidArgument,
                std::string(what) + " field '" + std::string(key) + "' is required");
}

}  // namespace

Result<Fields> Fields::Of(const msgpack::object& object, std::string_view what) {
  if (object.type != object_type::MAP) {
    return Error(Code::kInvalidArgument, std::string(what) + " must be a map");
  }
  Fields fields;
  fields.entries_ = object.via.map.ptr;
  fields.size_ = object.via.map.size;
  fields.what_ = what;
  for (uint32_t i = 0; i < fields.size_; ++i) {
    if (fields.entries_[i].key.type != object_type::STR) {
      return Error(Code::kInvalidArgument, std::string(what) + " has a key that is not a string");
    }
    for (uint32_t j = 0; j < i; ++j) {
      if (AsView(fields.entries_[j].key) == AsView(fields.entries_[i].key)) {
        return Error(Code::kInvalidArgument, std::string(what) + " repeats the key '" +
                                                 std::string(AsView(fields.entries_[i].key)) + "'");
      }
    }
  }
  return fields;
}

const msgpack::object* Fields::Find(std::string_view key) const {
  for (uint32_t i = 0; i < size_; ++i) {
    if (AsView(entries_[i].key) == key) return &entries_[i].val;
  }
  return nullptr;
}

bool Fields::HasValue(std::string_view key) const {
  const msgpack::object* o = Find(key);
  return o != nullptr && o->type != object_type::NIL;
}

Status Fields::OnlyKnown(std::initializer_list<std::string_view> known) const {
  return OnlyKnown(std::span<const std::string_view>(known.begin(), known.size()));
}

Status Fields::OnlyKnown(std::span<const std::string_view> known) const {
  for (uint32_t i = 0; i < size_; ++i) {
    const std::string_view key = AsView(entries_[i].key);
    bool found = false;
    for (auto k : known) found = found || k == key;
    if (!found) {
      std::string shown(key.substr(0, 64));
      return Status(Code::kInvalidArgument,
                    std::string(what_) + " has an unknown field '" + shown + "'");
    }
  }
  return OkStatus();
}

Result<std::string_view> Fields::String(std::string_view key) const {
  const msgpack::object* o = Find(key);
  if (o == nullptr) return Error(Missing(what_, key));
  if (o->type != object_type::STR) return Error(WrongType(what_, key, "a string"));
  return AsView(*o);
}

Result<std::optional<std::string_view>> Fields::OptionalString(std::string_view key) const {
  const msgpack::object* o = Find(key);
  if (o == nullptr || o->type == object_type::NIL) return std::optional<std::string_view>();
  if (o->type != object_type::STR) return Error(WrongType(what_, key, "a string"));
  return std::optional<std::string_view>(AsView(*o));
}

Result<std::span<const uint8_t>> Fields::Binary(std::string_view key) const {
  const msgpack::object* o = Find(key);
  if (o == nullptr) return Error(Missing(what_, key));
  if (o->type != object_type::BIN) return Error(WrongType(what_, key, "binary"));
  return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(o->via.bin.ptr),
                                  o->via.bin.size);
}

Result<uint64_t> Fields::Uint(std::string_view key) const {
  const msgpack::object* o = Find(key);
  if (o == nullptr) return Error(Missing(what_, key));
  if (o->type != object_type::POSITIVE_INTEGER) {
    return Error(WrongType(what_, key, "a non-negative integer"));
  }
  return o->via.u64;
}

Result<std::optional<uint64_t>> Fields::OptionalUint(std::string_view key) const {
  const msgpack::object* o = Find(key);
  if (o == nullptr || o->type == object_type::NIL) return std::optional<uint64_t>();
  if (o->type != object_type::POSITIVE_INTEGER) {
    return Error(WrongType(what_, key, "a non-negative integer"));
  }
  return std::optional<uint64_t>(o->via.u64);
}

Result<bool> Fields::OptionalBool(std::string_view key, bool default_value) const {
  const msgpack::object* o = Find(key);
  if (o == nullptr || o->type == object_type::NIL) return default_value;
  if (o->type != object_type::BOOLEAN) return Error(WrongType(what_, key, "a boolean"));
  return o->via.boolean;
}

Result<bool> Fields::Bool(std::string_view key) const {
  const msgpack::object* o = Find(key);
  if (o == nullptr) return Error(Missing(what_, key));
  if (o->type != object_type::BOOLEAN) return Error(WrongType(what_, key, "a boolean"));
  return o->via.boolean;
}

Result<int64_t> Fields::Int(std::string_view key) const {
  const msgpack::object* o = Find(key);
  if (o == nullptr) return Error(Missing(what_, key));
  if (o->type == object_type::NEGATIVE_INTEGER) return o->via.i64;
  if (o->type == object_type::POSITIVE_INTEGER &&
      o->via.u64 <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return static_cast<int64_t>(o->via.u64);
  }
  return Error(WrongType(what_, key, "an integer"));
}

Result<EncryptionContext> Fields::Context(std::string_view key) const {
  EncryptionContext context;
  const msgpack::object* o = Find(key);
  if (o == nullptr || o->type == object_type::NIL) return context;
  if (o->type != object_type::MAP) return Error(WrongType(what_, key, "a map of strings"));
  for (uint32_t i = 0; i < o->via.map.size; ++i) {
    const auto& kv = o->via.map.ptr[i];
    if (kv.key.type != object_type::STR || kv.val.type != object_type::STR) {
      return Error(WrongType(what_, key, "a map of strings"));
    }
    if (AsView(kv.key).starts_with(kReservedContextPrefix)) {
      return Error(Code::kInvalidArgument, "encryption context keys starting with '" +
                                               std::string(kReservedContextPrefix) +
                                               "' are kmsd's own");
    }
    if (!context.emplace(std::string(AsView(kv.key)), std::string(AsView(kv.val))).second) {
      return Error(Code::kInvalidArgument, "encryption context repeats a key");
    }
  }
  RETURN_IF_ERROR(ValidateEncryptionContext(context));
  return context;
}

Result<std::span<const msgpack::object>> Fields::Array(std::string_view key) const {
  const msgpack::object* o = Find(key);
  if (o == nullptr) return Error(Missing(what_, key));
  if (o->type != object_type::ARRAY) return Error(WrongType(what_, key, "an array"));
  return std::span<const msgpack::object>(o->via.array.ptr, o->via.array.size);
}

Result<Fields> Fields::Map(std::string_view key) const {
  const msgpack::object* o = Find(key);
  if (o == nullptr) return Error(Missing(what_, key));
  if (o->type != object_type::MAP) return Error(WrongType(what_, key, "a map"));
  return Fields::Of(*o, key);
}

void Fields::ForEach(
    const std::function<void(std::string_view key, const msgpack::object& value)>& visit) const {
  for (uint32_t i = 0; i < size_; ++i) visit(AsView(entries_[i].key), entries_[i].val);
}

struct Frame::State {
  msgpack::object_handle handle;
};

Frame::Frame() : state_(new State) {}
Frame::Frame(Frame&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
Frame& Frame::operator=(Frame&& other) noexcept {
  if (this != &other) {
    delete state_;
    state_ = std::exchange(other.state_, nullptr);
  }
  return *this;
}
Frame::~Frame() { delete state_; }
const msgpack::object& Frame::root() const { return state_->handle.get(); }

Result<Frame> Frame::Decode(std::span<const uint8_t> bytes) {
  if (bytes.empty()) return Error(Code::kInvalidArgument, "request frame is empty");
  Frame frame;
  size_t offset = 0;
  // Reference strings and binaries in place: no copy of a plaintext.
  auto reference_all = [](msgpack::type::object_type, size_t, void*) { return true; };
  try {
    msgpack::unpack(frame.state_->handle, reinterpret_cast<const char*>(bytes.data()), bytes.size(),
                    offset, reference_all, nullptr, FrameLimits());
  } catch (const std::exception& e) {
    return Error(Code::kInvalidArgument, std::string("frame is not valid msgpack: ") + e.what());
  }
  if (offset != bytes.size()) {
    return Error(Code::kInvalidArgument, "frame has bytes after its msgpack value");
  }
  return frame;
}

Result<RequestEnvelope> ParseRequest(const msgpack::object& root, std::optional<uint64_t>* id_out) {
  ASSIGN_OR_RETURN(Fields envelope, Fields::Of(root, "request"));
  RequestEnvelope request;
  ASSIGN_OR_RETURN(request.id, envelope.Uint("id"));
  *id_out = request.id;
  RETURN_IF_ERROR(envelope.OnlyKnown({"version", "id", "op", "tenant", "args", "api_key"}));
  ASSIGN_OR_RETURN(uint64_t version, envelope.Uint("version"));
  if (version != kProtocolVersion) {
    return Error(Code::kUnsupportedVersion, "protocol version " + std::to_string(version) +
                                                " is not supported; this daemon speaks 1");
  }
  ASSIGN_OR_RETURN(request.op, envelope.String("op"));
  ASSIGN_OR_RETURN(auto tenant, envelope.OptionalString("tenant"));
  request.tenant = tenant.value_or("");
  if (envelope.Has("args")) {
    ASSIGN_OR_RETURN(request.args, envelope.Map("args"));
  }
  // A str, or a bin (kmsd's clients send a bin: they keep secrets in
  // SecretBuffers, which encode as bin).
  if (envelope.HasValue("api_key")) {
    if (auto text = envelope.String("api_key"); text.has_value()) {
      request.api_key = *text;
    } else {
      ASSIGN_OR_RETURN(auto bytes, envelope.Binary("api_key"));
      request.api_key = std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    }
  }
  return request;
}

Value BuildRequest(uint64_t id, std::string_view op, std::string_view tenant, Value::Map args,
                   std::optional<std::string_view> api_key) {
  Value::Map envelope;
  envelope.emplace_back("version", kProtocolVersion);
  envelope.emplace_back("id", id);
  envelope.emplace_back("op", op);
  if (!tenant.empty()) envelope.emplace_back("tenant", tenant);
  envelope.emplace_back("args", std::move(args));
  if (api_key) {
    envelope.emplace_back("api_key",
                          SecretBuffer::CopyOf(std::span<const uint8_t>(
                              reinterpret_cast<const uint8_t*>(api_key->data()), api_key->size())));
  }
  return Value(std::move(envelope));
}

WipingBuffer EncodeOkReply(uint64_t id, Value::Map result) {
  Value::Map reply;
  reply.emplace_back("version", kProtocolVersion);
  reply.emplace_back("id", id);
  reply.emplace_back("ok", true);
  reply.emplace_back("result", std::move(result));
  return EncodeValue(Value(std::move(reply)));
}

Value::Map EncodeError(const Status& status) {
  Value::Map error;
  error.emplace_back("code", CodeName(status.code()));
  error.emplace_back("message", status.message());
  error.emplace_back("class", ErrorClassName(status.error_class()));
  if (status.retry_after_ms()) error.emplace_back("retry_after_ms", *status.retry_after_ms());
  return error;
}

Status DecodeError(const Fields& error, Status* carried) {
  ASSIGN_OR_RETURN(std::string_view code, error.String("code"));
  ASSIGN_OR_RETURN(std::string_view message, error.String("message"));
  ASSIGN_OR_RETURN(std::optional<uint64_t> retry_after, error.OptionalUint("retry_after_ms"));
  Status status(CodeFromName(code), std::string(message));
  if (status.ok()) status = Status(Code::kInternal, "error reply with code OK");
  // The class is derived from the code on both sides; "class" is for readers
  // that do not know the code.
  if (retry_after) {
    constexpr uint64_t kMax = std::numeric_limits<uint32_t>::max();
    status = std::move(status).WithRetryAfter(
        static_cast<uint32_t>(std::min<uint64_t>(*retry_after, kMax)));
  }
  *carried = std::move(status);
  return OkStatus();
}

WipingBuffer EncodeErrorReply(std::optional<uint64_t> id, const Status& status) {
  Value::Map error = EncodeError(status);
  Value::Map reply;
  reply.emplace_back("version", kProtocolVersion);
  reply.emplace_back("id", id ? Value(*id) : Value());
  reply.emplace_back("ok", false);
  reply.emplace_back("error", std::move(error));
  return EncodeValue(Value(std::move(reply)));
}

Result<ReplyEnvelope> ParseReply(const msgpack::object& root) {
  ASSIGN_OR_RETURN(Fields envelope, Fields::Of(root, "reply"));
  ReplyEnvelope reply;
  ASSIGN_OR_RETURN(reply.id, envelope.OptionalUint("id"));
  ASSIGN_OR_RETURN(bool ok, envelope.OptionalBool("ok", false));
  if (ok) {
    ASSIGN_OR_RETURN(reply.result, envelope.Map("result"));
    return reply;
  }
  ASSIGN_OR_RETURN(Fields error, envelope.Map("error"));
  RETURN_IF_ERROR(DecodeError(error, &reply.status));
  return reply;
}

}  // namespace kmsd
