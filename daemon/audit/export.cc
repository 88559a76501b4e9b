#include "daemon/audit/export.h"

#include <nlohmann/json.hpp>

#include "daemon/audit/files.h"

namespace kmsd::audit {
namespace {

using Json = nlohmann::json;

constexpr int64_t kTimeMarginNanos = 1'000'000'000;

// Calls `visit(seq, entry bytes, parsed)` for every entry from `from_seq` on,
// in order, until it returns false. Lines that are not entries are skipped
// (verification names them).
template <typename Visit>
Status ForEachEntry(const VerifyScope& scope, uint64_t from_seq, Visit&& visit) {
  ASSIGN_OR_RETURN(std::vector<LogFile> files, ListLogFiles(scope.dir));
  size_t first = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    if (files[i].first_seq <= from_seq) first = i;
  }
  for (size_t i = first; i < files.size(); ++i) {
    const bool live_last = scope.last_file && files[i].name == *scope.last_file;
    ASSIGN_OR_RETURN(std::string content,
                     ReadLogFile(scope.dir, files[i].name,
                                 live_last ? std::optional(scope.last_file_bytes) : std::nullopt));
    for (std::string_view line : SplitLines(content).lines) {
      Result<SplitLine> split = Split(line);
      if (!split) continue;
      Json entry = Json::parse(split->entry, nullptr, false);
      // A pruned entry: only its digest is left, which is all an export gives.
      if (entry.is_object() && entry.contains("pruned") && entry["pruned"].is_number_unsigned()) {
        entry = Json{{"seq", entry["pruned"]}, {"type", "pruned"}, {"digest", entry["digest"]}};
      }
      if (!entry.is_object() || !entry.contains("seq") || !entry["seq"].is_number_unsigned()) {
        continue;
      }
      const uint64_t seq = entry["seq"].get<uint64_t>();
      if (seq < from_seq) continue;
      if (!visit(seq, split->entry, entry)) return OkStatus();
    }
    if (live_last) break;
  }
  return OkStatus();
}

std::string Text(const Json& entry, const char* name) {
  const auto it = entry.find(name);
  return it != entry.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool IsTenants(const Json& entry, const ExportRequest& request) {
  if (Text(entry, "type") != "request") return false;
  const auto principal = entry.find("principal");
  const bool tenants = Text(entry, "tenant") == request.tenant ||
                       (principal != entry.end() && principal->is_object() &&
                        Text(*principal, "tenant") == request.tenant);
  if (!tenants) return false;
  const std::string time = Text(entry, "time");
  return (request.since.empty() || time >= request.since) &&
         (request.until.empty() || time <= request.until);
}

// The anchor of a first page: the chain head sealed last before the tenant's
// first entry in the period.
struct Anchor {
  bool found = false;  // a tenant entry is in the period
  uint64_t start_seq = 0;
  std::string start_head;
};

Result<Anchor> FindAnchor(const VerifyScope& scope, const ExportRequest& request) {
  Anchor anchor;
  uint64_t sealed_covers = 0;
  std::string sealed_head;
  uint64_t first_seq = 0;
  std::string first_previous_head;
  RETURN_IF_ERROR(ForEachEntry(scope, 0, [&](uint64_t seq, std::string_view, const Json& entry) {
    if (first_seq == 0) {
      first_seq = seq;
      first_previous_head = Text(entry, "previous_head");
    }
    if (Text(entry, "type") == "seal" && entry.contains("covers") &&
        entry["covers"].is_number_unsigned()) {
      sealed_covers = entry["covers"].get<uint64_t>();
      sealed_head = Text(entry, "head");
    }
    if (!IsTenants(entry, request)) return true;
    anchor.found = true;
    if (sealed_covers > 0) {
      anchor.start_seq = sealed_covers + 1;
      anchor.start_head = sealed_head;
    } else {
      anchor.start_seq = first_seq;
      anchor.start_head = first_previous_head;
    }
    return false;
  }));
  return anchor;
}

}  // namespace

Result<ExportPage> ExportTenant(const VerifyScope& scope, const ExportRequest& request) {
  ExportPage page;
  uint64_t from = 0;
  if (!request.after_seq) {
    ASSIGN_OR_RETURN(Anchor anchor, FindAnchor(scope, request));
    page.lines.push_back(Json({{"type", "export"},
                               {"tenant", request.tenant},
                               {"since", request.since},
                               {"until", request.until},
                               {"start_seq", anchor.start_seq},
                               {"start_head", anchor.start_head}})
                             .dump());
    if (!anchor.found) return page;
    from = anchor.start_seq;
  } else {
    from = *request.after_seq + 1;
  }
  const int64_t until_nanos =
      request.until.empty() ? 0 : ParseRfc3339Micros(request.until).value_or(0);
  bool more = false;
  RETURN_IF_ERROR(
      ForEachEntry(scope, from, [&](uint64_t seq, std::string_view bytes, const Json& entry) {
        if (page.lines.size() >= request.max_lines) {
          page.next_after_seq = seq - 1;
          more = true;
          return false;
        }
        const bool seal = Text(entry, "type") == "seal";
        if (Text(entry, "type") == "pruned") {
          page.lines.push_back(Json({{"seq", seq}, {"digest", Text(entry, "digest")}}).dump());
        } else if (seal || IsTenants(entry, request)) {
          page.lines.push_back(Json({{"seq", seq}, {"entry", bytes}}).dump());
          if (!seal) ++page.entries;
        } else {
          page.lines.push_back(Json({{"seq", seq}, {"digest", Hex(Sha256(bytes))}}).dump());
        }
        // Past the period by a margin, and sealed: the export is complete.
        if (seal && until_nanos != 0) {
          const std::optional<int64_t> at = ParseRfc3339Micros(Text(entry, "time"));
          if (at && *at > until_nanos + kTimeMarginNanos) return false;
        }
        return true;
      }));
  if (!more) page.next_after_seq.reset();
  return page;
}

}  // namespace kmsd::audit
