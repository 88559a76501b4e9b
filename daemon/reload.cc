#include "daemon/reload.h"

#include <functional>
#include <utility>
#include <vector>

namespace kmsd {
namespace {

// The fields read at start only, each with its name in the file.
using Same = std::function<bool(const Config&, const Config&)>;

template <auto Member>
std::pair<const char*, Same> StartOnlyField(const char* name) {
  return {name, [](const Config& a, const Config& b) { return a.*Member == b.*Member; }};
}

const std::vector<std::pair<const char*, Same>>& StartOnlyFields() {
  static const auto* fields = new std::vector<std::pair<const char*, Same>>{
      StartOnlyField<&Config::module_path>("pkcs11.module"),
      StartOnlyField<&Config::token_label>("pkcs11.token_label"),
      StartOnlyField<&Config::pin_file>("pkcs11.pin_file"),
      StartOnlyField<&Config::socket_path>("socket.path"),
      StartOnlyField<&Config::socket_mode>("socket.mode"),
      StartOnlyField<&Config::keystore_path>("keystore.path"),
      StartOnlyField<&Config::backup_dir>("keystore.backup_dir"),
      StartOnlyField<&Config::admin_uids>("admins.uids"),
      StartOnlyField<&Config::admin_gids>("admins.gids"),
      StartOnlyField<&Config::api_key_peer_uids>("api_key_peers.uids"),
      StartOnlyField<&Config::api_key_peer_gids>("api_key_peers.gids"),
      StartOnlyField<&Config::max_frame_bytes>("limits.max_frame_bytes"),
      StartOnlyField<&Config::workers>("limits.workers"),
      StartOnlyField<&Config::max_queued_per_tenant>("limits.max_queued_per_tenant"),
      StartOnlyField<&Config::max_queued>("limits.max_queued"),
      StartOnlyField<&Config::max_queued_bytes>("limits.max_queued_bytes"),
      StartOnlyField<&Config::failed_attempts_before_lockout>(
          "limits.failed_attempts_before_lockout"),
      StartOnlyField<&Config::first_lockout_ms>("limits.first_lockout_ms"),
      StartOnlyField<&Config::log_file>("log.file"),
      {"lifecycle",
       [](const Config& a, const Config& b) {
         return a.lifecycle.min_pending_window_seconds == b.lifecycle.min_pending_window_seconds &&
                a.lifecycle.min_rotation_period_seconds ==
                    b.lifecycle.min_rotation_period_seconds &&
                a.lifecycle.max_encryptions_per_version ==
                    b.lifecycle.max_encryptions_per_version &&
                a.due_work_interval_ms == b.due_work_interval_ms;
       }},
      StartOnlyField<&Config::audit_dir>("audit.dir"),
      StartOnlyField<&Config::audit_commit_interval_ms>("audit.commit_interval_ms"),
      StartOnlyField<&Config::audit_max_file_bytes>("audit.max_file_bytes"),
      StartOnlyField<&Config::audit_reserve_bytes>("audit.reserve_bytes"),
      StartOnlyField<&Config::audit_discard>("audit.discard"),
      StartOnlyField<&Config::audit_prune_interval_ms>("audit.prune_interval_ms"),
      StartOnlyField<&Config::audit_retention_day_seconds>("audit.retention_day_seconds"),
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
