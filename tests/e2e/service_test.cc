// End-to-end: kmsd as a service (issue 14): the service manager's
// notifications (READY, RELOADING, STOPPING, STATUS, WATCHDOG) on a real
// $NOTIFY_SOCKET, SIGHUP reloading what may change and keeping the running
// configuration on error, SIGTERM draining requests in flight to exit 0, and
// the PIN from systemd's credentials directory.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "client/typed_call.h"
#include "protocol/policy_types.h"
#include "tests/e2e/config_fixture.h"
#include "tests/e2e/hostile_support.h"
#include "tests/support/audit_log_files.h"

namespace kmsd::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using Clock = std::chrono::steady_clock;

// A datagram socket standing in for systemd's notification socket.
class NotifySocket {
 public:
  explicit NotifySocket(std::string path) : path_(std::move(path)) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path_.c_str(), path_.size());
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    timeval timeout{.tv_sec = 0, .tv_usec = 100000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }
  ~NotifySocket() { close(fd_); }
  const std::string& path() const { return path_; }

  // The next message that starts with (or, `anywhere`, holds) `prefix`
  // within 10 s ("" if none); messages before it are dropped.
  std::string WaitFor(std::string_view prefix, bool anywhere = false) {
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    char buffer[4096];
    while (Clock::now() < deadline) {
      const ssize_t n = recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) continue;
      std::string message(buffer, static_cast<size_t>(n));
      if (anywhere ? message.find(prefix) != std::string::npos : message.starts_with(prefix)) {
        return message;
      }
    }
    return "";
  }

 private:
  std::string path_;
  int fd_ = -1;
};

