// kmsd_legacy_keystore: writes a kmsd --dev directory as kmsd left it before
// its token objects were hardened (issue 8), for the kill-during-migration
// test (migration_crash_test.cc) and for trying the migration by hand.
//
//   kmsd_legacy_keystore DIR OUT [--tenants N] [--versions V]
//
// DIR must not hold a keystore yet; it is prepared as `kmsd --dev DIR` would
// (token, PIN files). Then, with kmsd's own pkcs11/ and keystore/ code:
// - an unhardened platform master key (modifiable, copyable, no templates);
// - N tenants legacy-00, legacy-01, ... with the default keys and aliases;
//   every third tenant is of schema 2 (its keys' versions wrapped under an
//   unhardened tenant root, kek_label empty), the others have an unhardened
//   KEK per key; key j of tenant i has 1 + (i + j) % V versions;
// - one ciphertext per version, sealed as kmsd seals them (docs/FORMATS.md,
//   empty encryption context) with that version's key.
// OUT gets one line per ciphertext: tenant, key, version, plaintext and the
// ciphertext in hex, tab-separated. Exit 0, 1 on any failure, 2 for usage.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "daemon/config.h"
#include "daemon/dev_mode.h"
#include "keystore/hierarchy.h"
#include "keystore/internal/catalog.h"
#include "keystore/store.h"
#include "pkcs11/module.h"
#include "pkcs11/token.h"

namespace kmsd {
namespace {

constexpr int64_t kCreatedAt = 1700000000;

struct Options {
  std::string dir;
  std::string out;
  int tenants = 30;
  int versions = 4;
};

std::string Hex(std::span<const uint8_t> bytes) {
  std::string out(bytes.size() * 2, '\0');
  HexEncode(bytes, out.data());
  return out;
}

std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Writes legacy tenants into an open token and a fresh keystore.
class LegacyWriter {
 public:
  LegacyWriter(pkcs11::Token& token, KeyStore& store, std::ofstream& out)
      : token_(token), store_(store), out_(out) {}

  Status WriteTenant(int index, int max_versions) {
    char name[32];
    std::snprintf(name, sizeof name, "legacy-%02d", index);
    TenantRecord tenant{name, "", kCreatedAt, std::nullopt};
    std::optional<pkcs11::ObjectHandle> root;
    if (index % 3 == 0) {
      std::array<uint8_t, 8> suffix;
      RETURN_IF_ERROR(token_.GenerateRandom(suffix));
      tenant.root_label = "tenants/" + tenant.name + "/root/" + Hex(suffix);
      ASSIGN_OR_RETURN(root, token_.TEST_CreateUnhardenedWrappingKey(tenant.root_label));
    }
    std::vector<KeyRecord> keys;
    std::vector<KeyVersionRecord> first_versions, later_versions;
    std::vector<AliasRecord> aliases;
    int j = 0;
    for (const DefaultKey& default_key : kDefaultTenantKeys) {
      KeyRecord key;
      RETURN_IF_ERROR(token_.GenerateRandom(key.id));
      key.tenant = tenant.name;
      key.name = default_key.name;
      key.created_at = kCreatedAt;
      pkcs11::ObjectHandle wrapping_key = root.value_or(0);
      if (!root) {
        key.kek_label = KekLabel(tenant.name, key.id);
        ASSIGN_OR_RETURN(wrapping_key, token_.TEST_CreateUnhardenedWrappingKey(key.kek_label));
      }
      const int versions = 1 + (index + j++) % max_versions;
      for (int v = 1; v <= versions; ++v) {
        ASSIGN_OR_RETURN(Bytes wrapped, token_.GenerateWrappedAesKey(wrapping_key));
        KeyVersionRecord version{key.id, static_cast<uint32_t>(v), std::move(wrapped), kCreatedAt,
                                 kAllEncryptionsReserved};
        RETURN_IF_ERROR(Seal(tenant.name, key.name, wrapping_key, version));
        (v == 1 ? first_versions : later_versions).push_back(std::move(version));
      }
      aliases.push_back(
          {tenant.name, std::string(default_key.alias), key.id, kCreatedAt, kCreatedAt});
      keys.push_back(std::move(key));
    }
    // As kmsd kept them: the tenant in one transaction, rotations after.
    RETURN_IF_ERROR(store_.CreateTenant(tenant, keys, first_versions, aliases));
    for (const KeyVersionRecord& version : later_versions) {
      RETURN_IF_ERROR(store_.AddKeyVersion(version));
    }
    return OkStatus();
  }

