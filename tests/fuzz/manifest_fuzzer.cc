// libFuzzer target: a backup's manifest (client/backup/manifest.h) as restore
// and verify read it out of a decrypted backup.
//
// ParseManifest on the input; each parsed entry's path and link target are
// checked again with CheckEntryPath and CheckLinkTarget, and the manifest is
// written back (ManifestJson) and parsed again: it must give the same
// manifest. Any crash, sanitizer report, uncaught exception or broken
// invariant (__builtin_trap) is a finding; among them: every refusal is
// INVALID_CIPHERTEXT (a bad manifest is a forged or broken backup), a
// parsed entry's path never leaves the tree, and the round trip holds.
//
// Seeds: corpus/manifest/, manifests of the three entry types.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "client/backup/manifest.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using kmsd::fuzz::Check;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kmsd::backup;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto manifest = ParseManifest(text);
  if (!manifest) {
    Check(manifest.error().code() == kmsd::Code::kInvalidCiphertext);
    return 0;
  }
  for (const Entry& entry : manifest->entries) {
    Check(CheckEntryPath(entry.path).ok());
    Check(entry.mode <= 07777);
    if (entry.type == EntryType::kSymlink) Check(CheckLinkTarget(entry.path, entry.target).ok());
  }
  const std::string written = ManifestJson(*manifest);
  auto again = ParseManifest(written);
  Check(again.has_value());
  Check(again->tenant == manifest->tenant && again->created == manifest->created &&
        again->entries == manifest->entries);
  return 0;
}