class ServiceTest : public ConfiguredKmsdTest {
 protected:
  ops::ReloadStatus ReloadAfter(uint64_t attempts_before) {
    EXPECT_EQ(kill(daemon_->pid(), SIGHUP), 0);
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (Clock::now() < deadline) {
      auto status = CallOp<ops::ServiceStatus>(*connection_, "", {});
      if (status && status->reload.reloads > attempts_before) return status->reload;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "no reload recorded";
    return {};
  }
};

TEST_F(ServiceTest, NotifiesReadyWatchdogReloadingAndStopping) {
  NotifySocket notify(dir_ / "notify");
  config_path_ = WriteConfig(ConfigYaml(""));
  daemon_ = DaemonProcess::StartWithConfig(config_path_, socket_path_, dir_ / "kmsd.log",
                                           {{"SOFTHSM2_CONF", token_.conf_path()},
                                            {"NOTIFY_SOCKET", notify.path()},
                                            {"WATCHDOG_USEC", "400000"}});
  connection_ = daemon_->Connect();
  EXPECT_THAT(notify.WaitFor("READY=1"), HasSubstr("\nSTATUS=serving 0 tenants"));
  EXPECT_EQ(notify.WaitFor("WATCHDOG=1"), "WATCHDOG=1");
  ASSERT_EQ(kill(daemon_->pid(), SIGHUP), 0);
  EXPECT_EQ(notify.WaitFor("RELOADING=1"), "RELOADING=1");
  EXPECT_THAT(notify.WaitFor("READY=1"), HasSubstr("STATUS=serving"));
  connection_.reset();
  EXPECT_EQ(daemon_->Stop(), 0);
  daemon_.reset();
  EXPECT_EQ(notify.WaitFor("STOPPING=1"), "STOPPING=1");
}

TEST_F(ServiceTest, SighupAppliesLiveFieldsAndKeepsTheRunningConfigOnError) {
  Start("");
  std::ofstream(config_path_) << ConfigYaml("log:\n  level: debug\n");
  ops::ReloadStatus reload = ReloadAfter(0);
  EXPECT_TRUE(reload.ok) << reload.message;
  EXPECT_GT(reload.at, 0);
  EXPECT_THAT(daemon_->ReadLog(), HasSubstr("configuration reloaded from " + config_path_));

  std::ofstream(config_path_) << "pkcs11: [unclosed\n";
  reload = ReloadAfter(1);
  EXPECT_FALSE(reload.ok);
  EXPECT_THAT(reload.message, HasSubstr("not valid YAML"));
  EXPECT_THAT(daemon_->ReadLog(), HasSubstr("configuration not reloaded, the running one stays"));

  std::ofstream(config_path_) << ConfigYaml("").replace(ConfigYaml("").find("uids: ["), 7,
                                                        "uids: [4242, ");
  reload = ReloadAfter(2);
  EXPECT_FALSE(reload.ok);
  EXPECT_THAT(reload.message, HasSubstr("'admins.uids' changes only with a restart"));
  CommandResult shown = RunKmsctl(socket_path_, {"status"});
  EXPECT_THAT(shown.out, HasSubstr("last_reload.ok: NO"));

  // A live limit takes effect: one connection per uid, and this one is open.
  std::ofstream(config_path_) << ConfigYaml("limits:\n  max_connections_per_uid: 1\n");
  reload = ReloadAfter(3);
  ASSERT_TRUE(reload.ok) << reload.message;
  auto extra = Connection::Dial(socket_path_, std::chrono::milliseconds(2000));
  ASSERT_TRUE(extra);
  EXPECT_FALSE((*extra)->Call("health")) << "a second connection was served over the new cap";
  EXPECT_TRUE(Call("health", ""));

  // So does the cap on all connections.
  extra->reset();
  std::ofstream(config_path_) << ConfigYaml("limits:\n  max_connections: 1\n");
  reload = ReloadAfter(4);
  ASSERT_TRUE(reload.ok) << reload.message;
  auto another = Connection::Dial(socket_path_, std::chrono::milliseconds(2000));
  ASSERT_TRUE(another);
  auto refused = (*another)->Call("health");
  ASSERT_FALSE(refused) << "a second connection was served over the new cap";
  EXPECT_EQ(refused.error().code(), Code::kAccessDenied);
  EXPECT_TRUE(Call("health", ""));
  // The refusal log writes a line a second at most: this one comes at the next.
  EXPECT_TRUE(Eventually([&] {
    return daemon_->ReadLog().find("over limits.max_connections (1)") != std::string::npos;
  })) << daemon_->ReadLog();
}

// policies.dir: tenant policy files applied on SIGHUP, all or nothing, each
// put in the audit log; a file kmsd cannot trust or read changes nothing.
TEST_F(ServiceTest, SighupAppliesTenantPolicyFilesAllOrNothing) {
  const std::filesystem::path policies = dir_ / "policies";
  std::filesystem::create_directory(policies);
  chmod(policies.c_str(), 0755);
  Start("policies:\n  dir: " + policies.string() + "\n");
  ASSERT_TRUE(Call("tenant.create", "acme"));
  ASSERT_TRUE(Call("tenant.create", "globex"));
  auto document_of = [&](const char* tenant) {
    auto policy = CallOp<ops::TenantGetPolicy>(*connection_, tenant, {});
    EXPECT_TRUE(policy) << policy.error();
    return policy ? policy->document.value_or("(none)") : std::string("?");
  };
  auto write = [&](const std::string& name, const std::string& text, mode_t mode = 0644) {
    const std::filesystem::path path = policies / name;
    std::ofstream(path) << text;
    chmod(path.c_str(), mode);
  };
  const std::string first = "security_policies:\n  rate_limiting:\n    requests_per_minute: 600\n";
  write("acme.yaml", first);
  write("README", "not a policy: left alone\n");
  ops::ReloadStatus reload = ReloadAfter(0);
  ASSERT_TRUE(reload.ok) << reload.message;
  EXPECT_EQ(document_of("acme"), first);
  EXPECT_EQ(document_of("globex"), "(none)");
  EXPECT_THAT(daemon_->ReadLog(), HasSubstr("1 tenant policies applied, 0 unchanged"));

  // One bad file among good ones: nothing is applied, and the error names it.
  const std::string second = "security_policies:\n  rate_limiting:\n    requests_per_minute: 60\n";
  write("acme.yaml", second);
  const std::vector<std::pair<std::string, std::string>> faults = {
      {"globex.yaml", "security_policies: [unclosed\n"},
      {"initech.yaml", first},  // no such tenant
      {"Bad Name.yaml", first},
  };
  uint64_t attempts = 1;
  for (const auto& [name, text] : faults) {
    write(name, text);
    reload = ReloadAfter(attempts++);
    EXPECT_FALSE(reload.ok) << name;
    EXPECT_THAT(reload.message, HasSubstr(policies.string() + "/" + name)) << name;
    EXPECT_THAT(reload.message, HasSubstr("nothing applied")) << name;
    EXPECT_EQ(document_of("acme"), first) << name;
    std::filesystem::remove(policies / name);
  }
  write("globex.yaml", first, 0666);
  reload = ReloadAfter(attempts++);
  EXPECT_THAT(reload.message, HasSubstr("is writable by group or others"));
  std::filesystem::remove(policies / "globex.yaml");
  std::filesystem::create_symlink(policies / "acme.yaml", policies / "globex.yaml");
  reload = ReloadAfter(attempts++);
  EXPECT_THAT(reload.message, HasSubstr("is a symbolic link"));
  std::filesystem::remove(policies / "globex.yaml");
  EXPECT_EQ(document_of("acme"), first);
  EXPECT_THAT(RunKmsctl(socket_path_, {"status"}).out, HasSubstr("last_reload.ok: NO"));

  // Fixed: the new document applies (a file may loosen or tighten), once.
  reload = ReloadAfter(attempts++);
  ASSERT_TRUE(reload.ok) << reload.message;
  EXPECT_EQ(document_of("acme"), second);
  reload = ReloadAfter(attempts++);
  ASSERT_TRUE(reload.ok) << reload.message;
  EXPECT_THAT(daemon_->ReadLog(), HasSubstr("0 tenant policies applied, 1 unchanged"));

  // Each put is in the audit log, by kmsd itself, allowed by policies.dir.
  size_t puts = 0;
  for (const auto& [file, lines] : ReadAuditLines(dir_ / "audit")) {
    for (const std::string& line : lines) {
      if (line.find("\"tenant.put-policy\"") == std::string::npos) continue;
      ++puts;
      EXPECT_THAT(line, HasSubstr("policies.dir"));
      EXPECT_THAT(line, HasSubstr("\"uid\":" + std::to_string(geteuid())));
    }
  }
  EXPECT_EQ(puts, 2u);

  std::ofstream(config_path_) << ConfigYaml("policies:\n  dir: policies\n");
  reload = ReloadAfter(attempts++);
  EXPECT_FALSE(reload.ok);
  EXPECT_THAT(reload.message, HasSubstr("policies.dir"));
  EXPECT_THAT(reload.message, HasSubstr("must be an absolute path"));
}

TEST_F(ServiceTest, SigtermLetsRequestsInFlightFinishAndExitsZero) {
  Start("");
  ASSERT_TRUE(Call("tenant.create", "acme"));
  std::atomic<int> served{0}, unexpected{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&] {
      auto connection = Connection::Dial(socket_path_, std::chrono::milliseconds(2000));
      if (!connection) return;
      while (true) {
        Value::Map args;
        args.emplace_back("key", "alias/data");
        args.emplace_back("plaintext", Bytes(100, 7));
        auto reply = (*connection)->Call("encrypt", "acme", std::move(args));
        if (reply) {
          ++served;
          continue;
        }
        // Refused as kmsd stops, or the connection closed after its reply.
        if (reply.error().code() != Code::kUnavailable) ++unexpected;
        return;
      }
    });
  }
  while (served.load() < 50) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  connection_.reset();
  EXPECT_EQ(daemon_->Stop(), 0);
  for (auto& client : clients) client.join();
  EXPECT_EQ(unexpected.load(), 0);
  EXPECT_THAT(daemon_->ReadLog(), HasSubstr("stopped"));
  daemon_.reset();
}

