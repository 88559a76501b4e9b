// The audit log end to end (docs/AUDIT.md): every request a real kmsd
// serves or refuses has its entry, holding no secret; `kmsctl audit verify`
// passes an untouched log and names the first problem of a tampered copy;
// a full file system refuses every request until there is room again.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/e2e/config_fixture.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/e2e/hostile_support.h"
#include "tests/support/audit_log_files.h"
#include "tests/support/secret_forms.h"

namespace kmsd::testing {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;
namespace fs = std::filesystem;

// Every request entry of the log in `dir`, in order.
std::vector<Json> RequestEntries(const fs::path& dir) {
  std::vector<Json> out;
  for (const auto& [name, lines] : ReadAuditLines(dir)) {
    for (const std::string& line : lines) {
      Json entry = AuditJsonOf(line);
      if (entry["type"] == "request") out.push_back(std::move(entry));
    }
  }
  return out;
}

// The entries of operation `op`.
std::vector<Json> EntriesOf(const std::vector<Json>& entries, const std::string& op) {
  std::vector<Json> out;
  for (const Json& entry : entries) {
    if (entry["op"] == op) out.push_back(entry);
  }
  return out;
}

std::string AllAuditBytes(const fs::path& dir) {
  std::string out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    out.append(std::istreambuf_iterator<char>(in), {});
  }
  return out;
}

class AuditTest : public HostileDaemonTest {
 protected:
  fs::path AuditDir() const { return fs::path(dir_ / "kmsd") / "audit"; }
  CommandResult Kmsctl(const std::vector<std::string>& args) {
    return RunKmsctl(daemon_->socket_path(), args);
  }
};

TEST_F(AuditTest, EveryRequestServedRefusedOrMalformedHasItsEntryAndNoSecret) {
  const std::string plaintext = "the plaintext nobody may log 4f1c";
  const Bytes ciphertext = Encrypt("acme", "billing", plaintext);
  ASSERT_EQ(Decrypt("acme", ciphertext).value(), plaintext);
  Value::Array batch_items;
  batch_items.emplace_back(MapOf("ciphertext", ciphertext));
  batch_items.emplace_back(MapOf("ciphertext", Bytes{1, 2, 3}));
  auto batch = Call("batch-decrypt", "acme", MapOf("items", std::move(batch_items)));
  ASSERT_TRUE(batch) << batch.error();
  auto key = Call("generate-data-key", "acme", MapOf("key", "alias/data"));
  ASSERT_TRUE(key) << key.error();
  const Bytes data_key(key->result().Binary("plaintext")->begin(),
                       key->result().Binary("plaintext")->end());
  // Refused: an unknown operation, a malformed frame, a principal without the permission.
  ExpectRawRejected(Encode(Envelope(77, "no-such-op", "")), Code::kUnknownOperation, "no-such-op",
                    77);
  ExpectRawRejected(Bytes{0x92, 0x01}, Code::kInvalidArgument, "", std::nullopt);
  auto viewer = Principal("acme", "auditor-bob", {"viewer"});
  ASSERT_NE(viewer, nullptr);
  auto denied =
      viewer->Call("encrypt", "acme", MapOf("key", "billing", "plaintext", ToBytes(plaintext)));
  ASSERT_FALSE(denied);
  EXPECT_EQ(denied.error().code(), Code::kAccessDenied);

  const std::vector<Json> entries = RequestEntries(AuditDir());
  // Each entry was written before its reply: all of them are there now.
  const auto encrypts = EntriesOf(entries, "encrypt");
  ASSERT_EQ(encrypts.size(), 2u);
  EXPECT_EQ(encrypts[0]["outcome"], "OK");
  EXPECT_EQ(encrypts[0]["tenant"], "acme");
  EXPECT_EQ(encrypts[0]["keys"][0]["name"], "billing");
  EXPECT_EQ(encrypts[0]["keys"][0]["version"], 2);
  EXPECT_EQ(encrypts[0]["caller"]["uid"], getuid());
  EXPECT_EQ(encrypts[0]["caller"]["pid"], getpid());
  EXPECT_EQ(encrypts[1]["outcome"], "ACCESS_DENIED");
  EXPECT_EQ(encrypts[1]["principal"]["name"], "auditor-bob");
  EXPECT_EQ(encrypts[1]["principal"]["tenant"], "acme");
  EXPECT_FALSE(encrypts[1]["principal"]["api_key_id"].get<std::string>().empty());
  EXPECT_EQ(encrypts[1]["decision"]["allowed"], false);
  EXPECT_EQ(encrypts[1]["decision"]["permission"], "crypto:encrypt");
  const auto batches = EntriesOf(entries, "batch-decrypt");
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0]["items"], Json({"OK", "INVALID_CIPHERTEXT"}));
  EXPECT_EQ(batches[0]["keys"][0]["item"], 0);
  const auto unknown = EntriesOf(entries, "-");
  ASSERT_EQ(unknown.size(), 2u);
  EXPECT_EQ(unknown[0]["outcome"], "UNKNOWN_OPERATION");
  EXPECT_EQ(unknown[0]["request_id"], 77);
  EXPECT_THAT(unknown[0]["message"].get<std::string>(), HasSubstr("no-such-op"));
  EXPECT_EQ(unknown[1]["outcome"], "INVALID_ARGUMENT");
  EXPECT_TRUE(unknown[1]["request_id"].is_null());
  EXPECT_EQ(unknown[1]["request_bytes"], 2);
  EXPECT_EQ(EntriesOf(entries, "generate-data-key").size(), 1u);
  EXPECT_EQ(EntriesOf(entries, "apikey.create").size(), 1u);

  // No plaintext, data key or API key in any form.
  const std::string audit = AllAuditBytes(AuditDir());
  for (const std::string& secret :
       {plaintext, std::string(data_key.begin(), data_key.end()), ToString(ciphertext)}) {
    for (const std::string& form : SecretForms(secret)) {
      EXPECT_EQ(audit.find(form), std::string::npos) << "a secret is in the audit log";
    }
  }
  const CommandResult verified = Kmsctl({"audit", "verify"});
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  EXPECT_THAT(verified.out, HasSubstr("verifies"));
}

