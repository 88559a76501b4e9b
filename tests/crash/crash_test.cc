// Crash durability: DESIGN.md invariant 4, "nothing acknowledged is lost".
//
// kmsd_crash_test runs a real kmsd --dev in a temp dir and, --kills times: lets
// --clients threads (one Connection each) send random writes and encryptions,
// SIGKILLs kmsd after a random 30-400 ms of that traffic, starts it again on
// the same directory (token and keystore reused, no manual step) and checks
// that everything an ok reply ever acknowledged is still there: every tenant,
// key, key version and alias, and that every ciphertext and wrapped data key
// ever returned decrypts (batch-decrypt) to its plaintext under its context,
// naming the same key and version.
//
// A call that failed because kmsd died (UNAVAILABLE) may or may not have
// happened: the check tolerates items that were never acknowledged, a key
// version above the acknowledged one, and an alias pointing at the target of
// any update tried after its last acknowledged one. Some encryptions use keys
// and tenants whose creation is still in flight or was never acknowledged
// (NOT_FOUND is then fine): a ciphertext acknowledged under such a key must
// survive too, which catches a change made visible before it is durable.
//
//   kmsd_crash_test [--kills N] [--seed S] [--clients N] [--check-all]
//
// After each restart it checks every tenant, key and alias, and decrypts what
// was acknowledged since the previous kill plus older items, all of them while
// they are few, else a moving window (--check-all: always all of them); after
// the last kill, everything (CheckPlan). What was acknowledged is the Model
// (crash_model.h); the check is the Verifier's (crash_verifier.h).
//
// Prints the seed first (the kill moments and each client's choices follow
// from it; the interleaving does not). Exit 0 with one summary line; 1 after
// printing every lost item, an unexpected error, or the daemon's log when it
// dies on its own or does not come back; 2 for bad usage.
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "client/connection.h"
#include "protocol/message.h"
#include "tests/crash/audit_check.h"
#include "tests/crash/crash_support.h"
#include "tests/crash/crash_verifier.h"
#include "tests/support/daemon_process.h"
#include "tests/support/temp_dir.h"

namespace kmsd::testing {
namespace {

using namespace crash;

// Long enough that a loaded sanitizer build does not time out a live call. A
// call in flight when kmsd dies fails at once (the client sets no resend
// time); one sent after that would wait this long, which `stop` prevents.
constexpr auto kClientTimeout = std::chrono::milliseconds(5000);
constexpr int kMinTrafficMs = 30;
constexpr int kMaxTrafficMs = 400;
constexpr auto kMinWriteInterval = std::chrono::milliseconds(15);  // per client
constexpr auto kStopTimeout = std::chrono::seconds(30);

struct Options {
  int kills = 30;
  int clients = 4;
  uint64_t seed = 0;
  bool check_all = false;  // re-check every old item after every kill
};

Bytes Copy(std::span<const uint8_t> span) { return Bytes(span.begin(), span.end()); }

// Failures other than lost items (unexpected error replies), from any thread.
class Failures {
 public:
  void Add(const std::string& message) {
    std::lock_guard lock(mu_);
    std::fprintf(stderr, "FAILURE: %s\n", message.c_str());
    ++count_;
  }
  int count() {
    std::lock_guard lock(mu_);
    return count_;
  }

 private:
  std::mutex mu_;
  int count_ = 0;
};

struct RoundStats {
  void Acked(std::string_view op) {
    acked++;
    std::lock_guard lock(mu);
    ++acked_by_op[std::string(op)];
  }
  std::atomic<uint64_t> acked{0};
  std::mutex mu;
  std::map<std::string, uint64_t> acked_by_op;  // guarded by mu
  std::atomic<uint64_t> unknown{0};
  std::atomic<uint64_t> refused{0};  // tolerated NOT_FOUND of speculative calls
};

// One client thread for one round: its own connection, random operations
// until `stop`.
class Client {
 public:
  Client(Model& model, Failures& failures, RoundStats& stats, const std::atomic<bool>& stop,
         std::unique_ptr<Connection> connection, uint64_t seed, int round, int id)
      : model_(model),
        failures_(failures),
        stats_(stats),
        stop_(stop),
        round_(round),
        id_(id),
        connection_(std::move(connection)) {
    std::seed_seq seq{seed, static_cast<uint64_t>(round), static_cast<uint64_t>(id)};
    rng_.seed(seq);
  }

