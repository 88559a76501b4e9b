// The crash test's model (tests/crash/crash_test.cc): everything kmsd
// acknowledged to the test's clients, kept so that the Verifier
// (crash_verifier.h) can check it after each restart. Records only grow;
// indexes into them stay valid. Model's lock guards it while client threads
// run; the Verifier reads it with none about.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "protocol/value.h"

namespace kmsd::testing::crash {

using SteadyClock = std::chrono::steady_clock;
using Pairs = std::vector<std::pair<std::string, std::string>>;

inline double Seconds(SteadyClock::duration d) { return std::chrono::duration<double>(d).count(); }

inline std::string Describe(const Pairs& context) {
  if (context.empty()) return "no context";
  std::string out = "context {";
  for (size_t i = 0; i < context.size(); ++i) {
    out += (i ? ", " : "") + context[i].first + "=" + context[i].second;
  }
  return out + "}";
}

inline Value::Map ContextMap(const Pairs& context) {
  Value::Map map;
  for (const auto& [k, v] : context) map.emplace_back(k, v);
  return map;
}

inline std::string Join(const std::vector<std::string>& items) {
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

}  // namespace kmsd::testing::crash
