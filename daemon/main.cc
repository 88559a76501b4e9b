// kmsd: the key management daemon. See README.md and docs/CONFIG.md.
#include <nng/nng.h>
#include <signal.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>

#include "daemon/alerts.h"
#include "daemon/audit/log.h"
#include "daemon/audit/recorder.h"
#include "daemon/audit/sealer.h"
#include "daemon/config.h"
#include "daemon/dev_mode.h"
#include "daemon/handlers/handler.h"
#include "daemon/hardening.h"
#include "daemon/instance_lock.h"
#include "daemon/metrics.h"
#include "daemon/peer_gate.h"
#include "daemon/pipeline.h"
#include "daemon/policy_files.h"
#include "daemon/reload.h"
#include "daemon/server.h"
#include "daemon/tenant_rules.h"
#include "keystore/access_directory.h"
#include "keystore/backup_directory.h"
#include "keystore/hierarchy.h"
#include "keystore/store.h"
#include "os/system.h"
#include "pkcs11/module.h"
#include "pkcs11/token.h"
#include "policy/access.h"

namespace kmsd {
namespace {

constexpr int kExitUsage = 2;
constexpr int kExitStartup = 1;

Status SetUpLogging(const Config& config) {
  try {
    auto logger = config.log_file.empty() ? spdlog::stderr_logger_mt("kmsd")
                                          : spdlog::basic_logger_mt("kmsd", config.log_file);
    spdlog::set_default_logger(logger);
  } catch (const spdlog::spdlog_ex& e) {
    return Status(Code::kInvalidArgument, std::string("cannot open log: ") + e.what());
  }
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  spdlog::flush_on(spdlog::level::info);
  return OkStatus();
}

// kmsd --restore FILE: replaces the stopped daemon's keystore by the backup
// FILE (docs/CONFIG.md). 0 on success, kExitStartup on any failure.
int Restore(const Config& config, const std::string& backup_path) {
  if (SocketHasListener(config.socket_path)) {
    std::fprintf(stderr, "kmsd: a kmsd is listening on %s; stop it before restoring its keystore\n",
                 config.socket_path.c_str());
    return kExitStartup;
  }
  // Also one that is starting (not listening yet) holds its keystore.
  auto instance = InstanceLock::Take(config.keystore_path);
  if (!instance) {
    std::fprintf(stderr, "kmsd: %s; stop it before restoring its keystore\n",
                 instance.error().message().c_str());
    return kExitStartup;
  }
  Result<KeyStoreCopyInfo> info = RestoreSqliteKeyStore(backup_path, config.keystore_path);
  if (!info) {
    std::fprintf(stderr, "kmsd: restore failed, keystore unchanged: %s\n",
                 info.error().message().c_str());
    return kExitStartup;
  }
  std::printf("restored %s into %s: %llu bytes, schema version %d, %lld tenants, %lld keys\n",
              backup_path.c_str(), info->path.c_str(), static_cast<unsigned long long>(info->bytes),
              info->schema_version, static_cast<long long>(info->tenants),
              static_cast<long long>(info->keys));
  return 0;
}

// A keystore file that is missing while the token holds tenant keys means the
// keystore was lost or the configuration points at the wrong file: starting
// afresh would look like every tenant vanished, so kmsd refuses.
Status CheckNotAFreshStartOverTenants(const Config& config, pkcs11::Token& token) {
  std::error_code error;
  if (std::filesystem::exists(config.keystore_path, error) || error) return OkStatus();
  ASSIGN_OR_RETURN(std::vector<pkcs11::TokenObject> objects, token.ListTokenSecretKeys());
  size_t tenant_objects = 0;
  for (const auto& object : objects) tenant_objects += object.label.starts_with("tenants/");
  if (tenant_objects == 0) return OkStatus();
  return Status(Code::kNotFound,
                "keystore " + config.keystore_path + " does not exist, but token '" +
                    token.info().label + "' holds " + std::to_string(tenant_objects) +
                    " tenant keys; refusing to start with an empty keystore. Restore a backup "
                    "with kmsd --restore FILE, or fix keystore.path");
}

// Calls RunDueWork every `interval` until stopped.
class DueWorkLoop {
 public:
  DueWorkLoop(KeyHierarchy& hierarchy, Alerts& alerts, std::chrono::milliseconds interval)
      : thread_([&hierarchy, &alerts, interval](std::stop_token stop) {
          std::mutex mu;
          std::condition_variable_any wake;
          std::unique_lock lock(mu);
          while (true) {
            // Returns early (false) when a stop is requested.
            wake.wait_for(lock, stop, interval, [] { return false; });
            if (stop.stop_requested()) return;
            Report(hierarchy.RunDueWork(), alerts);
          }
        }) {}

