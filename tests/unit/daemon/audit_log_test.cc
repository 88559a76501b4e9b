// The audit log's writer and verifier on real files, with the token's part
// faked (an HMAC key and a head in memory). Each tampering a reader of
// docs/AUDIT.md could try is detected and named.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/hmac.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "daemon/audit/log.h"
#include "daemon/audit/recorder.h"
#include "daemon/audit/verify.h"
#include "tests/support/audit_log_files.h"
#include "tests/support/temp_dir.h"

namespace kmsd::audit {
namespace {

using testing::AuditJsonOf;
using testing::AuditLines;
using ::testing::HasSubstr;
using testing::ReadAuditLines;
using testing::WriteAuditLines;
namespace fs = std::filesystem;

class FakeSealer final : public Sealer {
 public:
  explicit FakeSealer(std::string key) : key_(std::move(key)) {}
  Result<Digest> Mac(std::string_view input) override {
    Digest out;
    unsigned int size = out.size();
    HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), out.data(), &size);
    return out;
  }
  Result<SealedHead> ReadHead() override { return head; }
  Status WriteHead(const SealedHead& written) override {
    head = written;
    return OkStatus();
  }
  SealedHead head;

 private:
  std::string key_;
};

class AuditLogTest : public ::testing::Test {
 protected:
  std::unique_ptr<Log> OpenLog(uint64_t max_file_bytes = 64 << 20) {
    auto log = Log::Open({.dir = dir_.path().string(),
                          .commit_interval = std::chrono::hours(1),  // tests commit
                          .max_file_bytes = max_file_bytes,
                          .reserve_bytes = 64 << 10,
                          .discard = false,
                          .kmsd_version = "test",
                          .now_nanos = [this] { return now_; },
                          .retention_nanos = retention_,
                          .prune_interval = std::chrono::hours(1)},
                         sealer_);
    EXPECT_TRUE(log) << log.error();
    return log ? std::move(*log) : nullptr;
  }

  // `count` request entries, then a commit.
  void Requests(Log& log, int count) {
    for (int i = 0; i < count; ++i) {
      ASSERT_TRUE(
          log.Append("{\"type\":\"request\",\"op\":\"encrypt\",\"n\":" + std::to_string(i) + "}")
              .ok());
    }
    ASSERT_TRUE(log.Commit().ok());
  }

  VerifyReport Check(const std::string& dir) {
    Result<VerifyReport> report =
        Verify({.dir = dir, .last_file = std::nullopt, .last_file_bytes = 0, .token = sealer_.head},
               sealer_);
    EXPECT_TRUE(report) << report.error();
    return report ? *report : VerifyReport{};
  }
  VerifyReport Check() { return Check(dir_.path().string()); }

  // A log of `count` requests, closed (sealed at the end).
  void WriteClosedLog(int count) {
    auto log = OpenLog();
    Requests(*log, count);
  }

  static std::string ProblemOf(const VerifyReport& report) {
    return report.problem ? report.problem->message : "(verified)";
  }

  testing::TempDir dir_;
  FakeSealer sealer_{"the token's key"};
  int64_t now_ = int64_t{1796300000} * 1'000'000'000;  // the clock entries are stamped by
  std::function<std::optional<int64_t>(std::string_view)> retention_ = nullptr;
};

TEST_F(AuditLogTest, AnUntouchedLogVerifiesWithEveryEntrySealed) {
  WriteClosedLog(50);
  const VerifyReport report = Check();
  EXPECT_TRUE(report.ok()) << ProblemOf(report);
  EXPECT_EQ(report.requests, 50u);
  EXPECT_EQ(report.files, 1u);
  EXPECT_EQ(report.unsealed, 0u);
  EXPECT_EQ(report.token.covers, report.sealed_through);
  EXPECT_GE(report.seals, 2u);
  // The token holds the head of the last entry a seal covers.
  EXPECT_EQ(sealer_.head.covers, report.sealed_through);
}

