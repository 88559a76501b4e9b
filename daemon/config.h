// Config: everything kmsd needs to start, from a YAML file (--config) or
// made up by dev mode (--dev DIR). docs/CONFIG.md describes each field.
// A plain value; LoadConfig validates it fully, so a Config is usable as is.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "keystore/hierarchy.h"
#include "protocol/secret_buffer.h"
#include "protocol/status.h"

namespace kmsd {

struct Config {
  std::string module_path = "/usr/lib/softhsm/libsofthsm2.so";
  std::string token_label;
  // First line: the token's user PIN. From pkcs11.pin_file, or
  // pkcs11.pin_credential: the file of that name in $CREDENTIALS_DIRECTORY.
  std::string pin_file;
  std::string socket_path = "/run/kmsd/kmsd.sock";
  uint32_t socket_mode = 0660;
  std::string keystore_path = "/var/lib/kmsd/keystore.db";
  // The only directory keystore.backup writes to (keystore/backup_directory.h).
  std::string backup_dir = "/var/lib/kmsd/backups";
  std::set<uint64_t> admin_uids;
  std::set<uint64_t> admin_gids;
  // Peers that may connect to present an API key (admins and peers a
  // principal is bound to may anyway).
  std::set<uint64_t> api_key_peer_uids;
  std::set<uint64_t> api_key_peer_gids;
  size_t max_frame_bytes = 1 << 20;
  size_t workers = 8;
  // Connections one uid may hold open at once; more are refused at connect.
  size_t max_connections_per_uid = 64;
  // Connections all peers together may hold open (a thread each); more are
  // refused at connect.
  size_t max_connections = 1024;
  // A connection with no complete request for this long (and none running)
  // is closed; clients reconnect.
  int64_t idle_timeout_ms = 30000;
  // Admission (daemon/server.h): requests queued for one tenant, for all
  // tenants, and their frames' bytes; more are THROTTLED.
  size_t max_queued_per_tenant = 64;
  size_t max_queued = 256;
  size_t max_queued_bytes = 64 << 20;
  // Failed attempts (guessed API keys, session tokens, TOTP codes) before a
  // peer is locked out, and its first lockout (doubling, at most 15 min).
  uint32_t failed_attempts_before_lockout = 5;
  int64_t first_lockout_ms = 1000;
  // On SIGTERM: how long requests in flight may take to finish before kmsd
  // gives up on them and exits non-zero.
  int64_t drain_timeout_ms = 10000;
  std::string log_level = "info";
  std::string log_file;  // empty: stderr
  // Pending windows, rotation periods and the encryption limit per version:
  // the defaults unless lowered (for tests that watch them end).
  LifecycleOptions lifecycle;
  // How often kmsd looks for windows that ended and keys due to rotate.
  int64_t due_work_interval_ms = 1000;
  // The audit log (docs/AUDIT.md): its directory (empty: "audit" beside the
  // keystore), how often it is fsynced and sealed, when a file rotates, and
  // (benchmarks only) entries written to /dev/null.
  std::string audit_dir;
  int64_t audit_commit_interval_ms = 200;
  uint64_t audit_max_file_bytes = 64ull << 20;
  uint64_t audit_reserve_bytes = 1ull << 20;  // disk kept allocated ahead of the entries
  bool audit_discard = false;
  // How often entries past their tenant's retention are pruned, and how many
  // seconds a "day" of retention_days lasts (lowered by tests only).
  int64_t audit_prune_interval_ms = 3600000;
  int64_t audit_retention_day_seconds = 86400;
  // Tenant policies as files, applied at start and on SIGHUP
  // (daemon/policy_files.h); empty: none.
  std::string policies_dir;
};

// The audit directory `config` names, or its default.
std::string AuditDirOf(const Config& config);

// INVALID_ARGUMENT naming the file and the field when anything is missing,
// mistyped, unknown or out of range.
Result<Config> LoadConfig(const std::string& path);
// The same for the text of a config file; `path` names it in messages. Pure
// (reads no file): LoadConfig reads the file, then calls it.
Result<Config> ParseConfig(std::string_view yaml, const std::string& path);

// Reads the first line of a PIN file into locked memory. The file must not be
// readable by group or others.
Result<SecretBuffer> ReadPinFile(const std::string& path);

}  // namespace kmsd
