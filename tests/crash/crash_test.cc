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
// the last kill, everything (CheckPlan).
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
#include "tests/support/daemon_process.h"
#include "tests/support/temp_dir.h"

namespace kmsd::testing {
namespace {

using SteadyClock = std::chrono::steady_clock;
using Pairs = std::vector<std::pair<std::string, std::string>>;

// Long enough that a loaded sanitizer build does not time out a live call. A
// call in flight when kmsd dies fails at once (the client sets no resend
// time); one sent after that would wait this long, which `stop` prevents.
constexpr auto kClientTimeout = std::chrono::milliseconds(5000);
constexpr auto kVerifyTimeout = std::chrono::milliseconds(60000);
constexpr int kMinTrafficMs = 30;
constexpr int kMaxTrafficMs = 400;
constexpr auto kMinWriteInterval = std::chrono::milliseconds(15);  // per client
constexpr int kVerifyThreads = 2;
constexpr auto kStopTimeout = std::chrono::seconds(30);
// batch-decrypt takes at most 1024 items; keep each frame well under 1 MiB.
constexpr size_t kBatchItems = 512;
constexpr size_t kBatchBytes = 384 * 1024;
constexpr size_t kMaxLossesPrinted = 200;
// Bounds on the older items re-checked after each kill (see CheckPlan): as
// many ciphertexts as the previous check decrypted in this time, at least the
// minimum; a window of keys.
constexpr double kOldSecretsSeconds = 0.4;
constexpr size_t kMinOldSecretsPerCheck = 1000;
constexpr size_t kOldKeysPerCheck = 400;

struct Options {
  int kills = 30;
  int clients = 4;
  uint64_t seed = 0;
  bool check_all = false;  // re-check every old item after every kill
};

double Seconds(SteadyClock::duration d) { return std::chrono::duration<double>(d).count(); }

Bytes Copy(std::span<const uint8_t> span) { return Bytes(span.begin(), span.end()); }

std::string Describe(const Pairs& context) {
  if (context.empty()) return "no context";
  std::string out = "context {";
  for (size_t i = 0; i < context.size(); ++i) {
    out += (i ? ", " : "") + context[i].first + "=" + context[i].second;
  }
  return out + "}";
}

Value::Map ContextMap(const Pairs& context) {
  Value::Map map;
  for (const auto& [k, v] : context) map.emplace_back(k, v);
  return map;
}

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out.empty() ? "none" : out;
}

// Everything acknowledged so far. Records only grow; indexes stay valid.
struct TenantRecord {
  std::string name;
  int round = 0;                          // acknowledged in this round (0: set-up)
  std::vector<size_t> keys;               // into Model::keys
  std::vector<size_t> aliases;            // into Model::aliases
  std::vector<std::string> unknown_keys;  // key.create sent, never acknowledged
};

struct KeyRecord {
  std::string tenant;
  std::string name;
  uint64_t version = 1;  // the highest version acknowledged
  int round = 0;
};

struct AliasRecord {
  std::string tenant;
  std::string name;
  std::string key;                 // target of the last acknowledged create or update
  int round = 0;                   // when that was acknowledged
  std::vector<std::string> tried;  // targets of updates sent since, not acknowledged
  bool busy = false;               // an update is in flight, or unresolved until the next round
};

struct SecretRecord {
  std::string tenant;
  std::string key;  // key name from the reply
  uint64_t version = 0;
  Bytes ciphertext;
  Bytes plaintext;
  Pairs context;
  bool data_key = false;  // from generate-data-key
  int round = 0;
};

struct Model {
  std::mutex mu;
  std::vector<TenantRecord> tenants;
  std::vector<KeyRecord> keys;
  std::vector<AliasRecord> aliases;
  std::vector<SecretRecord> secrets;
  std::vector<std::string> unknown_tenants;  // tenant.create sent, never acknowledged
  uint64_t next_name = 0;

  std::string NewName(const char* prefix) { return prefix + std::to_string(next_name++); }