TEST_F(AuditLogTest, LinesAreTheDocumentedShape) {
  WriteClosedLog(1);
  const AuditLines files = ReadAuditLines(dir_.path());
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files.begin()->first, "audit-00000000000000000001.log");
  const auto& lines = files.begin()->second;
  ASSERT_GE(lines.size(), 3u);
  // An implementation written from docs/AUDIT.md alone (the forger's),
  // given the token's key, reproduces every line byte for byte: chain
  // hashes, seals' heads and MACs.
  AuditLines rebuilt = files;
  testing::ForgeAuditChain(rebuilt, "the token's key");
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(rebuilt.begin()->second[i], lines[i]) << "line " << i + 1;
  }
  EXPECT_EQ(AuditJsonOf(lines[0])["type"], "open");
  EXPECT_EQ(AuditJsonOf(lines[1])["type"], "seal");
  EXPECT_EQ(AuditJsonOf(lines[2])["op"], "encrypt");
  EXPECT_TRUE(lines[2].starts_with("{\"seq\":3,"));
}

TEST_F(AuditLogTest, EditingOneByteIsDetected) {
  WriteClosedLog(10);
  AuditLines files = ReadAuditLines(dir_.path());
  std::string& line = files.begin()->second[5];
  line[line.find("encrypt")] = 'E';
  WriteAuditLines(dir_.path(), files);
  const VerifyReport report = Check();
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.problem->line, 6u);
  EXPECT_EQ(report.problem->file, files.begin()->first);
  EXPECT_THAT(report.problem->message, HasSubstr("chain hash does not follow"));
}

TEST_F(AuditLogTest, DeletingOrSwappingEntriesIsDetected) {
  WriteClosedLog(10);
  const AuditLines original = ReadAuditLines(dir_.path());
  AuditLines deleted = original;
  deleted.begin()->second.erase(deleted.begin()->second.begin() + 4);
  WriteAuditLines(dir_.path(), deleted);
  VerifyReport report = Check();
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.problem->line, 5u);
  EXPECT_EQ(report.problem->seq, 5u);
  EXPECT_THAT(report.problem->message, HasSubstr("missing or out of order"));

  AuditLines swapped = original;
  std::swap(swapped.begin()->second[4], swapped.begin()->second[5]);
  WriteAuditLines(dir_.path(), swapped);
  report = Check();
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.problem->line, 5u);
  EXPECT_THAT(report.problem->message, HasSubstr("missing or out of order"));
}

TEST_F(AuditLogTest, CuttingTheTailWithItsSealsIsDetectedByTheTokensHead) {
  WriteClosedLog(10);
  AuditLines files = ReadAuditLines(dir_.path());
  // Everything after the first seal: records and seals together.
  files.begin()->second.resize(2);
  WriteAuditLines(dir_.path(), files);
  const VerifyReport report = Check();
  ASSERT_FALSE(report.ok());
  EXPECT_THAT(report.problem->message, HasSubstr("tail was cut or an older copy was put back"));
  EXPECT_EQ(report.problem->seq, sealer_.head.covers);
}

TEST_F(AuditLogTest, AnOlderCopyOfTheWholeLogIsDetected) {
  auto log = OpenLog();
  Requests(*log, 5);
  testing::TempDir copy;
  fs::copy(dir_.path(), copy.path(), fs::copy_options::overwrite_existing);
  Requests(*log, 5);
  log.reset();
  const VerifyReport report = Check(copy.path().string());
  ASSERT_FALSE(report.ok());
  EXPECT_THAT(report.problem->message, HasSubstr("older copy"));
  EXPECT_TRUE(Check().ok());
}

TEST_F(AuditLogTest, ResealingWithAKeyOutsideTheTokenIsDetected) {
  WriteClosedLog(10);
  AuditLines files = ReadAuditLines(dir_.path());
  std::string& line = files.begin()->second[4];
  line.replace(line.find("encrypt"), 7, "decrypt");
  testing::ForgeAuditChain(files, "a key the forger made");
  WriteAuditLines(dir_.path(), files);
  const VerifyReport report = Check();
  ASSERT_FALSE(report.ok());
  EXPECT_THAT(report.problem->message, HasSubstr("does not verify with the token"));
  EXPECT_EQ(report.problem->line, 2u);  // the first seal
}

TEST_F(AuditLogTest, RestartsContinueTheChainInANewFile) {
  WriteClosedLog(3);
  WriteClosedLog(4);
  WriteClosedLog(5);
  const VerifyReport report = Check();
  EXPECT_TRUE(report.ok()) << ProblemOf(report);
  EXPECT_EQ(report.files, 3u);
  EXPECT_EQ(report.requests, 12u);
}

