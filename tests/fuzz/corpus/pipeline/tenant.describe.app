†§version¢id
¢op¯tenant.describe¦tenant¤acme¤args€§api_keyÄDkmsd_ak_ffffffffffffffff_FUZZ-API-KEY-PLACEHOLDER-xxxxxxxxxxxxxxxxxx