 private:
  // One ciphertext under `version` (docs/FORMATS.md, version 1), recorded in OUT.
  Status Seal(const std::string& tenant, const std::string& key, pkcs11::ObjectHandle wrapping_key,
              const KeyVersionRecord& version) {
    ASSIGN_OR_RETURN(pkcs11::KeyRef unwrapped, token_.UnwrapAesKey(wrapping_key, version.wrapped));
    Iv iv;
    RETURN_IF_ERROR(token_.GenerateRandom(iv));
    const std::string plaintext = tenant + "/" + key + " v" + std::to_string(version.version) +
                                  ", sealed before the migration";
    Bytes ciphertext = BuildHeader(version.key_id, version.version, iv);
    const Bytes aad = BuildAad(std::span(ciphertext).first(kBoundHeaderSize), tenant, {});
    auto sealed = token_.EncryptGcm(unwrapped, iv, aad, AsBytes(plaintext));
    RETURN_IF_ERROR(token_.DestroyObject(unwrapped.handle));
    RETURN_IF_ERROR(sealed);
    ciphertext.insert(ciphertext.end(), sealed->begin(), sealed->end());
    out_ << tenant << '\t' << key << '\t' << version.version << '\t' << plaintext << '\t'
         << Hex(ciphertext) << '\n';
    return out_ ? OkStatus() : Status(Code::kInternal, "cannot write the ciphertexts file");
  }

  pkcs11::Token& token_;
  KeyStore& store_;
  std::ofstream& out_;
};

Status WriteLegacyDirectory(const Options& options) {
  ASSIGN_OR_RETURN(Config config, PrepareDevDirectory(options.dir));
  if (std::filesystem::exists(config.keystore_path)) {
    return Status(Code::kAlreadyExists, config.keystore_path + " exists; give a fresh DIR");
  }
  ASSIGN_OR_RETURN(SecretBuffer pin, ReadPinFile(config.pin_file));
  ASSIGN_OR_RETURN(auto module, pkcs11::Module::Load(config.module_path));
  ASSIGN_OR_RETURN(auto token, pkcs11::Token::Open(module, config.token_label, pin, 2));
  // kmsd makes the audit-log key itself at start; the master key it replaces.
  RETURN_IF_ERROR(token->TEST_CreateUnhardenedWrappingKey(kPlatformMasterKeyLabel));
  ASSIGN_OR_RETURN(auto store, OpenSqliteKeyStore(config.keystore_path));
  std::ofstream out(options.out, std::ios::trunc);
  LegacyWriter writer(*token, *store, out);
  for (int i = 0; i < options.tenants; ++i) {
    RETURN_IF_ERROR(writer.WriteTenant(i, options.versions));
  }
  out.close();
  return out ? OkStatus() : Status(Code::kInternal, "cannot write " + options.out);
}

bool ParseArgs(int argc, char** argv, Options* options) {
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    int* number = arg == "--tenants"    ? &options->tenants
                  : arg == "--versions" ? &options->versions
                                        : nullptr;
    if (number != nullptr) {
      if (++i == argc) return false;
      *number = std::atoi(argv[i]);
      if (*number < 1 || *number > 1000) return false;
    } else if (arg.starts_with("-")) {
      return false;
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 2) return false;
  options->dir = positional[0];
  options->out = positional[1];
  return true;
}

int Main(int argc, char** argv) {
  Options options;
  if (!ParseArgs(argc, argv, &options)) {
    std::fprintf(stderr, "usage: kmsd_legacy_keystore DIR OUT [--tenants N] [--versions V]\n");
    return 2;
  }
  if (Status status = WriteLegacyDirectory(options); !status.ok()) {
    std::fprintf(stderr, "kmsd_legacy_keystore: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace kmsd

int main(int argc, char** argv) { return kmsd::Main(argc, argv); }
