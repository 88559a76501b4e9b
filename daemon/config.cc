#include "daemon/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "protocol/secret_buffer.h"

namespace kmsd {
namespace {

class ConfigReader {
 public:
  explicit ConfigReader(std::string path) : path_(std::move(path)) {}

  Status Fail(const std::string& field, const std::string& why) const {
    return Status(Code::kInvalidArgument, "config " + path_ + ": field '" + field + "' " + why);
  }

  // Unknown keys are typos: reject them with their full name.
  Status OnlyKnown(const YAML::Node& map, const std::string& prefix,
                   std::initializer_list<std::string_view> known) const {
    if (!map.IsMap()) return Fail(prefix.empty() ? "(top level)" : prefix, "must be a map");
    for (const auto& entry : map) {
      const std::string key = entry.first.as<std::string>();
      bool found = false;
      for (auto k : known) found = found || k == key;
      if (!found) return Fail(prefix.empty() ? key : prefix + "." + key, "is not a known field");
    }
    return OkStatus();
  }

  Status String(const YAML::Node& node, const std::string& field, std::string& out,
                bool required) const {
    if (!node) return required ? Fail(field, "is required") : OkStatus();
    if (!node.IsScalar() || node.as<std::string>().empty()) {
      return Fail(field, "must be a non-empty string");
    }
    out = node.as<std::string>();
    return OkStatus();
  }

  Status Unsigned(const YAML::Node& node, const std::string& field, uint64_t min, uint64_t max,
                  uint64_t& out) const {
    if (!node) return OkStatus();
    uint64_t value;
    if (!node.IsScalar() || !YAML::convert<uint64_t>::decode(node, value)) {
      return Fail(field, "must be a non-negative integer");
    }
    if (value < min || value > max) {
      return Fail(field, "must be between " + std::to_string(min) + " and " + std::to_string(max));
    }
    out = value;
    return OkStatus();
  }

  Status IdList(const YAML::Node& node, const std::string& field, std::set<uint64_t>& out) const {
    if (!node) return OkStatus();
    if (!node.IsSequence()) return Fail(field, "must be a list of numeric ids");
    for (const auto& item : node) {
      uint64_t id;
      if (!item.IsScalar() || !YAML::convert<uint64_t>::decode(item, id)) {
        return Fail(field, "must be a list of numeric ids");
      }
      out.insert(id);
    }
    return OkStatus();
  }