// A copy of the stopped log, tampered one way, checked by the running kmsd.
class AuditTamperTest : public AuditTest {
 protected:
  void SetUp() override {
    AuditTest::SetUp();
    for (int i = 0; i < 20; ++i) Encrypt("acme", "alias/data", "record " + std::to_string(i));
    connection_.reset();
    ASSERT_EQ(daemon_->Stop(), 0);
    older_ = std::make_unique<TempDir>();
    fs::copy(AuditDir(), older_->path());
    daemon_ = DaemonProcess::StartDev(dir_ / "kmsd");
    connection_ = daemon_->Connect();
    Encrypt("acme", "alias/data", "after the copy");
    connection_.reset();
    ASSERT_EQ(daemon_->Stop(), 0);
    original_ = ReadAuditLines(AuditDir());
    ASSERT_EQ(original_.size(), 2u);
    daemon_ = DaemonProcess::StartDev(dir_ / "kmsd");
    connection_ = daemon_->Connect();
  }

  // kmsctl audit verify --dir on `files` written to a fresh directory.
  CommandResult VerifyCopy(const AuditLines& files) {
    copies_.push_back(std::make_unique<TempDir>());
    WriteAuditLines(copies_.back()->path(), files);
    return Kmsctl({"audit", "verify", "--dir", copies_.back()->path().string()});
  }

  void ExpectDetected(const CommandResult& result, const std::string& where,
                      const std::string& what) {
    EXPECT_EQ(result.exit_code, 5) << result.out << result.err;
    EXPECT_THAT(result.err, HasSubstr("does not verify"));
    EXPECT_THAT(result.err, HasSubstr(where));
    EXPECT_THAT(result.err, HasSubstr(what));
  }