  // Until `stop`, or until a call fails with UNAVAILABLE: kmsd is probably
  // dead, and the client does not dial again in this round (a dial that kmsd's
  // death interrupts can leak nng's pipe objects).
  void Run() {
    while (!stop_.load() && connection_) {
      int pick = Uniform(0, 99);
      if (pick < 40) {
        // A write; not more often than kMinWriteInterval, so that a fast
        // machine does not pile up more tenants and keys (token objects, read
        // at every start) than a run can afford. Slow fsyncs never hit this.
        const auto now = SteadyClock::now();
        if (now - last_write_ < kMinWriteInterval) {
          pick = Uniform(40, 99);
        } else {
          last_write_ = now;
        }
      }
      if (pick < 3) {
        TenantCreate();
      } else if (pick < 12) {
        KeyCreate();
      } else if (pick < 24) {
        KeyRotate();
      } else if (pick < 30) {
        AliasCreate();
      } else if (pick < 40) {
        AliasUpdate();
      } else if (pick < 75) {
        Encrypt(/*data_key=*/false);
      } else {
        Encrypt(/*data_key=*/true);
      }
    }
    connection_.reset();
  }

 private:
  enum class Outcome { kAcked, kUnknown, kRefused };

  struct Sent {
    Outcome outcome;
    std::optional<Reply> reply;
  };

  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  size_t Index(size_t size) { return std::uniform_int_distribution<size_t>(0, size - 1)(rng_); }
  bool Chance(int percent) { return Uniform(0, 99) < percent; }

  // Sends one request. UNAVAILABLE (kmsd died, or no reply in time) is
  // unknown: the call may or may not have happened; the connection is closed,
  // which ends this client's round. `tolerated` is an error code expected of a speculative call;
  // any other error is a failure, and unknown for the model.
  Sent Send(std::string_view op, const std::string& tenant, Value::Map args,
            Code tolerated = Code::kOk) {
    auto reply = connection_->Call(op, tenant, std::move(args));
    if (reply) {
      stats_.Acked(op);
      return {Outcome::kAcked, std::move(*reply)};
    }
    const Code code = reply.error().code();
    if (code == Code::kUnavailable) {
      stats_.unknown++;
      connection_.reset();
      return {Outcome::kUnknown, std::nullopt};
    }
    if (code == tolerated) {
      stats_.refused++;
      return {Outcome::kRefused, std::nullopt};
    }
    failures_.Add("round " + std::to_string(round_) + ", client " + std::to_string(id_) + ": " +
                  std::string(op) + " in tenant " + tenant +
                  " failed: " + reply.error().ToString());
    stats_.unknown++;
    return {Outcome::kUnknown, std::nullopt};
  }

  void Bad(std::string_view op, const std::string& what) {
    failures_.Add("round " + std::to_string(round_) + ": " + std::string(op) + " reply: " + what);
  }

  Bytes RandomBytes(size_t n) {
    Bytes out(n);
    for (auto& b : out) b = static_cast<uint8_t>(Uniform(0, 255));
    return out;
  }

  std::string RandomText(size_t n) {
    static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789-_ ";
    std::string out(n, ' ');
    for (auto& c : out) c = kChars[Uniform(0, sizeof(kChars) - 2)];
    return out;
  }

  Pairs RandomContext() {
    Pairs context;
    if (!Chance(40)) return context;
    const int entries = Uniform(1, 3);
    for (int i = 0; i < entries; ++i) {
      context.emplace_back("c" + std::to_string(i) + RandomText(Uniform(0, 8)),
                           RandomText(Uniform(0, 24)));
    }
    return context;
  }

