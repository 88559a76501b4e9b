// Service handlers: status, health, keystore.backup, generate-random.
#include "daemon/alerts.h"
#include "daemon/handlers/handler.h"
#include "daemon/metrics.h"
#include "daemon/peer_gate.h"
#include "daemon/reload.h"
#include "daemon/sessions.h"
#include "protocol/limits.h"

namespace kmsd {
namespace {

Result<ops::StatusReply> DescribeService(Call& call, const NoFields&) {
  ServiceDeps& deps = call.deps();
  const auto& info = call.token().info();
  ops::StatusReply out;
  out.version = KMSD_VERSION;
  out.protocol = kProtocolVersion;
  out.token = {.label = info.label,
               .manufacturer = info.manufacturer,
               .model = info.model,
               .available = call.token().Ping().ok()};
  out.keystore = {
      .backend = "sqlite",
      .schema_version = static_cast<uint64_t>(call.hierarchy().store().SchemaVersion())};
  out.tenants = call.hierarchy().TenantCount();
  out.keys = call.hierarchy().KeyCount();
  out.uptime_seconds = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::steady_clock::now() - deps.started)
                           .count();
  out.refused_connections = deps.gate ? deps.gate->refused() : 0;
  // The rest speaks of every tenant's requests: for admins only.
  if (call.principal() != nullptr) return out;
  out.connections = deps.gate ? deps.gate->connections() : 0;
  out.open_sessions = deps.sessions ? deps.sessions->Count() : 0;
  if (deps.reload) out.reload = deps.reload->Get();
  if (deps.metrics) out.requests = deps.metrics->Snapshot();
  if (deps.alerts) out.alerts = deps.alerts->Snapshot();
  return out;
}

Result<ops::HealthReply> Health(Call& call, const NoFields&) {
  RETURN_IF_ERROR(call.token().Ping());
  return ops::HealthReply{.healthy = true};
}

Result<ops::BackupReply> Backup(Call& call, const ops::BackupRequest& request) {
  const auto& backups = call.deps().backups;
  if (!backups) return Error(Code::kInternal, "kmsd has no backup directory");
  ASSIGN_OR_RETURN(std::string path, backups->Resolve(request.path));
  ASSIGN_OR_RETURN(KeyStoreCopyInfo info, call.hierarchy().BackupStore(path));
  return ops::BackupReply{.path = info.path,
                          .bytes = static_cast<uint64_t>(info.bytes),
                          .schema_version = static_cast<uint64_t>(info.schema_version),
                          .tenants = static_cast<uint64_t>(info.tenants),
                          .keys = static_cast<uint64_t>(info.keys)};
}

Result<ops::RandomReply> GenerateRandom(Call& call, const ops::RandomRequest& request) {
  RETURN_IF_ERROR(CheckNumberOfBytes(request.number_of_bytes));
  Bytes random(request.number_of_bytes);
  RETURN_IF_ERROR(call.token().GenerateRandom(random));
  return ops::RandomReply{.random = std::move(random)};
}

}  // namespace

void AddServiceHandlers(HandlerTable& table) {
  table.Add<ops::ServiceStatus, DescribeService>();
  table.Add<ops::Health, Health>();
  table.Add<ops::KeystoreBackup, Backup>();
  table.Add<ops::GenerateRandom, GenerateRandom>();
}

}  // namespace kmsd
