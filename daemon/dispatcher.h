// Dispatcher: turns one request frame from a peer into one reply frame.
//
// Every step that can fail answers with an error reply (never a dropped
// request): frame size, msgpack, envelope, op, access, arguments, then the
// operation. Every request is logged with identifiers only (id, op, tenant,
// uid, pid, code, duration), never with arguments or results. The request
// frame is the caller's; the Dispatcher never keeps a reference to it.
// Thread-safe: one Dispatcher serves all workers.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <span>

#include "daemon/peer_gate.h"
#include "keystore/backup_directory.h"
#include "keystore/hierarchy.h"
#include "pkcs11/token.h"
#include "policy/access.h"
#include "protocol/value.h"

namespace kmsd {

struct DispatcherOptions {
  size_t max_frame_bytes = 1 << 20;
  // Where keystore.backup writes; without one, keystore.backup is refused.
  std::optional<BackupDirectory> backups;
  // Where `status` reads the count of refused connections; may be null.
  const PeerGate* gate = nullptr;
};

class Dispatcher {
 public:
  Dispatcher(KeyHierarchy& hierarchy, pkcs11::Token& token, const AccessPolicy& access,
             DispatcherOptions options);

  WipingBuffer Handle(const Peer& peer, std::span<const uint8_t> frame);

 private:
  KeyHierarchy& hierarchy_;
  pkcs11::Token& token_;
  const AccessPolicy& access_;
  const DispatcherOptions options_;
  const std::chrono::steady_clock::time_point started_;
};

}  // namespace kmsd