  void TenantCreate() {
    std::string name;
    {
      std::lock_guard lock(model_.mu);
      name = model_.NewName("t");
      model_.unknown_tenants.push_back(name);
    }
    Sent sent = Send("tenant.create", name, {});
    if (sent.outcome != Outcome::kAcked) return;
    std::lock_guard lock(model_.mu);
    model_.AddTenant(name, round_);
  }

  void KeyCreate() {
    size_t t;
    std::string tenant, name;
    {
      std::lock_guard lock(model_.mu);
      t = Index(model_.tenants.size());
      tenant = model_.tenants[t].name;
      name = model_.NewName("k");
      model_.tenants[t].unknown_keys.push_back(name);
    }
    Value::Map args;
    args.emplace_back("name", name);
    if (Chance(30)) args.emplace_back("description", RandomText(Uniform(0, 64)));
    Sent sent = Send("key.create", tenant, std::move(args));
    if (sent.outcome != Outcome::kAcked) return;
    auto version = sent.reply->result().Uint("latest_version");
    if (!version) Bad("key.create", version.error().ToString());
    std::lock_guard lock(model_.mu);
    model_.tenants[t].keys.push_back(model_.keys.size());
    model_.keys.push_back({tenant, name, version.value_or(1), round_});
    std::erase(model_.tenants[t].unknown_keys, name);
  }

  void KeyRotate() {
    size_t k;
    std::string tenant, name;
    {
      std::lock_guard lock(model_.mu);
      k = Index(model_.keys.size());
      tenant = model_.keys[k].tenant;
      name = model_.keys[k].name;
    }
    Value::Map args;
    args.emplace_back("key", name);
    Sent sent = Send("key.rotate", tenant, std::move(args));
    if (sent.outcome != Outcome::kAcked) return;
    auto version = sent.reply->result().Uint("latest_version");
    if (!version) return Bad("key.rotate", version.error().ToString());
    std::lock_guard lock(model_.mu);
    model_.keys[k].version = std::max(model_.keys[k].version, *version);
  }

  void AliasCreate() {
    size_t t;
    std::string tenant, alias, key;
    {
      std::lock_guard lock(model_.mu);
      t = Index(model_.tenants.size());
      const TenantRecord& record = model_.tenants[t];
      tenant = record.name;
      key = model_.keys[record.keys[Index(record.keys.size())]].name;
      alias = model_.NewName("alias/a");
    }
    Value::Map args;
    args.emplace_back("alias", alias);
    args.emplace_back("key", key);
    Sent sent = Send("alias.create", tenant, std::move(args));
    if (sent.outcome != Outcome::kAcked) return;
    std::lock_guard lock(model_.mu);
    model_.tenants[t].aliases.push_back(model_.aliases.size());
    model_.aliases.push_back({tenant, alias, key, round_, {}, false});
  }

  // One update at a time per alias, so that "the last acknowledged update" is
  // well defined; an alias whose update was not acknowledged stays busy for
  // the rest of the round (the request might still be applied).
  void AliasUpdate() {
    size_t a = 0;
    std::string tenant, alias, key;
    {
      std::lock_guard lock(model_.mu);
      bool found = false;
      for (int attempt = 0; attempt < 8 && !found; ++attempt) {
        a = Index(model_.aliases.size());
        found = !model_.aliases[a].busy;
      }
      if (!found) return;
      AliasRecord& record = model_.aliases[a];
      record.busy = true;
      tenant = record.tenant;
      alias = record.name;
      const TenantRecord* owner = nullptr;
      for (const auto& t : model_.tenants) {
        if (t.name == tenant) owner = &t;
      }
      key = model_.keys[owner->keys[Index(owner->keys.size())]].name;
    }
    Value::Map args;
    args.emplace_back("alias", alias);
    args.emplace_back("key", key);
    Sent sent = Send("alias.update", tenant, std::move(args));
    std::lock_guard lock(model_.mu);
    AliasRecord& record = model_.aliases[a];
    if (sent.outcome == Outcome::kAcked) {
      record.key = key;
      record.round = round_;
      record.tried.clear();
      record.busy = false;
    } else {
      record.tried.push_back(key);
    }
  }