  AuditLines original_;
  std::unique_ptr<TempDir> older_;
  std::vector<std::unique_ptr<TempDir>> copies_;
};

TEST_F(AuditTamperTest, EachTamperingOfACopyIsNamedWithItsFileAndLine) {
  const std::string first = original_.begin()->first;
  // The live log verifies. An untouched copy of it ends before the head the
  // token now holds (kmsd started again since): it fails only at its end.
  const CommandResult live = Kmsctl({"audit", "verify"});
  EXPECT_EQ(live.exit_code, 0) << live.out << live.err;
  const CommandResult untouched = VerifyCopy(original_);
  ExpectDetected(untouched, "entry", "older copy");
  EXPECT_THAT(untouched.err, ::testing::Not(HasSubstr("line")));

  // The first encrypt's line, and the lines after it (encrypts too).
  const std::vector<std::string>& lines = original_.at(first);
  size_t at = 0;
  while (at < lines.size() && lines[at].find("\"op\":\"encrypt\"") == std::string::npos) ++at;
  ASSERT_LT(at + 2, lines.size());
  const std::string line_no = " line " + std::to_string(at + 1);

  AuditLines edited = original_;
  std::string& line = edited[first][at];
  line[line.find("encrypt")] = 'E';
  ExpectDetected(VerifyCopy(edited), "file " + first + line_no, "chain hash does not follow");

  AuditLines deleted = original_;
  deleted[first].erase(deleted[first].begin() + at);
  ExpectDetected(VerifyCopy(deleted), "file " + first + line_no, "missing or out of order");

  AuditLines swapped = original_;
  std::swap(swapped[first][at], swapped[first][at + 1]);
  ExpectDetected(VerifyCopy(swapped), "file " + first + line_no, "missing or out of order");

  AuditLines resealed = original_;
  std::string& target = resealed[first][at];
  target.replace(target.find("\"outcome\":\"OK\""), 14, "\"outcome\":\"NO\"");
  ForgeAuditChain(resealed, "a key outside the token");
  ExpectDetected(VerifyCopy(resealed), "file " + first + " line 2",
                 "does not verify with the token's global/audit-log-key");
}

// The live log tampered while kmsd is stopped: kmsd notes at start that the
// log does not match the token's head, and every verification reports it.
TEST_F(AuditTamperTest, ACutTailOfTheLiveLogIsReported) {
  connection_.reset();
  ASSERT_EQ(daemon_->Stop(), 0);
  // The last file, its entries and seals together.
  fs::remove(AuditDir() / std::prev(ReadAuditLines(AuditDir()).end())->first);
  daemon_ = DaemonProcess::StartDev(dir_ / "kmsd");
  connection_ = daemon_->Connect();
  ExpectDetected(Kmsctl({"audit", "verify"}), "line 1",
                 "did not match the token: the log ends at entry");
}

TEST_F(AuditTamperTest, AnOlderCopyPutBackIsReported) {
  connection_.reset();
  ASSERT_EQ(daemon_->Stop(), 0);
  fs::remove_all(AuditDir());
  fs::copy(older_->path(), AuditDir());
  fs::permissions(AuditDir(), fs::perms::owner_all);
  daemon_ = DaemonProcess::StartDev(dir_ / "kmsd");
  connection_ = daemon_->Connect();
  ExpectDetected(Kmsctl({"audit", "verify"}), "line 1", "an older copy was put back");
}

TEST_F(AuditTest, KmsctlVerifyNeedsAnAdminAndAnExistingDirectory) {
  auto viewer = Principal("acme", "viewer-1", {"viewer"});
  ASSERT_NE(viewer, nullptr);
  auto denied = viewer->Call("audit.verify", "");
  ASSERT_FALSE(denied);
  EXPECT_EQ(denied.error().code(), Code::kAccessDenied);
  const CommandResult missing = Kmsctl({"audit", "verify", "--dir", dir_ / "nothing-here"});
  EXPECT_EQ(missing.exit_code, 10) << missing.out << missing.err;
  EXPECT_THAT(missing.err, HasSubstr("NOT_FOUND"));
  ExpectRejected("audit.verify", "", MapOf("dir", "relative/dir"), Code::kInvalidArgument,
                 "absolute path");
}

