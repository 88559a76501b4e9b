#include "tools/kmsctl/output.h"

#include <errno.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <ostream>
#include <streambuf>
#include <vector>

#include "protocol/base64.h"
#include "protocol/secret_buffer.h"
#include "protocol/value.h"

namespace kmsd::kmsctl {
namespace {

using msgpack::type::object_type;

// A streambuf appending to a WipingBuffer, so that nlohmann's serializer
// never leaves copies of a secret in freed string buffers.
class WipingStreamBuf : public std::streambuf {
 public:
  explicit WipingStreamBuf(WipingBuffer* out) : out_(out) {}

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    out_->write(s, static_cast<size_t>(n));
    return n;
  }
  int_type overflow(int_type c) override {
    if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
    const char ch = traits_type::to_char_type(c);
    out_->write(&ch, 1);
    return c;
  }

 private:
  WipingBuffer* out_;
};

void Put(WipingBuffer& out, std::string_view text) { out.write(text.data(), text.size()); }

bool IsControl(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u < 0x20 || u == 0x7f;
}

void PutPrintable(WipingBuffer& out, std::string_view text) {
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (!IsControl(text[i])) continue;
    Put(out, text.substr(start, i - start));
    Put(out, "?");
    start = i + 1;
  }
  Put(out, text.substr(start));
}

void PutTime(WipingBuffer& out, uint64_t seconds) {
  const auto t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  char text[32];
  if (gmtime_r(&t, &tm) == nullptr || std::strftime(text, sizeof text, "%FT%TZ", &tm) == 0) {
    Put(out, std::to_string(seconds));
    return;
  }
  Put(out, text);
}

void PutScalar(WipingBuffer& out, std::string_view key, const Json& value) {
  switch (value.type()) {
    case Json::value_t::string:
      PutPrintable(out, value.get_ref<const std::string&>());
      return;
    case Json::value_t::boolean:
      Put(out, value.get<bool>() ? "true" : "false");
      return;
    case Json::value_t::null:
      Put(out, "-");
      return;
    case Json::value_t::number_unsigned:
      if (key.ends_with("_at")) return PutTime(out, value.get<uint64_t>());
      Put(out, std::to_string(value.get<uint64_t>()));
      return;
    case Json::value_t::array: {
      if (value.empty()) Put(out, "-");
      bool first = true;
      for (const Json& element : value) {
        if (!first) Put(out, ", ");
        first = false;
        PutScalar(out, key, element);
      }
      return;
    }
    default:  // signed and float numbers, maps inside arrays
      PutPrintable(out, value.dump(-1, ' ', false, Json::error_handler_t::replace));
      return;
  }
}

void PutLines(WipingBuffer& out, const std::string& prefix, const Json& object) {
  for (const auto& [key, value] : object.items()) {
    if (value.is_object()) {
      PutLines(out, prefix + key + ".", value);
      continue;
    }
    PutPrintable(out, prefix + key);
    Put(out, ": ");
    PutScalar(out, key, value);
    Put(out, "\n");
  }
}

std::string CellText(std::string_view key, const Json& value) {
  WipingBuffer cell;
  PutScalar(cell, key, value);
  return std::string(reinterpret_cast<const char*>(cell.data()), cell.size());
}

void PutRow(WipingBuffer& out, const std::vector<std::string>& cells,
            const std::vector<size_t>& widths) {
  for (size_t i = 0; i < cells.size(); ++i) {
    Put(out, cells[i]);
    if (i + 1 == cells.size()) break;
    Put(out, std::string(widths[i] - cells[i].size() + 2, ' '));
  }
  Put(out, "\n");
}

}  // namespace

Json ToJson(const msgpack::object& object) {
  switch (object.type) {
    case object_type::NIL:
      return nullptr;
    case object_type::BOOLEAN:
      return object.via.boolean;
    case object_type::POSITIVE_INTEGER:
      return object.via.u64;
    case object_type::NEGATIVE_INTEGER:
      return object.via.i64;
    case object_type::FLOAT32:
    case object_type::FLOAT64:
      return object.via.f64;
    case object_type::STR:
      return std::string(object.via.str.ptr, object.via.str.size);
    case object_type::BIN:
      return Base64Encode(
          {reinterpret_cast<const uint8_t*>(object.via.bin.ptr), object.via.bin.size});
    case object_type::ARRAY: {
      Json array = Json::array();
      for (uint32_t i = 0; i < object.via.array.size; ++i) {
        array.push_back(ToJson(object.via.array.ptr[i]));
      }
      return array;
    }
    case object_type::MAP: {
      Json map = Json::object();
      for (uint32_t i = 0; i < object.via.map.size; ++i) {
        const msgpack::object_kv& kv = object.via.map.ptr[i];
        std::string key = kv.key.type == object_type::STR
                              ? std::string(kv.key.via.str.ptr, kv.key.via.str.size)
                              : ToJson(kv.key).dump(-1, ' ', false, Json::error_handler_t::replace);
        map[std::move(key)] = ToJson(kv.val);
      }
      return map;
    }
    case object_type::EXT: {
      Json ext = Json::object();
      ext["ext_type"] = object.via.ext.type();
      ext["data"] = Base64Encode(
          {reinterpret_cast<const uint8_t*>(object.via.ext.data()), object.via.ext.size});
      return ext;
    }
    default:
      return nullptr;
  }
}

