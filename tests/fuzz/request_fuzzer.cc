// libFuzzer target: one request frame as the daemon receives it.
//
// ScanRequestFrame (the daemon's first pass), Frame::Decode, then
// ParseRequest, then the Fields accessors the dispatcher uses on `args`,
// then ParseReply on the same value (kmsctl's side). Any crash, sanitizer
// report or broken invariant (__builtin_trap) is a finding; among them: the
// scan and the decoder must agree on the op and tenant of a valid request.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "protocol/frame_scan.h"
#include "protocol/message.h"

namespace {

void ExerciseFields(const kmsd::Fields& fields, int depth) {
  (void)fields.OnlyKnown({"key", "plaintext", "ciphertext", "context", "items"});
  for (const char* key : {"key", "alias", "plaintext", "ciphertext", "context", "items",
                          "number_of_bytes", "description", "result", "error"}) {
    (void)fields.String(key);
    (void)fields.OptionalString(key);
    (void)fields.Binary(key);
    (void)fields.Uint(key);
    (void)fields.OptionalUint(key);
    (void)fields.OptionalBool(key, false);
    (void)fields.Context(key);
    if (auto items = fields.Array(key); items && depth < 2) {
      for (const auto& item : *items) {
        if (auto nested = kmsd::Fields::Of(item, "item")) ExerciseFields(*nested, depth + 1);
      }
    }
    if (auto nested = fields.Map(key); nested && depth < 2) ExerciseFields(*nested, depth + 1);
  }
  size_t count = 0;
  fields.ForEach([&](std::string_view, const msgpack::object&) { ++count; });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto scanned = kmsd::ScanRequestFrame(std::span<const uint8_t>(data, size));
  if (!scanned && scanned.error().code() != kmsd::Code::kInvalidArgument) __builtin_trap();
  auto frame = kmsd::Frame::Decode(std::span<const uint8_t>(data, size));
  if (!frame) {
    // Decoding fails only with the caller-error code.
    if (frame.error().code() != kmsd::Code::kInvalidArgument) __builtin_trap();
    return 0;
  }
  std::optional<uint64_t> id;
  auto request = kmsd::ParseRequest(frame->root(), &id);
  if (request) {
    if (!id || *id != request->id) __builtin_trap();
    if (scanned && (scanned->op != request->op || scanned->tenant.value_or("") != request->tenant ||
                    scanned->id != id)) {
      __builtin_trap();
    }
    ExerciseFields(request->args, 0);
  } else if (request.error().code() != kmsd::Code::kInvalidArgument &&
             request.error().code() != kmsd::Code::kUnsupportedVersion) {
    __builtin_trap();
  }
  if (auto reply = kmsd::ParseReply(frame->root())) ExerciseFields(reply->result, 0);
  return 0;
}
