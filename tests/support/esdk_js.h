// The JavaScript AWS Encryption SDK (npm @aws-crypto/client-node, through
// tests/interop/esdk-js/esdk.js) as an independent implementation of the
// message format. scripts/test installs it into build/npm/esdk-js
// (scripts/install-npm-deps); a test that needs it fails, not skips, when it
// is missing.
#pragma once

#include <string>
#include <vector>

#include "tests/support/daemon_process.h"

namespace kmsd::testing {

inline std::string EsdkJsPath() { return KMSD_SOURCE_DIR "/build/npm/esdk-js/esdk.js"; }

// node esdk.js ARGS..., `input` on stdin.
CommandResult RunEsdkJs(const std::vector<std::string>& args, const std::string& input);

}  // namespace kmsd::testing