Json ToJson(const Fields& fields) {
  Json object = Json::object();
  fields.ForEach([&object](std::string_view key, const msgpack::object& value) {
    object[std::string(key)] = ToJson(value);
  });
  return object;
}

std::string TextField(const Json& object, const char* name) {
  const auto it = object.find(name);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

void WipeJson(Json& json) {
  if (json.is_string()) {
    auto& text = json.get_ref<std::string&>();
    text.resize(text.capacity());
    WipeMemory(text.data(), text.size());
    text.clear();
    return;
  }
  if (!json.is_structured()) return;
  for (Json& element : json) WipeJson(element);
}

Status WriteAll(int fd, std::span<const uint8_t> bytes, std::string_view what) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return Status(Code::kInternal,
                    "cannot write " + std::string(what) + ": " + std::strerror(errno));
    }
    bytes = bytes.subspan(static_cast<size_t>(n));
  }
  return OkStatus();
}

Status Output::PrintJson(Json& object) const {
  WipingBuffer text;
  try {
    WipingStreamBuf buffer(&text);
    std::ostream stream(&buffer);
    stream << object << '\n';
  } catch (const Json::type_error&) {
    // A string that is not UTF-8: print it with U+FFFD instead.
    text = WipingBuffer();
    std::string replaced = object.dump(-1, ' ', false, Json::error_handler_t::replace);
    Put(text, replaced);
    Put(text, "\n");
    WipeMemory(replaced.data(), replaced.size());
  }
  return WriteAll(STDOUT_FILENO, text.span(), "to stdout");
}

Status Output::Object(Json object) const {
  Status status;
  if (json_) {
    status = PrintJson(object);
  } else {
    WipingBuffer text;
    PutLines(text, "", object);
    status = WriteAll(STDOUT_FILENO, text.span(), "to stdout");
  }
  WipeJson(object);
  return status;
}

Status Output::Table(Json object, std::string_view rows_key,
                     std::span<const Column> columns) const {
  if (json_) return PrintJson(object);
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header;
  std::vector<size_t> widths;
  for (const Column& column : columns) {
    header.emplace_back(column.header);
    widths.push_back(column.header.size());
  }
  const auto found = object.find(rows_key);
  if (found != object.end() && found->is_array()) {
    for (const Json& element : *found) {
      std::vector<std::string>& row = rows.emplace_back();
      for (size_t i = 0; i < columns.size(); ++i) {
        const auto cell = element.is_object() ? element.find(columns[i].key) : element.end();
        row.push_back(cell == element.end() ? "-" : CellText(columns[i].key, *cell));
        widths[i] = std::max(widths[i], row.back().size());
      }
    }
  }
  WipingBuffer text;
  PutRow(text, header, widths);
  for (const auto& row : rows) PutRow(text, row, widths);
  return WriteAll(STDOUT_FILENO, text.span(), "to stdout");
}

void Output::Error(std::string_view code, std::string_view message, std::string_view error_class,
                   std::optional<uint32_t> retry_after_ms) const {
  if (json_) {
    Json error = Json::object();
    error["error"]["code"] = std::string(code);
    error["error"]["message"] = std::string(message);
    if (!error_class.empty()) error["error"]["class"] = std::string(error_class);
    if (retry_after_ms) error["error"]["retry_after_ms"] = *retry_after_ms;
    (void)PrintJson(error);
    return;
  }
  std::string retry;
  if (retry_after_ms) retry = " (retry after " + std::to_string(*retry_after_ms) + " ms)";
  Stderr("kmsctl: " + Printable(code) + ": " + Printable(message) + retry + "\n");
}

void Output::Error(const Status& status) const {
  Error(CodeName(status.code()), status.message(), ErrorClassName(status.error_class()),
        status.retry_after_ms());
}

Status Output::Stdout(std::string_view text) {
  return WriteAll(STDOUT_FILENO, {reinterpret_cast<const uint8_t*>(text.data()), text.size()},
                  "to stdout");
}

void Output::Stderr(std::string_view text) {
  (void)WriteAll(STDERR_FILENO, {reinterpret_cast<const uint8_t*>(text.data()), text.size()},
                 "to stderr");
}

std::string Output::Printable(std::string_view text) {
  std::string printable(text);
  std::replace_if(printable.begin(), printable.end(), IsControl, '?');
  return printable;
}

}  // namespace kmsd::kmsctl
