// PeerCredentials: who is at the other end of a local connection, as the
// kernel reports it (SO_PEERCRED), with the supplementary groups read from
// /proc/<pid>/status when the connection was made (docs/CONFIG.md says how
// far to trust them). A plain value.
#pragma once

#include <cstdint>
#include <vector>

namespace kmsd {

struct PeerCredentials {
  uint64_t uid = 0;
  uint64_t gid = 0;
  uint64_t pid = 0;
  std::vector<uint64_t> groups = {};  // supplementary; empty when unknown
};

// A peer whose credentials could not be read, or whose connection is gone:
// ids that no configuration lists, so every policy refuses it.
inline PeerCredentials UnknownPeer() {
  return {.uid = ~uint64_t{0}, .gid = ~uint64_t{0}, .pid = 0, .groups = {}};
}

}  // namespace kmsd
