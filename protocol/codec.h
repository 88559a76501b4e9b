// Codec: one description of a message's fields, read by both directions.
//
// A request or reply type lists its fields once, in wire order:
//
//   struct EncryptRequest {
//     std::string_view key;
//     std::span<const uint8_t> plaintext;
//     EncryptionContext context;
//     static constexpr auto kFields = std::tuple{
//         Field{"key", &EncryptRequest::key}, ...};
//   };
//
// Decode<T>(fields) reads such a type from a msgpack map (views into the frame
// stay views: string_view and span members point into it, which must outlive
// the T); Encode(T&&) builds the map to send, moving owned members (a
// SecretBuffer stays a SecretBuffer; a span is copied into one, as it may be a
// plaintext). Requests are decoded strictly (an unknown field is
// INVALID_ARGUMENT, as PROTOCOL.md promises); replies leniently, so that an
// older client reads a newer daemon's replies.
//
// Member types and their wire form: string_view / std::string (str),
// span<const uint8_t> / Bytes / SecretBuffer (bin), uint64_t / uint32_t
// (uint), int64_t (int), bool, EncryptionContext (map of str; absent or nil
// means empty, empty is not sent), std::optional<X> (absent or nil means
// nullopt, nullopt is not sent), std::vector<std::string>,
// std::vector<uint64_t>, std::vector<T> and
// nested T for types with kFields, BatchItems<T> (an array whose items are
// decoded one by one, so that one bad item fails alone) and ItemResults<T>
// (per-item results: {"ok": true, ...T} or {"ok": false, "error": ...}).
// Stateless; thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "protocol/ciphertext.h"
#include "protocol/message.h"
#include "protocol/secret_buffer.h"
#include "protocol/status.h"
#include "protocol/value.h"

