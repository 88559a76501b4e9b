// The crash test's check after each restart (tests/crash/crash_test.cc):
// the Verifier lists every tenant, key, key version and alias of the Model
// (crash_model.h) through a fresh connection to kmsd, and decrypts the
// ciphertexts and data keys the CheckPlan picks, with batch-decrypt, on
// kVerifyThreads connections. It reports each lost item on stderr; Run()
// says whether anything was lost or kmsd stopped answering.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "client/connection.h"
#include "protocol/message.h"
#include "tests/crash/crash_model.h"

namespace kmsd::testing::crash {

constexpr auto kVerifyTimeout = std::chrono::milliseconds(60000);
constexpr int kVerifyThreads = 2;
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

  // The check only reads, so a call whose connection closed under it (an
  // idle close racing the call) is asked again, as a client would.
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

}  // namespace kmsd::testing::crash