 private:
  std::string path_;
};

// An absolute path other than "/" with no "." or ".." component.
bool IsAbsoluteDirectory(std::string_view path) {
  if (path.empty() || path.front() != '/') return false;
  bool named = false;
  size_t begin = 0;
  while (begin < path.size()) {
    size_t end = path.find('/', begin);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view part = path.substr(begin, end - begin);
    if (part == "." || part == "..") return false;
    named = named || !part.empty();
    begin = end + 1;
  }
  return named;
}

}  // namespace

namespace {

// One reader per top-level section; each fills its part of `config`.

Status ReadPkcs11(const ConfigReader& r, const YAML::Node& pkcs11, Config& config) {
  if (!pkcs11) return r.Fail("pkcs11", "is required");
  RETURN_IF_ERROR(
      r.OnlyKnown(pkcs11, "pkcs11", {"module", "token_label", "pin_file", "pin_credential"}));
  RETURN_IF_ERROR(r.String(pkcs11["module"], "pkcs11.module", config.module_path, true));
  RETURN_IF_ERROR(r.String(pkcs11["token_label"], "pkcs11.token_label", config.token_label, true));
  if (config.token_label.size() > 32) return r.Fail("pkcs11.token_label", "is over 32 bytes");
  if (pkcs11["pin_file"] && pkcs11["pin_credential"]) {
    return r.Fail("pkcs11.pin_credential", "and pkcs11.pin_file exclude each other");
  }
  if (!pkcs11["pin_credential"]) {
    return r.String(pkcs11["pin_file"], "pkcs11.pin_file", config.pin_file, true);
  }
  // systemd's LoadCredential=NAME:SOURCE puts the PIN in a file NAME of a
  // directory only the service can read, named by $CREDENTIALS_DIRECTORY.
  std::string name;
  RETURN_IF_ERROR(r.String(pkcs11["pin_credential"], "pkcs11.pin_credential", name, true));
  if (name.find('/') != std::string::npos || name == "." || name == "..") {
    return r.Fail("pkcs11.pin_credential", "must be a credential's name, not a path");
  }
  const char* directory = std::getenv("CREDENTIALS_DIRECTORY");
  if (directory == nullptr || directory[0] != '/') {
    return r.Fail("pkcs11.pin_credential",
                  "needs $CREDENTIALS_DIRECTORY (set by systemd's LoadCredential=); it is unset");
  }
  config.pin_file = std::string(directory) + "/" + name;
  return OkStatus();
}

Status ReadSocket(const ConfigReader& r, const YAML::Node& socket, Config& config) {
  if (!socket) return OkStatus();
  RETURN_IF_ERROR(r.OnlyKnown(socket, "socket", {"path", "mode"}));
  RETURN_IF_ERROR(r.String(socket["path"], "socket.path", config.socket_path, false));
  const YAML::Node mode = socket["mode"];
  if (!mode) return OkStatus();
  std::string text;
  RETURN_IF_ERROR(r.String(mode, "socket.mode", text, true));
  size_t used = 0;
  unsigned long value = 0;
  try {
    value = std::stoul(text, &used, 8);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || value > 0777) {
    return r.Fail("socket.mode", "must be an octal mode such as \"0660\"");
  }
  config.socket_mode = static_cast<uint32_t>(value);
  return OkStatus();
}

Status ReadKeystore(const ConfigReader& r, const YAML::Node& keystore, Config& config) {
  if (!keystore) return OkStatus();
  RETURN_IF_ERROR(r.OnlyKnown(keystore, "keystore", {"backend", "path", "backup_dir"}));
  std::string backend = "sqlite";
  RETURN_IF_ERROR(r.String(keystore["backend"], "keystore.backend", backend, false));
  if (backend != "sqlite") return r.Fail("keystore.backend", "must be \"sqlite\"");
  RETURN_IF_ERROR(r.String(keystore["path"], "keystore.path", config.keystore_path, false));
  RETURN_IF_ERROR(
      r.String(keystore["backup_dir"], "keystore.backup_dir", config.backup_dir, false));
  if (!IsAbsoluteDirectory(config.backup_dir)) {
    return r.Fail("keystore.backup_dir",
                  "must be an absolute path to a directory, without '.' or '..' "
                  "components (not \"/\")");
  }
  return OkStatus();
}

Status ReadAdmins(const ConfigReader& r, const YAML::Node& admins, Config& config) {
  if (!admins) return r.Fail("admins", "is required (list uids or gids)");
  RETURN_IF_ERROR(r.OnlyKnown(admins, "admins", {"uids", "gids"}));
  RETURN_IF_ERROR(r.IdList(admins["uids"], "admins.uids", config.admin_uids));
  return r.IdList(admins["gids"], "admins.gids", config.admin_gids);
}

Status ReadApiKeyPeers(const ConfigReader& r, const YAML::Node& peers, Config& config) {
  if (!peers) return OkStatus();
  RETURN_IF_ERROR(r.OnlyKnown(peers, "api_key_peers", {"uids", "gids"}));
  RETURN_IF_ERROR(r.IdList(peers["uids"], "api_key_peers.uids", config.api_key_peer_uids));
  return r.IdList(peers["gids"], "api_key_peers.gids", config.api_key_peer_gids);
}

// Reads an optional size field into `out`, keeping its value when absent.
template <typename Number>
Status ReadNumber(const ConfigReader& r, const YAML::Node& section, const std::string& prefix,
                  const char* name, uint64_t min, uint64_t max, Number& out) {
  uint64_t value = static_cast<uint64_t>(out);
  RETURN_IF_ERROR(r.Unsigned(section[name], prefix + "." + name, min, max, value));
  out = static_cast<Number>(value);
  return OkStatus();
}

Status ReadAudit(const ConfigReader& r, const YAML::Node& audit, Config& config) {
  if (!audit) return OkStatus();
  RETURN_IF_ERROR(r.OnlyKnown(audit, "audit",
                              {"dir", "commit_interval_ms", "max_file_bytes", "reserve_bytes",
                               "discard", "prune_interval_ms", "retention_day_seconds"}));
  RETURN_IF_ERROR(r.String(audit["dir"], "audit.dir", config.audit_dir, false));
  if (!config.audit_dir.empty() && !IsAbsoluteDirectory(config.audit_dir)) {
    return r.Fail("audit.dir",
                  "must be an absolute path to a directory, without '.' or '..' "
                  "components (not \"/\")");
  }
  RETURN_IF_ERROR(ReadNumber(r, audit, "audit", "commit_interval_ms", 10, 60000,
                             config.audit_commit_interval_ms));
  RETURN_IF_ERROR(ReadNumber(r, audit, "audit", "max_file_bytes", 4096, 1ull << 40,
                             config.audit_max_file_bytes));
  RETURN_IF_ERROR(
      ReadNumber(r, audit, "audit", "reserve_bytes", 4096, 1ull << 30, config.audit_reserve_bytes));
  RETURN_IF_ERROR(ReadNumber(r, audit, "audit", "prune_interval_ms", 100, 86400000,
                             config.audit_prune_interval_ms));
  RETURN_IF_ERROR(ReadNumber(r, audit, "audit", "retention_day_seconds", 1, 86400,
                             config.audit_retention_day_seconds));
  if (const YAML::Node discard = audit["discard"]) {
    if (!discard.IsScalar() || (discard.Scalar() != "true" && discard.Scalar() != "false")) {
      return r.Fail("audit.discard", "must be true or false");
    }
    config.audit_discard = discard.Scalar() == "true";
  }
  return OkStatus();
}

Status ReadLimits(const ConfigReader& r, const YAML::Node& limits, Config& config) {
  if (!limits) return OkStatus();
  RETURN_IF_ERROR(
      r.OnlyKnown(limits, "limits",
                  {"max_frame_bytes", "workers", "max_connections_per_uid", "max_connections",
                   "idle_timeout_ms", "max_queued_per_tenant", "max_queued", "max_queued_bytes",
                   "failed_attempts_before_lockout", "first_lockout_ms", "drain_timeout_ms"}));
  const std::string p = "limits";
  RETURN_IF_ERROR(
      ReadNumber(r, limits, p, "max_frame_bytes", 1024, 64ull << 20, config.max_frame_bytes));
  RETURN_IF_ERROR(ReadNumber(r, limits, p, "workers", 1, 256, config.workers));
  RETURN_IF_ERROR(ReadNumber(r, limits, p, "max_connections_per_uid", 1, 65536,
                             config.max_connections_per_uid));
  RETURN_IF_ERROR(ReadNumber(r, limits, p, "max_connections", 1, 65536, config.max_connections));
  RETURN_IF_ERROR(
      ReadNumber(r, limits, p, "idle_timeout_ms", 100, 3600000, config.idle_timeout_ms));
  RETURN_IF_ERROR(
      ReadNumber(r, limits, p, "max_queued_per_tenant", 1, 65536, config.max_queued_per_tenant));
  RETURN_IF_ERROR(ReadNumber(r, limits, p, "max_queued", 1, 1u << 20, config.max_queued));
  RETURN_IF_ERROR(
      ReadNumber(r, limits, p, "max_queued_bytes", 1u << 20, 16ull << 30, config.max_queued_bytes));
  RETURN_IF_ERROR(ReadNumber(r, limits, p, "failed_attempts_before_lockout", 1, 1000,
                             config.failed_attempts_before_lockout));
  RETURN_IF_ERROR(
      ReadNumber(r, limits, p, "first_lockout_ms", 100, 900000, config.first_lockout_ms));
  RETURN_IF_ERROR(
      ReadNumber(r, limits, p, "drain_timeout_ms", 100, 600000, config.drain_timeout_ms));
  if (config.max_queued < config.max_queued_per_tenant) {
    return r.Fail("limits.max_queued", "must be at least limits.max_queued_per_tenant");
  }
  return OkStatus();
}

Status ReadLifecycle(const ConfigReader& r, const YAML::Node& lifecycle, Config& config) {
  if (!lifecycle) return OkStatus();
  RETURN_IF_ERROR(r.OnlyKnown(lifecycle, "lifecycle",
                              {"min_pending_window_seconds", "min_rotation_period_seconds",
                               "max_encryptions_per_version", "check_interval_ms"}));
  LifecycleOptions& options = config.lifecycle;
  const std::string p = "lifecycle";
  RETURN_IF_ERROR(ReadNumber(r, lifecycle, p, "min_pending_window_seconds", 1,
                             kDefaultMinPendingWindowSeconds, options.min_pending_window_seconds));
  RETURN_IF_ERROR(ReadNumber(r, lifecycle, p, "min_rotation_period_seconds", 1,
                             kDefaultMinRotationPeriodSeconds,
                             options.min_rotation_period_seconds));
  RETURN_IF_ERROR(ReadNumber(r, lifecycle, p, "max_encryptions_per_version", 1,
                             kMaxEncryptionsPerVersion, options.max_encryptions_per_version));
  return ReadNumber(r, lifecycle, p, "check_interval_ms", 100, 60000, config.due_work_interval_ms);
}

Status ReadPolicies(const ConfigReader& r, const YAML::Node& policies, Config& config) {
  if (!policies) return OkStatus();
  RETURN_IF_ERROR(r.OnlyKnown(policies, "policies", {"dir"}));
  RETURN_IF_ERROR(r.String(policies["dir"], "policies.dir", config.policies_dir, false));
  if (!config.policies_dir.empty() && !IsAbsoluteDirectory(config.policies_dir)) {
    return r.Fail("policies.dir",
                  "must be an absolute path to a directory, without '.' or '..' "
                  "components (not \"/\")");
  }
  return OkStatus();
}

Status ReadLog(const ConfigReader& r, const YAML::Node& log, Config& config) {
  if (!log) return OkStatus();
  RETURN_IF_ERROR(r.OnlyKnown(log, "log", {"level", "file"}));
  RETURN_IF_ERROR(r.String(log["level"], "log.level", config.log_level, false));
  RETURN_IF_ERROR(r.String(log["file"], "log.file", config.log_file, false));
  if (config.log_level != "debug" && config.log_level != "info" && config.log_level != "warn" &&
      config.log_level != "error") {
    return r.Fail("log.level", "must be debug, info, warn or error");
  }
  return OkStatus();
}

}  // namespace

Result<Config> LoadConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (in) text << in.rdbuf();
  if (!in || in.bad()) return Error(Code::kInvalidArgument, "config " + path + ": cannot be read");
  return ParseConfig(text.str(), path);
}