// Peers that send their frames a byte at a time while kmsd stops (nng
// 1.5.2's own transport hung for good closing such connections,
// nanomsg/nng#1543): kmsd still stops, with 0, well inside
// limits.drain_timeout_ms.
TEST_F(ServiceTest, SigtermWhilePeersSendFramesAByteAtATimeExitsZero) {
  Start("");
  std::atomic<bool> stopped{false};
  std::atomic<int> dribbling{0};
  std::vector<std::thread> peers;
  for (int i = 0; i < 6; ++i) {
    peers.emplace_back([&] {
      RawClient raw(socket_path_);
      if (!raw.Handshake() || !raw.SendFrame(1 << 16, {})) return;
      ++dribbling;
      raw.SendAByteAtATimeWhile([&] { return !stopped.load(); });
    });
  }
  while (dribbling.load() < 6) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto begin = Clock::now();
  EXPECT_EQ(daemon_->Stop(), 0);
  EXPECT_LT(Clock::now() - begin, std::chrono::seconds(5));
  stopped = true;
  for (auto& peer : peers) peer.join();
  EXPECT_THAT(daemon_->ReadLog(), HasSubstr("stopped"));
  EXPECT_FALSE(std::filesystem::exists(socket_path_));
  daemon_.reset();
}

// The CPU time (ns, from schedstat) that the threads of `pid` named `name`
// have run for.
uint64_t RunNanosOfThreads(pid_t pid, std::string_view name) {
  uint64_t total = 0;
  std::error_code error;
  const std::filesystem::path tasks = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& task : std::filesystem::directory_iterator(tasks, error)) {
    std::string comm;
    std::getline(std::ifstream(task.path() / "comm"), comm);
    if (comm != name) continue;
    uint64_t nanos = 0;
    std::ifstream(task.path() / "schedstat") >> nanos;
    total += nanos;
  }
  return total;
}

