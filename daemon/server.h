// Server: kmsd's nng REP socket and the worker threads that serve it.
//
// Each worker owns one nng context and answers one request at a time, so up
// to `workers` requests run in parallel. The peer's uid/gid/pid come from the
// IPC pipe (SO_PEERCRED). Request frames are wiped after handling: they may
// hold plaintext. Start() returns once the socket listens; Stop() (or the
// destructor) closes it and joins the workers. Start/Stop from one thread.
//
// Who may connect, how many connections a uid may hold and how long an idle
// connection stays open are the PeerGate's (daemon/peer_gate.h): the server
// attaches it to the socket before listening, tells it when each request
// starts and ends, and ticks it from the watchdog. The transport drops frames
// over max_frame_bytes (plus the REQ header) from their declared length alone.
//
// A watchdog thread probes the listener every 250 ms with a bare SP
// handshake and re-creates it when it stops accepting: nng 1.5.2 (Debian 12)
// stops accepting for good when a client hangs up during the handshake
// (nanomsg/nng#1518, fixed upstream in #1519), which would let any local
// process lock every client out.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "daemon/dispatcher.h"
#include "daemon/peer_gate.h"

namespace kmsd {

struct ServerOptions {
  std::string socket_path;
  uint32_t socket_mode = 0600;
  size_t workers = 8;
  size_t max_frame_bytes = 1 << 20;
};

// True if a process accepts connections on the Unix socket at `path` (an
// nng REQ dial succeeds); false for no file or a file nobody listens on.
bool SocketHasListener(const std::string& path);

class Server {
 public:
  // `gate` must outlive the Server.
  static Result<std::unique_ptr<Server>> Start(const ServerOptions& options, Dispatcher& dispatcher,
                                               PeerGate& gate);
  ~Server();
  void Stop();

 private:
  Server(uint32_t socket_id, Dispatcher& dispatcher, PeerGate& gate, ServerOptions options)
      : socket_id_(socket_id), dispatcher_(dispatcher), gate_(gate), options_(std::move(options)) {}
  void Serve();
  Status Listen();  // creates and starts the listener, sets listener_id_
  void Watch();

  // Constant after Start.
  const uint32_t socket_id_;
  Dispatcher& dispatcher_;
  PeerGate& gate_;
  const ServerOptions options_;
  std::vector<std::thread> workers_;
  std::thread watchdog_;

  uint32_t listener_id_ = 0;  // set by Start, then only by the watchdog
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopped_ = false;               // guarded by stop_mu_
  std::atomic<bool> stopping_{false};  // workers leave when set
};

}  // namespace kmsd