Result<Config> ParseConfig(std::string_view yaml, const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return Error(Code::kInvalidArgument, "config " + path + ": not valid YAML: " + e.what());
  }
  const ConfigReader r(path);
  Config config;
  try {
    RETURN_IF_ERROR(r.OnlyKnown(root, "",
                                {"pkcs11", "socket", "keystore", "admins", "api_key_peers",
                                 "limits", "log", "lifecycle", "audit", "policies"}));
    RETURN_IF_ERROR(ReadPkcs11(r, root["pkcs11"], config));
    RETURN_IF_ERROR(ReadSocket(r, root["socket"], config));
    RETURN_IF_ERROR(ReadKeystore(r, root["keystore"], config));
    RETURN_IF_ERROR(ReadAdmins(r, root["admins"], config));
    RETURN_IF_ERROR(ReadApiKeyPeers(r, root["api_key_peers"], config));
    RETURN_IF_ERROR(ReadLimits(r, root["limits"], config));
    RETURN_IF_ERROR(ReadLifecycle(r, root["lifecycle"], config));
    RETURN_IF_ERROR(ReadLog(r, root["log"], config));
    RETURN_IF_ERROR(ReadAudit(r, root["audit"], config));
    RETURN_IF_ERROR(ReadPolicies(r, root["policies"], config));
  } catch (const YAML::Exception& e) {
    return Error(Code::kInvalidArgument, "config " + path + ": " + e.what());
  }
  return config;
}

