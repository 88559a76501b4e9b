// Per-tenant encrypted storage through kmsctl file against a real kmsd:
// round trips, quotas from the tenant's policy (also racing processes),
// tenant isolation, escapes refused, re-wrap after a rotation, and writers
// killed at random points leaving the old file or the new one.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "client/store/tenant_store.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/support/files.h"

namespace kmsd::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::testing::HasSubstr;

std::string StoredPattern(size_t size, char seed) {
  std::string out(size, '\0');
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<char>(i * 13 + seed);
  return out;
}

// Runs kmsctl without waiting; its pid.
pid_t SpawnKmsctl(const std::vector<std::string>& args) {
  const std::string kmsctl = KMSCTL_BINARY;
  std::vector<std::string> all = {kmsctl};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& arg : all) argv.push_back(arg.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  EXPECT_EQ(::posix_spawn(&pid, kmsctl.c_str(), &actions, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

int WaitExit(pid_t pid) {
  int status = 0;
  EXPECT_EQ(::waitpid(pid, &status, 0), pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

class StoreTest : public KmsdTest {
 protected:
  void SetUp() override {
    KmsdTest::SetUp();
    MustCall("tenant.create", "acme");
    MustCall("tenant.create", "globex");
    fs::create_directory(root_);
  }

  CommandResult File(std::vector<std::string> args, const std::string& input = "",
                     const std::map<std::string, std::string>& env = {}) {
    args.insert(args.begin(), "file");
    return RunKmsctl(daemon_->socket_path(), args, input, env);
  }
  json FileJson(std::vector<std::string> args) {
    args.insert(args.begin(), {"--json", "file"});
    CommandResult result = RunKmsctl(daemon_->socket_path(), args);
    EXPECT_EQ(result.exit_code, 0) << result.out << result.err;
    return json::parse(result.out);
  }
  std::vector<std::string> Where(const std::string& tenant = "acme") {
    return {"--tenant", tenant, "--store", root_};
  }
  std::vector<std::string> With(std::vector<std::string> head, std::vector<std::string> tail) {
    head.insert(head.end(), tail.begin(), tail.end());
    return head;
  }
  CommandResult Put(const std::string& name, const std::string& content,
                    const std::string& tenant = "acme",
                    const std::map<std::string, std::string>& env = {}) {
    return File(With({"put"}, With(Where(tenant), {"--", name})), content, env);
  }
  CommandResult Get(const std::string& name, const std::string& tenant = "acme",
                    const std::map<std::string, std::string>& env = {}) {
    return File(With({"get"}, With(Where(tenant), {"--", name})), "", env);
  }
  void SetStorageQuotas(const std::string& tenant, const std::string& quotas) {
    MustCall("tenant.put-policy", tenant, [&] {
      Value::Map args;
      args.emplace_back("document", "resource_quotas:\n  storage:\n" + quotas);
      return args;
    }());
  }

  std::string root_ = dir_ / "store";
};

TEST_F(StoreTest, FilesRoundTripThroughKmsctlUnderUnusualNames) {
  const std::vector<std::pair<std::string, std::string>> files = {
      {"empty", ""},
      {"a/b/c/deep.txt", "deep secret content"},
      {"with space and ünïcode 名前", StoredPattern(5000, 'u')},
      {"-leading-dash", "dash"},
      {"line\nbreak", "newline"},
      {"big.bin", StoredPattern(3 << 20, 'b')},
  };
  for (const auto& [name, content] : files) {
    const CommandResult put = Put(name, content);
    ASSERT_EQ(put.exit_code, 0) << name << put.out << put.err;
    const CommandResult got = Get(name);
    ASSERT_EQ(got.exit_code, 0) << name << got.err;
    EXPECT_EQ(got.out, content) << name;
  }
  // Stored as messages: no plaintext on disk.
  EXPECT_EQ(ReadFileBytes(root_ + "/acme/a/b/c/deep.txt").find("secret content"),
            std::string::npos);
  const json listed = FileJson(With({"list"}, Where()));
  ASSERT_EQ(listed["files"].size(), files.size());
  std::map<std::string, uint64_t> sizes;
  for (const json& row : listed["files"]) sizes[row["name"]] = row["bytes"];
  for (const auto& [name, content] : files) EXPECT_EQ(sizes[name], content.size()) << name;
  // get --out writes the file only when it is whole; put --in reads a file.
  WriteFileBytes(dir_ / "in", "from a file");
  ASSERT_EQ(File(With({"put"}, With(Where(), {"--in", dir_ / "in", "f"}))).exit_code, 0);
  const json got = FileJson(With({"get"}, With(Where(), {"--out", dir_ / "out", "f"})));
  EXPECT_EQ(got["bytes"], 11);
  EXPECT_EQ(ReadFileBytes(dir_ / "out"), "from a file");
  const json deleted = FileJson(With({"delete"}, With(Where(), {"f"})));
  EXPECT_EQ(deleted["deleted"], true);
  const CommandResult gone = Get("f");
  EXPECT_EQ(gone.exit_code, 10) << gone.err;  // NOT_FOUND
  EXPECT_THAT(gone.err, HasSubstr("NOT_FOUND"));
}

TEST_F(StoreTest, NamesThatEscapeAndLinksAreRefusedBeforeAnythingHappens) {
  ASSERT_EQ(Put("ok", "x").exit_code, 0);
  for (std::string name : {"../globex/x", "/etc/passwd", "a/../../x", ".kmsd-lock"}) {
    const CommandResult put = Put(name, "escape");
    EXPECT_EQ(put.exit_code, 2) << name << put.err;  // usage: checked before kmsd is asked
    EXPECT_THAT(put.err, HasSubstr("the name")) << name;
    EXPECT_EQ(Get(name).exit_code, 2) << name;
  }
  fs::create_directory(dir_ / "outside");
  fs::create_directory_symlink(dir_ / "outside", root_ + "/acme/link");
  const CommandResult through = Put("link/x", "escape");
  EXPECT_EQ(through.exit_code, 3) << through.err;  // INVALID_ARGUMENT
  EXPECT_THAT(through.err, HasSubstr("symbolic link"));
  EXPECT_TRUE(fs::is_empty(dir_ / "outside"));
  EXPECT_FALSE(fs::exists(root_ + "/globex/x"));
}

TEST_F(StoreTest, AnotherTenantCannotReadOrAdoptAFile) {
  ASSERT_EQ(Put("secret", "acme's").exit_code, 0);
  // A principal of globex: kmsd refuses it acme's data key.
  AddPrincipal("globex", "app", {"user"});
  auto key = CallOp<ops::ApiKeyCreate>(*connection_, "globex",
                                       {.principal = "app", .expires_in_seconds = std::nullopt});
  ASSERT_TRUE(key.has_value());
  const std::map<std::string, std::string> as_globex = {{"KMSD_API_KEY", SecretText(key->secret)}};
  const CommandResult foreign = Get("secret", "acme", as_globex);
  EXPECT_EQ(foreign.exit_code, 4) << foreign.err;  // ACCESS_DENIED
  // acme's file copied into globex's tree under the same name does not
  // decrypt as globex's (its context names acme), even for the admin.
  fs::create_directories(root_ + "/globex");
  fs::copy_file(root_ + "/acme/secret", root_ + "/globex/secret");
  const CommandResult adopted = Get("secret", "globex");
  EXPECT_EQ(adopted.exit_code, 5) << adopted.err;  // INVALID_CIPHERTEXT
  EXPECT_THAT(adopted.err, HasSubstr("kmsd-store-tenant"));
  // Renamed within acme's tree: its context names the old name.
  fs::rename(root_ + "/acme/secret", root_ + "/acme/renamed");
  const CommandResult renamed = Get("renamed");
  EXPECT_EQ(renamed.exit_code, 5) << renamed.err;
  EXPECT_THAT(renamed.err, HasSubstr("kmsd-store-name"));
}

TEST_F(StoreTest, TheTenantsQuotasHoldForAUserPrincipal) {
  SetStorageQuotas("acme",
                   "    max_file_size: \"10KB\"\n    max_file_count: 2\n"
                   "    max_data_size: \"15KB\"\n");
  AddPrincipal("acme", "app", {"user"});
  auto key = CallOp<ops::ApiKeyCreate>(*connection_, "acme",
                                       {.principal = "app", .expires_in_seconds = std::nullopt});
  ASSERT_TRUE(key.has_value());
  const std::map<std::string, std::string> as_app = {{"KMSD_API_KEY", SecretText(key->secret)}};
  // From files, the size is known: refused before anything is written.
  const auto put_file = [&](const std::string& name, const std::string& content) {
    WriteFileBytes(dir_ / "input", content);
    return File(With({"put"}, With(Where(), {"--in", dir_ / "input", name})), "", as_app);
  };
  const CommandResult big = put_file("big", StoredPattern(10001, 'x'));
  EXPECT_EQ(big.exit_code, 8) << big.err;  // QUOTA_EXCEEDED
  EXPECT_THAT(big.err, HasSubstr("max_file_size is 10000"));
  ASSERT_EQ(put_file("one", StoredPattern(10000, 'a')).exit_code, 0);
  const CommandResult over = put_file("two", StoredPattern(5001, 'b'));
  EXPECT_EQ(over.exit_code, 8) << over.err;
  EXPECT_THAT(over.err, HasSubstr("max_data_size is 15000"));
  // From a pipe, the size is not known: the write stops where the quotas end.
  const CommandResult piped = Put("two", StoredPattern(5001, 'b'), "acme", as_app);
  EXPECT_EQ(piped.exit_code, 8) << piped.err;
  EXPECT_THAT(piped.err, HasSubstr("over the 5000 bytes the tenant's quotas leave"));
  ASSERT_EQ(Put("two", StoredPattern(5000, 'b'), "acme", as_app).exit_code, 0);
  const CommandResult third = put_file("three", "");
  EXPECT_EQ(third.exit_code, 8) << third.err;
  EXPECT_THAT(third.err, HasSubstr("max_file_count is 2"));
  EXPECT_EQ(FileJson(With({"list"}, Where()))["files"].size(), 2u);
  EXPECT_EQ(Get("one", "acme", as_app).out, StoredPattern(10000, 'a'));
}

// Processes racing at the file-count limit: exactly as many as fit succeed.
TEST_F(StoreTest, ProcessesRacingAtTheLimitCannotPassItTogether) {
  SetStorageQuotas("acme", "    max_file_count: 3\n");
  for (int i = 0; i < 8; ++i)
    WriteFileBytes(dir_ / ("in" + std::to_string(i)), StoredPattern(100000, 'r'));
  std::vector<pid_t> writers;
  for (int i = 0; i < 8; ++i) {
    writers.push_back(SpawnKmsctl({"--socket", daemon_->socket_path(), "file", "put", "--tenant",
                                   "acme", "--store", root_, "--in",
                                   dir_ / ("in" + std::to_string(i)), "w" + std::to_string(i)}));
  }
  int stored = 0, refused = 0;
  for (pid_t pid : writers) {
    const int code = WaitExit(pid);
    if (code == 0) ++stored;
    if (code == 8) ++refused;
  }
  EXPECT_EQ(stored, 3);
  EXPECT_EQ(refused, 5);
  EXPECT_EQ(FileJson(With({"list"}, Where()))["files"].size(), 3u);
}

// A writer killed (SIGKILL) at a random point leaves the old file or the
// new one, whole; the next writer clears what it left.
TEST_F(StoreTest, AWriterKilledAtRandomLeavesTheOldFileOrTheNew) {
  const std::string old_content = StoredPattern(1 << 20, 'o');
  ASSERT_EQ(Put("doc", old_content).exit_code, 0);
  const std::string new_content = StoredPattern(6 << 20, 'n');
  WriteFileBytes(dir_ / "new", new_content);
  // Kills land anywhere in a whole put's time (measured: the sanitizer
  // build is several times slower).
  const auto started = std::chrono::steady_clock::now();
  ASSERT_EQ(File(With({"put"}, With(Where(), {"--in", dir_ / "new", "doc"}))).exit_code, 0);
  const auto whole = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - started);
  ASSERT_EQ(Put("doc", old_content).exit_code, 0);
  std::mt19937 random(std::random_device{}());
  int old_seen = 0, new_seen = 0;
  for (int round = 0; round < 12; ++round) {
    const pid_t pid = SpawnKmsctl({"--socket", daemon_->socket_path(), "file", "put", "--tenant",
                                   "acme", "--store", root_, "--in", dir_ / "new", "doc"});
    std::this_thread::sleep_for(std::chrono::microseconds(random() % (whole.count() + 1)));
    ::kill(pid, SIGKILL);
    WaitExit(pid);
    const CommandResult got = Get("doc");
    ASSERT_EQ(got.exit_code, 0) << "round " << round << ": " << got.err;
    if (got.out == old_content) {
      ++old_seen;
    } else {
      ASSERT_EQ(got.out, new_content) << "round " << round << ": a torn file";
      ++new_seen;
      ASSERT_EQ(Put("doc", old_content).exit_code, 0);
    }
  }
  std::cout << "killed writers left the old file " << old_seen << " times, the new one " << new_seen
            << " times\n";
  ASSERT_EQ(Put("other", "x").exit_code, 0);  // reaps the dead writers' temporary files
  int leftovers = 0;
  for (const auto& entry : fs::directory_iterator(root_ + "/acme")) {
    if (entry.path().filename().string().starts_with(".kmsd-tmp-")) ++leftovers;
  }
  EXPECT_EQ(leftovers, 0);
}

// Stored bytes of `name` after its header.
std::string BodyOf(const std::string& path) {
  const std::string bytes = ReadFileBytes(path);
  auto parsed = esdk::ParseHeader(
      std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), {});
  EXPECT_TRUE(parsed.has_value() && parsed->has_value());
  return bytes.substr((*parsed)->size);
}

uint32_t KmsdVersionOf(const std::string& path) {
  const std::string bytes = ReadFileBytes(path);
  auto parsed = esdk::ParseHeader(
      std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), {});
  EXPECT_TRUE(parsed.has_value() && parsed->has_value());
  return esdk::LoadU32(&(*parsed)->header.edks.at(0).ciphertext.at(18));
}

TEST_F(StoreTest, RewrapMovesDataKeysToTheNewestVersionAndKeepsBodies) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(Put("f" + std::to_string(i), StoredPattern(10000 + i, 'w')).exit_code, 0);
  }
  const std::string body = BodyOf(root_ + "/acme/f3");
  EXPECT_EQ(KmsdVersionOf(root_ + "/acme/f3"), 1u);
  const json nothing_yet = FileJson(With({"rewrap"}, Where()));
  EXPECT_EQ(nothing_yet["rewrapped"], 0);
  EXPECT_EQ(nothing_yet["current"], 5);
  Value::Map args;
  args.emplace_back("key", "alias/data");
  MustCall("key.rotate", "acme", std::move(args));
  const auto audited = [&](std::string_view op) {
    int count = 0;
    for (const auto& file : fs::directory_iterator(fs::path(dir_ / "kmsd") / "audit")) {
      std::ifstream in(file.path());
      for (std::string line; std::getline(in, line);) {
        count += line.find("\"op\":\"" + std::string(op) + "\"") != std::string::npos;
      }
    }
    return count;
  };
  const int batches_before = audited("batch-re-encrypt") + audited("batch-decrypt");
  const json rewrapped = FileJson(With({"rewrap"}, Where()));
  EXPECT_EQ(rewrapped["rewrapped"], 5);
  // Five files in one batch-re-encrypt and one batch-decrypt.
  EXPECT_EQ(audited("batch-re-encrypt") + audited("batch-decrypt") - batches_before, 2);
  EXPECT_TRUE(rewrapped["failed"].empty()) << rewrapped;
  EXPECT_EQ(KmsdVersionOf(root_ + "/acme/f3"), 2u);
  EXPECT_EQ(BodyOf(root_ + "/acme/f3"), body);  // not re-encrypted
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(Get("f" + std::to_string(i)).out, StoredPattern(10000 + i, 'w')) << i;
  }
  const json again = FileJson(With(With({"rewrap"}, Where()), {"f1"}));
  EXPECT_EQ(again["current"], 1);
}

