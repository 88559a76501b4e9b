// The seeds' tenant policy documents (../shared/seeds/002_*.txt), verbatim,
// for the tests that load them as they are: for tenant "acme-manufacturing".
#pragma once

#include <string_view>

namespace kmsd::testing {

// The seed documents, verbatim.
inline constexpr std::string_view kSecuritySeed = R"(security_policies:
  tenant_id: "acme-manufacturing"
  version: "1.0.0"
  data_protection:
    encryption_level: "AES-256"
    key_rotation_days: 90
    data_locality: ["us-east-1", "us-west-2"]
    cross_region_encryption: true
  access_control:
    max_concurrent_sessions: 100
    session_timeout_minutes: 480
    ip_whitelist: ["10.0.0.0/8", "172.16.0.0/12"]
    mfa_required: true
  audit_logging:
    log_all_operations: true
    log_data_access: true
    log_admin_actions: true
    retention_days: 2555  # 7 years for compliance
  compliance:
    frameworks: ["SOX", "GDPR", "ISO27001"]
    data_classification: "confidential"
    pii_handling: "encrypt_and_redact"
  rate_limiting:
    requests_per_minute: 1000
    requests_per_hour: 50000
    burst_size: 100
    cost_threshold: 5000
)";

inline constexpr std::string_view kQuotaSeed = R"(resource_quotas:
  tenant_id: "acme-manufacturing"
  compute:
    max_concurrent_requests: 100
    max_request_duration: 300000  # 5 minutes
    max_memory_usage: "2GB"
  storage:
    max_data_size: "100GB"
    max_file_count: 10000
    max_file_size: "1GB"
  api:
    requests_per_minute: 1000
    requests_per_hour: 50000
    requests_per_day: 1000000
  cost:
    monthly_budget: 5000
    daily_limit: 200
    cost_alert_threshold: 0.8  # 80% of budget
  domains:
    manufacturing: true
    finance: false
    pharma: false
)";

}  // namespace kmsd::testing