  static void Report(const DueWorkReport& report, Alerts& alerts) {
    for (const std::string& failure : report.rotations_failed) {
      alerts.Raise(AlertKind::kRotationOverdue, failure.substr(0, failure.find(':')),
                   "key due to rotate was not rotated: " + failure);
    }
    for (const std::string& failure : report.shredding_failed) {
      alerts.Raise(AlertKind::kShreddingFailed, failure.substr(0, failure.find(':')),
                   "due shredding failed: " + failure);
    }
    if (report.keys_shredded + report.tenants_shredded + report.keys_rotated +
            report.token_objects_destroyed ==
        0) {
      return;
    }
    spdlog::info(
        "due work: {} keys and {} tenants shredded, {} keys rotated, {} token objects "
        "destroyed",
        report.keys_shredded, report.tenants_shredded, report.keys_rotated,
        report.token_objects_destroyed);
  }

 private:
  std::jthread thread_;  // requests stop and joins when destroyed
};

// Drains the server (requests in flight finish, queued ones are refused) on
// its own thread; gives up after config.drain_timeout_ms: false.
bool Drain(Server& server, std::chrono::milliseconds timeout) {
  std::mutex mu;
  std::condition_variable done_cv;
  bool done = false;
  std::thread drainer([&] {
    server.Stop();
    std::lock_guard lock(mu);
    done = true;
    done_cv.notify_all();
  });
  std::unique_lock lock(mu);
  if (!done_cv.wait_for(lock, timeout, [&] { return done; })) {
    drainer.detach();  // the process exits now; the thread goes with it
    return false;
  }
  lock.unlock();
  drainer.join();
  return true;
}

// Applies the tenant policy files of a policies.dir (none when empty).
using ApplyPolicies = std::function<Status(const std::string& dir)>;

PeerGateOptions GateOptionsOf(const Config& config) {
  return {.max_connections_per_uid = config.max_connections_per_uid,
          .idle_timeout = std::chrono::milliseconds(config.idle_timeout_ms),
          .max_connections = config.max_connections};
}

// SIGHUP: the configuration file again (daemon/reload.h). Changes only what
// may change while kmsd runs; on any error, nothing, and says so.
// Tenant policy files too (daemon/policy_files.h): when they do not apply,
// neither does the rest.
Status Reload(const std::string& config_path, Config& running, PeerGate& gate,
              const ApplyPolicies& apply_policies) {
  if (config_path.empty()) return Status(Code::kInvalidArgument, "--dev has no file to reload");
  ASSIGN_OR_RETURN(Config next, LoadConfig(config_path));
  RETURN_IF_ERROR(CheckReloadable(running, next));
  RETURN_IF_ERROR(apply_policies(next.policies_dir));
  running.policies_dir = next.policies_dir;
  running.log_level = next.log_level;
  spdlog::set_level(spdlog::level::from_str(running.log_level));
  running.max_connections_per_uid = next.max_connections_per_uid;
  running.max_connections = next.max_connections;
  running.idle_timeout_ms = next.idle_timeout_ms;
  gate.SetOptions(GateOptionsOf(running));
  running.drain_timeout_ms = next.drain_timeout_ms;
  return OkStatus();
}

std::string ServiceStatusLine(KeyHierarchy& hierarchy) {
  return "STATUS=serving " + std::to_string(hierarchy.TenantCount()) + " tenants, " +
         std::to_string(hierarchy.KeyCount()) + " keys";
}

// Takes the blocked signals until SIGINT or SIGTERM: SIGHUP reloads; between
// signals, WATCHDOG=1 to the service manager at half its interval while the
// server accepts connections.
void WaitForStop(const sigset_t& signals, const std::string& config_path, Config& running,
                 PeerGate& gate, const Server& server, KeyHierarchy& hierarchy,
                 pkcs11::Token& token, Alerts& alerts, ReloadState& reload,
                 const ApplyPolicies& apply_policies) {
  System& system = CurrentSystem();
  const auto watchdog = system.WatchdogInterval();
  const auto tick = watchdog.count() > 0 ? std::chrono::microseconds(watchdog / 2)
                                         : std::chrono::microseconds(std::chrono::seconds(1));
  while (true) {
    timespec timeout{.tv_sec = static_cast<time_t>(tick.count() / 1000000),
                     .tv_nsec = static_cast<long>(tick.count() % 1000000) * 1000};
    const int signal_number = sigtimedwait(&signals, nullptr, &timeout);
    if (signal_number == SIGINT || signal_number == SIGTERM) {
      spdlog::info("signal {} received, stopping", signal_number);
      return;
    }
    if (signal_number == SIGHUP) {
      system.Notify("RELOADING=1");
      Status reloaded = Reload(config_path, running, gate, apply_policies);
      reload.Record(std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count(),
                    reloaded);
      if (reloaded.ok()) {
        spdlog::info("configuration reloaded from {}", config_path);
      } else {
        spdlog::error("configuration not reloaded, the running one stays: {}", reloaded.message());
      }
      system.Notify("READY=1\n" + ServiceStatusLine(hierarchy) +
                    (reloaded.ok() ? "" : "; last reload failed"));
      continue;
    }
    if (watchdog.count() > 0 && server.Accepting(std::chrono::seconds(5))) {
      system.Notify("WATCHDOG=1");
    }
    if (Status ping = token.Ping(); !ping.ok()) {
      alerts.Raise(AlertKind::kTokenUnavailable, "token", ping.ToString());
    }
  }
}

// The request's path (docs/ARCHITECTURE.md) over `hierarchy` until SIGINT or
// SIGTERM.
int Serve(Config& config, const std::string& config_path, const sigset_t& signals, Alerts& alerts,
          KeyHierarchy& hierarchy, pkcs11::Token& token, const BackupDirectory& backups,
          TenantRules& rules, audit::Log& audit_log, audit::Sealer& audit_sealer) {
  AccessDirectory& directory = hierarchy.access();
  AccessPolicy access(
      AccessPolicyOptions{.admins = {config.admin_uids, config.admin_gids},
                          .api_key_peers = {config.api_key_peer_uids, config.api_key_peer_gids},
                          .is_bound_peer = [&directory](const Peer& peer) {
                            std::vector<uint64_t> gids = peer.groups;
                            gids.push_back(peer.gid);
                            return directory.IsBoundPeer(peer.uid, gids);
                          }});
  PeerGate gate(access, GateOptionsOf(config));
  SessionTable sessions(directory.clock());
  AuthLockout lockout(LockoutOptions{.threshold = config.failed_attempts_before_lockout,
                                     .first_delay_ms = config.first_lockout_ms},
                      [&access](const Peer& peer) { return access.IsAdmin(peer); });
  RequestMetrics metrics;
  ReloadState reload;
  ServiceDeps deps{.hierarchy = &hierarchy,
                   .token = &token,
                   .backups = backups,
                   .gate = &gate,
                   .rules = &rules,
                   .sessions = &sessions,
                   .lockout = &lockout,
                   .audit_log = &audit_log,
                   .audit_sealer = &audit_sealer,
                   .started = std::chrono::steady_clock::now(),
                   .metrics = &metrics,
                   .reload = &reload,
                   .alerts = &alerts};
  lockout.ReportTo(&alerts);
  const HandlerTable handlers = AllHandlers();
  ApiKeyIdentifier identify(directory, sessions, lockout);
  PolicyAuthorizer authorize(access, [&directory] { return directory.Now(); });
  AuditRecorder record(audit_log, [&rules](std::string_view tenant) {
    AuditDetails details;
    // A document that does not read keeps every detail.
    Result<std::shared_ptr<const TenantPolicy>> policy = rules.PolicyOf(tenant);
    if (policy && *policy != nullptr) {
      details = {.all_operations = (*policy)->log_all_operations,
                 .data_access = (*policy)->log_data_access,
                 .admin_actions = (*policy)->log_admin_actions};
    }
    return details;
  });
  const ApplyPolicies apply_policies =
      [&rules, &hierarchy, put = RecordPolicyFilePuts(record)](const std::string& dir) -> Status {
    if (dir.empty()) return OkStatus();
    ASSIGN_OR_RETURN(PolicyFilesOutcome applied, ApplyPolicyFiles(dir, rules, hierarchy, put));
    spdlog::info("policies.dir {}: {} tenant policies applied, {} unchanged", dir,
                 applied.applied.size(), applied.unchanged);
    return OkStatus();
  };
  // At start, files that do not apply leave the stored policies in force.
  if (Status applied = apply_policies(config.policies_dir); !applied.ok()) {
    spdlog::error("{}", applied.message());
  }
  const Pipeline pipeline(
      config.max_frame_bytes,
      {identify, authorize, record, handlers,
       [&hierarchy](std::string_view tenant) { return hierarchy.CheckNotPendingDeletion(tenant); },
       [&rules](RequestContext& context) { return rules.Admit(context); }},
      deps);
  ServerOptions server_options;
  server_options.socket_path = config.socket_path;
  server_options.socket_mode = config.socket_mode;
  server_options.workers = config.workers;
  server_options.max_frame_bytes = config.max_frame_bytes;
  server_options.max_queued_per_tenant = config.max_queued_per_tenant;
  server_options.max_queued = config.max_queued;
  server_options.max_queued_bytes = config.max_queued_bytes;
  auto server = Server::Start(server_options, pipeline, gate);
  if (!server) {
    spdlog::critical("{}", server.error().ToString());
    return kExitStartup;
  }
  spdlog::info("kmsd {} ready: token '{}' ({}), keystore {}, backups in {}", KMSD_VERSION,
               token.info().label, token.info().manufacturer, config.keystore_path, backups.path());

  CurrentSystem().Notify("READY=1\n" + ServiceStatusLine(hierarchy));

  WaitForStop(signals, config_path, config, gate, **server, hierarchy, token, alerts, reload,
              apply_policies);
  CurrentSystem().Notify("STOPPING=1");
  if (!Drain(**server, std::chrono::milliseconds(config.drain_timeout_ms))) {
    spdlog::critical("requests still running after {} ms (limits.drain_timeout_ms); exiting",
                     config.drain_timeout_ms);
    spdlog::shutdown();
    std::_Exit(kExitStartup);
  }
  if (Status flushed = directory.FlushUsage(); !flushed.ok()) {
    spdlog::error("recording API keys' last use failed: {}", flushed.ToString());
  }
  spdlog::info("stopped");
  return 0;
}

// Runs until SIGINT or SIGTERM. The signals (and SIGHUP) are blocked in
// every thread (set before any thread exists) and taken by WaitForStop.
int Run(Config& config, const std::string& config_path, const sigset_t& signals) {
  auto fail = [](const Status& status) {
    spdlog::critical("{}", status.ToString());
    return kExitStartup;
  };
  // Before the token: a second kmsd on the same configuration would replace
  // the running one's audit head object in the token before it found the
  // socket taken.
  if (Status status = CheckNoListener(config.socket_path); !status.ok()) return fail(status);
  // Two started at the same instant both pass that check; one gets the lock.
  auto instance = InstanceLock::Take(config.keystore_path);
  if (!instance) return fail(instance.error());
  auto pin = ReadPinFile(config.pin_file);
  if (!pin) {
    // A missing, empty or group-readable PIN file is a configuration error,
    // like the ones LoadConfig reports: the usage exit code.
    fail(pin.error());
    return kExitUsage;
  }
  // So is a backup directory kmsd cannot trust (a symlink, another owner,
  // writable by others).
  auto backups = BackupDirectory::Prepare(config.backup_dir);
  if (!backups) {
    fail(backups.error());
    return kExitUsage;
  }
  // So is an audit directory kmsd cannot trust (the same rules).
  auto audit_dir = BackupDirectory::Prepare(AuditDirOf(config), "audit directory", "audit.dir");
  if (!audit_dir) {
    fail(audit_dir.error());
    return kExitUsage;
  }
  auto module = pkcs11::Module::Load(config.module_path);
  if (!module) return fail(module.error());
  auto token = pkcs11::Token::Open(*module, config.token_label, *pin, config.workers + 2);
  if (!token) return fail(token.error());
  // Wiped: the Token keeps its own copy (locked memory) to log in again after
  // the token was lost (pkcs11/token.h).
  *pin = SecretBuffer();
  if (Status status = CheckNotAFreshStartOverTenants(config, **token); !status.ok()) {
    return fail(status);
  }
  auto store = OpenSqliteKeyStore(config.keystore_path);
  if (!store) return fail(store.error());
  SystemClock clock;
  auto hierarchy = KeyHierarchy::Open(**token, std::move(*store), clock, config.lifecycle);
  if (!hierarchy) return fail(hierarchy.error());
  // The tenant policies' rotation ceilings hold from the first due work.
  TenantRules rules((*hierarchy)->access(), **hierarchy, [] {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  });
  rules.Load();
  auto sealer = audit::TokenSealer::Open(**token);
  if (!sealer) return fail(sealer.error());
  auto audit_log = audit::Log::Open(
      {.dir = audit_dir->path(),
       .commit_interval = std::chrono::milliseconds(config.audit_commit_interval_ms),
       .max_file_bytes = config.audit_max_file_bytes,
       .reserve_bytes = config.audit_reserve_bytes,
       .discard = config.audit_discard,
       .kmsd_version = KMSD_VERSION,
       .now_nanos = nullptr,
       .retention_nanos = [&rules, day = config.audit_retention_day_seconds](
                              std::string_view tenant) -> std::optional<int64_t> {
         Result<std::shared_ptr<const TenantPolicy>> policy = rules.PolicyOf(tenant);
         if (!policy || *policy == nullptr || !(*policy)->audit_retention_days) {
           return std::nullopt;  // kept for ever (also when its document does not read)
         }
         return int64_t{*(*policy)->audit_retention_days} * day * 1'000'000'000;
       },
       .prune_interval = std::chrono::milliseconds(config.audit_prune_interval_ms)},
      **sealer);
  if (!audit_log) return fail(audit_log.error());
  // What fell due while kmsd was down is done before anything is served.
  Alerts alerts;
  DueWorkLoop::Report((*hierarchy)->RunDueWork(), alerts);
  DueWorkLoop due_work(**hierarchy, alerts, std::chrono::milliseconds(config.due_work_interval_ms));
  return Serve(config, config_path, signals, alerts, **hierarchy, **token, *backups, rules,
               **audit_log, **sealer);
}

}  // namespace
}  // namespace kmsd