  // encrypt or generate-data-key, through a key name or an alias; sometimes
  // speculative: in a tenant or with a key whose creation was not (yet)
  // acknowledged.
  void Encrypt(bool data_key) {
    std::string tenant, key;
    bool speculative = false;
    {
      std::lock_guard lock(model_.mu);
      const TenantRecord& record = model_.tenants[Index(model_.tenants.size())];
      tenant = record.name;
      const int how = Uniform(0, 99);
      if (how < 3 && !model_.unknown_tenants.empty()) {
        tenant = model_.unknown_tenants[Index(model_.unknown_tenants.size())];
        key = "alias/data";
        speculative = true;
      } else if (how < 10 && !record.unknown_keys.empty()) {
        key = record.unknown_keys[Index(record.unknown_keys.size())];
        speculative = true;
      } else if (how < 35) {
        key = model_.aliases[record.aliases[Index(record.aliases.size())]].name;
      } else {
        key = model_.keys[record.keys[Index(record.keys.size())]].name;
      }
    }
    const Pairs context = RandomContext();
    Bytes plaintext;
    Value::Map args;
    args.emplace_back("key", key);
    if (!context.empty()) args.emplace_back("context", ContextMap(context));
    if (!data_key) {
      plaintext = RandomBytes(Chance(5) ? 0 : Uniform(1, 300));
      args.emplace_back("plaintext", plaintext);
    } else if (Chance(30)) {
      args.emplace_back("number_of_bytes", Uniform(1, 64));
    } else if (Chance(50)) {
      args.emplace_back("key_spec", Chance(50) ? "AES_128" : "AES_256");
    }
    const char* op = data_key ? "generate-data-key" : "encrypt";
    Sent sent = Send(op, tenant, std::move(args), speculative ? Code::kNotFound : Code::kOk);
    if (sent.outcome != Outcome::kAcked) return;
    const Fields& result = sent.reply->result();
    auto ciphertext = result.Binary("ciphertext");
    auto key_name = result.String("key_name");
    auto version = result.Uint("version");
    if (!ciphertext || !key_name || !version) return Bad(op, "missing ciphertext/key_name/version");
    if (data_key) {
      auto key_bytes = result.Binary("plaintext");
      if (!key_bytes) return Bad(op, key_bytes.error().ToString());
      plaintext = Copy(*key_bytes);
    }
    SecretRecord secret{
        tenant, std::string(*key_name), *version, Copy(*ciphertext), plaintext, context, data_key,
        round_};
    std::lock_guard lock(model_.mu);
    model_.secrets.push_back(std::move(secret));
  }