// A size-limited tmpfs as the audit directory.
class AuditDiskFullTest : public ConfiguredKmsdTest {
 protected:
  void SetUp() override {
    ConfiguredKmsdTest::SetUp();
    fs::create_directories(mount_);
    ASSERT_EQ(mount("tmpfs", mount_.c_str(), "tmpfs", 0, "size=256k,mode=0700"), 0)
        << "mounting a tmpfs needs root: " << std::strerror(errno);
    mounted_ = true;
  }
  void TearDown() override {
    Stop();
    if (mounted_) umount2(mount_.c_str(), MNT_DETACH);
  }

  // Fills the file system; true when it is full.
  bool Fill() {
    const int fd = open(filler_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return false;
    const std::string chunk(4096, 'x');
    int error = 0;
    while (error == 0) {
      if (write(fd, chunk.data(), chunk.size()) < 0) error = errno;
    }
    // What is left is less than a block: fill it byte by byte.
    while (write(fd, "x", 1) == 1) {
    }
    close(fd);
    return error == ENOSPC;
  }

  Result<Reply> EncryptOnce() {
    return Call("encrypt", "acme", MapOf("key", "alias/data", "plaintext", Bytes(16, 7)));
  }

  std::string mount_ = dir_ / "audit-fs";
  std::string filler_ = mount_ + "/filler";
  bool mounted_ = false;
};

TEST_F(AuditDiskFullTest, AFullDiskRefusesEveryRequestUntilThereIsRoomAgain) {
  Start("audit:\n  dir: " + mount_ +
        "\n  commit_interval_ms: 20\n  reserve_bytes: 16384\n  max_file_bytes: 65536\n");
  ASSERT_TRUE(Call("tenant.create", "acme"));
  ASSERT_TRUE(Fill());
  // The reserve lets requests already let in finish; within it, kmsd notices.
  Code refused = Code::kOk;
  for (int i = 0; i < 2000 && refused == Code::kOk; ++i) {
    refused = CodeOf(EncryptOnce());
    if (refused == Code::kOk) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_EQ(refused, Code::kAuditUnavailable);
  // Nothing is served: not a read, not a change, not through kmsctl.
  EXPECT_EQ(CodeOf(Call("key.create", "acme", MapOf("name", "unrecorded"))),
            Code::kAuditUnavailable);
  EXPECT_EQ(CodeOf(Call("health", "")), Code::kAuditUnavailable);
  const CommandResult cli = RunKmsctl(socket_path_, {"tenant", "list"});
  EXPECT_EQ(cli.exit_code, 13) << cli.out << cli.err;
  EXPECT_THAT(cli.err, HasSubstr("AUDIT_UNAVAILABLE"));
  EXPECT_THAT(cli.err, HasSubstr("No space left on device"));
  // Room again: serving resumes by itself.
  fs::remove(filler_);
  EXPECT_TRUE(Eventually([&] { return EncryptOnce().has_value(); }));
  auto keys = Call("key.list", "acme");
  ASSERT_TRUE(keys) << keys.error();
  EXPECT_THAT(RenderResult(*keys), ::testing::Not(HasSubstr("unrecorded")));
  const CommandResult verified = RunKmsctl(socket_path_, {"audit", "verify"});
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
}

TEST_F(AuditTest, ATenantsExportHoldsOnlyItsEntriesAndVerifiesOnItsOwn) {
  for (int i = 0; i < 5; ++i) {
    Encrypt("acme", "alias/data", "a" + std::to_string(i));
    Encrypt("globex", "alias/data", "g" + std::to_string(i));
  }
  const std::string out = dir_ / "acme.jsonl";
  // Its entries are sealed at the next commit: export once they are.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const CommandResult exported = Kmsctl({"audit", "export", "--tenant", "acme", "--out", out});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  std::vector<std::string> lines;
  {
    std::ifstream in(out);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
  }
  ASSERT_GT(lines.size(), 12u);
  size_t full = 0, digests = 0, encrypts = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    const Json line = Json::parse(lines[i]);
    if (line.contains("digest")) {
      ++digests;
      continue;
    }
    ++full;
    const Json entry = Json::parse(line["entry"].get<std::string>());
    if (entry["type"] == "seal") continue;
    EXPECT_EQ(entry["tenant"], "acme") << lines[i];
    if (entry["op"] == "encrypt") ++encrypts;
  }
  EXPECT_EQ(encrypts, 5u);
  EXPECT_GE(digests, 5u);  // globex's, as digests only
  {
    std::ifstream in(out, std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(text.find("globex"), std::string::npos);
  }
  const CommandResult verified = Kmsctl({"audit", "verify", "--export", out});
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  EXPECT_THAT(verified.out, HasSubstr("entries of tenant acme"));
  EXPECT_THAT(verified.out, HasSubstr("verifies"));

  auto tampered = [&](const std::function<void(std::vector<std::string>&)>& change) {
    std::vector<std::string> copy = lines;
    change(copy);
    const std::string path = dir_ / "tampered.jsonl";
    std::ofstream(path, std::ios::trunc) << [&] {
      std::string text;
      for (const std::string& line : copy) text += line + "\n";
      return text;
    }();
    return Kmsctl({"audit", "verify", "--export", path});
  };
  size_t first_encrypt = 1;
  while (lines[first_encrypt].find("crypto:encrypt") == std::string::npos) ++first_encrypt;
  const CommandResult edited = tampered([&](std::vector<std::string>& copy) {
    Json line = Json::parse(copy[first_encrypt]);
    std::string entry = line["entry"].get<std::string>();
    entry.replace(entry.find("crypto:encrypt"), 14, "crypto:decrypt");
    line["entry"] = entry;
    copy[first_encrypt] = line.dump();
  });
  EXPECT_EQ(edited.exit_code, 5) << edited.out << edited.err;
  EXPECT_THAT(edited.err, HasSubstr("seal's head is not the chain hash"));
  const CommandResult dropped = tampered([&](std::vector<std::string>& copy) {
    copy.erase(copy.begin() + static_cast<std::ptrdiff_t>(first_encrypt));
  });
  EXPECT_EQ(dropped.exit_code, 5) << dropped.err;
  EXPECT_THAT(dropped.err, HasSubstr("missing or out of order"));
  // A seal's MAC changed (as a forger without the token's key must).
  const CommandResult resealed = tampered([&](std::vector<std::string>& copy) {
    // The last seal: nothing after it is chained to its bytes.
    Json line = Json::parse(copy.back());
    Json seal = Json::parse(line["entry"].get<std::string>());
    ASSERT_EQ(seal["type"], "seal");
    std::string mac = seal["mac"].get<std::string>();
    mac[0] = mac[0] == 'a' ? 'b' : 'a';
    std::string entry = line["entry"].get<std::string>();
    entry.replace(entry.find(seal["mac"].get<std::string>()), 64, mac);
    line["entry"] = entry;
    copy.back() = line.dump();
  });
  EXPECT_EQ(resealed.exit_code, 5) << resealed.err;
  EXPECT_THAT(resealed.err, HasSubstr("does not verify with the token's global/audit-log-key"));
}

TEST_F(AuditTest, AManagerExportsItsOwnTenantOnlyAndAViewerNone) {
  auto manager = Principal("acme", "acme-admin", {"manager"});
  auto viewer = Principal("acme", "acme-viewer", {"viewer"});
  ASSERT_NE(manager, nullptr);
  ASSERT_NE(viewer, nullptr);
  EXPECT_TRUE(manager->Call("audit.export", "acme").has_value());
  EXPECT_EQ(CodeOf(manager->Call("audit.export", "globex")), Code::kAccessDenied);
  EXPECT_EQ(CodeOf(viewer->Call("audit.export", "acme")), Code::kAccessDenied);
  EXPECT_EQ(CodeOf(manager->Call("audit.verify", "")), Code::kAccessDenied);
  // It checks its export's seals with the token's key, in its tenant only.
  Value::Array seals;
  seals.emplace_back(
      MapOf("covers", uint64_t{1}, "head", std::string(64, '0'), "mac", std::string(64, '0')));
  auto checked = manager->Call("audit.check-seals", "acme", MapOf("seals", std::move(seals)));
  ASSERT_TRUE(checked) << checked.error();
  EXPECT_EQ(checked->result().Bool("verified").value_or(true), false);
  EXPECT_THAT(std::string(checked->result().OptionalString("problem").value().value_or("")),
              HasSubstr("does not verify with the token's global/audit-log-key"));
  EXPECT_EQ(CodeOf(manager->Call("audit.check-seals", "globex", MapOf("seals", Value::Array{}))),
            Code::kAccessDenied);
  Value::Array bad;
  bad.emplace_back(MapOf("covers", uint64_t{1}, "head", "xyz", "mac", std::string(64, '0')));
  EXPECT_EQ(CodeOf(manager->Call("audit.check-seals", "acme", MapOf("seals", std::move(bad)))),
            Code::kInvalidArgument);
  EXPECT_EQ(CodeOf(Call("audit.export", "nobody-here")), Code::kNotFound);
  ExpectRejected("audit.export", "acme", MapOf("since", "yesterday"), Code::kInvalidArgument,
                 "since must be a UTC time");
  ExpectRejected("audit.export", "acme", MapOf("max_lines", uint64_t{0}), Code::kInvalidArgument,
                 "max_lines must be from 1 to 20000");
  // A period with nothing of the tenant: the header alone, which verifies.
  const std::string out = dir_ / "empty.jsonl";
  const CommandResult future =
      Kmsctl({"audit", "export", "--tenant", "acme", "--since", "2200-01-01", "--out", out});
  ASSERT_EQ(future.exit_code, 0) << future.err;
  EXPECT_EQ(Kmsctl({"audit", "verify", "--export", out}).exit_code, 0);
  for (const char* bad : {"01/10/2026", "2999-01-01", "2026-13-01"}) {
    const CommandResult bad_time = Kmsctl({"audit", "export", "--tenant", "acme", "--since", bad});
    EXPECT_EQ(bad_time.exit_code, 2) << bad << ": " << bad_time.err;
  }
}

TEST_F(AuditTest, APolicyChoosesTheDetailsKeptNeverWhetherARequestIsRecorded) {
  const std::string policy = dir_ / "policy.yaml";
  std::ofstream(policy) << "security_policies:\n  audit_logging:\n    log_data_access: false\n"
                           "    log_all_operations: false\n";
  const CommandResult put = Kmsctl({"tenant", "policy", "put", "acme", policy});
  ASSERT_EQ(put.exit_code, 0) << put.err;
  Encrypt("acme", "billing", "quiet");
  Encrypt("globex", "alias/data", "loud");
  ASSERT_TRUE(Call("key.describe", "acme", MapOf("key", "billing")));
  const std::vector<Json> entries = RequestEntries(AuditDir());
  const auto encrypts = EntriesOf(entries, "encrypt");
  ASSERT_EQ(encrypts.size(), 2u);
  EXPECT_EQ(encrypts[0]["tenant"], "acme");
  EXPECT_EQ(encrypts[0]["outcome"], "OK");
  EXPECT_FALSE(encrypts[0].contains("keys"));
  EXPECT_EQ(encrypts[1]["tenant"], "globex");  // another tenant keeps every detail
  EXPECT_TRUE(encrypts[1].contains("keys"));
  const auto describes = EntriesOf(entries, "key.describe");
  ASSERT_FALSE(describes.empty());
  EXPECT_FALSE(describes.back().contains("keys"));
  EXPECT_FALSE(describes.back().contains("decision"));
  EXPECT_EQ(describes.back()["outcome"], "OK");
}

class AuditRetentionTest : public ConfiguredKmsdTest {};

TEST_F(AuditRetentionTest, ATenantsEntriesPastItsRetentionArePrunedAndTheLogStillVerifies) {
  // A retention "day" of one second, pruned every 200 ms, small files.
  Start(
      "audit:\n  retention_day_seconds: 1\n  prune_interval_ms: 200\n"
      "  commit_interval_ms: 50\n  max_file_bytes: 8192\n");
  ASSERT_TRUE(Call("tenant.create", "acme"));
  ASSERT_TRUE(Call("tenant.create", "globex"));
  ASSERT_TRUE(Call("tenant.put-policy", "acme",
                   MapOf("document",
                         "security_policies:\n  audit_logging:\n"
                         "    retention_days: 2\n")));
  auto encrypt = [&](const char* tenant) {
    return Call("encrypt", tenant, MapOf("key", "alias/data", "plaintext", Bytes(8, 1)));
  };
  for (int i = 0; i < 60; ++i) {
    ASSERT_TRUE(encrypt("acme"));
    ASSERT_TRUE(encrypt("globex"));
  }
  const fs::path audit = dir_ / "audit";
  auto count = [&](const std::string& what) {
    size_t n = 0;
    for (const auto& [name, lines] : ReadAuditLines(audit)) {
      for (const std::string& line : lines) n += line.find(what) != std::string::npos;
    }
    return n;
  };
  // Past two "days", once the files holding them are closed, acme's go.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(encrypt("globex"));  // new files
  ASSERT_TRUE(Eventually([&] { return count("{\"pruned\":") >= 60; }, std::chrono::seconds(30)))
      << count("{\"pruned\":") << " pruned; kmsd's log:\n"
      << daemon_->ReadLog();
  // (An entry's fields are in name order: "tenant" comes right before "time".)
  EXPECT_EQ(count("\"tenant\":\"acme\",\"time\""), 0u);      // every acme entry is past 2 s
  EXPECT_GE(count("\"tenant\":\"globex\",\"time\""), 100u);  // globex keeps every entry
  EXPECT_GE(count("\"type\":\"prune\""), 1u);
  const CommandResult verified = RunKmsctl(socket_path_, {"audit", "verify"});
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  // acme's export still verifies: its pruned entries are digests now.
  const std::string out = dir_ / "acme.jsonl";
  ASSERT_EQ(
      RunKmsctl(socket_path_, {"audit", "export", "--tenant", "acme", "--out", out}).exit_code, 0);
  const CommandResult exported = RunKmsctl(socket_path_, {"audit", "verify", "--export", out});
  EXPECT_EQ(exported.exit_code, 0) << exported.out << exported.err;
}

class AuditDirConfigTest : public ConfiguredKmsdTest {};

TEST_F(AuditDirConfigTest, AnAuditDirectoryKmsdCannotTrustStopsItsStart) {
  const std::string shared = dir_ / "shared-audit";
  fs::create_directories(shared);
  fs::permissions(shared, fs::perms::all);  // writable by anyone
  CommandResult result =
      RunKmsd({"--config", WriteConfig(ConfigYaml("audit:\n  dir: " + shared + "\n"))}, Env());
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_THAT(result.err, HasSubstr("audit directory " + shared + " (audit.dir)"));
  EXPECT_THAT(result.err, HasSubstr("writable by group or others"));
  result = RunKmsd({"--config", WriteConfig(ConfigYaml("audit:\n  dir: relative\n"))}, Env());
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_THAT(result.err, HasSubstr("field 'audit.dir'"));
  result =
      RunKmsd({"--config", WriteConfig(ConfigYaml("audit:\n  commit_interval_ms: 1\n"))}, Env());
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_THAT(result.err, HasSubstr("audit.commit_interval_ms"));
  EXPECT_TRUE(fs::is_empty(shared));
}

}  // namespace
}  // namespace kmsd::testing