TEST_F(AuditLogTest, FilesRotateBySizeAndAMissingMiddleFileIsDetected) {
  {
    auto log = OpenLog(/*max_file_bytes=*/4096);
    for (int round = 0; round < 10; ++round) Requests(*log, 20);
  }
  VerifyReport report = Check();
  EXPECT_TRUE(report.ok()) << ProblemOf(report);
  ASSERT_GE(report.files, 3u);
  EXPECT_EQ(report.requests, 200u);
  AuditLines files = ReadAuditLines(dir_.path());
  const std::string middle = std::next(files.begin())->first;
  fs::remove(dir_.path() / middle);
  report = Check();
  ASSERT_FALSE(report.ok());
  EXPECT_THAT(report.problem->message, HasSubstr("entries are missing"));
}

TEST_F(AuditLogTest, AMissingFirstFileIsDetected) {
  WriteClosedLog(2);
  WriteClosedLog(2);
  fs::remove(dir_.path() / "audit-00000000000000000001.log");
  const VerifyReport report = Check();
  ASSERT_FALSE(report.ok());
  EXPECT_THAT(report.problem->message, HasSubstr("files before it are missing"));
}

TEST_F(AuditLogTest, ATornLastLineIsDeclaredByTheNextStart) {
  WriteClosedLog(3);
  const std::string first = dir_ / "audit-00000000000000000001.log";
  std::ofstream(first, std::ios::app) << "{\"seq\":99,\"type\":\"requ";
  // Before a restart, a torn line at the end is a problem.
  VerifyReport report = Check();
  ASSERT_FALSE(report.ok());
  EXPECT_THAT(report.problem->message, HasSubstr("incomplete"));
  WriteClosedLog(1);
  report = Check();
  EXPECT_TRUE(report.ok()) << ProblemOf(report);
  // A torn line nobody declares is not accepted in the middle of a log.
  AuditLines files = ReadAuditLines(dir_.path());
  ASSERT_EQ(files.size(), 2u);
  std::ofstream(first, std::ios::app) << "xyz";
  report = Check();
  ASSERT_FALSE(report.ok());
  EXPECT_THAT(report.problem->message, HasSubstr("does not declare"));
}

TEST_F(AuditLogTest, AFileCutShortInItsOpenEntryIsRemovedAtTheNextStart) {
  WriteClosedLog(3);
  // A start that died while writing its first line (a power loss).
  const uint64_t next = sealer_.head.covers + 2;
  std::ofstream(dir_ / FileName(next)) << "{\"seq\":" << next << ",\"type\":\"op";
  WriteClosedLog(2);
  const VerifyReport report = Check();
  EXPECT_TRUE(report.ok()) << ProblemOf(report);
  EXPECT_EQ(report.files, 2u);
  EXPECT_EQ(report.requests, 5u);
}

TEST_F(AuditLogTest, AStartOnALogThatDoesNotMatchTheTokenIsReportedForever) {
  WriteClosedLog(10);
  AuditLines files = ReadAuditLines(dir_.path());
  files.begin()->second.resize(4);  // cut, then kmsd starts again
  WriteAuditLines(dir_.path(), files);
  auto log = OpenLog();
  Requests(*log, 3);
  log.reset();
  // The token's head moved on, but the new file's open entry says what kmsd found.
  const VerifyReport report = Check();
  ASSERT_FALSE(report.ok());
  EXPECT_THAT(report.problem->message, HasSubstr("did not match the token"));
  EXPECT_EQ(report.problem->line, 1u);
}

