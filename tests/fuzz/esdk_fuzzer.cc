// libFuzzer target: an AWS Encryption SDK message as kmsctl's esdk decrypt
// (client/esdk/message.h) reads it.
//
// ParseHeader with the default limits and with small ones, then a Decryptor
// (a raw AES keyring with a fixed key, policy allow-v1) given the input as
// one Write and again in 2 or 3 pieces cut at offsets taken from the input's
// last bytes, each followed by Finish. The seeds (corpus/esdk/) are messages
// under that key, so mutations reach the frames and the footer. Any crash,
// sanitizer report or broken invariant (__builtin_trap) is a finding; among
// them: a header's prefix must ask for more bytes, a parsed header must
// serialize and parse back to itself, every error is INVALID_CIPHERTEXT,
// the pieces must give what the whole gives, and a signed message's
// plaintext held until its signature verifies is never released otherwise.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "client/esdk/message.h"
#include "client/esdk/raw_aes_keyring.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using kmsd::Code;
using kmsd::Status;
using namespace kmsd::esdk;

using kmsd::fuzz::Check;

bool SameHeader(const Header& a, const Header& b) {
  return a.suite == b.suite && a.message_id == b.message_id && a.context == b.context &&
         a.edks == b.edks && a.content_type == b.content_type && a.frame_length == b.frame_length &&
         a.commitment == b.commitment && a.header_iv == b.header_iv && a.tag == b.tag;
}

void ExerciseHeader(std::span<const uint8_t> input, const HeaderLimits& limits) {
  auto parsed = ParseHeader(input, limits);
  if (!parsed.has_value()) {
    Check(parsed.error().code() == Code::kInvalidCiphertext);
    return;
  }
  if (!*parsed) {
    // More is needed: only while under the header limit.
    Check(input.size() < limits.max_header_bytes);
    return;
  }
  const Header& header = (*parsed)->header;
  const size_t size = (*parsed)->size;
  Check(size <= input.size() && size <= limits.max_header_bytes);
  Check(header.suite != nullptr && !header.edks.empty() && header.edks.size() <= limits.max_edks);
  Check(header.frame_length <= limits.max_frame_length);
  Check(header.body.size() < size &&
        std::equal(header.body.begin(), header.body.end(), input.begin()));
  // Any shorter prefix is the start of this header.
  const size_t cut = input.empty() ? 0 : input[0] % size;
  auto prefix = ParseHeader(input.first(cut), limits);
  Check(prefix.has_value() && !prefix->has_value());
  // Written again (the context in canonical order), it reads back the same.
  auto body = SerializeHeaderBody(header);
  Check(body.has_value() && body->size() == header.body.size());
  Bytes again = *body;
  PutBytes(again, SerializeHeaderAuth(header));
  Check(again.size() == size);
  auto reparsed = ParseHeader(again, limits);
  Check(reparsed.has_value() && reparsed->has_value() && (*reparsed)->size == size &&
        SameHeader((*reparsed)->header, header));
}

struct Outcome {
  Status status;
  Bytes released;
  bool signed_suite = false;
};

// The input written in pieces ending at `cuts` (then the rest), then Finish.
Outcome Decrypt(MaterialsManager& materials, std::span<const uint8_t> input,
                std::initializer_list<size_t> cuts, bool hold_signed) {
  Outcome out;
  DecryptOptions options;
  options.policy = CommitmentPolicy::kRequireEncryptAllowDecrypt;
  options.hold_signed_plaintext = hold_signed;
  options.max_held_bytes = 1024;
  Decryptor decryptor(materials, options, [&out](std::span<const uint8_t> bytes) {
    PutBytes(out.released, bytes);
    return kmsd::OkStatus();
  });
  size_t at = 0;
  for (size_t cut : cuts) {
    out.status = decryptor.Write(input.subspan(at, cut - at));
    at = cut;
    if (!out.status.ok()) break;
  }
  if (out.status.ok()) out.status = decryptor.Write(input.subspan(at));
  const Status finished = decryptor.Finish();
  // Finish repeats the first error, or is the first error.
  Check(out.status.ok() ? true : finished.code() == out.status.code());
  out.status = finished;
  if (const Header* header = decryptor.header()) {
    out.signed_suite = header->suite->signature != Signature::kNone;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto keyring = [] {
    Bytes key(32);
    for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(i);
    return std::move(*RawAesKeyring::Create("fuzz", "k", kmsd::SecretBuffer::CopyOf(key)));
  }();
  static KeyringMaterials materials(*keyring);

  const std::span<const uint8_t> input(data, size);
  ExerciseHeader(input, HeaderLimits{});
  ExerciseHeader(input,
                 HeaderLimits{.max_edks = 1, .max_header_bytes = 200, .max_frame_length = 64});

  const Outcome whole = Decrypt(materials, input, {}, false);
  Check(whole.status.ok() || whole.status.code() == Code::kInvalidCiphertext);

  // Cut points from the last 4 bytes (left in place, so seeds stay messages).
  size_t cut1 = 0, cut2 = 0;
  if (size >= 4) {
    cut1 = (size_t{data[size - 1]} << 8 | data[size - 2]) % (size + 1);
    cut2 = (size_t{data[size - 3]} << 8 | data[size - 4]) % (size + 1);
    if (cut1 > cut2) std::swap(cut1, cut2);
  }
  const Outcome pieces = Decrypt(materials, input, {cut1, cut2}, false);
  Check(pieces.status.code() == whole.status.code());
  Check(pieces.released == whole.released);

  // Held until the signature verifies: released only on success.
  const Outcome held = Decrypt(materials, input, {cut2}, true);
  if (held.status.ok()) {
    Check(whole.status.ok() && held.released == whole.released);
  } else {
    Check(held.status.code() == Code::kInvalidCiphertext);
    if (held.signed_suite) Check(held.released.empty());
    if (whole.status.ok()) Check(held.signed_suite && whole.released.size() > 1024);
  }
  return 0;
}
