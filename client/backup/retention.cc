#include "client/backup/retention.h"

#include <algorithm>
#include <map>

namespace kmsd::backup {

std::vector<size_t> SelectForRemoval(const std::vector<BackupFile>& backups,
                                     const RetentionRules& rules, int64_t now) {
  if (!rules.keep_last && !rules.keep_within_seconds) return {};
  std::map<std::string, std::vector<size_t>> by_tenant;
  for (size_t i = 0; i < backups.size(); ++i) by_tenant[backups[i].tenant].push_back(i);
  std::vector<size_t> removed;
  for (auto& [tenant, indexes] : by_tenant) {
    std::stable_sort(indexes.begin(), indexes.end(),
                     [&](size_t a, size_t b) { return backups[a].created > backups[b].created; });
    for (size_t rank = 0; rank < indexes.size(); ++rank) {
      const BackupFile& backup = backups[indexes[rank]];
      const bool recent = rules.keep_within_seconds &&
                          backup.created >= now - static_cast<int64_t>(std::min<uint64_t>(
                                                      *rules.keep_within_seconds, INT64_MAX / 2));
      const bool among_last = rules.keep_last && rank < *rules.keep_last;
      if (!recent && !among_last) removed.push_back(indexes[rank]);
    }
  }
  std::sort(removed.begin(), removed.end());
  return removed;
}

}  // namespace kmsd::backup
