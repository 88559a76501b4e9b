// PeerGate: who may hold a connection to kmsd, and for how long.
//
// The server (daemon/server.h) asks it about every connection it accepts,
// before it reads a byte from it (Admit), with the peer's credentials
// (System::PeerOfStream, os/system.h: SO_PEERCRED, plus supplementary
// groups from /proc/<pid>/status), and tells it when the connection ended
// (Release). Admit refuses when AccessPolicy::MayConnect refuses the peer,
// when the peer's uid already holds `max_connections_per_uid` connections, or
// when all peers together hold `max_connections` (each costs kmsd a thread).
// Refusals are counted and logged through a RefusalLog (at most one line per
// second), admissions at debug level. kmsd's own process (the server's
// listener probe) is always let in, and neither counted nor logged.
//
// The server reports each request's start and end (BeginRequest/EndRequest,
// by connection id) and calls Tick from its watchdog: Tick names the
// connections that had no request for `idle_timeout` and have none in
// flight, which the server then closes (a peer that stops half way through
// a frame, or before its first, is closed this way).
//
// Thread-safe (one mutex): the accepting thread, the connections' threads
// and the watchdog call it concurrently. Not copyable.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "daemon/refusal_log.h"
#include "policy/access.h"

namespace kmsd {

struct PeerGateOptions {
  size_t max_connections_per_uid = 64;
  std::chrono::milliseconds idle_timeout{30000};
  size_t max_connections = 1024;
};

class PeerGate {
 public:
  PeerGate(const AccessPolicy& access, PeerGateOptions options)
      : access_(access), options_(options) {}
  PeerGate(const PeerGate&) = delete;
  PeerGate& operator=(const PeerGate&) = delete;

  // Whether the connection `connection_id` of `peer` may stay open; a
  // refusal is counted and logged. An admitted connection is Released once.
  bool Admit(uint64_t connection_id, const Peer& peer);
  void Release(uint64_t connection_id);

  // The peer of an admitted connection, now with one more request in flight;
  // nullopt for a connection the gate does not know (released meanwhile).
  std::optional<Peer> BeginRequest(uint64_t connection_id);
  void EndRequest(uint64_t connection_id);

  // The connections idle for idle_timeout, now marked as closing (the
  // caller closes them), and writes a pending refusal summary. Called by the
  // server's watchdog every 250 ms.
  std::vector<uint64_t> Tick();

  // New limits (a reload): connections already open stay, even over the
  // new maximum.
  void SetOptions(PeerGateOptions options);

  // Connections refused since start (for the `status` operation).
  uint64_t refused() const { return refused_.load(); }
  // Connections open now.
  size_t connections() const;

 private:
  using Clock = std::chrono::steady_clock;
  struct ConnectionState {
    Peer peer;
    Clock::time_point last_activity;
    int in_flight = 0;
    bool counted = true;   // false for kmsd's own probe
    bool closing = false;  // named by Tick, not released yet
  };

  // Counts and (rationed) logs a refusal.
  void Refuse(const Peer& peer, std::string_view reason);

  const AccessPolicy& access_;
  PeerGateOptions options_;  // guarded by mu_

  mutable std::mutex mu_;
  std::unordered_map<uint64_t, ConnectionState> connections_;  // guarded by mu_
  std::unordered_map<uint64_t, size_t> connections_per_uid_;   // guarded by mu_
  size_t counted_ = 0;  // guarded by mu_; connections counted against the caps
  RefusalLog refusal_log_{std::chrono::seconds(1)};  // guarded by mu_
  std::atomic<uint64_t> refused_{0};
};

}  // namespace kmsd