TEST_F(AuditLogTest, ARemovedFileRefusesEntriesUntilANewOneIsMade) {
  auto log = OpenLog();
  Requests(*log, 2);
  fs::remove(dir_.path() / "audit-00000000000000000001.log");
  const Status refused = log->Append("{\"type\":\"request\"}");
  EXPECT_EQ(refused.code(), Code::kAuditUnavailable);
  EXPECT_THAT(refused.message(), HasSubstr("was removed"));
  EXPECT_EQ(log->Ready().code(), Code::kAuditUnavailable);
  EXPECT_EQ(log->Append("{\"type\":\"request\"}").code(), Code::kAuditUnavailable);
  // The committer's next round makes a new file and serving resumes.
  ASSERT_TRUE(log->Commit().ok());
  EXPECT_TRUE(log->Ready().ok());
  EXPECT_TRUE(log->Append("{\"type\":\"request\"}").ok());
  log.reset();
  // What was removed stays missing.
  const VerifyReport report = Check();
  ASSERT_FALSE(report.ok());
  EXPECT_THAT(report.problem->message, HasSubstr("missing"));
}

TEST_F(AuditLogTest, TheLiveLogVerifiesWhileWritten) {
  auto log = OpenLog();
  Requests(*log, 5);
  ASSERT_TRUE(log->Append("{\"type\":\"request\"}").ok());  // not sealed yet
  Result<LiveScope> live = log->Freeze();
  ASSERT_TRUE(live);
  ASSERT_TRUE(log->Append("{\"type\":\"request\"}").ok());  // after the freeze
  Result<VerifyReport> report = Verify({.dir = live->dir,
                                        .last_file = live->last_file,
                                        .last_file_bytes = live->last_file_bytes,
                                        .token = live->token},
                                       sealer_);
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->ok()) << ProblemOf(*report);
  EXPECT_EQ(report->requests, 6u);
  EXPECT_EQ(report->unsealed, 1u);
}

TEST_F(AuditLogTest, EntriesPastTheirTenantsRetentionArePrunedAndTheLogStillVerifies) {
  constexpr int64_t kSecond = 1'000'000'000;
  retention_ = [](std::string_view tenant) -> std::optional<int64_t> {
    if (tenant == "acme") return 30 * kSecond;
    return std::nullopt;  // globex keeps its entries for ever
  };
  auto log = OpenLog(/*max_file_bytes=*/4096);
  auto entry = [&](const std::string& tenant, int64_t age) {
    return "{\"type\":\"request\",\"op\":\"encrypt\",\"tenant\":\"" + tenant + "\",\"time\":\"" +
           Rfc3339Micros(now_ - age) + "\"}";
  };
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 20; ++i) {
      ASSERT_TRUE(log->Append(entry(i % 2 ? "acme" : "globex", 60 * kSecond)).ok());
    }
    ASSERT_TRUE(log->Append(entry("acme", 5 * kSecond)).ok());  // young: kept
    ASSERT_TRUE(log->Commit().ok());
  }
  Result<uint64_t> first = log->Prune();
  ASSERT_TRUE(first) << first.error();
  EXPECT_GE(*first, 20u);
  // Its prune entry's seal may close the live file: a second round prunes that one.
  uint64_t pruned = *first;
  for (Result<uint64_t> more = log->Prune(); more && *more > 0; more = log->Prune()) {
    pruned += *more;
  }
  log.reset();
  VerifyReport report = Check();
  EXPECT_TRUE(report.ok()) << ProblemOf(report);
  EXPECT_EQ(report.pruned, pruned);
  // What is left: globex's entries and acme's young ones, whole; no acme entry past 30 s.
  AuditLines files = ReadAuditLines(dir_.path());
  size_t globex = 0, old_acme = 0, stubs = 0;
  for (const auto& [name, lines] : files) {
    for (const std::string& line : lines) {
      const nlohmann::json parsed = AuditJsonOf(line);
      if (parsed.contains("pruned")) ++stubs;
      if (parsed.value("tenant", "") == "globex") ++globex;
      if (parsed.value("tenant", "") == "acme" &&
          parsed.value("time", "") < Rfc3339Micros(now_ - 30 * kSecond)) {
        ++old_acme;
      }
    }
  }
  EXPECT_EQ(globex, 40u);
  EXPECT_EQ(stubs, pruned);
  EXPECT_EQ(stubs + old_acme, 40u);  // the live file's are not pruned yet
  // A digest in place of an entry no prune entry names is not accepted.
  for (auto& [name, lines] : files) {
    for (std::string& line : lines) {
      const nlohmann::json parsed = AuditJsonOf(line);
      if (parsed.value("tenant", "") != "globex") continue;
      const std::string bytes = testing::AuditEntryOf(line);
      line = PrunedLine(parsed["seq"].get<uint64_t>(), Sha256(bytes),
                        *DigestFromHex(line.substr(line.rfind('\t') + 1)));
      line.pop_back();  // its LF: WriteAuditLines adds one
      WriteAuditLines(dir_.path(), files);
      report = Check();
      ASSERT_FALSE(report.ok());
      EXPECT_THAT(report.problem->message, HasSubstr("no sealed prune entry says it was pruned"));
      return;
    }
  }
  FAIL() << "no globex entry";
}