TEST_F(StoreTest, RewrapReportsFilesItCannotMoveAndLeavesThemAsTheyWere) {
  ASSERT_EQ(Put("good", "good").exit_code, 0);
  ASSERT_EQ(Put("tampered", StoredPattern(2000, 't')).exit_code, 0);
  std::string bytes = ReadFileBytes(root_ + "/acme/tampered");
  bytes[10] ^= 1;  // in the header's message id: the key commitment fails
  WriteFileBytes(root_ + "/acme/tampered", bytes);
  // A signed message with the store's context, put there by hand.
  WriteFileBytes(dir_ / "plain", "signed");
  const CommandResult sealed = RunKmsctl(
      daemon_->socket_path(),
      {"envelope", "encrypt", "--keyring", "kmsd:acme/alias/data", "--suite", "committing-signed",
       "--context", "kmsd-store-tenant=acme", "--context", "kmsd-store-name=signed", "--in",
       dir_ / "plain", "--out", root_ + "/acme/signed"});
  ASSERT_EQ(sealed.exit_code, 0) << sealed.err;
  Value::Map args;
  args.emplace_back("key", "alias/data");
  MustCall("key.rotate", "acme", std::move(args));
  const CommandResult result =
      RunKmsctl(daemon_->socket_path(), With({"--json", "file", "rewrap"}, Where()));
  EXPECT_EQ(result.exit_code, 3) << result.out << result.err;  // the first failure's code
  const json report = json::parse(result.out);
  EXPECT_EQ(report["rewrapped"], 1);
  std::map<std::string, std::string> failed;
  for (const json& item : report["failed"]) failed[item["name"]] = item["code"];
  EXPECT_EQ(failed["signed"], "INVALID_ARGUMENT");
  EXPECT_EQ(failed["tampered"], "INVALID_CIPHERTEXT");
  EXPECT_EQ(ReadFileBytes(root_ + "/acme/tampered"), bytes);
  EXPECT_EQ(Get("good").out, "good");
}

}  // namespace
}  // namespace kmsd::testing
