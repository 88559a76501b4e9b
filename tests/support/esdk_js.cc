#include "tests/support/esdk_js.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

namespace kmsd::testing {
namespace {

// posix_spawn takes a path: node's, from $PATH.
std::string NodePath() {
  const char* path = std::getenv("PATH");
  std::string_view rest = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  while (!rest.empty()) {
    const size_t colon = rest.find(':');
    const std::filesystem::path candidate = std::filesystem::path(rest.substr(0, colon)) / "node";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    rest = colon == std::string_view::npos ? "" : rest.substr(colon + 1);
  }
  return "/usr/bin/node";
}

}  // namespace

CommandResult RunEsdkJs(const std::vector<std::string>& args, const std::string& input) {
  if (!std::filesystem::exists(EsdkJsPath())) {
    ADD_FAILURE() << EsdkJsPath() << " is missing: run scripts/install-npm-deps build/npm/esdk-js";
    return {};
  }
  std::vector<std::string> argv = {NodePath(), EsdkJsPath()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, input);
}

}  // namespace kmsd::testing
