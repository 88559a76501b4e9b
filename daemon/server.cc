#include "daemon/server.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/transport/ipc/ipc.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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

// The REQ protocol's header in front of each request frame: one hop's
// request id. A peer that claims more hops is over the limit.
constexpr size_t kReqHeaderBytes = 4;

}  // namespace

bool SocketHasListener(const std::string& path) {
  if (!std::filesystem::exists(path)) return false;
  nng_socket probe;
  if (nng_req0_open(&probe) != 0) return false;
  const std::string url = "ipc://" + path;
  const bool alive = nng_dial(probe, url.c_str(), nullptr, 0) == 0;
  nng_close(probe);
  return alive;
}

Result<std::unique_ptr<Server>> Server::Start(const ServerOptions& options, Dispatcher& dispatcher,
                                              PeerGate& gate) {
  nng_socket socket;
  if (int rv = nng_rep0_open(&socket); rv != 0) return Error(NngError(rv, "nng_rep0_open"));
  std::unique_ptr<Server> server(new Server(socket.id, dispatcher, gate, options));
  // nng allocates the length a frame declares as soon as its header arrives
  // (NOTES.md): the transport drops a frame over the limit from its length
  // alone and closes that connection; nothing larger is ever buffered.
  nng_socket_set_size(socket, NNG_OPT_RECVMAXSZ, options.max_frame_bytes + kReqHeaderBytes);
  RETURN_IF_ERROR(gate.Attach(socket));

  // A socket file left by a crashed kmsd would make listen fail; a live kmsd
  // still answers on it, so only remove it when nobody is listening.
  if (SocketHasListener(options.socket_path)) {
    return Error(Code::kUnavailable, "another kmsd is already listening on " + options.socket_path);
  }
  if (std::filesystem::exists(options.socket_path)) unlink(options.socket_path.c_str());
  RETURN_IF_ERROR(server->Listen());
  for (size_t i = 0; i < std::max<size_t>(options.workers, 1); ++i) {
    server->workers_.emplace_back([s = server.get()] { s->Serve(); });
  }
  server->watchdog_ = std::thread([s = server.get()] { s->Watch(); });
  spdlog::info("listening on {} (mode {:o}, {} workers)", options.socket_path, options.socket_mode,
               server->workers_.size());
  return server;
}

Status Server::Listen() {
  const std::string url = "ipc://" + options_.socket_path;
  nng_listener listener;
  if (int rv = nng_listener_create(&listener, SocketOf(socket_id_), url.c_str()); rv != 0) {
    return NngError(rv, "cannot create listener on " + options_.socket_path);
  }
  // Only between create and start (NOTES.md).
  if (int rv = nng_listener_set_int(listener, NNG_OPT_IPC_PERMISSIONS,
                                    static_cast<int>(options_.socket_mode));
      rv != 0) {
    nng_listener_close(listener);
    return NngError(rv, "cannot set socket permissions");
  }
  if (int rv = nng_listener_start(listener, 0); rv != 0) {
    nng_listener_close(listener);
    return NngError(rv, "cannot listen on " + options_.socket_path);
  }
  listener_id_ = listener.id;
  return OkStatus();
}

