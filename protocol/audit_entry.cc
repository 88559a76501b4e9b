#include "protocol/audit_entry.h"

#include <openssl/sha.h>

#include <charconv>
#include <cstdio>
#include <ctime>
#include <limits>

namespace kmsd::audit {
namespace {

constexpr std::string_view kSealDomain = "kmsd audit seal v1";
constexpr size_t kSeqDigits = 20;

}  // namespace

Digest Sha256(std::string_view bytes) {
  Digest out;
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), out.data());
  return out;
}

Digest ChainNextFromDigest(const Digest& previous, const Digest& entry_digest) {
  uint8_t both[64];
  std::copy(previous.begin(), previous.end(), both);
  std::copy(entry_digest.begin(), entry_digest.end(), both + 32);
  Digest out;
  SHA256(both, sizeof both, out.data());
  return out;
}

Digest ChainNext(const Digest& previous, std::string_view entry) {
  return ChainNextFromDigest(previous, Sha256(entry));
}

std::optional<Digest> DigestFromHex(std::string_view hex) {
  Digest out;
  if (!FromHex(hex, out)) return std::nullopt;
  return out;
}

std::string SealMacInput(uint64_t covers, const Digest& head) {
  std::string out(kSealDomain);
  out.push_back('\0');
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(covers >> shift));
  out.append(reinterpret_cast<const char*>(head.data()), head.size());
  return out;
}

std::string FileName(uint64_t first_seq) {
  char digits[kSeqDigits + 1];
  std::snprintf(digits, sizeof digits, "%020llu", static_cast<unsigned long long>(first_seq));
  return std::string(kFilePrefix) + digits + std::string(kFileSuffix);
}

std::optional<uint64_t> FirstSeqOfFileName(std::string_view name) {
  if (name.size() != kFilePrefix.size() + kSeqDigits + kFileSuffix.size() ||
      !name.starts_with(kFilePrefix) || !name.ends_with(kFileSuffix)) {
    return std::nullopt;
  }
  const std::string_view digits = name.substr(kFilePrefix.size(), kSeqDigits);
  uint64_t seq = 0;
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), seq);
  if (error != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return seq;
}

std::string Rfc3339Micros(int64_t unix_nanos) {
  int64_t seconds = unix_nanos / 1'000'000'000;
  int64_t nanos = unix_nanos % 1'000'000'000;
  if (nanos < 0) {
    nanos += 1'000'000'000;
    --seconds;
  }
  const time_t whole = static_cast<time_t>(seconds);
  const unsigned micros = static_cast<unsigned>(nanos / 1000);
  struct tm utc;
  gmtime_r(&whole, &utc);
  char out[64];
  std::snprintf(out, sizeof out, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, micros % 1000000);
  return out;
}

std::optional<int64_t> ParseRfc3339Micros(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS.ffffffZ
  if (text.size() != 27 || text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' ||
      text[16] != ':' || text[19] != '.' || text[26] != 'Z') {
    return std::nullopt;
  }
  auto number = [&](size_t at, size_t digits) -> std::optional<int> {
    int value = 0;
    for (size_t i = at; i < at + digits; ++i) {
      if (text[i] < '0' || text[i] > '9') return std::nullopt;
      value = value * 10 + (text[i] - '0');
    }
    return value;
  };
  const auto year = number(0, 4), month = number(5, 2), day = number(8, 2), hour = number(11, 2),
             minute = number(14, 2), second = number(17, 2), micros = number(20, 6);
  if (!year || !month || !day || !hour || !minute || !second || !micros || *month < 1 ||
      *month > 12 || *day < 1 || *day > 31 || *hour > 23 || *minute > 59 || *second > 60) {
    return std::nullopt;
  }
  struct tm utc {};
  utc.tm_year = *year - 1900;
  utc.tm_mon = *month - 1;
  utc.tm_mday = *day;
  utc.tm_hour = *hour;
  utc.tm_min = *minute;
  utc.tm_sec = *second;
  const time_t seconds = timegm(&utc);
  // Nanoseconds since 1970 in 64 bits reach 2262: later times are refused.
  constexpr int64_t kMaxSeconds = std::numeric_limits<int64_t>::max() / 1'000'000'000 - 1;
  if (seconds < 0 || seconds > kMaxSeconds) return std::nullopt;
  return static_cast<int64_t>(seconds) * 1'000'000'000 + static_cast<int64_t>(*micros) * 1000;
}

std::string MakeLine(uint64_t seq, std::string_view fields, Digest* head) {
  std::string line = "{\"seq\":" + std::to_string(seq);
  // fields is "{...}": its members follow seq ("{}" adds none).
  if (fields.size() > 2) {
    line.push_back(',');
    line.append(fields.substr(1));
  } else {
    line.push_back('}');
  }
  *head = ChainNext(*head, line);
  line.push_back('\t');
  line += Hex(*head);
  line.push_back('\n');
  return line;
}

std::string PrunedLine(uint64_t seq, const Digest& entry_digest, const Digest& chain) {
  return "{\"pruned\":" + std::to_string(seq) + ",\"digest\":\"" + Hex(entry_digest) + "\"}\t" +
         Hex(chain) + "\n";
}

Result<SplitLine> Split(std::string_view line) {
  const size_t tab = line.rfind('\t');
  if (tab == std::string_view::npos) {
    return Error(Code::kInvalidArgument, "the line has no tab before its chain hash");
  }
  std::optional<Digest> stated = DigestFromHex(line.substr(tab + 1));
  if (!stated) {
    return Error(Code::kInvalidArgument, "the line's chain hash is not 64 lowercase hex digits");
  }
  if (tab == 0 || line.front() != '{' || line[tab - 1] != '}') {
    return Error(Code::kInvalidArgument, "the line's entry is not a JSON object");
  }
  return SplitLine{line.substr(0, tab), *stated};
}

}  // namespace kmsd::audit