// Without the token: an entry edited, the chain recomputed, the last seal dropped, and a new
// last file begun, so that the token's head is in a file before the last. The next start
// verifies the whole log before it seals anything.
TEST_F(AuditLogTest, AChainRewrittenWhileKmsdWasStoppedIsReportedNotSealed) {
  WriteClosedLog(5);  // 1 open, 2 seal, 3-7 requests, 8 seal covering 7
  ASSERT_EQ(sealer_.head.covers, 7u);
  AuditLines files = ReadAuditLines(dir_.path());
  std::vector<std::string>& lines = files.begin()->second;
  ASSERT_EQ(lines.size(), 8u);
  lines.pop_back();  // the seal of 3-7
  Digest head = *DigestFromHex(lines[1].substr(lines[1].rfind('\t') + 1));
  for (size_t i = 2; i < lines.size(); ++i) {
    std::string entry = testing::AuditEntryOf(lines[i]);
    if (i == 2) entry.replace(entry.find("encrypt"), 7, "decrypt");
    head = ChainNext(head, entry);
    lines[i] = entry + "\t" + Hex(head);
  }
  std::string open =
      MakeLine(8,
               "{\"type\":\"open\",\"file\":\"" + FileName(8) + "\",\"previous_head\":\"" +
                   Hex(head) + "\",\"reason\":\"start\"}",
               &head);
  open.pop_back();
  files[FileName(8)] = {open};
  WriteAuditLines(dir_.path(), files);
  WriteClosedLog(1);  // kmsd starts again, and stops
  const VerifyReport report = Check();
  ASSERT_FALSE(report.ok());
  EXPECT_THAT(report.problem->message, HasSubstr("when kmsd started, the log did not match"));
  EXPECT_THAT(report.problem->message, HasSubstr("head sealed in the token"));
}

TEST_F(AuditLogTest, APruneEntryAddedWhileKmsdWasStoppedNeverCounts) {
  WriteClosedLog(5);
  AuditLines files = ReadAuditLines(dir_.path());
  std::vector<std::string>& lines = files.begin()->second;
  // Someone without the token: a prune entry after the last seal, and a request's digest in
  // place of its entry (the chain recomputed from there, as anyone can).
  const std::string& last = lines.back();
  Digest head = *DigestFromHex(last.substr(last.rfind('\t') + 1));
  const uint64_t seq = AuditJsonOf(last)["seq"].get<uint64_t>() + 1;
  std::string line = MakeLine(seq, "{\"type\":\"prune\",\"ranges\":[[3,3]]}", &head);
  line.pop_back();
  lines.push_back(line);
  const std::string victim = testing::AuditEntryOf(lines[2]);
  ASSERT_EQ(AuditJsonOf(lines[2])["seq"], 3);
  lines[2] =
      PrunedLine(3, Sha256(victim), *DigestFromHex(lines[2].substr(lines[2].rfind('\t') + 1)));
  lines[2].pop_back();
  WriteAuditLines(dir_.path(), files);
  // kmsd starts again: the token's head is in the log, so it serves on and seals what it
  // found, in its new file.
  WriteClosedLog(1);
  // The start found it (and says so in its open entry, forever): the pruned line 3.
  const VerifyReport report = Check();
  ASSERT_FALSE(report.ok());
  EXPECT_THAT(report.problem->message, HasSubstr("when kmsd started"));
  EXPECT_THAT(report.problem->message, HasSubstr("line 3: the entry was replaced by its digest"));
  EXPECT_THAT(report.problem->message, HasSubstr("no sealed prune entry says it was pruned"));
  // Without the start's word, the verifier alone finds the same line.
  AuditLines files_now = ReadAuditLines(dir_.path());
  files_now.erase(std::prev(files_now.end()));
  WriteAuditLines(dir_.path(), files_now);
  const VerifyReport alone = Check();
  ASSERT_FALSE(alone.ok());
  EXPECT_EQ(alone.problem->seq, 3u) << alone.problem->message;
}

