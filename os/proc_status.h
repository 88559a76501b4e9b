// Supplementary groups of a peer process, from /proc/<pid>/status.
//
// SO_PEERCRED gives a peer's uid, gid and pid but not its supplementary
// groups; Linux shows them in /proc/<pid>/status. The pid may have exited and
// been reused by the time it is read, so the groups count only when the file's
// effective uid is the peer's. Plain functions, safe from any thread.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace kmsd {

// The supplementary groups in the text of a /proc/<pid>/status file, or an
// empty list unless its effective uid (the second field of "Uid:") is `uid`:
// the pid may have exited and been reused since the peer connected, and only a
// process of the same user is trusted to stand for it.
std::vector<uint64_t> GroupsFromProcStatus(std::string_view status, uint64_t uid);
// Reads /proc/<pid>/status; empty when it cannot be read (see above).
std::vector<uint64_t> ReadSupplementaryGroups(uint64_t pid, uint64_t uid);

}  // namespace kmsd