int main(int argc, char** argv) {
  using namespace kmsd;
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  CLI::App app{"kmsd: a local key management daemon rooted in a PKCS#11 token"};
  std::string dev_dir, config_path, log_level, restore_path;
  auto* dev = app.add_option("--dev", dev_dir,
                             "run the embedded default in DIR (private SoftHSM2 token, SQLite)");
  auto* conf = app.add_option("--config", config_path, "YAML configuration file");
  dev->excludes(conf);
  app.add_option("--restore", restore_path,
                 "replace the keystore of a stopped kmsd by the backup FILE, then exit");
  bool audit_discard = false;
  app.add_flag("--audit-discard", audit_discard,
               "benchmarks only: make audit entries but write them to /dev/null, unsealed");
  app.add_option("--log-level", log_level, "debug, info, warn or error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  app.set_version_flag("--version", KMSD_VERSION);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kExitUsage;
  }
  if (dev_dir.empty() && config_path.empty()) {
    std::fprintf(stderr, "kmsd: give --dev DIR or --config FILE (see --help)\n");
    return kExitUsage;
  }
  if (Status s = HardenProcess(); !s.ok()) {
    std::fprintf(stderr, "kmsd: %s\n", s.ToString().c_str());
    return kExitStartup;
  }
  Result<Config> config = dev_dir.empty() ? LoadConfig(config_path) : PrepareDevDirectory(dev_dir);
  if (!config) {
    std::fprintf(stderr, "kmsd: %s\n", config.error().message().c_str());
    return config.error().code() == Code::kInvalidArgument ? kExitUsage : kExitStartup;
  }
  if (!restore_path.empty()) return Restore(*config, restore_path);
  if (!log_level.empty()) config->log_level = log_level;
  if (audit_discard) config->audit_discard = true;
  if (Status s = SetUpLogging(*config); !s.ok()) {
    std::fprintf(stderr, "kmsd: %s\n", s.message().c_str());
    return kExitUsage;
  }
  const int status = Run(*config, config_path, signals);
  nng_fini();  // nng's threads and caches, before static destructors run
  return status;
}