  Model& model_;
  Failures& failures_;
  RoundStats& stats_;
  const std::atomic<bool>& stop_;
  const int round_;
  const int id_;
  std::mt19937_64 rng_;
  std::unique_ptr<Connection> connection_;
  SteadyClock::time_point last_write_;
};

// SIGTERM, and the exit status once kmsd has exited; if it has not within
// kStopTimeout, prints its log's tail, SIGKILLs it and returns -1.
int StopWithin(DaemonProcess& daemon, const std::string& log) {
  if (!daemon.running()) return -1;  // never kill(-1, ...)
  kill(daemon.pid(), SIGTERM);
  const auto deadline = SteadyClock::now() + kStopTimeout;
  while (!Exited(daemon.pid())) {
    if (SteadyClock::now() > deadline) {
      std::fprintf(stderr,
                   "FAILURE: kmsd did not exit within %lld s of SIGTERM; end of its log:\n%s\n",
                   static_cast<long long>(kStopTimeout.count()), LogTail(log).c_str());
      daemon.Kill();
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return daemon.Stop();  // reaps it
}

std::unique_ptr<DaemonProcess> Start(const std::string& dir, const std::string& log,
                                     const std::string& when) {
  try {
    return DaemonProcess::StartDev(dir);
  } catch (const std::exception& e) {
    std::string what = e.what();
    std::fprintf(stderr, "FAILURE: kmsd did not start %s: %s\nend of its log (%s):\n%s\n",
                 when.c_str(), what.substr(0, what.find(':')).c_str(), log.c_str(),
                 LogTail(log).c_str());
    return nullptr;
  }
}

void Usage() {
  std::fprintf(stderr,
               "usage: kmsd_crash_test [--kills N] [--seed S] [--clients N] [--check-all]\n");
}

bool ParseArgs(int argc, char** argv, Options* options) {
  std::random_device device;
  options->seed = (static_cast<uint64_t>(device()) << 32 | device()) % 1000000000;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], value;
    if (arg == "--check-all") {
      options->check_all = true;
      continue;
    }
    if (auto eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (arg == "--kills" || arg == "--seed" || arg == "--clients") {
      if (i + 1 >= argc) return false;
      value = argv[++i];
    } else {
      return false;
    }
    char* end = nullptr;
    errno = 0;
    const unsigned long long n = std::strtoull(value.c_str(), &end, 10);
    if (value.empty() || *end != '\0' || errno != 0 || value[0] == '-') return false;
    if (arg == "--kills" && n >= 1 && n <= 1000000) {
      options->kills = static_cast<int>(n);
    } else if (arg == "--clients" && n >= 1 && n <= 64) {
      options->clients = static_cast<int>(n);
    } else if (arg == "--seed") {
      options->seed = n;
    } else {
      return false;
    }
  }
  return true;
}

int Main(int argc, char** argv) {
  Options options;
  if (!ParseArgs(argc, argv, &options)) {
    Usage();
    return 2;
  }
  std::printf("crash test: seed %llu, %d kills, %d clients (rerun with --seed %llu)\n",
              static_cast<unsigned long long>(options.seed), options.kills, options.clients,
              static_cast<unsigned long long>(options.seed));
  std::fflush(stdout);
  const auto started = SteadyClock::now();
  std::mt19937_64 rng(options.seed);

  TempDir temp;
  const std::string dir = temp / "kmsd";
  const std::string log = temp / "kmsd.log";
  auto daemon = Start(dir, log, "the first time");
  if (!daemon) return 1;

  // Reports a failed run: the seed, and the files for a post-mortem.
  auto failed = [&](int round) {
    std::fprintf(stderr, "crash test FAILED after kill %d (seed %llu)\n", round,
                 static_cast<unsigned long long>(options.seed));
    KeepForPostMortem(temp.path(), "kmsd-crash", options.seed);
    if (daemon && daemon->running()) StopWithin(*daemon, log);
    return 1;
  };

  Model model;
  Failures failures;
  {
    // Two tenants to start with; clients add more.
    auto connection = Connection::Dial(daemon->socket_path(), kClientTimeout);
    for (int i = 0; i < 2; ++i) {
      const std::string name = model.NewName("t");
      auto reply = connection ? (*connection)->Call("tenant.create", name)
                              : Result<Reply>(tl::unexpected(connection.error()));
      if (!reply) {
        std::fprintf(stderr, "FAILURE: tenant.create %s: %s\n", name.c_str(),
                     reply.error().ToString().c_str());
        return failed(0);
      }
      model.AddTenant(name, 0);
    }
  }

  CheckPlan plan;
  uint64_t acked = 0, unknown = 0, refused = 0, items = 0;
  std::map<std::string, uint64_t> acked_by_op;  // every round's, for the audit log
  double traffic_s = 0, restart_s = 0, verify_s = 0;
  for (int round = 1; round <= options.kills; ++round) {
    for (auto& alias : model.aliases) alias.busy = false;
    RoundStats stats;
    std::atomic<bool> stop{false};
    // Every client connects before the clock starts, so that the kill never
    // interrupts a handshake.
    std::vector<std::unique_ptr<Connection>> connections;
    for (int c = 0; c < options.clients; ++c) {
      auto dialed = Connection::Dial(daemon->socket_path(), kClientTimeout);
      if (!dialed) {
        std::fprintf(stderr, "FAILURE: cannot connect in round %d: %s\n", round,
                     dialed.error().ToString().c_str());
        return failed(round - 1);
      }
      connections.push_back(std::move(*dialed));
    }
    std::vector<std::thread> threads;
    const auto traffic_started = SteadyClock::now();
    const int delay_ms = std::uniform_int_distribution<int>(kMinTrafficMs, kMaxTrafficMs)(rng);
    const uint64_t client_seed = rng();
    for (int c = 0; c < options.clients; ++c) {
      threads.emplace_back([&, c, connection = std::move(connections[c])]() mutable {
        Client(model, failures, stats, stop, std::move(connection), client_seed, round, c).Run();
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    const bool died = Exited(daemon->pid());
    // Calls already sent stay in flight through the kill; `stop` first keeps a
    // client from sending one after it, which would wait for kClientTimeout.
    stop = true;
    daemon->Kill();
    traffic_s += Seconds(SteadyClock::now() - traffic_started);
    if (died) {
      for (auto& t : threads) t.join();
      std::fprintf(stderr, "FAILURE: kmsd died on its own in round %d; end of its log:\n%s\n",
                   round, LogTail(log).c_str());
      return failed(round - 1);
    }
    // kmsd restarts before the clients are joined: a call in flight through
    // the kill hears its connection reset, and the client library waits for a
    // redial to tell a restart from a refusal; with no kmsd it waits 2 s.
    const auto restart_started = SteadyClock::now();
    daemon = Start(dir, log, "after kill " + std::to_string(round));
    const auto restarted = SteadyClock::now();
    for (auto& t : threads) t.join();
    if (!daemon) return failed(round);
    acked += stats.acked;
    for (const auto& [op, count] : stats.acked_by_op) acked_by_op[op] += count;
    unknown += stats.unknown;
    refused += stats.refused;
    const auto verify_started = SteadyClock::now();
    restart_s += Seconds(restarted - restart_started);
    plan.everything = options.check_all || round == options.kills;
    Verifier verifier(model, plan, daemon->socket_path(), round);
    const bool intact = verifier.Run();
    verify_s += Seconds(SteadyClock::now() - verify_started);
    items = verifier.items();
    std::printf(
        "kill %d/%d after %d ms: %llu acknowledged, %llu unknown; restarted in %.2f s; "
        "%llu items checked (%llu of %zu ciphertexts and data keys) in %.2f s\n",
        round, options.kills, delay_ms, static_cast<unsigned long long>(stats.acked.load()),
        static_cast<unsigned long long>(stats.unknown.load()), Seconds(restarted - restart_started),
        static_cast<unsigned long long>(items),
        static_cast<unsigned long long>(verifier.secrets_checked()), model.secrets.size(),
        Seconds(SteadyClock::now() - verify_started));
    std::fflush(stdout);
    if (verifier.unreachable()) {
      std::fprintf(stderr, "end of kmsd's log:\n%s\n", LogTail(log).c_str());
    }
    if (!intact || failures.count() > 0) return failed(round);
    if (const std::string audit = CheckAuditLog(daemon->socket_path(), dir + "/audit", acked_by_op);
        !audit.empty()) {
      std::fprintf(stderr, "FAILURE after kill %d: %s\n", round, audit.c_str());
      return failed(round);
    }
  }

  const int status = StopWithin(*daemon, log);
  if (status != 0) {
    std::fprintf(stderr, "FAILURE: kmsd exited with %d on SIGTERM at the end\n", status);
    daemon.reset();
    return failed(options.kills);
  }
  std::printf(
      "%llu calls acknowledged, %llu unknown (kmsd died or no reply), %llu speculative calls "
      "refused; %.1f s traffic, %.1f s restarts, %.1f s checks, %.1f s in all\n",
      static_cast<unsigned long long>(acked), static_cast<unsigned long long>(unknown),
      static_cast<unsigned long long>(refused), traffic_s, restart_s, verify_s,
      Seconds(SteadyClock::now() - started));
  std::printf("crash test: %d kills survived, %llu items checked (seed %llu)\n", options.kills,
              static_cast<unsigned long long>(items),
              static_cast<unsigned long long>(options.seed));
  std::fflush(stdout);
  return 0;
}

}  // namespace
}  // namespace kmsd::testing

int main(int argc, char** argv) { return kmsd::testing::Main(argc, argv); }
