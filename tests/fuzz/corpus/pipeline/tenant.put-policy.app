Üßversion¢idb¢op±tenant.put-policy¶tenant§acme§argsÅ®documentŸ_resource_quotas:
  tenant_id: "acme"
  keys:
    max_keys: 8
    max_data_keys_per_day: 100000
ßapi_keyƒDkmsd_ak_ffffffffffffffff_FUZZ-API-KEY-PLACEHOLDER-xxxxxxxxxxxxxxxxxx