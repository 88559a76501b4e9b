#include "protocol/audit_entry.h"

#include <charconv>
#include <cstdio>
#include <ctime>
#include <limits>

#include "protocol/sha256.h"

namespace kmsd::audit {
namespace {

constexpr std::string_view kSealDomain = "kmsd audit seal v1";
constexpr size_t kSeqDigits = 20;

}  // namespace

Digest Sha256(std::string_view bytes) { return Sha256Of(bytes); }

Digest ChainNextFromDigest(const Digest& previous, const Digest& entry_digest) {
  uint8_t both[64];
  std::copy(previous.begin(), previous.end(), both);
  std::copy(entry_digest.begin(), entry_digest.end(), both + 32);
  return Sha256Of(std::span<const uint8_t>(both));
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

namespace {

// Writes `value` as `digits` decimal digits, zero-padded, at `out`.
char* PutDigits(char* out, unsigned value, int digits) {
  for (int i = digits - 1; i >= 0; --i) {
    out[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  return out + digits;
}

}  // namespace

TimeText Rfc3339MicrosText(int64_t unix_nanos) {
  int64_t seconds = unix_nanos / 1'000'000'000;
  int64_t nanos = unix_nanos % 1'000'000'000;
  if (nanos < 0) {
    nanos += 1'000'000'000;
    --seconds;
  }
  int64_t days = seconds / 86400;
  int64_t second_of_day = seconds % 86400;
  if (second_of_day < 0) {
    second_of_day += 86400;
    --days;
  }
  // The civil date of a day count (H. Hinnant's days_from_civil, inverted):
  // arithmetic only, where gmtime_r takes glibc's time zone lock.
  const int64_t shifted = days + 719468;
  const int64_t era = (shifted >= 0 ? shifted : shifted - 146096) / 146097;
  const int64_t day_of_era = shifted - era * 146097;
  const int64_t year_of_era =
      (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  const int64_t day_of_year =
      day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const int64_t month_index = (5 * day_of_year + 2) / 153;
  const unsigned day = static_cast<unsigned>(day_of_year - (153 * month_index + 2) / 5 + 1);
  const unsigned month =
      static_cast<unsigned>(month_index < 10 ? month_index + 3 : month_index - 9);
  const unsigned year = static_cast<unsigned>(year_of_era + era * 400 + (month <= 2 ? 1 : 0));
  TimeText text;
  char* out = text.chars.data();
  out = PutDigits(out, year, 4);
  *out++ = '-';
  out = PutDigits(out, month, 2);
  *out++ = '-';
  out = PutDigits(out, day, 2);
  *out++ = 'T';
  out = PutDigits(out, static_cast<unsigned>(second_of_day / 3600), 2);
  *out++ = ':';
  out = PutDigits(out, static_cast<unsigned>(second_of_day / 60 % 60), 2);
  *out++ = ':';
  out = PutDigits(out, static_cast<unsigned>(second_of_day % 60), 2);
  *out++ = '.';
  out = PutDigits(out, static_cast<unsigned>(nanos / 1000), 6);
  *out = 'Z';
  return text;
}

std::string Rfc3339Micros(int64_t unix_nanos) {
  return std::string(Rfc3339MicrosText(unix_nanos).view());
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
  // Built in one allocation: this runs once per request.
  constexpr std::string_view kSeqKey = "{\"seq\":";
  char seq_digits[20];
  const std::string_view seq_text(
      seq_digits, std::to_chars(seq_digits, seq_digits + sizeof seq_digits, seq).ptr - seq_digits);
  std::string line;
  line.reserve(kSeqKey.size() + seq_text.size() + fields.size() + 2 + 2 * head->size());
  line.append(kSeqKey).append(seq_text);
  // fields is "{...}": its members follow seq ("{}" adds none).
  if (fields.size() > 2) {
    line.push_back(',');
    line.append(fields.substr(1));
  } else {
    line.push_back('}');
  }
  *head = ChainNext(*head, line);
  line.push_back('\t');
  const size_t hex_at = line.size();
  line.resize(hex_at + 2 * head->size());
  HexEncode(*head, line.data() + hex_at);
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
