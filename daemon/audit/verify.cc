#include "daemon/audit/verify.h"

#include <algorithm>
#include <deque>
#include <nlohmann/json.hpp>
#include <tuple>
#include <vector>

#include "daemon/audit/files.h"

namespace kmsd::audit {
namespace {

using Json = nlohmann::json;

// Walks the entries in order, keeping the chain and what the seals need.
class Walker {
 public:
  Walker(Sealer& sealer, const SealedHead& token, VerifyReport& report, bool torn_last_allowed)
      : sealer_(sealer), token_(token), report_(report), torn_last_allowed_(torn_last_allowed) {}

  // Checks one file's content; false at the first problem.
  bool File(const LogFile& file, std::string_view content, bool last);
  // After the last file: the token's head is in the log.
  bool Finish();
  bool Started() const { return started_; }

 private:
  bool Entry(std::string_view line);
  bool Open(const Json& entry);
  bool Pruned(const Json& entry, const Digest& stated_head);
  bool Prune(const Json& entry);
  bool Seal(const Json& entry, const Digest& entry_hash);
  bool Fail(std::string message) {
    report_.problem = Problem{file_, line_, next_seq_, std::move(message)};
    return false;
  }

  Sealer& sealer_;
  const SealedHead token_;
  VerifyReport& report_;
  const bool torn_last_allowed_;
  bool started_ = false;
  uint64_t next_seq_ = 0;
  Digest head_{};
  std::string file_;
  uint64_t line_ = 0;
  // A torn line the next file's "open" entry must declare.
  std::optional<std::pair<std::string, uint64_t>> torn_;
  // Chain hashes of the entries after the last seal, for the next seal.
  std::deque<std::pair<uint64_t, Digest>> unsealed_;
  bool token_seen_ = false;
  struct PrunedAt {
    uint64_t seq;
    std::string file;
    uint64_t line;
  };
  std::vector<PrunedAt> pruned_;
  // [first, last] ranges prune entries name, and the prune entry's seq: those
  // sealed in their own file, and those of the current file not sealed yet.
  std::vector<std::tuple<uint64_t, uint64_t, uint64_t>> permitted_;
  std::vector<std::tuple<uint64_t, uint64_t, uint64_t>> pending_prunes_;
};

bool Walker::File(const LogFile& file, std::string_view content, bool last) {
  file_ = file.name;
  line_ = 0;
  if (!started_) {
    started_ = true;
    next_seq_ = file.first_seq;
    report_.first_seq = file.first_seq;
    if (file.first_seq != 1) {
      return Fail("the log starts at entry " + std::to_string(file.first_seq) +
                  ": the files before it are missing");
    }
  } else if (file.first_seq != next_seq_) {
    return Fail("the file's name says it starts at entry " + std::to_string(file.first_seq) +
                ": entries are missing or the file was renamed");
  }
  Lines lines = SplitLines(content);
  if (lines.lines.empty()) return Fail("the file holds no entry");
  for (std::string_view line : lines.lines) {
    ++line_;
    if (!Entry(line)) return false;
  }
  if (lines.torn_bytes > 0) {
    ++line_;
    if (last && torn_last_allowed_) return true;
    if (last) {
      return Fail("the last entry is incomplete (" + std::to_string(lines.torn_bytes) +
                  " bytes without an end of line)");
    }
    torn_ = std::make_pair(file.name, static_cast<uint64_t>(lines.torn_bytes));
  }
  return true;
}

bool Walker::Entry(std::string_view line) {
  Result<SplitLine> split = Split(line);
  if (!split) return Fail(split.error().message());
  const Json entry = Json::parse(split->entry, nullptr, false);
  if (!entry.is_object()) return Fail("the entry is not a JSON object");
  if (entry.contains("pruned")) return Pruned(entry, split->stated_head);
  const auto seq = entry.find("seq");
  if (seq == entry.end() || !seq->is_number_unsigned()) return Fail("the entry has no seq");
  if (seq->get<uint64_t>() != next_seq_) {
    return Fail("the entry is number " + std::to_string(seq->get<uint64_t>()) +
                ": entries are missing or out of order");
  }
  const Digest hash = ChainNext(head_, split->entry);
  if (hash != split->stated_head) {
    return Fail("the chain hash does not follow: this entry or one before it was changed");
  }
  const auto type = entry.find("type");
  if (type == entry.end() || !type->is_string()) return Fail("the entry has no type");
  const std::string& kind = type->get_ref<const std::string&>();
  if ((line_ == 1) != (kind == "open")) {
    return Fail(line_ == 1 ? "a file must begin with an open entry"
                           : "an open entry in the middle of a file");
  }
  if (kind == "open") {
    if (!Open(entry)) return false;
  } else if (kind == "seal") {
    if (!Seal(entry, hash)) return false;
  } else if (kind == "request") {
    ++report_.requests;
  } else if (kind == "prune") {
    if (!Prune(entry)) return false;
  } else {
    return Fail("unknown entry type '" + kind.substr(0, 32) + "'");
  }
  if (next_seq_ == token_.covers) {
    token_seen_ = true;
    if (hash != token_.head) {
      return Fail("the entry does not match the head sealed in the token: the log was replaced");
    }
  }
  if (kind != "seal") unsealed_.emplace_back(next_seq_, hash);
  head_ = hash;
  report_.last_seq = next_seq_;
  ++report_.entries;
  ++next_seq_;
  return true;
}

// A request entry pruned for retention: its digest keeps its place in the
// chain; a prune entry must say it was pruned (checked at the end).
bool Walker::Pruned(const Json& entry, const Digest& stated_head) {
  const auto seq = entry.find("pruned");
  if (!seq->is_number_unsigned() || seq->get<uint64_t>() != next_seq_) {
    return Fail("the pruned entry is not entry " + std::to_string(next_seq_) +
                ": entries are missing or out of order");
  }
  const auto digest = entry.find("digest");
  const std::optional<Digest> given = digest != entry.end() && digest->is_string()
                                          ? DigestFromHex(digest->get<std::string>())
                                          : std::nullopt;
  if (!given || entry.size() != 2) return Fail("a pruned entry holds its seq and digest only");
  const Digest hash = ChainNextFromDigest(head_, *given);
  if (hash != stated_head) {
    return Fail("the chain hash does not follow: this entry or one before it was changed");
  }
  if (line_ == 1) return Fail("a file must begin with an open entry");
  if (next_seq_ == token_.covers) {
    token_seen_ = true;
    if (hash != token_.head) {
      return Fail("the entry does not match the head sealed in the token: the log was replaced");
    }
  }
  pruned_.push_back({next_seq_, file_, line_});
  unsealed_.emplace_back(next_seq_, hash);
  head_ = hash;
  report_.last_seq = next_seq_;
  ++report_.entries;
  ++report_.pruned;
  ++next_seq_;
  return true;
}

// A prune entry: the ranges of entries it pruned ([first, last] pairs).
bool Walker::Prune(const Json& entry) {
  const auto ranges = entry.find("ranges");
  if (ranges == entry.end() || !ranges->is_array()) return Fail("the prune entry has no ranges");
  for (const Json& range : *ranges) {
    if (!range.is_array() || range.size() != 2 || !range[0].is_number_unsigned() ||
        !range[1].is_number_unsigned() || range[0].get<uint64_t>() > range[1].get<uint64_t>() ||
        range[1].get<uint64_t>() >= next_seq_) {
      return Fail("the prune entry's ranges are not ranges of entries before it");
    }
    pending_prunes_.emplace_back(range[0].get<uint64_t>(), range[1].get<uint64_t>(), next_seq_);
  }
  return true;
}

bool Walker::Open(const Json& entry) {
  ++report_.files;
  pending_prunes_.clear();  // unsealed in their file: they never count
  auto text = [&](const char* name) -> std::string {
    const auto it = entry.find(name);
    return it != entry.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (text("file") != file_) return Fail("the open entry names another file");
  if (text("previous_head") != Hex(head_)) {
    return Fail("the open entry does not continue the chain of the file before");
  }
  if (const auto mismatch = entry.find("token_mismatch"); mismatch != entry.end()) {
    return Fail("when kmsd started, the log did not match the token: " +
                (mismatch->is_string() ? mismatch->get<std::string>() : std::string("?")));
  }
  const auto torn = entry.find("torn_tail");
  if (torn_) {
    const bool declared = torn != entry.end() && torn->is_object() && torn->contains("file") &&
                          (*torn)["file"] == torn_->first && torn->contains("bytes") &&
                          (*torn)["bytes"] == torn_->second;
    if (!declared) {
      return Fail("the file before ends with an incomplete entry that this file does not declare");
    }
    torn_.reset();
  } else if (torn != entry.end()) {
    return Fail("the open entry declares an incomplete entry that the file before does not have");
  }
  return true;
}

bool Walker::Seal(const Json& entry, const Digest& /*entry_hash*/) {
  const auto covers = entry.find("covers");
  const auto head = entry.find("head");
  const auto mac = entry.find("mac");
  if (covers == entry.end() || !covers->is_number_unsigned() || head == entry.end() ||
      !head->is_string() || mac == entry.end() || !mac->is_string()) {
    return Fail("the seal lacks covers, head or mac");
  }
  const uint64_t covered = covers->get<uint64_t>();
  while (!unsealed_.empty() && unsealed_.front().first < covered) unsealed_.pop_front();
  if (unsealed_.empty() || unsealed_.front().first != covered) {
    return Fail("the seal covers entry " + std::to_string(covered) +
                ", which is not an entry after the seal before");
  }
  const std::optional<Digest> stated_head = DigestFromHex(head->get<std::string>());
  const std::optional<Digest> stated_mac = DigestFromHex(mac->get<std::string>());
  if (!stated_head || *stated_head != unsealed_.front().second) {
    return Fail("the seal's head is not the chain hash of entry " + std::to_string(covered));
  }
  if (!stated_mac) return Fail("the seal's mac is not 64 lowercase hex digits");
  Result<bool> verified = sealer_.Check(SealMacInput(covered, *stated_head), *stated_mac);
  if (!verified) return Fail("the token could not check the seal: " + verified.error().message());
  if (!*verified) {
    return Fail("the seal does not verify with the token's global/audit-log-key");
  }
  unsealed_.pop_front();  // entries after it wait for the next seal
  // A prune entry counts once a seal in its own file covers it: kmsd seals
  // one right after writing it. One added to a stopped kmsd's last file would
  // be sealed only by the next start, in a new file, and never counts.
  std::erase_if(pending_prunes_, [&](const auto& prune) {
    if (std::get<2>(prune) > covered) return false;
    permitted_.push_back(prune);
    return true;
  });
  report_.sealed_through = covered;
  ++report_.seals;
  return true;
}

bool Walker::Finish() {
  report_.unsealed = unsealed_.size();
  // Every pruned entry is named by a prune entry sealed in its own file.
  for (const PrunedAt& pruned : pruned_) {
    const bool permitted =
        std::any_of(permitted_.begin(), permitted_.end(), [&](const auto& range) {
          const auto& [first, last, by] = range;
          return first <= pruned.seq && pruned.seq <= last;
        });
    if (!permitted) {
      report_.problem = Problem{pruned.file, pruned.line, pruned.seq,
                                "the entry was replaced by its digest, but no sealed prune entry "
                                "says it was pruned"};
      return false;
    }
  }
  if (token_.covers > 0 && !token_seen_) {
    file_.clear();
    line_ = 0;
    report_.problem =
        Problem{"", 0, token_.covers,
                "the log ends at entry " + std::to_string(report_.last_seq) +
                    " but the token sealed entries up to " + std::to_string(token_.covers) +
                    ": its tail was cut or an older copy was put back"};
    return false;
  }
  return true;
}

}  // namespace

Result<VerifyReport> Verify(const VerifyScope& scope, Sealer& sealer) {
  ASSIGN_OR_RETURN(std::vector<LogFile> files, ListLogFiles(scope.dir));
  VerifyReport report;
  report.token = scope.token;
  Walker walker(sealer, scope.token, report, scope.torn_last_allowed);
  for (size_t i = 0; i < files.size(); ++i) {
    const bool live_last = scope.last_file && files[i].name == *scope.last_file;
    ASSIGN_OR_RETURN(std::string content,
                     ReadLogFile(scope.dir, files[i].name,
                                 live_last ? std::optional(scope.last_file_bytes) : std::nullopt));
    if (!walker.File(files[i], content, i + 1 == files.size() || live_last)) return report;
    if (live_last) break;  // files begun after the verification are not its business
  }
  walker.Finish();
  return report;
}

}  // namespace kmsd::audit
