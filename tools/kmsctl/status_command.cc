// kmsctl status [--metrics]: kmsd's version, uptime, token, counts, the last
// reload, and its requests by operation and outcome with latency percentiles
// (estimated from kmsd's histograms, protocol/metrics.h), alerts raised by
// kind.
// --json prints kmsd's reply whole; --metrics prints it in the Prometheus
// text format (client/prometheus.h) for node_exporter's textfile collector.
#include <cstdio>

#include "client/prometheus.h"
#include "protocol/metrics.h"
#include "tools/kmsctl/cli.h"

namespace kmsd::kmsctl {
namespace {

std::string Millis(uint64_t nanos) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3f", static_cast<double>(nanos) / 1e6);
  return text;
}

Json Summary(const ops::StatusReply& status) {
  Json out = Json::object();
  out["version"] = status.version;
  out["uptime_seconds"] = status.uptime_seconds;
  out["token"] = {{"label", status.token.label},
                  {"available", status.token.available ? "yes" : "NO"}};
  out["keystore"] = {{"backend", status.keystore.backend},
                     {"schema_version", status.keystore.schema_version}};
  out["tenants"] = status.tenants;
  out["keys"] = status.keys;
  out["open_sessions"] = status.open_sessions;
  out["connections"] = status.connections;
  out["refused_connections"] = status.refused_connections;
  if (status.reload.reloads > 0) {
    out["last_reload"] = {{"reloaded_at", status.reload.at},
                          {"ok", status.reload.ok ? "yes" : "NO"},
                          {"message", status.reload.message}};
  }
  return out;
}

// One row per operation and code: count, p50, p90, p99 in milliseconds.
Json RequestRows(const ops::StatusReply& status) {
  Json rows = Json::array();
  for (const auto& counts : status.requests) {
    rows.push_back({{"op", counts.op},
                    {"code", counts.code},
                    {"count", counts.count},
                    {"p50_ms", Millis(EstimateQuantileNanos(counts.latency_buckets, 0.5))},
                    {"p90_ms", Millis(EstimateQuantileNanos(counts.latency_buckets, 0.9))},
                    {"p99_ms", Millis(EstimateQuantileNanos(counts.latency_buckets, 0.99))}});
  }
  return Json{{"requests", rows}};
}

constexpr Column kRequestColumns[] = {{"OP", "op"},         {"CODE", "code"},
                                      {"COUNT", "count"},   {"P50 MS", "p50_ms"},
                                      {"P90 MS", "p90_ms"}, {"P99 MS", "p99_ms"}};
constexpr Column kAlertColumns[] = {{"ALERT", "kind"}, {"COUNT", "count"}};

Status RunStatus(Invocation& invocation, bool metrics) {
  ASSIGN_OR_RETURN(Reply reply, invocation.Send<ops::ServiceStatus>("", {}));
  const Output& output = invocation.output();
  if (output.json()) return output.Object(ToJson(reply.result()));
  auto decoded = Decode<ops::StatusReply>(reply.result(), Strictness::kLenient);
  if (!decoded) return MalformedReply(decoded.error());
  if (metrics) return Output::Stdout(PrometheusText(*decoded));
  RETURN_IF_ERROR(output.Object(Summary(*decoded)));
  if (!decoded->requests.empty()) {
    RETURN_IF_ERROR(Output::Stdout("\n"));
    RETURN_IF_ERROR(output.Table(RequestRows(*decoded), "requests", kRequestColumns));
  }
  Json alerts = Json::array();
  for (const auto& alert : decoded->alerts) {
    if (alert.count > 0) alerts.push_back({{"kind", alert.kind}, {"count", alert.count}});
  }
  if (!alerts.empty()) {
    RETURN_IF_ERROR(Output::Stdout("\n"));
    RETURN_IF_ERROR(output.Table(Json{{"alerts", alerts}}, "alerts", kAlertColumns));
  }
  return OkStatus();
}

}  // namespace

void AddStatusCommand(CLI::App& app, Invocation& invocation) {
  auto metrics = std::make_shared<bool>(false);
  CLI::App* command = app.add_subcommand(
      "status",
      "Show kmsd's version, uptime, token, counts, last reload, requests with latency "
      "percentiles and alerts");
  command->add_flag("--metrics", *metrics,
                    "Print the figures in the Prometheus text format (node_exporter's textfile "
                    "collector)");
  command->callback([&invocation, metrics] {
    invocation.Select([&invocation, metrics] { return RunStatus(invocation, *metrics); });
  });
}

}  // namespace kmsd::kmsctl
