// Backup retention (kmsctl backup prune): which backups in a directory to
// keep. Each tenant's backups are ranked by their authenticated creation
// time (the message's context, client/backup/backup.h), newest first; a
// backup is kept when it is among the `keep_last` newest of its tenant or
// was created within `keep_within` seconds before `now`; the others go. With
// neither rule given nothing is selected (the caller refuses that). Pure;
// thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kmsd::backup {

struct BackupFile {
  std::string path;
  std::string tenant;
  int64_t created = 0;  // seconds since the epoch
};

struct RetentionRules {
  std::optional<uint64_t> keep_last;
  std::optional<uint64_t> keep_within_seconds;
};

// The indexes into `backups` of those to remove.
std::vector<size_t> SelectForRemoval(const std::vector<BackupFile>& backups,
                                     const RetentionRules& rules, int64_t now);

}  // namespace kmsd::backup