// An idle kmsd leaves nng's expiry threads asleep: a receive with a timeout
// made nng 1.5.2's expiry thread spin for up to a millisecond at each expiry
// (about 18 ms of CPU a second for an idle kmsd). Receives wait without one.
TEST_F(ServiceTest, AnIdleKmsdLeavesNngsExpiryThreadsAsleep) {
  Start("");
  ASSERT_TRUE(Call("tenant.create", "acme"));
  const uint64_t before = RunNanosOfThreads(daemon_->pid(), "nng:aio:expire");
  std::this_thread::sleep_for(std::chrono::seconds(3));
  const uint64_t after = RunNanosOfThreads(daemon_->pid(), "nng:aio:expire");
  EXPECT_LT(after - before, 5'000'000u)
      << "nng's expiry threads ran for " << (after - before) << " ns in 3 s of an idle kmsd";
  // Stop still finds every receiving thread at once.
  const auto begin = Clock::now();
  EXPECT_EQ(daemon_->Stop(), 0);
  EXPECT_LT(Clock::now() - begin, std::chrono::seconds(2));
  daemon_.reset();
}

// A kmsd suspended for a while (SIGSTOP, a frozen cgroup or VM) keeps its
// connections and serves on when resumed: nothing it runs by the clock (the
// watchdog's probe, the idle close) takes the pause for a fault. (An older
// kmsd re-created its listener, closing every connection, on a probe the
// pause fell on.)
TEST_F(ServiceTest, ASuspendedKmsdKeepsItsConnectionsWhenResumed) {
  Start("");
  ASSERT_TRUE(Call("tenant.create", "acme"));
  for (int pause = 0; pause < 4; ++pause) {
    ASSERT_EQ(kill(daemon_->pid(), SIGSTOP), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    ASSERT_EQ(kill(daemon_->pid(), SIGCONT), 0);
    // Busy for a while, as the watchdog catches up.
    const auto until = Clock::now() + std::chrono::milliseconds(300 + 37 * pause);
    for (int i = 0; Clock::now() < until; ++i) {
      ASSERT_TRUE(Call("tenant.describe", "acme")) << "after pause " << pause << ", call " << i;
    }
  }
  EXPECT_THAT(daemon_->ReadLog(), Not(HasSubstr("stopped accepting")));
}

TEST_F(ServiceTest, PinComesFromTheCredentialsDirectory) {
  const std::string credentials = dir_ / "credentials";
  mkdir(credentials.c_str(), 0700);
  std::ofstream(credentials + "/kmsd-pin") << token_.user_pin() << "\n";
  chmod((credentials + "/kmsd-pin").c_str(), 0400);
  std::string yaml = ConfigYaml("");
  yaml.replace(yaml.find("pin_file: " + pin_path_), 10 + pin_path_.size(),
               "pin_credential: kmsd-pin");
  const std::string config = WriteConfig(yaml);

  CommandResult unset = RunKmsd({"--config", config}, Env());
  EXPECT_EQ(unset.exit_code, 2);
  EXPECT_THAT(unset.err, HasSubstr("needs $CREDENTIALS_DIRECTORY"));

  std::map<std::string, std::string> env = Env();
  env["CREDENTIALS_DIRECTORY"] = credentials;
  daemon_ = DaemonProcess::StartWithConfig(config, socket_path_, dir_ / "kmsd.log", env);
  connection_ = daemon_->Connect();
  EXPECT_TRUE(Call("tenant.create", "acme"));
  EXPECT_THAT(daemon_->ReadLog(), ::testing::Not(HasSubstr(token_.user_pin())));
}

// A stand-in for journald's socket when no journald runs (CI: systemd is not
// PID 1): sd_journal_send writes its native protocol there.
class FakeJournal {
 public:
  static constexpr const char* kPath = "/run/systemd/journal/socket";
  FakeJournal() {
    if (access(kPath, F_OK) == 0) return;  // a real journald: journalctl below
    std::filesystem::create_directories("/run/systemd/journal");
    socket_ = std::make_unique<NotifySocket>(kPath);
  }
  ~FakeJournal() {
    if (socket_) {
      socket_.reset();
      unlink(kPath);
    }
  }
  // The first entry carrying `field` within 10 s, or "".
  std::string WaitFor(const std::string& field) {
    if (socket_) return socket_->WaitFor(field, /*anywhere=*/true);
    for (int i = 0; i < 100; ++i) {
      CommandResult found =
          RunCommand({"/usr/bin/journalctl", "-o", "export", "--since", "-5min", field});
      if (found.out.find(field) != std::string::npos) return found.out;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return "";
  }

 private:
  std::unique_ptr<NotifySocket> socket_;
};

TEST_F(ServiceTest, RepeatedDenialsRaiseAnAlertInTheJournalLogAndMetrics) {
  FakeJournal journal;
  Start("");
  auto stranger = Connection::Dial(socket_path_, std::chrono::milliseconds(5000),
                                   kDefaultMaxRequestBytes, SecretBuffer::CopyOf("not-an-api-key"));
  ASSERT_TRUE(stranger);
  for (size_t i = 0; i < 10; ++i) {
    auto refused = (*stranger)->Call("status");
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code(), Code::kAccessDenied);
  }
  const std::string entry = journal.WaitFor("KMSD_ALERT=repeated_denials");
  EXPECT_THAT(entry, HasSubstr("MESSAGE_ID=c99a63e18dec47339a63ac5b10fe09ef"));
  EXPECT_THAT(entry, HasSubstr("PRIORITY=4"));
  EXPECT_THAT(entry, HasSubstr("KMSD_SUBJECT=uid " + std::to_string(getuid())));
  EXPECT_THAT(daemon_->ReadLog(), HasSubstr("[repeated_denials]"));
  auto status = CallOp<ops::ServiceStatus>(*connection_, "", {});
  ASSERT_TRUE(status);
  bool counted = false;
  for (const auto& alert : status->alerts) {
    counted = counted || (alert.kind == "repeated_denials" && alert.count == 1);
  }
  EXPECT_TRUE(counted);
  CommandResult metrics = RunKmsctl(socket_path_, {"status", "--metrics"});
  EXPECT_THAT(metrics.out, HasSubstr("kmsd_alerts_total{kind=\"repeated_denials\"} 1\n"));
  EXPECT_THAT(metrics.out, HasSubstr("kmsd_alerts_total{kind=\"lockout\"} 0\n"));
}

// Two daemons started at the same instant both find the socket free (here the
// twin names a socket of its own, as a racing twin would find it free): the
// keystore's lock lets only one of them open the token, whose sealed audit
// head object the other would replace. kmsd --restore waits for it too.
TEST_F(ServiceTest, ATwinOnTheSameKeystoreIsRefusedBeforeItOpensTheToken) {
  Start("");
  ASSERT_TRUE(Call("tenant.create", "acme").has_value());
  const std::string own_socket = socket_path_;
  socket_path_ = dir_ / "twin.sock";
  const std::string twin_config = WriteConfig(ConfigYaml(""));
  socket_path_ = own_socket;
  // Bounded: without the lock the twin would start and serve.
  const CommandResult twin =
      RunCommand({"/usr/bin/timeout", "30", KMSD_BINARY, "--config", twin_config}, "", Env());
  EXPECT_EQ(twin.exit_code, 1) << twin.err;
  EXPECT_THAT(twin.out + twin.err,
              HasSubstr("another kmsd is using the keystore in " + dir_.path().string()));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "twin.sock"));
  const CommandResult restore =
      RunKmsd({"--config", twin_config, "--restore", dir_ / "no-such-backup"}, Env());
  EXPECT_EQ(restore.exit_code, 1);
  EXPECT_THAT(restore.err, HasSubstr("another kmsd is using the keystore"));
  // The first one serves, and its audit log (past a few seals) verifies.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_TRUE(Call("tenant.describe", "acme").has_value());
  auto verified = Call("audit.verify", "");
  EXPECT_TRUE(verified.has_value()) << verified.error();
  Stop();
  // Once it stopped, the lock is free: the twin's configuration starts.
  socket_path_ = dir_ / "twin.sock";
  Start("");
  EXPECT_TRUE(Call("tenant.describe", "acme").has_value());
}

}  // namespace
}  // namespace kmsd::testing
