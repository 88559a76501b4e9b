#include "client/prometheus.h"

#include <cstdio>
#include <string_view>

#include "protocol/metrics.h"

namespace kmsd {
namespace {

std::string Escaped(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string Seconds(uint64_t nanos) {
  char text[32];
  std::snprintf(text, sizeof text, "%.9g", static_cast<double>(nanos) / 1e9);
  return text;
}

class Writer {
 public:
  void Family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  void Sample(std::string_view name, std::string_view labels, std::string_view value) {
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      out_ += labels;
      out_ += '}';
    }
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }
  void Gauge(std::string_view name, std::string_view help, uint64_t value) {
    Family(name, "gauge", help);
    Sample(name, "", std::to_string(value));
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

std::string Labels(const ops::RequestCounts& counts) {
  return "op=\"" + Escaped(counts.op) + "\",code=\"" + Escaped(counts.code) + "\"";
}

void WriteRequests(Writer& w, const ops::StatusReply& status) {
  w.Family("kmsd_requests_total", "counter", "Requests answered, by operation and code.");
  for (const auto& counts : status.requests) {
    w.Sample("kmsd_requests_total", Labels(counts), std::to_string(counts.count));
  }
  w.Family("kmsd_request_duration_seconds", "histogram",
           "Time from a request's receipt to its reply's record, by operation and code.");
  for (const auto& counts : status.requests) {
    const std::string labels = Labels(counts);
    uint64_t cumulative = 0;
    for (size_t i = 0; i < kLatencyBuckets; ++i) {
      cumulative += i < counts.latency_buckets.size() ? counts.latency_buckets[i] : 0;
      const std::string le =
          i < kLatencyBucketBoundsNanos.size() ? Seconds(kLatencyBucketBoundsNanos[i]) : "+Inf";
      w.Sample("kmsd_request_duration_seconds_bucket", labels + ",le=\"" + le + "\"",
               std::to_string(cumulative));
    }
    w.Sample("kmsd_request_duration_seconds_sum", labels, Seconds(counts.latency_sum_nanos));
    w.Sample("kmsd_request_duration_seconds_count", labels, std::to_string(counts.count));
  }
}

}  // namespace

std::string PrometheusText(const ops::StatusReply& status) {
  Writer w;
  w.Family("kmsd_build_info", "gauge", "kmsd's version and protocol; always 1.");
  w.Sample("kmsd_build_info",
           "version=\"" + Escaped(status.version) + "\",protocol=\"" +
               std::to_string(status.protocol) + "\"",
           "1");
  w.Gauge("kmsd_uptime_seconds", "Seconds since kmsd started.",
          static_cast<uint64_t>(status.uptime_seconds > 0 ? status.uptime_seconds : 0));
  w.Family("kmsd_token_available", "gauge", "Whether the PKCS#11 token answers (1) or not (0).");
  w.Sample("kmsd_token_available", "label=\"" + Escaped(status.token.label) + "\"",
           status.token.available ? "1" : "0");
  w.Gauge("kmsd_tenants", "Tenants in the keystore.", status.tenants);
  w.Gauge("kmsd_keys", "Keys in the keystore.", status.keys);
  w.Gauge("kmsd_sessions_open", "Sessions open.", status.open_sessions);
  w.Gauge("kmsd_connections", "Client connections open.", status.connections);
  w.Family("kmsd_connections_refused_total", "counter", "Connections refused at connect.");
  w.Sample("kmsd_connections_refused_total", "", std::to_string(status.refused_connections));
  w.Family("kmsd_config_reloads_total", "counter", "Configuration reloads tried (SIGHUP).");
  w.Sample("kmsd_config_reloads_total", "", std::to_string(status.reload.reloads));
  w.Gauge("kmsd_config_last_reload_successful",
          "Whether the last reload succeeded (1; also before any).", status.reload.ok ? 1 : 0);
  WriteRequests(w, status);
  w.Family("kmsd_alerts_total", "counter", "Alerts raised, by kind (docs/OPERATIONS.md).");
  for (const auto& alert : status.alerts) {
    w.Sample("kmsd_alerts_total", "kind=\"" + Escaped(alert.kind) + "\"",
             std::to_string(alert.count));
  }
  return w.Take();
}

}  // namespace kmsd