namespace kmsd {

// An encryption context as a msgpack map of strings.
Value::Map ContextValue(const EncryptionContext& context);

template <typename T, typename M>
struct Field {
  std::string_view name;
  M T::*member;
};
// Spelled out for compilers without deduction for aggregates (clang before
// 17, which builds the fuzz targets: tests/fuzz).
template <typename T, typename M>
Field(std::string_view, M T::*) -> Field<T, M>;

// The `items` of a batch request: decoded, `raw` holds the array's objects
// (each decoded with Item(i)); to encode, fill `items`.
template <typename T>
struct BatchItems {
  std::span<const msgpack::object> raw;
  std::vector<T> items;
  size_t size() const { return raw.empty() ? items.size() : raw.size(); }
};

template <typename T>
using ItemResults = std::vector<Result<T>>;

// A message without fields.
struct NoFields {
  static constexpr auto kFields = std::tuple{};
};

enum class Strictness { kStrict, kLenient };

template <typename T>
concept Described = requires {
  T::kFields;
};

template <Described T>
Result<T> Decode(const Fields& fields, Strictness strictness = Strictness::kStrict);
template <typename T>
requires Described<std::remove_cvref_t<T>> Value::Map Encode(T&& message);

namespace codec_internal {

template <typename M>
struct IsOptional : std::false_type {};
template <typename M>
struct IsOptional<std::optional<M>> : std::true_type {};
template <typename M>
struct IsVector : std::false_type {};
template <typename M>
struct IsVector<std::vector<M>> : std::true_type {};
template <typename M>
struct IsBatch : std::false_type {};
template <typename M>
struct IsBatch<BatchItems<M>> : std::true_type {};
template <typename M>
struct IsResults : std::false_type {};
template <typename M>
struct IsResults<ItemResults<M>> : std::true_type {};

// The element of a map or array being read, for messages: "args" for a
// nested map is named by its key.
Status WrongElement(std::string_view name, std::string_view what);
Result<std::string_view> StringElement(const msgpack::object& object, std::string_view name);
Result<uint64_t> UintElement(const msgpack::object& object, std::string_view name);
Result<Fields> MapElement(const msgpack::object& object, std::string_view name);

template <typename M>
Status DecodeMember(const Fields& fields, std::string_view name, M* out, Strictness strictness);

template <typename M>
Status DecodeVector(std::span<const msgpack::object> array, std::string_view name,
                    std::vector<M>* out, Strictness strictness) {
  out->reserve(array.size());
  for (const auto& element : array) {
    if constexpr (std::is_same_v<M, std::string>) {
      ASSIGN_OR_RETURN(std::string_view text, StringElement(element, name));
      out->emplace_back(text);
    } else if constexpr (std::is_same_v<M, uint64_t>) {
      ASSIGN_OR_RETURN(uint64_t number, UintElement(element, name));
      out->push_back(number);
    } else {
      ASSIGN_OR_RETURN(Fields nested, MapElement(element, name));
      ASSIGN_OR_RETURN(M value, Decode<M>(nested, strictness));
      out->push_back(std::move(value));
    }
  }
  return OkStatus();
}

template <typename M>
Status DecodeResults(std::span<const msgpack::object> array, std::string_view name,
                     ItemResults<M>* out) {
  out->reserve(array.size());
  for (const auto& element : array) {
    ASSIGN_OR_RETURN(Fields item, MapElement(element, name));
    ASSIGN_OR_RETURN(bool ok, item.Bool("ok"));
    if (ok) {
      ASSIGN_OR_RETURN(M value, Decode<M>(item, Strictness::kLenient));
      out->emplace_back(std::move(value));
    } else {
      ASSIGN_OR_RETURN(Fields error, item.Map("error"));
      Status carried;
      RETURN_IF_ERROR(DecodeError(error, &carried));
      out->emplace_back(Error(std::move(carried)));
    }
  }
  return OkStatus();
}

template <typename M>
Status DecodeMember(const Fields& fields, std::string_view name, M* out, Strictness strictness) {
  if constexpr (IsOptional<M>::value) {
    if (!fields.HasValue(name)) return OkStatus();
    typename M::value_type value{};
    RETURN_IF_ERROR(DecodeMember(fields, name, &value, strictness));
    *out = std::move(value);
  } else if constexpr (std::is_same_v<M, std::string_view>) {
    ASSIGN_OR_RETURN(*out, fields.String(name));
  } else if constexpr (std::is_same_v<M, std::string>) {
    ASSIGN_OR_RETURN(std::string_view text, fields.String(name));
    *out = std::string(text);
  } else if constexpr (std::is_same_v<M, std::span<const uint8_t>>) {
    ASSIGN_OR_RETURN(*out, fields.Binary(name));
  } else if constexpr (std::is_same_v<M, Bytes>) {
    ASSIGN_OR_RETURN(std::span<const uint8_t> bytes, fields.Binary(name));
    *out = Bytes(bytes.begin(), bytes.end());
  } else if constexpr (std::is_same_v<M, SecretBuffer>) {
    ASSIGN_OR_RETURN(std::span<const uint8_t> bytes, fields.Binary(name));
    *out = SecretBuffer::CopyOf(bytes);
  } else if constexpr (std::is_same_v<M, bool>) {
    ASSIGN_OR_RETURN(*out, fields.Bool(name));
  } else if constexpr (std::is_same_v<M, uint64_t>) {
    ASSIGN_OR_RETURN(*out, fields.Uint(name));
  } else if constexpr (std::is_same_v<M, uint32_t>) {
    ASSIGN_OR_RETURN(uint64_t n, fields.Uint(name));
    if (n > std::numeric_limits<uint32_t>::max()) {
      return WrongElement(name, "at most 4294967295");
    }
    *out = static_cast<uint32_t>(n);
  } else if constexpr (std::is_same_v<M, int64_t>) {
    ASSIGN_OR_RETURN(*out, fields.Int(name));
  } else if constexpr (std::is_same_v<M, EncryptionContext>) {
    ASSIGN_OR_RETURN(*out, fields.Context(name));
  } else if constexpr (IsBatch<M>::value) {
    ASSIGN_OR_RETURN(out->raw, fields.Array(name));
  } else if constexpr (IsResults<M>::value) {
    ASSIGN_OR_RETURN(auto array, fields.Array(name));
    RETURN_IF_ERROR(DecodeResults(array, name, out));
  } else if constexpr (IsVector<M>::value) {
    ASSIGN_OR_RETURN(auto array, fields.Array(name));
    RETURN_IF_ERROR(DecodeVector(array, name, out, strictness));
  } else {
    static_assert(Described<M>, "no wire form for this member type");
    ASSIGN_OR_RETURN(Fields nested, fields.Map(name));
    ASSIGN_OR_RETURN(*out, Decode<M>(nested, strictness));
  }
  return OkStatus();
}

// GCC 12 at -O2 warns that moving a freshly made Value's variant reads it
// uninitialized (a false positive when an integer follows an optional).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

template <typename M>
void EncodeMember(Value::Map& out, std::string_view name, M&& value);

template <typename M>
Value EncodeElement(M&& value) {
  if constexpr (std::is_same_v<std::decay_t<M>, std::string> ||
                std::is_same_v<std::decay_t<M>, uint64_t>) {
    return Value(std::move(value));
  } else {
    return Value(Encode(std::move(value)));
  }
}

template <typename M>
Value EncodeResult(Result<M>&& result) {
  Value::Map entry;
  if (!result.has_value()) {
    entry.emplace_back("ok", false);
    entry.emplace_back("error", EncodeError(result.error()));
    return Value(std::move(entry));
  }
  entry.emplace_back("ok", true);
  for (auto& member : Encode(std::move(*result))) entry.push_back(std::move(member));
  return Value(std::move(entry));
}

template <typename M>
void EncodeMember(Value::Map& out, std::string_view name, M&& value) {
  using V = std::decay_t<M>;
  if constexpr (IsOptional<V>::value) {
    if (value) EncodeMember(out, name, std::move(*value));
  } else if constexpr (std::is_same_v<V, std::span<const uint8_t>>) {
    out.emplace_back(name, SecretBuffer::CopyOf(value));
  } else if constexpr (std::is_same_v<V, EncryptionContext>) {
    if (!value.empty()) out.emplace_back(name, ContextValue(value));
  } else if constexpr (std::is_same_v<V, Bytes>) {
    out.emplace_back(name, Value(std::move(value)));
  } else if constexpr (IsBatch<V>::value) {
    Value::Array array;
    for (auto& item : value.items) array.emplace_back(Encode(std::move(item)));
    out.emplace_back(name, std::move(array));
  } else if constexpr (IsResults<V>::value) {
    Value::Array array;
    for (auto& result : value) array.push_back(EncodeResult(std::move(result)));
    out.emplace_back(name, std::move(array));
  } else if constexpr (IsVector<V>::value) {
    Value::Array array;
    for (auto& element : value) array.push_back(EncodeElement(std::move(element)));
    out.emplace_back(name, std::move(array));
  } else if constexpr (Described<V>) {
    out.emplace_back(name, Encode(std::move(value)));
  } else {
    out.emplace_back(name, Value(std::move(value)));
  }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

template <typename T, size_t... I>
constexpr std::array<std::string_view, sizeof...(I)> NamesOf(std::index_sequence<I...>) {
  return {std::get<I>(T::kFields).name...};
}

}  // namespace codec_internal

// The wire names of T's fields, in order.
template <Described T>
constexpr auto FieldNames() {
  constexpr size_t n = std::tuple_size_v<std::decay_t<decltype(T::kFields)>>;
  return codec_internal::NamesOf<T>(std::make_index_sequence<n>());
}

template <Described T>
Result<T> Decode(const Fields& fields, Strictness strictness) {
  if (strictness == Strictness::kStrict) {
    static constexpr auto kNames = FieldNames<T>();
    RETURN_IF_ERROR(fields.OnlyKnown(std::span<const std::string_view>(kNames)));
  }
  T message{};
  Status status = OkStatus();
  std::apply(
      [&](const auto&... field) {
        // Stops at the first failure, in wire order.
        ((status.ok() ? (status = codec_internal::DecodeMember(
                             fields, field.name, &(message.*field.member), strictness),
                         0)
                      : 0),
         ...);
      },
      T::kFields);
  if (!status.ok()) return Error(std::move(status));
  return message;
}

template <typename T>
requires Described<std::remove_cvref_t<T>> Value::Map Encode(T&& message) {
  Value::Map out;
  std::apply(
      [&](const auto&... field) {
        (codec_internal::EncodeMember(out, field.name, std::move(message.*field.member)), ...);
      },
      std::remove_cvref_t<T>::kFields);
  return out;
}

// Decodes item `i` of a decoded batch.
template <Described T>
Result<T> DecodeItem(const BatchItems<T>& batch, size_t i) {
  ASSIGN_OR_RETURN(Fields fields, codec_internal::MapElement(batch.raw[i], "item"));
  return Decode<T>(fields);
}

}  // namespace kmsd
