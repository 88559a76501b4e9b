#include "protocol/codec.h"

namespace kmsd {

Value::Map ContextValue(const EncryptionContext& context) {
  Value::Map map;
  for (const auto& [key, value] : context) map.emplace_back(key, value);
  return map;
}

namespace codec_internal {

Status WrongElement(std::string_view name, std::string_view what) {
  return Status(Code::kInvalidArgument,
                "field '" + std::string(name) + "' must be " + std::string(what));
}

Result<std::string_view> StringElement(const msgpack::object& object, std::string_view name) {
  if (object.type != msgpack::type::STR) return Error(WrongElement(name, "an array of strings"));
  return std::string_view(object.via.str.ptr, object.via.str.size);
}

Result<uint64_t> UintElement(const msgpack::object& object, std::string_view name) {
  if (object.type != msgpack::type::POSITIVE_INTEGER) {
    return Error(WrongElement(name, "an array of unsigned integers"));
  }
  return object.via.u64;
}

Result<Fields> MapElement(const msgpack::object& object, std::string_view name) {
  return Fields::Of(object, name);
}

}  // namespace codec_internal
}  // namespace kmsd
