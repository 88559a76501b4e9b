// A backup's manifest: what the archive must hold, entry by entry, written as
// the archive's last entry (kManifestName) once every file's digest is known.
//
//   {"format": "kmsd-backup-1", "tenant": T, "created": "2026-12-03T18:40:00Z",
//    "entries": [{"path": "docs/a.txt", "type": "file", "size": 12,
//                 "mode": 420, "mtime_ns": 1764787200000000000,
//                 "sha256": "<64 hex>"},
//                {"path": "docs", "type": "dir", "mode": 493, "mtime_ns": ...},
//                {"path": "docs/l", "type": "symlink", "target": "a.txt", ...}]}
//
// Paths are relative, '/'-separated UTF-8 (client/store/beneath.h's rules,
// the store's reserved prefix aside). Parsing is strict: unknown members,
// wrong types, duplicate paths and a wrong format are INVALID_CIPHERTEXT
// (the manifest came out of an authenticated message, so a bad one is a
// forged or broken backup). Pure; thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/status.h"

namespace kmsd::backup {

inline constexpr std::string_view kManifestName = ".kmsd-backup-manifest.json";
inline constexpr std::string_view kManifestFormat = "kmsd-backup-1";
// A manifest larger than this is refused unread (about 100 bytes an entry).
inline constexpr size_t kMaxManifestBytes = 256u << 20;

enum class EntryType { kFile, kDirectory, kSymlink };

struct Entry {
  std::string path;
  EntryType type = EntryType::kFile;
  uint64_t size = 0;  // files
  uint32_t mode = 0;  // permission bits (07777)
  int64_t mtime_ns = 0;
  std::array<uint8_t, 32> sha256{};  // files
  std::string target;                // symlinks
  bool operator==(const Entry&) const = default;
};

struct Manifest {
  std::string tenant;
  std::string created;  // RFC 3339, UTC
  std::vector<Entry> entries;
};

std::string ManifestJson(const Manifest& manifest);
Result<Manifest> ParseManifest(std::string_view text);

// INVALID_ARGUMENT unless `path` is a relative name that stays in the tree
// (store rules, `.kmsd-` allowed).
Status CheckEntryPath(std::string_view path);
// INVALID_ARGUMENT unless the link at `path` pointing at `target` resolves
// inside the tree (relative, its '..' never climbing above the root).
Status CheckLinkTarget(std::string_view path, std::string_view target);

std::string_view TypeName(EntryType type);

}  // namespace kmsd::backup
