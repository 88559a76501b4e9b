#include "daemon/server.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/transport/ipc/ipc.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>

#include "os/system.h"
#include "protocol/nng_ids.h"

namespace kmsd {
namespace {

Status NngError(int rv, const std::string& what) { return NngError(Code::kInternal, rv, what); }

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

Status CheckNoListener(const std::string& path) {
  if (!SocketHasListener(path)) return OkStatus();
  return Status(Code::kUnavailable, "another kmsd is already listening on " + path);
}

// A request frame from the socket, wiped and freed with its owner.
struct MessageDeleter {
  void operator()(nng_msg* message) const {
    WipeMemory(nng_msg_body(message), nng_msg_len(message));
    nng_msg_free(message);
  }
};
using MessagePtr = std::unique_ptr<nng_msg, MessageDeleter>;

// One admitted request: its frame (the parsed views point into it), the nng
// context it came in on (its reply goes out on it), where it came from, and
// its request context.
struct Server::Job {
  MessagePtr message;
  nng_ctx ctx = NNG_CTX_INITIALIZER;
  uint32_t pipe_id = 0;
  RequestContext context;
  ParsedRequest parsed;
};

// A thread's own aio for its synchronous receives and sends, and the nng
// context it receives on (taken from the pool, handed on with the request).
// While `receiving`, Stop may cancel the aio; its own lock, so that a
// request takes no lock another worker holds.
struct Server::ThreadIo {
  nng_aio* aio = nullptr;
  std::optional<nng_ctx> ctx;
  std::mutex receive_mu;
  bool receiving = false;  // guarded by receive_mu
  ThreadIo() { nng_aio_alloc(&aio, nullptr, nullptr); }
  ~ThreadIo() { nng_aio_free(aio); }
  ThreadIo(const ThreadIo&) = delete;
  ThreadIo& operator=(const ThreadIo&) = delete;
};

Server::Server(uint32_t socket_id, const Pipeline& pipeline, PeerGate& gate, ServerOptions options,
               std::unique_ptr<FairQueue<JobPtr>> queue)
    : socket_id_(socket_id),
      pipeline_(pipeline),
      gate_(gate),
      options_(std::move(options)),
      queue_(std::move(queue)) {}

Result<std::unique_ptr<Server>> Server::Start(const ServerOptions& options,
                                              const Pipeline& pipeline, PeerGate& gate) {
  const size_t workers = std::max<size_t>(options.workers, 1);
  ASSIGN_OR_RETURN(auto queue, FairQueue<JobPtr>::Create(
                                   {.max_in_flight_per_lane = std::max<size_t>(workers - 1, 1),
                                    .max_queued_per_lane = options.max_queued_per_tenant,
                                    .max_queued_total = options.max_queued}));
  nng_socket socket;
  if (int rv = nng_rep0_open(&socket); rv != 0) return Error(NngError(rv, "nng_rep0_open"));
  std::unique_ptr<Server> server(new Server(socket.id, pipeline, gate, options, std::move(queue)));
  // nng allocates the length a frame declares as soon as its header arrives
  // (NOTES.md): the transport drops a frame over the limit from its length
  // alone and closes that connection; nothing larger is ever buffered.
  nng_socket_set_size(socket, NNG_OPT_RECVMAXSZ, options.max_frame_bytes + kReqHeaderBytes);
  RETURN_IF_ERROR(gate.Attach(socket, options.socket_path));

  // A socket file left by a crashed kmsd would make listen fail; a live kmsd
  // still answers on it, so only remove it when nobody is listening.
  RETURN_IF_ERROR(CheckNoListener(options.socket_path));
  if (std::filesystem::exists(options.socket_path)) unlink(options.socket_path.c_str());
  RETURN_IF_ERROR(server->Listen());
  // One thread more than may execute at once: one always receives.
  for (size_t i = 0; i <= workers; ++i) {
    server->workers_.emplace_back([s = server.get()] { s->Serve(); });
  }
  server->watchdog_ = std::thread([s = server.get()] { s->Watch(); });
  spdlog::info("listening on {} (mode {:o}, {} workers)", options.socket_path, options.socket_mode,
               workers);
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
// A probe that got no handshake back in time says nothing: the bug still
// shakes hands, and a daemon busy enough to starve the probe (a loaded
// machine, sanitizers) would otherwise have its listener re-created, which
// closes every connection.
enum class Probe { kAccepted, kNotTaken, kInconclusive };

// A probe waits about a second for each of its steps, counted in looks of
// 2 ms rather than by the clock: a kmsd suspended meanwhile (SIGSTOP, a
// frozen cgroup or VM) has not stopped accepting, and giving up then would
// hang up during the handshake (which itself trips nng#1518) and re-create
// the listener, closing every connection.
constexpr int kProbeLooks = 500;
constexpr int kProbeLookMs = 2;

// The 8 bytes of the listener's SP handshake, or false.
bool ReadHandshake(int fd, uint8_t (&answer)[8]) {
  size_t got = 0;
  for (int look = 0; look < kProbeLooks && got < sizeof answer; ++look) {
    pollfd ready{.fd = fd, .events = POLLIN, .revents = 0};
    if (poll(&ready, 1, kProbeLookMs) <= 0) continue;
    const ssize_t n = recv(fd, answer + got, sizeof answer - got, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return false;
    if (n > 0) got += static_cast<size_t>(n);
  }
  return got == sizeof answer;
}

Probe ProbeListener(const std::string& path, const PeerGate& gate) {
  const uint64_t before = gate.own_pipes();
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Probe::kInconclusive;  // no resources to probe with
  struct timeval timeout = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  // SP over IPC: 0x00 'S' 'P' 0x00, protocol id (REQ 0x30, REP 0x31), 0x0000.
  const uint8_t hello[8] = {0, 'S', 'P', 0, 0x00, 0x30, 0, 0};
  uint8_t answer[8] = {};
  const bool shook_hands =
      connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
      send(fd, hello, sizeof hello, MSG_NOSIGNAL) == sizeof hello && ReadHandshake(fd, answer) &&
      answer[1] == 'S' && answer[2] == 'P' && answer[5] == 0x31;
  bool taken = false;
  // Closing before the core takes the pipe is itself what triggers the bug.
  for (int look = 0; shook_hands && look < kProbeLooks && !taken; ++look) {
    taken = gate.own_pipes() > before;
    if (!taken) std::this_thread::sleep_for(std::chrono::milliseconds(kProbeLookMs));
  }
  close(fd);
  if (!shook_hands) return Probe::kInconclusive;
  return taken ? Probe::kAccepted : Probe::kNotTaken;
}

}  // namespace

void Server::Watch() {
  CurrentSystem().NameThisThread("kmsd:watchdog");
  std::unique_lock lock(stop_mu_);
  // A probe costs one connect and 16 bytes. Two failures in a row (about
  // 2.5 s) are needed: re-creating the listener also closes the pipes it
  // accepted, so a false alarm from one starved probe would cost in-flight
  // requests.
  int failures = 0;
  while (!stop_cv_.wait_for(lock, std::chrono::milliseconds(250), [&] { return stopped_; })) {
    lock.unlock();
    gate_.Tick();
    const Probe probe = ProbeListener(options_.socket_path, gate_);
    if (probe == Probe::kAccepted) last_accepted_.store(std::chrono::steady_clock::now());
    lock.lock();
    if (probe == Probe::kInconclusive) continue;
    failures = probe == Probe::kAccepted ? 0 : failures + 1;
    if (failures < 2 || stopped_) continue;
    failures = 0;
    spdlog::warn("listener on {} stopped accepting (nng#1518); re-creating it",
                 options_.socket_path);
    nng_listener old;
    old.id = listener_id_;
    EndConnections();  // its close would close them, which may hang nng
    nng_listener_close(old);
    if (Status s = Listen(); !s.ok()) spdlog::error("{}", s.ToString());
  }
}

// Rough time until a throttled caller may find room: a few requests' worth.
constexpr uint32_t kThrottledRetryAfterMs = 50;

// A thread that cannot get an nng context (no memory) tries again this much
// later; a reply that cannot be queued for sending in 5 s is dropped (its
// peer is not reading). Receives wait without a timeout: Stop cancels them.
constexpr int kNoContextRetryMs = 200;
constexpr nng_duration kSendTimeoutMs = 5000;

void Server::Serve() {
  CurrentSystem().NameThisThread("kmsd:worker");
  ThreadIo io;
  if (io.aio == nullptr) {
    spdlog::error("a worker could not start: no memory for its aio");
    return;
  }
  {
    std::lock_guard lock(receivers_mu_);
    ++receivers_;
  }
  {
    std::lock_guard lock(threads_io_mu_);
    threads_io_.push_back(&io);
  }
  while (!stopping_.load()) {
    JobPtr job = Receive(io);
    if (!job) continue;  // cancelled by Stop, or refused and answered
    Admit(std::move(job), io.aio);
    if (LeaveReceivers()) ExecuteServableAndRejoin(io.aio);
  }
  {
    std::lock_guard lock(threads_io_mu_);
    threads_io_.erase(std::find(threads_io_.begin(), threads_io_.end(), &io));
  }
  if (io.ctx) ReturnContext(*io.ctx);
}

// A thread may stop receiving to execute only while another one receives.
bool Server::LeaveReceivers() {
  std::lock_guard lock(receivers_mu_);
  if (receivers_ <= 1) return false;
  --receivers_;
  return true;
}

// Runs what the queue has servable (usually the request this thread just
// admitted), then receives again. The last look at the queue and the return
// to the receivers are one critical section, and an admitting thread pushes
// before it looks at the receivers: so either it sees this thread back and
// executes its own request, or this thread sees that request here.
void Server::ExecuteServableAndRejoin(nng_aio* aio) {
  std::unique_lock lock(receivers_mu_);
  while (auto popped = queue_->TryPop()) {
    lock.unlock();
    Execute(std::move(*popped), aio);
    lock.lock();
  }
  ++receivers_;
}

// Contexts come from a pool: a request keeps its context until answered, so
// a thread that receives again while its request waits needs another.
std::optional<nng_ctx> Server::TakeContext() {
  {
    std::lock_guard lock(contexts_mu_);
    if (!idle_contexts_.empty()) {
      nng_ctx ctx = idle_contexts_.back();
      idle_contexts_.pop_back();
      return ctx;
    }
  }
  nng_ctx ctx;
  if (int rv = nng_ctx_open(&ctx, SocketOf(socket_id_)); rv != 0) {
    spdlog::error("{}", NngError(rv, "cannot open an nng context").ToString());
    return std::nullopt;
  }
  return ctx;
}

void Server::ReturnContext(nng_ctx ctx) {
  std::lock_guard lock(contexts_mu_);
  idle_contexts_.push_back(ctx);
}

// One frame through intake; null when nothing came (cancelled by Stop, no
// context to receive on) or the request was refused and answered already.
Server::JobPtr Server::Receive(ThreadIo& io) {
  if (!io.ctx && !(io.ctx = TakeContext())) {
    std::this_thread::sleep_for(std::chrono::milliseconds(kNoContextRetryMs));
    return nullptr;
  }
  nng_aio_set_timeout(io.aio, NNG_DURATION_INFINITE);
  {
    // Stop sets stopping_, then cancels what receives: a receive starts
    // before that cancel, or sees stopping_.
    std::lock_guard lock(io.receive_mu);
    if (stopping_.load()) return nullptr;
    io.receiving = true;
    nng_ctx_recv(*io.ctx, io.aio);
  }
  nng_aio_wait(io.aio);
  {
    // Cleared before the aio sends a reply: a cancel is for receives.
    std::lock_guard lock(io.receive_mu);
    io.receiving = false;
  }
  if (nng_aio_result(io.aio) != 0) return nullptr;
  nng_msg* received = nng_aio_get_msg(io.aio);
  auto owned = std::make_unique<Job>();
  Job& job = *owned;
  job.message.reset(received);
  job.ctx = *std::exchange(io.ctx, std::nullopt);
  job.pipe_id = nng_pipe_id(nng_msg_get_pipe(received));
  job.context.sequence = next_sequence_.fetch_add(1);
  job.context.received = RequestContext::Clock::now();
  // A pipe the gate does not know closed meanwhile: its peer is nobody,
  // and gets ACCESS_DENIED if the reply still reaches it.
  const Peer peer = gate_.BeginRequest(job.pipe_id).value_or(UnknownPeer());
  const std::span<const uint8_t> frame(static_cast<const uint8_t*>(nng_msg_body(received)),
                                       nng_msg_len(received));
  if (Status admitted = pipeline_.Intake(job.context, peer, frame, &job.parsed); !admitted.ok()) {
    Answer(job, pipeline_.Refuse(job.context, std::move(admitted)), io.aio);
    return nullptr;
  }
  return owned;
}

// The admit stage: the fair queue, and a bound on the bytes it holds.
void Server::Admit(JobPtr job, nng_aio* aio) {
  const size_t bytes = nng_msg_len(job->message.get());
  Status admitted = OkStatus();
  if (queued_bytes_.load() + bytes > options_.max_queued_bytes) {
    admitted = Status(Code::kThrottled, "too many request bytes queued");
  } else {
    queued_bytes_.fetch_add(bytes);
    const std::string lane = job->context.tenant;
    admitted = queue_->Push(lane, std::move(job));
    if (!admitted.ok()) queued_bytes_.fetch_sub(bytes);
  }
  if (admitted.ok()) return;
  if (admitted.code() == Code::kThrottled) {
    admitted = std::move(admitted).WithRetryAfter(kThrottledRetryAfterMs);
  }
  // Push leaves a refused job as it was.
  job->parsed.admission = Admission();
  Answer(*job, pipeline_.Refuse(job->context, std::move(admitted)), aio);
}

void Server::Execute(FairQueue<JobPtr>::Popped popped, nng_aio* aio) {
  Job& job = *popped.item;
  queued_bytes_.fetch_sub(nng_msg_len(job.message.get()));
  WipingBuffer reply = pipeline_.Execute(job.context, job.parsed);
  popped.ticket.Release();
  // Executed: its place among the tenant's requests in flight is free before
  // the reply is sent (a caller waiting for it may send its next at once).
  job.parsed.admission = Admission();
  Answer(job, reply, aio);
}

void Server::CancelReceives() {
  std::lock_guard lock(threads_io_mu_);
  for (ThreadIo* io : threads_io_) {
    std::lock_guard receive_lock(io->receive_mu);
    if (io->receiving) nng_aio_cancel(io->aio);
  }
}

// Sends `reply` on the context the job's request came in on (to the pipe it
// came from), then gives the context back to the pool.
// nng frees a reply it sent without wiping it, and a reply may hold a
// plaintext or a data key. glibc overwrites freed chunks (M_PERTURB, set by
// HardenProcess) except those it keeps in its per-thread cache (tcache, up
// to 1032 bytes): a reply's buffer is made at least this large so that its
// free goes past that cache and is overwritten.
constexpr size_t kReplyBufferBytes = 2048;

void Server::Answer(Job& job, const WipingBuffer& reply, nng_aio* aio) {
  job.message.reset();
  nng_msg* message = nullptr;
  const size_t allocated = std::max(reply.size(), kReplyBufferBytes);
  if (aio != nullptr && nng_msg_alloc(&message, allocated) == 0) {
    std::memcpy(nng_msg_body(message), reply.data(), reply.size());
    nng_msg_chop(message, allocated - reply.size());
    nng_aio_set_msg(aio, message);
    nng_aio_set_timeout(aio, kSendTimeoutMs);
    nng_ctx_send(job.ctx, aio);
    nng_aio_wait(aio);
    if (nng_aio_result(aio) != 0) {
      OPENSSL_cleanse(nng_msg_body(message), nng_msg_len(message));  // ours again: wiped
      nng_msg_free(message);
    }
  }
  ReturnContext(job.ctx);
  gate_.EndRequest(job.pipe_id);
}

void Server::Stop() {
  {
    std::lock_guard lock(stop_mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  stop_cv_.notify_all();
  if (watchdog_.joinable()) watchdog_.join();
  // Threads stop on their own, between requests, and the socket closes only
  // after: nng 1.5.2 panics (pthread_mutex_lock on a freed context) when a
  // reply is sent on a context of a socket closed meanwhile.
  stopping_.store(true);
  CancelReceives();
  for (auto& worker : workers_) worker.join();
  ThreadIo io;
  for (JobPtr& job : queue_->Close()) {
    queued_bytes_.fetch_sub(nng_msg_len(job->message.get()));
    Answer(*job, pipeline_.Refuse(job->context, Status(Code::kUnavailable, "kmsd is stopping")),
           io.aio);
  }
  for (nng_ctx ctx : idle_contexts_) nng_ctx_close(ctx);
  // No new peers meanwhile (nng would remove the file at close anyway).
  unlink(options_.socket_path.c_str());
  EndConnections();
  nng_close(SocketOf(socket_id_));
}

// nng 1.5.2 can hang for good when it closes a pipe (nng_close, a listener's
// close; nanomsg/nng#1543, NOTES.md): a pipe closed just after its transport
// read part of a frame, before it asked for the rest, leaves the protocol's
// receive waiting forever, and the reaper (one thread for all pipes) waits
// for it. A connection whose reading is shut down ends through its own error
// path instead. So: every connection's reading shut down, and rounds of a
// short wait until one finds no connection it had not seen (the listener may
// still accept what was queued meanwhile).
void Server::EndConnections() {
  constexpr int kMaxRounds = 10;
  constexpr auto kSettle = std::chrono::milliseconds(20);
  std::set<uint64_t> ended;
  for (int round = 0; round < kMaxRounds; ++round) {
    size_t fresh = 0;
    for (const EndedConnection& connection :
         CurrentSystem().ShutDownReadingOfConnectionsTo(options_.socket_path, std::nullopt)) {
      if (ended.insert(connection.inode).second) ++fresh;
    }
    std::this_thread::sleep_for(kSettle);
    if (fresh == 0) return;
  }
}

Server::~Server() { Stop(); }

}  // namespace kmsd