TEST_F(AuditLogTest, DiscardWritesNothing) {
  {
    auto log = Log::Open({.dir = dir_.path().string(),
                          .commit_interval = std::chrono::hours(1),
                          .max_file_bytes = 1 << 20,
                          .reserve_bytes = 1 << 16,
                          .discard = true,
                          .kmsd_version = "test",
                          .now_nanos = [this] { return now_; },
                          .retention_nanos = retention_,
                          .prune_interval = std::chrono::hours(1)},
                         sealer_);
    ASSERT_TRUE(log);
    ASSERT_TRUE((*log)->Append("{\"type\":\"request\"}").ok());
    EXPECT_EQ((*log)->last_seq(), 2u);
  }
  EXPECT_TRUE(fs::is_empty(dir_.path()));
  EXPECT_EQ(sealer_.head.covers, 0u);
}

TEST(AuditRecordTest, ARequestsEntryHoldsItsContextAndNoArguments) {
  RequestContext context;
  context.request_id = 7;
  context.caller = Peer{.uid = 1000, .gid = 100, .pid = 4242, .groups = {}};
  context.op_name = "batch-decrypt";
  context.tenant = "acme";
  context.decision = {.decided = true,
                      .allowed = true,
                      .resource_pending = true,
                      .resource_checked = true,
                      .permission = Permission::kDecrypt,
                      .reason = "",
                      .grants = {"0123456789abcdef"}};
  context.keys = {{"00aa", "orders", 3, "", 0u}, {"00aa", "orders", 2, "", 2u}};
  context.item_outcomes = {Code::kOk, Code::kInvalidCiphertext, Code::kOk};
  context.outcome = OkStatus();
  context.request_bytes = 300;
  context.reply_bytes = 200;
  const nlohmann::json entry = nlohmann::json::parse(RequestEntryFields(context, 0));
  EXPECT_EQ(entry["time"], "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(entry["request_id"], 7);
  EXPECT_EQ(entry["caller"]["pid"], 4242);
  EXPECT_EQ(entry["decision"]["permission"], "crypto:decrypt");
  EXPECT_EQ(entry["decision"]["grants"][0], "0123456789abcdef");
  EXPECT_EQ(entry["keys"][1]["item"], 2);
  EXPECT_EQ(entry["keys"][1]["version"], 2);
  EXPECT_EQ(entry["items"][1], "INVALID_CIPHERTEXT");
  EXPECT_EQ(entry["outcome"], "OK");
  EXPECT_FALSE(entry.contains("message"));
  EXPECT_FALSE(entry.contains("principal"));

  // A policy without data access details: the entry stays, its keys go.
  context.op = FindOperation("batch-decrypt");
  const nlohmann::json trimmed = nlohmann::json::parse(RequestEntryFields(
      context, 0, {.all_operations = true, .data_access = false, .admin_actions = true}));
  EXPECT_EQ(trimmed["op"], "batch-decrypt");
  EXPECT_EQ(trimmed["outcome"], "OK");
  EXPECT_EQ(trimmed["caller"]["uid"], 1000);
  EXPECT_FALSE(trimmed.contains("keys"));
  EXPECT_FALSE(trimmed.contains("items"));
  EXPECT_FALSE(trimmed.contains("request_bytes"));
  EXPECT_TRUE(trimmed.contains("decision"));
  // Without admin details, a change keeps only whether it was allowed.
  context.op = FindOperation("key.rotate");
  context.op_name = "key.rotate";
  context.outcome = Status(Code::kNotFound, "key 'x' does not exist");
  const nlohmann::json change = nlohmann::json::parse(RequestEntryFields(
      context, 0, {.all_operations = true, .data_access = true, .admin_actions = false}));
  EXPECT_EQ(change["decision"], nlohmann::json({{"allowed", true}}));
  EXPECT_FALSE(change.contains("message"));
  EXPECT_EQ(change["outcome"], "NOT_FOUND");
  // A read keeps its details unless all_operations is off.
  context.op = FindOperation("key.describe");
  context.op_name = "key.describe";
  const nlohmann::json read_kept = nlohmann::json::parse(RequestEntryFields(
      context, 0, {.all_operations = true, .data_access = false, .admin_actions = false}));
  EXPECT_TRUE(read_kept.contains("message"));
  EXPECT_TRUE(read_kept.contains("decision"));
  const nlohmann::json read_trimmed = nlohmann::json::parse(RequestEntryFields(
      context, 0, {.all_operations = false, .data_access = true, .admin_actions = true}));
  EXPECT_FALSE(read_trimmed.contains("message"));
  EXPECT_FALSE(read_trimmed.contains("decision"));
  EXPECT_FALSE(read_trimmed.contains("keys"));
  EXPECT_EQ(read_trimmed["outcome"], "NOT_FOUND");
  EXPECT_EQ(read_trimmed["op"], "key.describe");
}

// The entry is written by hand; its text is what a JSON document with the same
// members would print (members in name order, compact), hostile text included.
TEST(AuditRecordTest, AnEntrysTextIsTheCompactJsonOfItsMembers) {
  RequestContext context;
  context.request_id = 9;
  context.caller = Peer{.uid = 1000, .gid = 100, .pid = 4242, .groups = {}};
  context.op_name = "re-encrypt";
  context.tenant = "acme";
  PrincipalIdentity principal;
  principal.tenant = "acme";
  principal.name = "ops\"\n\x01bot";
  principal.api_key_id = "00ff";
  principal.session_id = "5e55";
  principal.mfa = true;
  context.principal = principal;
  context.decision = {.decided = true,
                      .allowed = false,
                      .resource_pending = false,
                      .resource_checked = false,
                      .permission = Permission::kReEncryptFrom,
                      .reason = std::string(300, 'r'),
                      .grants = {"g1", "g2"}};
  context.keys = {{"00aa", "orders", 3, "source", std::nullopt}, {"00bb", "b", 1, "", 4u}};
  context.item_outcomes = {Code::kOk, Code::kAccessDenied};
  context.outcome = Status(Code::kAccessDenied, "caf\xc3\xa9 \t tab");
  context.request_bytes = 300;
  context.reply_bytes = 20;
  context.received = RequestContext::Clock::time_point(std::chrono::microseconds(10));
  context.finished = RequestContext::Clock::time_point(std::chrono::microseconds(1510));
  const nlohmann::json expected = {
      {"caller", {{"uid", 1000}, {"gid", 100}, {"pid", 4242}}},
      {"decision",
       {{"allowed", false},
        {"grants", {"g1", "g2"}},
        {"permission", "crypto:re-encrypt-from"},
        {"reason", std::string(256, 'r')}}},
      {"duration_us", 1500},
      {"items", {"OK", "ACCESS_DENIED"}},
      {"keys",
       {{{"id", "00aa"}, {"name", "orders"}, {"role", "source"}, {"version", 3}},
        {{"id", "00bb"}, {"item", 4}, {"name", "b"}, {"version", 1}}}},
      {"message", "caf\xc3\xa9 \t tab"},
      {"op", "re-encrypt"},
      {"outcome", "ACCESS_DENIED"},
      {"principal",
       {{"api_key_id", "00ff"},
        {"mfa", true},
        {"name", "ops\"\n\x01bot"},
        {"session_id", "5e55"},
        {"tenant", "acme"}}},
      {"reply_bytes", 20},
      {"request_bytes", 300},
      {"request_id", 9},
      {"tenant", "acme"},
      {"time", "2026-12-03T12:00:01.250000Z"},
      {"type", "request"}};
  const int64_t at = *ParseRfc3339Micros("2026-12-03T12:00:01.250000Z");
  EXPECT_EQ(RequestEntryFields(context, at), expected.dump());
  // An op name that is not UTF-8 (a hostile request's) still gives valid JSON.
  context.op_name = "\xff\xfeop";
  const auto parsed = nlohmann::json::parse(RequestEntryFields(context, at));
  EXPECT_EQ(parsed["op"], "\xef\xbf\xbd\xef\xbf\xbdop");
}

}  // namespace
}  // namespace kmsd::audit
