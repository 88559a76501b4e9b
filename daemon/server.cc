#include "daemon/server.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/transport/ipc/ipc.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

namespace kmsd {
namespace {

nng_socket SocketOf(uint32_t id) {
  nng_socket s;
  s.id = id;
  return s;
}

Status NngError(int rv, const std::string& what) {
  return Status(Code::kInternal, what + ": " + nng_strerror(rv));
}

// An unreadable peer is treated as nobody: it gets ACCESS_DENIED.
Peer PeerOf(nng_msg* msg) {
  Peer peer{~uint64_t{0}, ~uint64_t{0}, 0};
  nng_pipe pipe = nng_msg_get_pipe(msg);
  nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_UID, &peer.uid);
  nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_GID, &peer.gid);
  nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_PID, &peer.pid);
  return peer;
}

}  // namespace

Result<std::unique_ptr<Server>> Server::Start(const ServerOptions& options,
                                              Dispatcher& dispatcher) {
  nng_socket socket;
  if (int rv = nng_rep0_open(&socket); rv != 0) return Error(NngError(rv, "nng_rep0_open"));
  std::unique_ptr<Server> server(new Server(socket.id, dispatcher));
  // Frames up to twice the limit are read and answered FRAME_TOO_LARGE; the
  // transport drops anything bigger before it is buffered.
  nng_socket_set_size(socket, NNG_OPT_RECVMAXSZ, options.max_frame_bytes * 2 + 65536);

  // A socket file left by a crashed kmsd would make listen fail; a live kmsd
  // still answers on it, so only remove it when nobody is listening.
  const std::string url = "ipc://" + options.socket_path;
  if (std::filesystem::exists(options.socket_path)) {
    nng_socket probe;
    if (nng_req0_open(&probe) == 0) {
      const bool alive = nng_dial(probe, url.c_str(), nullptr, 0) == 0;
      nng_close(probe);
      if (alive) {
        return Error(Code::kUnavailable,
                     "another kmsd is already listening on " + options.socket_path);
      }
    }
    unlink(options.socket_path.c_str());
  }
  nng_listener listener;
  if (int rv = nng_listener_create(&listener, socket, url.c_str()); rv != 0) {
    return Error(NngError(rv, "cannot create listener on " + options.socket_path));
  }
  // Only between create and start (NOTES.md).
  if (int rv = nng_listener_set_int(listener, NNG_OPT_IPC_PERMISSIONS,
                                    static_cast<int>(options.socket_mode));
      rv != 0) {
    return Error(NngError(rv, "cannot set socket permissions"));
  }
  if (int rv = nng_listener_start(listener, 0); rv != 0) {
    return Error(NngError(rv, "cannot listen on " + options.socket_path));
  }
  for (size_t i = 0; i < std::max<size_t>(options.workers, 1); ++i) {
    server->workers_.emplace_back([s = server.get()] { s->Serve(); });
  }
  spdlog::info("listening on {} (mode {:o}, {} workers)", options.socket_path, options.socket_mode,
               server->workers_.size());
  return server;
}

void Server::Serve() {
  nng_ctx ctx;
  nng_aio* aio;
  if (nng_ctx_open(&ctx, SocketOf(socket_id_)) != 0 || nng_aio_alloc(&aio, nullptr, nullptr) != 0) {
    spdlog::error("worker could not start");
    return;
  }
  for (;;) {
    nng_ctx_recv(ctx, aio);
    nng_aio_wait(aio);
    if (int rv = nng_aio_result(aio); rv != 0) {
      if (rv == NNG_ECLOSED) break;
      continue;
    }
    nng_msg* request = nng_aio_get_msg(aio);
    const Peer peer = PeerOf(request);
    auto* body = static_cast<uint8_t*>(nng_msg_body(request));
    const size_t length = nng_msg_len(request);
    WipingBuffer reply_bytes = dispatcher_.Handle(peer, {body, length});
    WipeMemory(body, length);
    nng_msg_free(request);

    nng_msg* reply;
    if (nng_msg_alloc(&reply, reply_bytes.size()) != 0) continue;
    std::memcpy(nng_msg_body(reply), reply_bytes.data(), reply_bytes.size());
    nng_aio_set_msg(aio, reply);
    nng_ctx_send(ctx, aio);
    nng_aio_wait(aio);
    if (nng_aio_result(aio) != 0) nng_msg_free(reply);
  }
  nng_aio_free(aio);
  nng_ctx_close(ctx);
}

void Server::Stop() {
  if (stopped_) return;
  stopped_ = true;
  nng_close(SocketOf(socket_id_));
  for (auto& worker : workers_) worker.join();
}

Server::~Server() { Stop(); }

}  // namespace kmsd
