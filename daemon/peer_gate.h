// PeerGate: who may hold a connection to kmsd, and for how long.
//
// Attached to the REP socket, it sees every pipe (connection) twice: in
// nng's NNG_PIPE_EV_ADD_PRE callback, before nng reads a byte of a request
// from it, and at NNG_PIPE_EV_REM_POST, after it closed. At ADD_PRE it reads
// the peer's credentials (System::PeerOfPipe, os/system.h: SO_PEERCRED through
// nng, plus supplementary groups from /proc/<pid>/status) and closes the pipe
// when AccessPolicy::MayConnect refuses the peer or when the peer's uid
// already holds `max_connections_per_uid` pipes. Refusals are counted and
// logged through a RefusalLog (at most one line per second). kmsd's own
// process (the server's listener probe) is always let in and not counted.
//
// Workers report each request's start and end (BeginRequest/EndRequest, by
// pipe id); the server's watchdog calls Tick, which ends pipes that had no
// request for `idle_timeout` and have none in flight: nng 1.5.2 does not show
// a partly received frame, so a peer that stops halfway is closed this way.
// Tick does not close a pipe through nng: nng 1.5.2 hangs for good when it
// closes a pipe just after part of a frame arrived (nanomsg/nng#1543, which a
// peer sending a byte at a time triggers at will) and then never releases
// another connection. It shuts down reading on the connection's socket
// instead (System::ShutDownReadingOfConnectionsTo), and the pipe ends through
// its own error path. nng does not tell which socket is whose pipe, only the
// peer's pid: so a process's idle connections end when all of its
// connections are idle (one still in use keeps its idle siblings open; the
// per-uid limit still bounds them; one it opens at that very moment, not yet
// admitted, ends with them).
//
// Only pipes admitted at ADD_PRE are in the gate's map, so a refused pipe's
// REM_POST releases nothing. Thread-safe: nng's callback threads, workers and
// the watchdog call it concurrently (one mutex). Not copyable; it must outlive
// the socket it is attached to.
#pragma once

#include <nng/nng.h>

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
};

class PeerGate {
 public:
  PeerGate(const AccessPolicy& access, PeerGateOptions options)
      : access_(access), options_(options) {}
  PeerGate(const PeerGate&) = delete;
  PeerGate& operator=(const PeerGate&) = delete;

  // Registers the ADD_PRE and REM_POST callbacks on `socket`, before it
  // listens on `socket_path` (where Tick finds the connections to end).
  Status Attach(nng_socket socket, std::string socket_path);

  // The peer of an admitted pipe, now with one more request in flight; nullopt
  // for a pipe the gate does not know (closed meanwhile).
  std::optional<Peer> BeginRequest(uint32_t pipe_id);
  void EndRequest(uint32_t pipe_id);

  // Ends idle pipes and writes a pending refusal summary. Called by the
  // server's watchdog every 250 ms.
  void Tick();

  // New limits (a reload): connections already open stay, even over the
  // new maximum.
  void SetOptions(PeerGateOptions options);

  // Connections refused since start (for the `status` operation).
  uint64_t refused() const { return refused_.load(); }
  // Connections open now.
  size_t connections() const;
  // kmsd's own connections that reached ADD_PRE (the listener probe's).
  uint64_t own_pipes() const { return own_pipes_.load(); }

 private:
  using Clock = std::chrono::steady_clock;
  struct PipeState {
    Peer peer;
    Clock::time_point last_activity;
    int in_flight = 0;
    bool counted = true;   // false for kmsd's own probe
    bool closing = false;  // ended by Tick, REM_POST not seen yet
  };

  static void OnPipeEvent(nng_pipe pipe, nng_pipe_ev event, void* self);
  void Admit(nng_pipe pipe);
  void Release(uint32_t pipe_id);
  // Counts and (rationed) logs a refusal; the caller closes the pipe.
  void Refuse(const Peer& peer, std::string_view reason);

  const AccessPolicy& access_;
  std::string socket_path_;  // set by Attach, before any other call
  PeerGateOptions options_;  // guarded by mu_

  mutable std::mutex mu_;
  std::unordered_map<uint32_t, PipeState> pipes_;       // guarded by mu_
  std::unordered_map<uint64_t, size_t> pipes_per_uid_;  // guarded by mu_
  RefusalLog refusal_log_{std::chrono::seconds(1)};     // guarded by mu_
  std::atomic<uint64_t> refused_{0};
  std::atomic<uint64_t> own_pipes_{0};
};

}  // namespace kmsd
