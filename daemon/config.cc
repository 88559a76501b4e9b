#include "daemon/config.h"

#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <functional>
#include <map>

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

Result<Config> LoadConfig(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    return Error(Code::kInvalidArgument, "config " + path + ": cannot be read");
  } catch (const YAML::Exception& e) {
    return Error(Code::kInvalidArgument, "config " + path + ": not valid YAML: " + e.what());
  }
  ConfigReader r(path);
  Config config;
  try {
    RETURN_IF_ERROR(r.OnlyKnown(
        root, "", {"pkcs11", "socket", "keystore", "admins", "limits", "log", "lifecycle"}));
    const YAML::Node pkcs11 = root["pkcs11"];
    if (!pkcs11) return Error(r.Fail("pkcs11", "is required"));
    RETURN_IF_ERROR(r.OnlyKnown(pkcs11, "pkcs11", {"module", "token_label", "pin_file"}));
    RETURN_IF_ERROR(r.String(pkcs11["module"], "pkcs11.module", config.module_path, true));
    RETURN_IF_ERROR(
        r.String(pkcs11["token_label"], "pkcs11.token_label", config.token_label, true));
    RETURN_IF_ERROR(r.String(pkcs11["pin_file"], "pkcs11.pin_file", config.pin_file, true));
    if (config.token_label.size() > 32)
      return Error(r.Fail("pkcs11.token_label", "is over 32 bytes"));

    if (const YAML::Node socket = root["socket"]) {
      RETURN_IF_ERROR(r.OnlyKnown(socket, "socket", {"path", "mode"}));
      RETURN_IF_ERROR(r.String(socket["path"], "socket.path", config.socket_path, false));
      if (const YAML::Node mode = socket["mode"]) {
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
          return Error(r.Fail("socket.mode", "must be an octal mode such as \"0660\""));
        }
        config.socket_mode = static_cast<uint32_t>(value);
      }
    }
    if (const YAML::Node keystore = root["keystore"]) {
      RETURN_IF_ERROR(r.OnlyKnown(keystore, "keystore", {"backend", "path", "backup_dir"}));
      std::string backend = "sqlite";
      RETURN_IF_ERROR(r.String(keystore["backend"], "keystore.backend", backend, false));
      if (backend != "sqlite") return Error(r.Fail("keystore.backend", "must be \"sqlite\""));
      RETURN_IF_ERROR(r.String(keystore["path"], "keystore.path", config.keystore_path, false));
      RETURN_IF_ERROR(
          r.String(keystore["backup_dir"], "keystore.backup_dir", config.backup_dir, false));
      if (!IsAbsoluteDirectory(config.backup_dir)) {
        return Error(r.Fail("keystore.backup_dir",
                            "must be an absolute path to a directory, without '.' or '..' "
                            "components (not \"/\")"));
      }
    }
    const YAML::Node admins = root["admins"];
    if (!admins) return Error(r.Fail("admins", "is required (list uids or gids)"));
    RETURN_IF_ERROR(r.OnlyKnown(admins, "admins", {"uids", "gids"}));
    RETURN_IF_ERROR(r.IdList(admins["uids"], "admins.uids", config.admin_uids));
    RETURN_IF_ERROR(r.IdList(admins["gids"], "admins.gids", config.admin_gids));
    if (const YAML::Node limits = root["limits"]) {
      RETURN_IF_ERROR(r.OnlyKnown(
          limits, "limits",
          {"max_frame_bytes", "workers", "max_connections_per_uid", "idle_timeout_ms"}));
      uint64_t frame = config.max_frame_bytes, workers = config.workers;
      uint64_t per_uid = config.max_connections_per_uid;
      uint64_t idle = static_cast<uint64_t>(config.idle_timeout_ms);
      RETURN_IF_ERROR(r.Unsigned(limits["max_frame_bytes"], "limits.max_frame_bytes", 1024,
                                 64ull << 20, frame));
      RETURN_IF_ERROR(r.Unsigned(limits["workers"], "limits.workers", 1, 256, workers));
      RETURN_IF_ERROR(r.Unsigned(limits["max_connections_per_uid"],
                                 "limits.max_connections_per_uid", 1, 65536, per_uid));
      RETURN_IF_ERROR(
          r.Unsigned(limits["idle_timeout_ms"], "limits.idle_timeout_ms", 100, 3600000, idle));
      config.max_frame_bytes = frame;
      config.workers = workers;
      config.max_connections_per_uid = per_uid;
      config.idle_timeout_ms = static_cast<int64_t>(idle);
    }
    if (const YAML::Node lifecycle = root["lifecycle"]) {
      RETURN_IF_ERROR(r.OnlyKnown(lifecycle, "lifecycle",
                                  {"min_pending_window_seconds", "min_rotation_period_seconds",
                                   "max_encryptions_per_version", "check_interval_ms"}));
      LifecycleOptions& options = config.lifecycle;
      uint64_t min_window = static_cast<uint64_t>(options.min_pending_window_seconds);
      uint64_t min_rotation = static_cast<uint64_t>(options.min_rotation_period_seconds);
      uint64_t interval = static_cast<uint64_t>(config.due_work_interval_ms);
      RETURN_IF_ERROR(r.Unsigned(lifecycle["min_pending_window_seconds"],
                                 "lifecycle.min_pending_window_seconds", 1,
                                 kDefaultMinPendingWindowSeconds, min_window));
      RETURN_IF_ERROR(r.Unsigned(lifecycle["min_rotation_period_seconds"],
                                 "lifecycle.min_rotation_period_seconds", 1,
                                 kDefaultMinRotationPeriodSeconds, min_rotation));
      RETURN_IF_ERROR(r.Unsigned(lifecycle["max_encryptions_per_version"],
                                 "lifecycle.max_encryptions_per_version", 1,
                                 kMaxEncryptionsPerVersion, options.max_encryptions_per_version));
      RETURN_IF_ERROR(r.Unsigned(lifecycle["check_interval_ms"], "lifecycle.check_interval_ms", 100,
                                 60000, interval));
      options.min_pending_window_seconds = static_cast<int64_t>(min_window);
      options.min_rotation_period_seconds = static_cast<int64_t>(min_rotation);
      config.due_work_interval_ms = static_cast<int64_t>(interval);
    }
    if (const YAML::Node log = root["log"]) {
      RETURN_IF_ERROR(r.OnlyKnown(log, "log", {"level", "file"}));
      RETURN_IF_ERROR(r.String(log["level"], "log.level", config.log_level, false));
      RETURN_IF_ERROR(r.String(log["file"], "log.file", config.log_file, false));
      if (config.log_level != "debug" && config.log_level != "info" && config.log_level != "warn" &&
          config.log_level != "error") {
        return Error(r.Fail("log.level", "must be debug, info, warn or error"));
      }
    }
  } catch (const YAML::Exception& e) {
    return Error(Code::kInvalidArgument, "config " + path + ": " + e.what());
  }
  return config;
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
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error(Code::kInvalidArgument, "PIN file " + path + " cannot be read");
  SecretBuffer buffer(256);
  in.read(reinterpret_cast<char*>(buffer.RevealMutableData()), buffer.size());
  size_t n = static_cast<size_t>(in.gcount());
  size_t end = 0;
  while (end < n && buffer.RevealData()[end] != '\n' && buffer.RevealData()[end] != '\r') ++end;
  buffer.Shrink(end);
  if (buffer.empty()) return Error(Code::kInvalidArgument, "PIN file " + path + " is empty");
  return buffer;
}

}  // namespace kmsd
