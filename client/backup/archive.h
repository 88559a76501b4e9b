// A backup's archive: a tar in pax format (written and read with libarchive)
// of one or more directory trees, each under its own top-level name, then
// the manifest (client/backup/manifest.h) as the last entry. The archive
// goes through a Sink (the Encryptor of an envelope message) and comes back
// from a Source (the Decryptor's plaintext, client/backup/backup.h).
//
// Written: directories, regular files and symbolic links (stored as links,
// never followed); other types (FIFOs, sockets, devices) are skipped and
// reported; a name that is not UTF-8 fails the backup (the manifest and the
// SDKs' readers need text). Each file is read once, its SHA-256 taken on
// the way; a file that shrinks while it is read is padded with zeros (the
// archive and the manifest agree; it is reported as changed); one that
// grows is cut at the size it had.
//
// Read: every entry is checked before its data is handed on (a relative
// name that stays in the tree, a known type, no hard links, no entry under
// a link or a file, no entry twice, links that point inside the tree), its
// digest and size compared with the manifest's at its end, the manifest
// must come last and list exactly what came before. INVALID_CIPHERTEXT
// names the entry that failed; the Source's own errors (a frame that does
// not authenticate) pass through, prefixed with the entry being read.
//
// libarchive needs a UTF-8 locale for non-ASCII names: both sides switch
// the calling thread's LC_CTYPE to C.UTF-8 while they run (uselocale(3);
// the process's locale is left alone). One thread per call.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <vector>

#include "client/backup/manifest.h"
#include "protocol/status.h"

namespace kmsd::backup {

// Receives the archive's bytes.
using Sink = std::function<Status(std::span<const uint8_t>)>;
// Gives the archive's next bytes (valid until the next call); empty at the end.
using Source = std::function<Result<std::span<const uint8_t>>()>;
// Bytes and files done so far.
using ProgressFn = std::function<void(uint64_t bytes, uint64_t files)>;

struct TreeSource {
  std::string directory;  // as given (followed)
  std::string name;       // its top-level name in the archive
};

struct WriteSummary {
  uint64_t files = 0, directories = 0, symlinks = 0;
  uint64_t bytes = 0;                // of file data
  std::vector<std::string> skipped;  // "path: why"
  std::vector<std::string> changed;  // files that shrank while read
};

// Writes `sources` and then the manifest (with `tenant`, `created`).
Result<WriteSummary> WriteArchive(const std::vector<TreeSource>& sources, const std::string& tenant,
                                  const std::string& created, const Sink& sink,
                                  const ProgressFn& progress = {});

// What a reader hands on, entry by entry: `begin` with the entry as the
// archive declares it (path, type, size, mode, mtime, target), `data` with
// its bytes in pieces, `end` with its digest filled in.
struct EntryVisitor {
  std::function<Status(const Entry&)> begin;
  std::function<Status(std::span<const uint8_t>)> data;
  std::function<Status(const Entry&)> end;
};

// Reads and checks the whole archive; the manifest. `visitor` may be empty.
Result<Manifest> ReadArchive(const Source& source, const EntryVisitor& visitor,
                             const ProgressFn& progress = {});

}  // namespace kmsd::backup
