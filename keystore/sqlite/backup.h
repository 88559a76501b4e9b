// Backup and restore of the SQLite keystore (store.h: KeyStore::Backup,
// RestoreSqliteKeyStore).
//
// Backup copies the live database with SQLite's online backup API on the
// store's own connection, under the store's lock, so the copy is one
// consistent snapshot; writers wait for it. The copy goes to a temporary file
// beside the keystore (SQLite opens files by path; kmsd's own directory is the
// one place trusted with that), is switched to journal_mode=DELETE (one
// self-contained file) and counted; CreateFileNoFollow (backup_directory.h)
// then copies it into the target's directory, opened without following
// symlinks, as a temporary file that is fsynced and linked to the target
// name: link() fails if the name exists, which gives O_EXCL semantics without
// a window where a partial file has the target's name.
//
// Restore copies a backup beside the keystore, identifies and checks the
// copy there, adjusts it (every reservation to kAllEncryptionsReserved, the
// replaced keystore's destruction queue kept) and renames it over the
// keystore. Private to keystore/.
#pragma once

#include <sqlite3.h>

#include <functional>
#include <string>

#include "keystore/store.h"
#include "protocol/status.h"

namespace kmsd::sqlite {

// Copies the pages of the live database `live` into `dest` in one step. The
// caller holds whatever serializes the use of `live`.
Status CopyPages(sqlite3* live, sqlite3* dest);

// Writes the backup at `target` (rules of KeyStore::Backup), staging it
// beside `keystore_path`. `copy_live(dest)` copies the live database into
// the staged file's connection (CopyPages under the store's lock).
Result<KeyStoreCopyInfo> WriteBackup(const std::string& keystore_path, const std::string& target,
                                     const std::function<Status(sqlite3* dest)>& copy_live);

// RestoreSqliteKeyStore of store.h.
Result<KeyStoreCopyInfo> Restore(const std::string& backup_path, const std::string& keystore_path);

}  // namespace kmsd::sqlite
