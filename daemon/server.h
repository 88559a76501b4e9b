// Server: kmsd's nng REP socket and the worker threads that serve it.
//
// Each worker owns one nng context and answers one request at a time, so up
// to `workers` requests run in parallel. The peer's uid/gid/pid come from the
// IPC pipe (SO_PEERCRED). Request frames are wiped after handling: they may
// hold plaintext. Start() returns once the socket listens; Stop() (or the
// destructor) closes it and joins the workers. Start/Stop from one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "daemon/dispatcher.h"

namespace kmsd {

struct ServerOptions {
  std::string socket_path;
  uint32_t socket_mode = 0600;
  size_t workers = 8;
  size_t max_frame_bytes = 1 << 20;
};

class Server {
 public:
  static Result<std::unique_ptr<Server>> Start(const ServerOptions& options,
                                               Dispatcher& dispatcher);
  ~Server();
  void Stop();

 private:
  Server(uint32_t socket_id, Dispatcher& dispatcher)
      : socket_id_(socket_id), dispatcher_(dispatcher) {}
  void Serve();

  uint32_t socket_id_;
  Dispatcher& dispatcher_;
  std::vector<std::thread> workers_;
  bool stopped_ = false;
};

}  // namespace kmsd
