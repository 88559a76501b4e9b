// libFuzzer target: the daemon's config file (daemon/config.h), as text:
// ParseConfig, which LoadConfig calls with the file's bytes (it reads no file
// itself).
//
// A config that reads must be one kmsd can start from as it is (config.h:
// "LoadConfig validates it fully"): its documented bounds are checked here.
// Any crash, sanitizer report, uncaught exception (yaml-cpp's included) or
// broken invariant (__builtin_trap) is a finding; among them: every refusal
// is INVALID_ARGUMENT.
//
// Seeds: corpus/config/, a minimal and a full config (docs/CONFIG.md's fields).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "daemon/config.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using kmsd::fuzz::Check;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kmsd;
  const std::string_view yaml(reinterpret_cast<const char*>(data), size);
  auto config = ParseConfig(yaml, "fuzz.yaml");
  if (!config) {
    Check(config.error().code() == Code::kInvalidArgument);
    return 0;
  }
  Check(!config->token_label.empty() && !config->pin_file.empty());
  Check(!config->socket_path.empty() && !config->keystore_path.empty());
  Check(config->workers >= 1 && config->max_frame_bytes >= 1);
  Check(config->socket_mode <= 07777);
  (void)AuditDirOf(*config);
  return 0;
}