  void AddTenant(const std::string& name, int round) {
    TenantRecord tenant{name, round, {}, {}, {}};
    static constexpr std::pair<const char*, const char*> kDefaults[] = {
        {"data-encryption-key", "alias/data"},
        {"secrets-key", "alias/secrets"},
        {"api-keys-key", "alias/api-keys"}};
    for (const auto& [key, alias] : kDefaults) {
      tenant.keys.push_back(keys.size());
      keys.push_back({name, key, 1, round});
      tenant.aliases.push_back(aliases.size());
      aliases.push_back({name, alias, key, round, {}, false});
    }
    tenants.push_back(std::move(tenant));
    std::erase(unknown_tenants, name);
  }
};

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

// Which items the check after each kill decrypts (batch-decrypt) and whose
// versions it lists (key.list-versions, one call per key); every tenant, key
// (existence, latest_version) and alias is checked every time, from one
// key.list and alias.list per tenant. Always covered: everything acknowledged
// since the previous check, and every key rotated since. Older items too
// while they fit in a time budget (as fast as the previous check went), else
// a window of them that moves on each time, so that the checks stay bounded
// however fast the machine produces items or slow the build decrypts them,
// and each item is still re-checked every few kills. After the last kill,
// everything.
struct CheckPlan {
  bool everything = false;
  size_t secrets_seen = 0;  // model.secrets[0, secrets_seen) were checked before
  size_t secret_cursor = 0;
  double seconds_per_secret = 0;  // as measured by the previous check
  size_t OldSecretsBudget() const {
    if (seconds_per_secret <= 0) return kMinOldSecretsPerCheck;
    return std::max(kMinOldSecretsPerCheck,
                    static_cast<size_t>(kOldSecretsSeconds / seconds_per_secret));
  }
  std::vector<uint64_t> key_versions_seen;  // per key, the version last listed
  size_t key_cursor = 0;
};

// Checks the model against a freshly started daemon. Runs with no client
// threads about, so reads the model without its lock.
class Verifier {
 public:
  Verifier(Model& model, CheckPlan& plan, const std::string& socket, int after_kill)
      : model_(model), plan_(plan), socket_(socket), after_kill_(after_kill) {}

  // Returns false if anything was lost or a call failed.
  bool Run() {
    ChooseKeys();
    auto connection = Connection::Dial(socket_, kVerifyTimeout);
    if (!connection) {
      if (!Unreachable(connection.error())) {
        Lost("cannot connect to verify: " + connection.error().ToString());
      }
      return false;
    }
    CheckTenants(**connection);
    for (const auto& tenant : model_.tenants) {
      if (missing_tenants_.count(tenant.name) == 0) CheckKeysAndAliases(**connection, tenant);
    }
    connection->reset();
    CheckSecrets(ChooseSecrets());
    return losses_ == 0 && !unreachable_;
  }

  uint64_t items() const { return items_; }
  // kmsd stopped answering during the check (which then stopped).
  bool unreachable() const { return unreachable_; }
  uint64_t secrets_checked() const { return secrets_checked_; }

 private:
  void Lost(const std::string& what) {
    std::lock_guard lock(mu_);
    if (++losses_ <= kMaxLossesPrinted) {
      std::fprintf(stderr, "LOST after kill %d: %s\n", after_kill_, what.c_str());
    } else if (losses_ == kMaxLossesPrinted + 1) {
      std::fprintf(stderr, "LOST after kill %d: ... (more not printed)\n", after_kill_);
    }
  }

  static std::string Acked(int round) {
    return round == 0 ? "acknowledged before the first kill"
                      : "acknowledged in round " + std::to_string(round);
  }

  // True, and the check stops, if `status` says kmsd no longer answers:
  // every later call would wait for the timeout.
  bool Unreachable(const Status& status) {
    if (status.code() != Code::kUnavailable) return false;
    if (!unreachable_.exchange(true)) {
      std::fprintf(stderr, "FAILURE: kmsd stopped answering the check after kill %d: %s\n",
                   after_kill_, status.ToString().c_str());
    }
    return true;
  }

