// Dev mode (`kmsd --dev DIR`): the embedded default, one command to a working
// daemon. The first start creates DIR (0700) with a private SoftHSM2 token
// (tokens/, softhsm2.conf), random SO and user PINs in 0600 files, and later
// the keystore, the socket and the backup directory (backups/, 0700); later
// starts reuse them. The uid that runs it is the admin. Not thread-safe: call
// once, before anything loads a module.
#pragma once

#include <string>

#include "daemon/config.h"

namespace kmsd {

inline constexpr std::string_view kDevTokenLabel = "kmsd-dev";

// Prepares DIR, points SOFTHSM2_CONF at its conf file and returns the Config
// to run with. Initializes the token on first start.
Result<Config> PrepareDevDirectory(const std::string& dir);

}  // namespace kmsd
