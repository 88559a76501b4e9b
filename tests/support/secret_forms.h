// The forms a secret could take in a log, a file or a backup, for tests that
// scan for leaks: raw bytes, hex (both cases), base64 and base64url. Pure
// functions; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kmsd::testing {

std::string Hex(std::string_view bytes, bool upper = false);
std::vector<std::string> SecretForms(std::string_view secret);

}  // namespace kmsd::testing
