#include "daemon/reload.h"

#include <functional>
#include <utility>
#include <vector>

namespace kmsd {
namespace {

// The fields read at start only, each with its name in the file.
using Same = std::function<bool(const Config&, const Config&)>;

template <auto Member>
std::pair<const char*, Same> Field(const char* name) {
  return {name, [](const Config& a, const Config& b) { return a.*Member == b.*Member; }};
}

const std::vector<std::pair<const char*, Same>>& StartOnlyFields() {
  static const auto* fields = new std::vector<std::pair<const char*, Same>>{
      Field<&Config::module_path>("pkcs11.module"),
      Field<&Config::token_label>("pkcs11.token_label"),
      Field<&Config::pin_file>("pkcs11.pin_file"),
      Field<&Config::socket_path>("socket.path"),
      Field<&Config::socket_mode>("socket.mode"),
      Field<&Config::keystore_path>("keystore.path"),
      Field<&Config::backup_dir>("keystore.backup_dir"),
      Field<&Config::admin_uids>("admins.uids"),
      Field<&Config::admin_gids>("admins.gids"),
      Field<&Config::api_key_peer_uids>("api_key_peers.uids"),
      Field<&Config::api_key_peer_gids>("api_key_peers.gids"),
      Field<&Config::max_frame_bytes>("limits.max_frame_bytes"),
      Field<&Config::workers>("limits.workers"),
      Field<&Config::max_queued_per_tenant>("limits.max_queued_per_tenant"),
      Field<&Config::max_queued>("limits.max_queued"),
      Field<&Config::max_queued_bytes>("limits.max_queued_bytes"),
      Field<&Config::failed_attempts_before_lockout>("limits.failed_attempts_before_lockout"),
      Field<&Config::first_lockout_ms>("limits.first_lockout_ms"),
      Field<&Config::log_file>("log.file"),
      {"lifecycle",
       [](const Config& a, const Config& b) {
         return a.lifecycle.min_pending_window_seconds == b.lifecycle.min_pending_window_seconds &&
                a.lifecycle.min_rotation_period_seconds ==
                    b.lifecycle.min_rotation_period_seconds &&
                a.lifecycle.max_encryptions_per_version ==
                    b.lifecycle.max_encryptions_per_version &&
                a.due_work_interval_ms == b.due_work_interval_ms;
       }},
      Field<&Config::audit_dir>("audit.dir"),
      Field<&Config::audit_commit_interval_ms>("audit.commit_interval_ms"),
      Field<&Config::audit_max_file_bytes>("audit.max_file_bytes"),
      Field<&Config::audit_reserve_bytes>("audit.reserve_bytes"),
      Field<&Config::audit_discard>("audit.discard"),
      Field<&Config::audit_prune_interval_ms>("audit.prune_interval_ms"),
      Field<&Config::audit_retention_day_seconds>("audit.retention_day_seconds"),
  };
  return *fields;
}

}  // namespace

Status CheckReloadable(const Config& running, const Config& next) {
  for (const auto& [name, same] : StartOnlyFields()) {
    if (!same(running, next)) {
      return Status(Code::kInvalidArgument, std::string("field '") + name +
                                                "' changes only with a restart; nothing reloaded");
    }
  }
  return OkStatus();
}

void ReloadState::Record(int64_t at, const Status& outcome) {
  std::lock_guard lock(mu_);
  last_.at = at;
  last_.ok = outcome.ok();
  last_.message = outcome.ok() ? "reloaded" : outcome.message();
  ++last_.reloads;
}

ops::ReloadStatus ReloadState::Get() const {
  std::lock_guard lock(mu_);
  return last_;
}

}  // namespace kmsd
