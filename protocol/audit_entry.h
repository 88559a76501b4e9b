// The audit log's lines (docs/AUDIT.md is the format's specification):
//
//   <entry: a JSON object, one line> TAB <chain hash: 64 lowercase hex> LF
//
// Each entry's object starts with "seq" (1, 2, 3, ... across files) and has a
// "type": "open" (the first entry of every file), "request" or "seal". The
// chain hash of entry n is SHA-256(chain(n-1) || SHA-256(entry bytes)), with
// chain(0) 32 zero bytes: an entry's bytes can be replaced by their digest
// (an export, a pruned record) without breaking the chain. A seal's "mac" is
// HMAC-SHA256 with global/audit-log-key over SealMacInput(covers, head).
//
// Pure functions and plain values; no I/O. Thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "protocol/hex.h"
#include "protocol/status.h"

namespace kmsd::audit {

using Digest = std::array<uint8_t, 32>;

inline constexpr std::string_view kFilePrefix = "audit-";
inline constexpr std::string_view kFileSuffix = ".log";
// The token's data object holding the last sealed count and head.
inline constexpr std::string_view kHeadObjectLabel = "global/audit-log-head";

Digest Sha256(std::string_view bytes);
// chain(n) from chain(n-1) and the entry's bytes.
Digest ChainNext(const Digest& previous, std::string_view entry);
Digest ChainNextFromDigest(const Digest& previous, const Digest& entry_digest);
// nullopt unless exactly 64 lowercase hex digits.
std::optional<Digest> DigestFromHex(std::string_view hex);

// "kmsd audit seal v1" 0x00, covers as 8 bytes big-endian, the 32-byte head.
std::string SealMacInput(uint64_t covers, const Digest& head);

// The file holding entries from `first_seq` on: audit-<20 digits>.log.
std::string FileName(uint64_t first_seq);
// The first seq a file name gives, or nullopt for another name.
std::optional<uint64_t> FirstSeqOfFileName(std::string_view name);

// "2026-12-03T12:34:56.123456Z" for nanoseconds since the epoch (any int64:
// years 1677 to 2262, always four digits).
std::string Rfc3339Micros(int64_t unix_nanos);
// The same text in place, for the entry of every request (no allocation).
struct TimeText {
  std::array<char, 27> chars;
  std::string_view view() const { return {chars.data(), chars.size()}; }
};
TimeText Rfc3339MicrosText(int64_t unix_nanos);
// The nanoseconds since the epoch of a time in exactly that form, from 1970
// to 2262 (what 64 bits of nanoseconds hold); nullopt for any other text.
std::optional<int64_t> ParseRfc3339Micros(std::string_view text);

// `fields` is a JSON object ("{...}") without "seq"; the entry is it with
// "seq" first. Returns the whole line (LF included) and sets `*head` to the
// entry's chain hash (from the `*head` passed in).
std::string MakeLine(uint64_t seq, std::string_view fields, Digest* head);

// A pruned entry (docs/AUDIT.md, "Retention") keeps its place in the chain
// as {"pruned":<seq>,"digest":"<SHA-256 of the entry, hex>"}: its line.
std::string PrunedLine(uint64_t seq, const Digest& entry_digest, const Digest& chain);

// A line without its LF: the entry's bytes and the chain hash it states.
struct SplitLine {
  std::string_view entry;
  Digest stated_head;
};
// INVALID_ARGUMENT saying what is wrong with the line's shape.
Result<SplitLine> Split(std::string_view line);

}  // namespace kmsd::audit
