// Encrypted backups: a tenant's directory trees as one pax archive
// (client/backup/archive.h) streamed through one Encryption SDK message
// (suite 0x0478, frames of kBackupFrameLength), so any SDK given the keys
// reads it and GNU tar unpacks what it decrypts to. Its encryption context
// names the tenant (kContextTenant) and the creation time (kContextCreated,
// RFC 3339 UTC, what retention goes by); both are authenticated.
//
// Create streams: each file is read once, memory is one frame and one read
// chunk. Verify decrypts and checks everything (every frame, every entry,
// the manifest, every digest) and writes nothing. Restore makes two passes
// over the same open file: the first is Verify; only if it passes does the
// second write, into a new directory beside the target
// (TARGET.kmsd-restore-*) renamed to TARGET at the end, each file's digest
// checked against the first pass's manifest before it counts; a failure
// removes what it wrote, and a crash leaves TARGET absent (the
// .kmsd-restore-* directory is then the operator's to remove). Restore
// resolves every name beneath the new directory without following links
// (client/store/beneath.h), so a link it created is never followed; the
// set-user-ID, set-group-ID and sticky bits are not restored. One thread.
#pragma once

#include <string>
#include <vector>

#include "client/backup/archive.h"
#include "client/esdk/message.h"

namespace kmsd::backup {

inline constexpr std::string_view kContextTenant = "kmsd-backup-tenant";
inline constexpr std::string_view kContextCreated = "kmsd-backup-created";
inline constexpr uint32_t kBackupFrameLength = 256 * 1024;

// Writes the encrypted backup of `sources` to `out`.
Result<WriteSummary> CreateBackup(esdk::MaterialsManager& materials, const std::string& tenant,
                                  const std::string& created,
                                  const std::vector<TreeSource>& sources, const esdk::Sink& out,
                                  const ProgressFn& progress = {});

// The context of the backup open at `fd` (read from its header, not yet
// authenticated): its tenant and creation time. INVALID_CIPHERTEXT when it
// is not a backup.
struct BackupLabel {
  std::string tenant;
  std::string created;
};
Result<BackupLabel> ReadLabel(int fd);

// Reads the whole backup at `fd` (from its start) and checks it, handing
// each entry to `visitor` as it goes (nothing is released before its
// frame authenticates, but the whole backup is only known good at the end);
// `message_id`, when given, receives the message's id.
Result<Manifest> ReadBackup(esdk::MaterialsManager& materials, int fd, const EntryVisitor& visitor,
                            const ProgressFn& progress, esdk::Bytes* message_id);

// Reads the whole backup at `fd` (from its start) and checks it.
Result<Manifest> VerifyBackup(esdk::MaterialsManager& materials, int fd,
                              const ProgressFn& progress = {});

struct RestoreSummary {
  uint64_t files = 0, directories = 0, symlinks = 0, bytes = 0;
};
// Progress of each pass: `restoring` is asked, once the first pass has
// verified the backup, for the second pass's (the manifest says how much is
// to come).
struct RestoreProgress {
  ProgressFn verifying;
  std::function<ProgressFn(const Manifest&)> restoring;
};
// Verifies, then restores into `target` (which must not exist, or be an
// empty directory; its parent must exist).
Result<RestoreSummary> RestoreBackup(esdk::MaterialsManager& materials, int fd,
                                     const std::string& target,
                                     const RestoreProgress& progress = {});
// The bytes of the files `manifest` lists.
uint64_t FileBytes(const Manifest& manifest);

// "2026-12-03T18:40:00Z" <-> seconds since the epoch.
std::string Rfc3339(int64_t seconds);
std::optional<int64_t> ParseRfc3339(std::string_view text);

}  // namespace kmsd::backup
