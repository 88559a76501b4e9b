// What the pipeline harness (pipeline_fuzzer.cc) sets up and its seeds
// (make_seeds.cc) name: the tenant, its policy, its principal, and the
// placeholder the harness replaces by the principal's real API key.
#pragma once

#include <string_view>

#include "protocol/credential_text.h"

namespace kmsd::fuzz {

inline constexpr std::string_view kTenant = "acme";
inline constexpr std::string_view kPrincipal = "app";
// Small quotas, so that inputs cannot make the world large between rebuilds.
inline constexpr std::string_view kTenantPolicy = R"(resource_quotas:
  tenant_id: "acme"
  keys:
    max_keys: 8
    max_data_keys_per_day: 100000
)";
// An API key's shape and length (protocol/credential_text.h), with an id no
// real key has (the prefix is keystore/access_directory.h's kApiKeySecretPrefix).
inline constexpr std::string_view kApiKeyPlaceholder =
    "kmsd_ak_ffffffffffffffff_FUZZ-API-KEY-PLACEHOLDER-xxxxxxxxxxxxxxxxxx";
static_assert(kApiKeyPlaceholder.size() == CredentialTextSize("kmsd_ak_"));

}  // namespace kmsd::fuzz
