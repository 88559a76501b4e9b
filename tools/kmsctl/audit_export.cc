#include "tools/kmsctl/audit_export.h"

#include <algorithm>
#include <cstdio>
#include <deque>
#include <nlohmann/json.hpp>

#include "protocol/audit_entry.h"
#include "tools/kmsctl/output.h"

namespace kmsd::kmsctl {
namespace {

bool AllDigits(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

Result<std::string> CanonicalTime(std::string_view text, bool end_of_day) {
  std::string out;
  if (text.size() == 10) {
    out = std::string(text) + (end_of_day ? "T23:59:59.999999Z" : "T00:00:00.000000Z");
  } else if (text.size() == 20 && text.back() == 'Z') {
    out = std::string(text.substr(0, 19)) + ".000000Z";
  } else {
    out = std::string(text);
  }
  if (!audit::ParseRfc3339Micros(out)) {
    return Error(Code::kInvalidArgument, "'" + std::string(text.substr(0, 40)) +
                                             "' is not a UTC time such as 2026-10-01, "
                                             "2026-10-01T12:00:00Z or "
                                             "2026-10-01T12:00:00.000000Z");
  }
  return out;
}

Result<std::pair<std::string, std::string>> MonthPeriod(std::string_view month) {
  if (month.size() != 7 || month[4] != '-' || !AllDigits(month.substr(0, 4)) ||
      !AllDigits(month.substr(5, 2))) {
    return Error(Code::kInvalidArgument, "the period must be a month such as 2026-10, not '" +
                                             std::string(month.substr(0, 40)) + "'");
  }
  const int year = std::stoi(std::string(month.substr(0, 4)));
  const int number = std::stoi(std::string(month.substr(5, 2)));
  if (number < 1 || number > 12) {
    return Error(Code::kInvalidArgument, "the period's month must be 01 to 12");
  }
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  const int days = kDays[number - 1] + (number == 2 && leap ? 1 : 0);
  char last[11];
  std::snprintf(last, sizeof last, "%s-%02d", std::string(month).c_str(), days);
  ASSIGN_OR_RETURN(std::string since, CanonicalTime(std::string(month) + "-01", false));
  ASSIGN_OR_RETURN(std::string until, CanonicalTime(last, true));
  return std::make_pair(since, until);
}

ExportCheck WalkExport(const std::vector<std::string>& lines) {
  ExportCheck check;
  auto fail = [&](uint64_t line, std::string message) {
    check.problem = std::move(message);
    check.problem_line = line;
    return check;
  };
  if (lines.empty()) return fail(0, "the export is empty");
  const Json header = Json::parse(lines[0], nullptr, false);
  if (!header.is_object() || TextField(header, "type") != "export" ||
      !header.contains("start_seq") || !header["start_seq"].is_number_unsigned()) {
    return fail(1, "the first line is not an export's header");
  }
  check.tenant = TextField(header, "tenant");
  check.since = TextField(header, "since");
  check.until = TextField(header, "until");
  check.start_seq = header["start_seq"].get<uint64_t>();
  if (lines.size() == 1) return check;  // nothing of the tenant in the period
  std::optional<audit::Digest> head = audit::DigestFromHex(TextField(header, "start_head"));
  if (!head) return fail(1, "the header's start_head is not 64 lowercase hex digits");
  // The seal that vouches for start_head comes after it, in the export.
  std::deque<std::pair<uint64_t, audit::Digest>> unsealed = {{check.start_seq - 1, *head}};
  uint64_t expected = check.start_seq, last_tenant_seq = 0, sealed_through = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    const uint64_t line_no = i + 1;
    const Json line = Json::parse(lines[i], nullptr, false);
    if (!line.is_object() || !line.contains("seq") || !line["seq"].is_number_unsigned() ||
        line["seq"].get<uint64_t>() != expected) {
      return fail(line_no, "expected entry " + std::to_string(expected) +
                               ": entries are missing or out of order");
    }
    audit::Digest digest;
    if (line.contains("entry") && line["entry"].is_string()) {
      const std::string bytes = line["entry"].get<std::string>();
      digest = audit::Sha256(bytes);
      const Json entry = Json::parse(bytes, nullptr, false);
      if (!entry.is_object() || !entry.contains("seq") || entry["seq"] != expected) {
        return fail(line_no, "the entry is not entry " + std::to_string(expected));
      }
      if (TextField(entry, "type") == "seal") {
        const uint64_t covers = entry.contains("covers") && entry["covers"].is_number_unsigned()
                                    ? entry["covers"].get<uint64_t>()
                                    : 0;
        while (!unsealed.empty() && unsealed.front().first < covers) unsealed.pop_front();
        const std::optional<audit::Digest> sealed = audit::DigestFromHex(TextField(entry, "head"));
        if (unsealed.empty() || unsealed.front().first != covers || !sealed ||
            *sealed != unsealed.front().second) {
          return fail(line_no,
                      "the seal's head is not the chain hash of entry " + std::to_string(covers));
        }
        check.seals.push_back(
            {.covers = covers, .head = TextField(entry, "head"), .mac = TextField(entry, "mac")});
        sealed_through = covers;
      } else {
        const auto principal = entry.find("principal");
        const bool tenants = TextField(entry, "tenant") == check.tenant ||
                             (principal != entry.end() && principal->is_object() &&
                              TextField(*principal, "tenant") == check.tenant);
        if (!tenants) return fail(line_no, "the entry is not of tenant " + check.tenant);
        last_tenant_seq = expected;
        ++check.entries;
      }
    } else {
      const std::optional<audit::Digest> given = audit::DigestFromHex(TextField(line, "digest"));
      if (!given) return fail(line_no, "the line has neither an entry nor a digest");
      digest = *given;
    }
    *head = audit::ChainNextFromDigest(*head, digest);
    unsealed.emplace_back(expected, *head);
    check.last_seq = expected;
    ++expected;
  }
  if (last_tenant_seq > sealed_through) {
    return fail(lines.size(), "entry " + std::to_string(last_tenant_seq) +
                                  " is not sealed yet: export again after kmsd's next commit");
  }
  return check;
}

}  // namespace kmsd::kmsctl