std::string AuditDirOf(const Config& config) {
  if (!config.audit_dir.empty()) return config.audit_dir;
  const size_t slash = config.keystore_path.rfind('/');
  const std::string parent =
      slash == std::string::npos ? "." : config.keystore_path.substr(0, slash == 0 ? 1 : slash);
  return parent == "/" ? "/audit" : parent + "/audit";
}

Result<SecretBuffer> ReadPinFile(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return Error(Code::kInvalidArgument, "PIN file " + path + " cannot be read");
  }
  if (st.st_mode & 077) {
    return Error(Code::kInvalidArgument,
                 "PIN file " + path + " is readable by group or others; chmod 0600 it");
  }
  // read(2) straight into locked memory: a stream's buffer would keep a copy.
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Error(Code::kInvalidArgument, "PIN file " + path + " cannot be read");
  SecretBuffer buffer(256);
  size_t n = 0;
  while (n < buffer.size()) {
    const ssize_t got = read(fd, buffer.RevealMutableData() + n, buffer.size() - n);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    n += static_cast<size_t>(got);
  }
  close(fd);
  size_t end = 0;
  while (end < n && buffer.RevealData()[end] != '\n' && buffer.RevealData()[end] != '\r') ++end;
  buffer.Shrink(end);
  if (buffer.empty()) return Error(Code::kInvalidArgument, "PIN file " + path + " is empty");
  return buffer;
}

}  // namespace kmsd