namespace {

// Connects to the listener as a REQ peer would, completes the SP handshake,
// and waits until nng's core takes the pipe. With nng#1518 the transport
// still shakes hands, but its pipes never reach the socket: only the gate,
// which sees kmsd's own pipes reach ADD_PRE, tells. (The listener's accept
// count does not: other peers' connections move it too, and a probe that
// hung up on that signal before its own pipe was taken tripped the bug.)
bool ListenerAccepts(const std::string& path, const PeerGate& gate) {
  const uint64_t before = gate.own_pipes();
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return true;  // no resources to probe with: not the listener's fault
  struct timeval timeout = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  // SP over IPC: 0x00 'S' 'P' 0x00, protocol id (REQ 0x30, REP 0x31), 0x0000.
  const uint8_t hello[8] = {0, 'S', 'P', 0, 0x00, 0x30, 0, 0};
  uint8_t answer[8] = {};
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
            send(fd, hello, sizeof hello, MSG_NOSIGNAL) == sizeof hello &&
            recv(fd, answer, sizeof answer, MSG_WAITALL) == sizeof answer && answer[1] == 'S' &&
            answer[2] == 'P' && answer[5] == 0x31;
  if (ok) {
    // Closing before the core takes the pipe is itself what triggers the bug.
    ok = false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (!ok && std::chrono::steady_clock::now() < deadline) {
      ok = gate.own_pipes() > before;
      if (!ok) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  close(fd);
  return ok;
}

}  // namespace

void Server::Watch() {
  std::unique_lock lock(stop_mu_);
  // A probe costs one connect and 16 bytes. Two failures in a row (about
  // 2.5 s) are needed: re-creating the listener also closes the pipes it
  // accepted, so a false alarm from one starved probe would cost in-flight
  // requests.
  int failures = 0;
  while (!stop_cv_.wait_for(lock, std::chrono::milliseconds(250), [&] { return stopped_; })) {
    lock.unlock();
    gate_.Tick();
    const bool answers = ListenerAccepts(options_.socket_path, gate_);
    lock.lock();
    failures = answers ? 0 : failures + 1;
    if (failures < 2 || stopped_) continue;
    failures = 0;
    spdlog::warn("listener on {} stopped accepting (nng#1518); re-creating it",
                 options_.socket_path);
    nng_listener old;
    old.id = listener_id_;
    nng_listener_close(old);
    if (Status s = Listen(); !s.ok()) spdlog::error("{}", s.ToString());
  }
}

namespace {

void SendReply(nng_ctx ctx, nng_aio* aio, const WipingBuffer& bytes) {
  nng_msg* reply;
  if (nng_msg_alloc(&reply, bytes.size()) != 0) return;
  std::memcpy(nng_msg_body(reply), bytes.data(), bytes.size());
  nng_aio_set_msg(aio, reply);
  nng_aio_set_timeout(aio, 5000);
  nng_ctx_send(ctx, aio);
  nng_aio_wait(aio);
  if (nng_aio_result(aio) != 0) nng_msg_free(reply);
}

}  // namespace

void Server::Serve() {
  nng_ctx ctx;
  nng_aio* aio;
  if (nng_ctx_open(&ctx, SocketOf(socket_id_)) != 0 || nng_aio_alloc(&aio, nullptr, nullptr) != 0) {
    spdlog::error("worker could not start");
    return;
  }
  // Workers stop on their own, between requests: nng 1.5.2 panics
  // (pthread_mutex_lock on a freed context) when a worker that was handling a
  // request while the socket closed then sends its reply. So the socket is
  // closed only after every worker has left, and receives time out to let
  // idle workers see stopping_.
  while (!stopping_.load()) {
    nng_aio_set_timeout(aio, 200);
    nng_ctx_recv(ctx, aio);
    nng_aio_wait(aio);
    if (int rv = nng_aio_result(aio); rv != 0) {
      if (rv == NNG_ECLOSED) break;
      continue;
    }
    nng_msg* request = nng_aio_get_msg(aio);
    const uint32_t pipe_id = nng_pipe_id(nng_msg_get_pipe(request));
    // A pipe the gate does not know closed meanwhile: its peer is nobody,
    // and gets ACCESS_DENIED if the reply still reaches it.
    const Peer peer = gate_.BeginRequest(pipe_id).value_or(
        Peer{.uid = ~uint64_t{0}, .gid = ~uint64_t{0}, .pid = 0, .groups = {}});
    auto* body = static_cast<uint8_t*>(nng_msg_body(request));
    const size_t length = nng_msg_len(request);
    WipingBuffer reply_bytes = dispatcher_.Handle(peer, {body, length});
    WipeMemory(body, length);
    nng_msg_free(request);
    SendReply(ctx, aio, reply_bytes);
    gate_.EndRequest(pipe_id);
  }
  nng_aio_free(aio);
  nng_ctx_close(ctx);
}

void Server::Stop() {
  {
    std::lock_guard lock(stop_mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  stop_cv_.notify_all();
  if (watchdog_.joinable()) watchdog_.join();
  stopping_.store(true);
  for (auto& worker : workers_) worker.join();
  nng_close(SocketOf(socket_id_));
}

Server::~Server() { Stop(); }

}  // namespace kmsd