  // The check only reads, so a call whose connection closed under it is asked
  // again, as a client would: kmsd's watchdog re-creates the listener, which
  // closes every connection, when its probe starves (README, "Known limits"),
  // as it can on a loaded machine right after a restart.
  // `make_args` gives each attempt its arguments (a Value is not copyable).
  static Result<Reply> CallAgainAfterReset(Connection& connection, std::string_view op,
                                           const std::string& tenant,
                                           const std::function<Value::Map()>& make_args) {
    constexpr int kAttempts = 3;
    for (int attempt = 1;; ++attempt) {
      auto reply = connection.Call(op, tenant, make_args());
      if (reply || attempt == kAttempts ||
          reply.error().message().find("Connection reset") == std::string::npos) {
        return reply;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
  }

  // The reply, or nothing after reporting the failure (a listing that fails
  // is one failure, not one per item it should have listed).
  std::optional<Reply> MustCall(
      Connection& connection, std::string_view op, const std::string& tenant,
      const std::function<Value::Map()>& make_args = [] { return Value::Map{}; }) {
    if (unreachable_) return std::nullopt;
    auto reply = CallAgainAfterReset(connection, op, tenant, make_args);
    if (!reply) {
      if (!Unreachable(reply.error())) {
        Lost(std::string(op) + (tenant.empty() ? "" : " in tenant " + tenant) +
             " failed: " + reply.error().ToString());
      }
      return std::nullopt;
    }
    return std::move(*reply);
  }

  // Each entry of the array `field` of `reply` as Fields; reports bad shapes.
  std::vector<Fields> Entries(const Reply& reply, std::string_view field) {
    std::vector<Fields> out;
    auto array = reply.result().Array(field);
    if (!array) {
      Lost("reply has no " + std::string(field) + ": " + array.error().ToString());
      return out;
    }
    for (const auto& object : *array) {
      auto entry = Fields::Of(object, field);
      if (!entry) {
        Lost("bad entry in " + std::string(field) + ": " + entry.error().ToString());
        continue;
      }
      out.push_back(*entry);
    }
    return out;
  }

  void CheckTenants(Connection& connection) {
    auto reply = MustCall(connection, "tenant.list", "");
    if (!reply) {
      for (const auto& tenant : model_.tenants) missing_tenants_.insert(tenant.name);
      return;
    }
    std::set<std::string, std::less<>> present;
    for (const Fields& entry : Entries(*reply, "tenants")) {
      present.insert(std::string(entry.String("name").value_or("")));
    }
    for (const auto& tenant : model_.tenants) {
      ++items_;
      if (present.count(tenant.name) == 0) {
        missing_tenants_.insert(tenant.name);
        Lost("tenant " + tenant.name + " (" + Acked(tenant.round) + ") is not in tenant.list");
      }
    }
  }

  void CheckKeysAndAliases(Connection& connection, const TenantRecord& tenant) {
    std::map<std::string, uint64_t, std::less<>> latest;  // key name -> latest_version
    auto keys = MustCall(connection, "key.list", tenant.name);
    if (!keys) return;
    for (const Fields& entry : Entries(*keys, "keys")) {
      latest[std::string(entry.String("name").value_or(""))] =
          entry.Uint("latest_version").value_or(0);
    }
    for (size_t k : tenant.keys) {
      const KeyRecord& key = model_.keys[k];
      const std::string what = "key " + key.name + " in tenant " + tenant.name;
      ++items_;
      auto found = latest.find(key.name);
      if (found == latest.end()) {
        Lost(what + " (" + Acked(key.round) + ") is not in key.list");
        continue;
      }
      if (found->second < key.version) {
        Lost(what + ": latest_version " + std::to_string(found->second) + ", but version " +
             std::to_string(key.version) + " was acknowledged");
      }
      if (!list_versions_[k]) continue;
      plan_.key_versions_seen[k] = key.version;
      items_ += key.version;
      auto versions = MustCall(connection, "key.list-versions", tenant.name, [&] {
        Value::Map args;
        args.emplace_back("key", key.name);
        return args;
      });
      if (!versions) continue;
      std::set<uint64_t> listed;
      for (const Fields& entry : Entries(*versions, "versions")) {
        listed.insert(entry.Uint("version").value_or(0));
      }
      for (uint64_t v = 1; v <= key.version; ++v) {
        if (listed.count(v) == 0) {
          Lost(what + ": version " + std::to_string(v) + " (acknowledged up to " +
               std::to_string(key.version) + ") is not in key.list-versions");
        }
      }
    }

    std::map<std::string, std::string, std::less<>> targets;  // alias -> key name
    auto aliases = MustCall(connection, "alias.list", tenant.name);
    if (!aliases) return;
    for (const Fields& entry : Entries(*aliases, "aliases")) {
      targets[std::string(entry.String("alias").value_or(""))] =
          std::string(entry.String("key").value_or(""));
    }
    for (size_t a : tenant.aliases) {
      const AliasRecord& alias = model_.aliases[a];
      ++items_;
      const std::string what = alias.name + " in tenant " + tenant.name;
      auto found = targets.find(alias.name);
      if (found == targets.end()) {
        Lost(what + " (" + Acked(alias.round) + ") is not in alias.list");
        continue;
      }
      if (found->second != alias.key &&
          std::find(alias.tried.begin(), alias.tried.end(), found->second) == alias.tried.end()) {
        Lost(what + " points to " + found->second + "; the last acknowledged target is " +
             alias.key + " (" + Acked(alias.round) +
             "), unacknowledged updates since: " + Join(alias.tried));
      }
    }
  }

  // Sets list_versions_ for the keys whose versions are listed this time.
  void ChooseKeys() {
    const size_t total = model_.keys.size();
    plan_.key_versions_seen.resize(total, 0);
    list_versions_.assign(total, plan_.everything || total <= kOldKeysPerCheck);
    size_t clean = 0;
    for (size_t k = 0; k < total; ++k) {
      if (plan_.key_versions_seen[k] != model_.keys[k].version) {
        list_versions_[k] = true;
      } else {
        ++clean;
      }
    }
    if (clean == 0) return;
    // A window of kOldKeysPerCheck keys from the cursor on, over all keys.
    for (size_t n = 0; n < std::min(kOldKeysPerCheck, total); ++n) {
      list_versions_[(plan_.key_cursor + n) % total] = true;
    }
    plan_.key_cursor = (plan_.key_cursor + kOldKeysPerCheck) % total;
  }

  // The secrets (indexes into model.secrets) decrypted this time.
  std::vector<size_t> ChooseSecrets() {
    const size_t total = model_.secrets.size(), old = plan_.secrets_seen;
    const size_t budget = plan_.OldSecretsBudget();
    std::vector<size_t> chosen;
    if (plan_.everything || old <= budget) {
      for (size_t i = 0; i < old; ++i) chosen.push_back(i);
    } else {
      for (size_t n = 0; n < budget; ++n) chosen.push_back((plan_.secret_cursor + n) % old);
      plan_.secret_cursor = (plan_.secret_cursor + budget) % old;
    }
    for (size_t i = old; i < total; ++i) chosen.push_back(i);
    plan_.secrets_seen = total;
    return chosen;
  }

  // Ciphertexts and wrapped data keys, through batch-decrypt, in batches per
  // tenant shared out to a few connections.
  void CheckSecrets(const std::vector<size_t>& chosen) {
    const auto started = SteadyClock::now();
    std::map<std::string, std::vector<size_t>> by_tenant;
    for (size_t i : chosen) by_tenant[model_.secrets[i].tenant].push_back(i);
    struct Batch {
      std::string tenant;
      std::vector<size_t> items;
    };
    std::vector<Batch> batches;
    for (auto& [tenant, indexes] : by_tenant) {
      size_t bytes = 0;
      for (size_t i : indexes) {
        const SecretRecord& s = model_.secrets[i];
        size_t size = s.ciphertext.size() + s.plaintext.size() + 64;
        for (const auto& [k, v] : s.context) size += k.size() + v.size() + 8;
        if (batches.empty() || batches.back().tenant != tenant ||
            batches.back().items.size() >= kBatchItems || bytes + size > kBatchBytes) {
          batches.push_back({tenant, {}});
          bytes = 0;
        }
        batches.back().items.push_back(i);
        bytes += size;
      }
    }
    std::atomic<size_t> next{0};
    auto worker = [&] {
      auto connection = Connection::Dial(socket_, kVerifyTimeout);
      if (!connection) {
        if (!Unreachable(connection.error())) {
          Lost("cannot connect to verify: " + connection.error().ToString());
        }
        return;
      }
      for (size_t b = next++; b < batches.size(); b = next++) {
        CheckBatch(**connection, batches[b].tenant, batches[b].items);
      }
    };
    std::vector<std::thread> workers;
    for (int i = 0; i < kVerifyThreads; ++i) workers.emplace_back(worker);
    for (auto& w : workers) w.join();
    items_ += chosen.size();
    secrets_checked_ = chosen.size();
    if (chosen.size() >= 200) {
      plan_.seconds_per_secret = Seconds(SteadyClock::now() - started) / chosen.size();
    }
  }

  void CheckBatch(Connection& connection, const std::string& tenant,
                  const std::vector<size_t>& indexes) {
    auto make_args = [&] {
      Value::Array items;
      for (size_t i : indexes) {
        const SecretRecord& s = model_.secrets[i];
        Value::Map item;
        item.emplace_back("ciphertext", s.ciphertext);
        if (!s.context.empty()) item.emplace_back("context", ContextMap(s.context));
        items.emplace_back(std::move(item));
      }
      Value::Map args;
      args.emplace_back("items", std::move(items));
      return args;
    };
    if (unreachable_) return;
    auto reply = CallAgainAfterReset(connection, "batch-decrypt", tenant, make_args);
    if (!reply) {
      if (Unreachable(reply.error())) return;
      // E.g. NOT_FOUND: the tenant of these items is gone.
      for (size_t i : indexes) Lost(Name(model_.secrets[i]) + ": " + reply.error().ToString());
      return;
    }
    auto results = reply->result().Array("results");
    if (!results || results->size() != indexes.size()) {
      Lost("batch-decrypt in tenant " + tenant + " answered " +
           (results ? std::to_string(results->size()) : std::string("no")) + " results for " +
           std::to_string(indexes.size()) + " items");
      return;
    }
    for (size_t j = 0; j < indexes.size(); ++j) {
      const SecretRecord& s = model_.secrets[indexes[j]];
      auto item = Fields::Of((*results)[j], "result");
      if (!item) {
        Lost(Name(s) + ": bad result: " + item.error().ToString());
        continue;
      }
      if (auto error = item->Map("error")) {
        Lost(Name(s) + ": batch-decrypt gave " + std::string(error->String("code").value_or("?")) +
             ": " + std::string(error->String("message").value_or("")));
        continue;
      }
      auto plaintext = item->Binary("plaintext");
      auto key = item->String("key_name");
      auto version = item->Uint("version");
      if (!plaintext || !key || !version) {
        Lost(Name(s) + ": result without plaintext, key_name or version");
      } else if (!std::equal(plaintext->begin(), plaintext->end(), s.plaintext.begin(),
                             s.plaintext.end())) {
        Lost(Name(s) + ": decrypts to a different " + std::to_string(plaintext->size()) +
             "-byte plaintext");
      } else if (*key != s.key || *version != s.version) {
        Lost(Name(s) + ": decrypts under key " + std::string(*key) + " version " +
             std::to_string(*version));
      }
    }
  }

  static std::string Name(const SecretRecord& s) {
    return std::string(s.data_key ? "wrapped data key" : "ciphertext") + " in tenant " + s.tenant +
           " under key " + s.key + " version " + std::to_string(s.version) + " (" +
           std::to_string(s.plaintext.size()) + "-byte plaintext, " + Describe(s.context) + ", " +
           Acked(s.round) + ")";
  }

  Model& model_;
  CheckPlan& plan_;
  const std::string socket_;
  const int after_kill_;
  std::mutex mu_;
  uint64_t losses_ = 0;
  std::atomic<bool> unreachable_{false};
  uint64_t items_ = 0;
  uint64_t secrets_checked_ = 0;
  std::vector<bool> list_versions_;  // per key
  std::set<std::string, std::less<>> missing_tenants_;
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
