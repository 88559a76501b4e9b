#include "daemon/server.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/transport/ipc/ipc.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>

#include "daemon/sp_stream.h"
#include "os/system.h"
#include "protocol/nng_ids.h"

namespace kmsd {
namespace {

Status NngError(int rv, const std::string& what) { return NngError(Code::kInternal, rv, what); }

// A reply that cannot be written in 5 s is dropped with its connection (its
// peer is not reading).
constexpr nng_duration kSendTimeoutMs = 5000;
// Rough time until a throttled caller may find room: a few requests' worth.
constexpr uint32_t kThrottledRetryAfterMs = 50;
// An accept that failed (no descriptors left) is tried again this much later.
constexpr auto kAcceptRetry = std::chrono::milliseconds(50);
// How long a refused peer has for the SP handshake, all steps together.
constexpr auto kRefusalHandshake = std::chrono::seconds(1);

// A connection the gate refused: kmsd's SP header goes out and the peer's
// comes in (or kRefusalHandshake passes), then it is closed. The peer's nng then sees
// a connection that opened and closed, which the client library reports as
// ACCESS_DENIED, rather than a dial that failed, which nng retries for ever.
// Driven by its aio's callbacks, on nng's threads: a refused peer holds no
// thread of kmsd's. At most kMaxRefusals at once; past that, closed at once.
class Refusal {
 public:
  static void Start(nng_stream* stream, const std::shared_ptr<std::atomic<int>>& in_flight) {
    constexpr int kMaxRefusals = 256;
    auto* refusal = new Refusal(stream, in_flight);
    if (in_flight->fetch_add(1) >= kMaxRefusals ||
        nng_aio_alloc(&refusal->aio_, &Refusal::Step, refusal) != 0) {
      refusal->Finish();
      return;
    }
    refusal->bytes_ = SpHeaderOf(kSpRepProtocol);
    refusal->Transfer(true);
  }

 private:
  Refusal(nng_stream* stream, std::shared_ptr<std::atomic<int>> in_flight)
      : stream_(stream), in_flight_(std::move(in_flight)) {}

  // The next part of the handshake, within what is left of its second.
  void Transfer(bool send) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline_ - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) return Finish();
    nng_iov buffer{bytes_.data() + done_, bytes_.size() - done_};
    nng_aio_set_iov(aio_, 1, &buffer);
    nng_aio_set_timeout(aio_, static_cast<nng_duration>(left));
    send ? nng_stream_send(stream_, aio_) : nng_stream_recv(stream_, aio_);
  }
  static void Step(void* self) {
    auto* refusal = static_cast<Refusal*>(self);
    const bool ok = nng_aio_result(refusal->aio_) == 0 && nng_aio_count(refusal->aio_) > 0;
    if (ok) refusal->done_ += nng_aio_count(refusal->aio_);
    if (ok && refusal->done_ < refusal->bytes_.size()) return refusal->Transfer(!refusal->sent_);
    if (ok && !refusal->sent_) {
      refusal->sent_ = true;
      refusal->done_ = 0;
      return refusal->Transfer(false);
    }
    refusal->Finish();
  }
  void Finish() {
    nng_stream_close(stream_);
    nng_stream_free(stream_);
    if (aio_ != nullptr) nng_aio_reap(aio_);  // this may be its own callback
    in_flight_->fetch_sub(1);
    delete this;
  }

  nng_stream* const stream_;
  const std::chrono::steady_clock::time_point deadline_ =
      std::chrono::steady_clock::now() + kRefusalHandshake;
  const std::shared_ptr<std::atomic<int>> in_flight_;
  nng_aio* aio_ = nullptr;
  SpHeader bytes_{};
  size_t done_ = 0;
  bool sent_ = false;
};

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

// One accepted connection: its stream, the aio its thread receives on and
// the one its thread sends with. Kept by its thread and by its requests until
// answered; closed when the last of them lets go, and only then: nng 1.5.2
// leaves a read or write started on a closed IPC stream waiting for good. So
// a connection is ended by stopping its receive aio (nng_aio_stop: the
// receive under way ends, none starts after), and a reply is never sent on
// one whose earlier reply broke off.
struct Server::Connection {
  Connection(uint64_t connection_id, nng_stream* connection_stream)
      : id(connection_id), stream(connection_stream) {}
  ~Connection() {
    nng_stream_close(stream);
    nng_aio_free(receive_aio);
    nng_aio_free(send_aio);
    nng_stream_free(stream);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  const uint64_t id;
  nng_stream* const stream;
  nng_aio* receive_aio = nullptr;
  nng_aio* send_aio = nullptr;
  std::mutex send_mu;   // one reply frame at a time
  bool broken = false;  // a reply went out in part; guarded by send_mu
};

// One admitted request: its connection (its reply goes out there), its frame
// (the parsed views point into it) and its request context.
struct Server::Job {
  std::shared_ptr<Connection> connection;
  SpRequest request;
  RequestContext context;
  ParsedRequest parsed;
};

Server::Server(const Pipeline& pipeline, PeerGate& gate, ServerOptions options,
               std::unique_ptr<FairQueue<JobPtr>> queue)
    : pipeline_(pipeline), gate_(gate), options_(std::move(options)), queue_(std::move(queue)) {}

Result<std::unique_ptr<Server>> Server::Start(const ServerOptions& options,
                                              const Pipeline& pipeline, PeerGate& gate) {
  const size_t workers = std::max<size_t>(options.workers, 1);
  ASSIGN_OR_RETURN(auto queue, FairQueue<JobPtr>::Create(
                                   {.max_in_flight_per_lane = std::max<size_t>(workers - 1, 1),
                                    .max_queued_per_lane = options.max_queued_per_tenant,
                                    .max_queued_total = options.max_queued}));
  ServerOptions adjusted = options;
  adjusted.workers = workers;
  std::unique_ptr<Server> server(new Server(pipeline, gate, adjusted, std::move(queue)));
  // A socket file left by a crashed kmsd would make listen fail; a live kmsd
  // still answers on it, so only remove it when nobody is listening.
  RETURN_IF_ERROR(CheckNoListener(options.socket_path));
  if (std::filesystem::exists(options.socket_path)) unlink(options.socket_path.c_str());
  RETURN_IF_ERROR(server->Listen());
  server->listening_ = true;
  server->acceptor_ = std::thread([s = server.get()] { s->Accept(); });
  server->watchdog_ = std::thread([s = server.get()] { s->Watch(); });
  spdlog::info("listening on {} (mode {:o}, {} workers)", options.socket_path, options.socket_mode,
               workers);
  return server;
}

Status Server::Listen() {
  const std::string url = "ipc://" + options_.socket_path;
  if (int rv = nng_stream_listener_alloc(&listener_, url.c_str()); rv != 0) {
    listener_ = nullptr;
    return NngError(rv, "cannot create listener on " + options_.socket_path);
  }
  // Only before listening (NOTES.md).
  if (int rv = nng_stream_listener_set_int(listener_, NNG_OPT_IPC_PERMISSIONS,
                                           static_cast<int>(options_.socket_mode));
      rv != 0) {
    return NngError(rv, "cannot set socket permissions");
  }
  if (int rv = nng_stream_listener_listen(listener_); rv != 0) {
    return NngError(rv, "cannot listen on " + options_.socket_path);
  }
  return OkStatus();
}

void Server::Accept() {
  CurrentSystem().NameThisThread("kmsd:accept");
  nng_aio* aio = nullptr;
  if (nng_aio_alloc(&aio, nullptr, nullptr) != 0) {
    spdlog::critical("cannot accept connections: no memory for an aio");
    return;
  }
  while (!stopping_.load()) {
    nng_stream_listener_accept(listener_, aio);
    nng_aio_wait(aio);
    const int rv = nng_aio_result(aio);
    if (rv == 0) {
      auto* stream = static_cast<nng_stream*>(nng_aio_get_output(aio, 0));
      if (stopping_.load()) {
        nng_stream_close(stream);
        nng_stream_free(stream);
        break;
      }
      Open(stream);
    } else if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
      break;
    } else {
      spdlog::warn("{}", NngError(rv, "cannot accept a connection").ToString());
      std::this_thread::sleep_for(kAcceptRetry);
    }
    JoinFinished();
  }
  nng_aio_free(aio);
}

// Admits the connection through the gate and gives it a thread.
void Server::Open(nng_stream* stream) {
  const uint64_t id = next_connection_++;
  // An unreadable peer is nobody: the gate refuses it.
  const Peer peer = CurrentSystem().PeerOfStream(stream).value_or(UnknownPeer());
  if (!gate_.Admit(id, peer)) {
    Refusal::Start(stream, refusals_);
    return;
  }
  auto connection = std::make_shared<Connection>(id, stream);
  if (nng_aio_alloc(&connection->receive_aio, nullptr, nullptr) != 0 ||
      nng_aio_alloc(&connection->send_aio, nullptr, nullptr) != 0) {
    gate_.Release(id);
    return;
  }
  std::lock_guard lock(connections_mu_);
  try {
    threads_.emplace(id, std::thread([this, connection] { Serve(connection); }));
    connections_.emplace(id, std::move(connection));
  } catch (const std::system_error& e) {
    spdlog::error("cannot start a thread for a connection: {}", e.what());
    gate_.Release(id);
  }
}

void Server::Serve(const std::shared_ptr<Connection>& connection) {
  CurrentSystem().NameThisThread("kmsd:worker");
  // kmsd's header goes first: a peer may wait for it before sending all of
  // its own.
  if (SendSpHeader(connection->stream, connection->send_aio, kSendTimeoutMs) &&
      !ReadSpHeader(connection->stream, connection->receive_aio)) {
    while (std::optional<JobPtr> job = Receive(connection)) {
      if (!*job) continue;  // refused and answered
      Admit(std::move(*job), connection->send_aio);
      ExecuteServable(connection->send_aio);
    }
  }
  gate_.Release(connection->id);
  std::lock_guard lock(connections_mu_);
  // While stopping, Stop answers what is queued on it, then closes it.
  if (!stopping_.load()) connections_.erase(connection->id);
  finished_.push_back(connection->id);
}

void Server::JoinFinished() {
  std::vector<std::thread> done;
  {
    std::lock_guard lock(connections_mu_);
    for (uint64_t id : finished_) {
      auto it = threads_.find(id);
      if (it == threads_.end()) continue;
      done.push_back(std::move(it->second));
      threads_.erase(it);
    }
    finished_.clear();
  }
  for (std::thread& thread : done) thread.join();
}

std::optional<Server::JobPtr> Server::Receive(const std::shared_ptr<Connection>& connection) {
  auto request =
      ReadSpRequest(connection->stream, connection->receive_aio, options_.max_frame_bytes);
  if (!request) {
    if (request.error() == SpError::kTooLarge) {
      spdlog::debug("connection {}: a frame over {} bytes; closing it", connection->id,
                    options_.max_frame_bytes);
    }
    return std::nullopt;
  }
  auto owned = std::make_unique<Job>();
  Job& job = *owned;
  job.connection = connection;
  job.request = std::move(*request);
  job.context.sequence = next_sequence_.fetch_add(1);
  job.context.received = RequestContext::Clock::now();
  // A connection the gate no longer knows has nobody at its other end, who
  // gets ACCESS_DENIED if the reply still reaches it.
  const Peer peer = gate_.BeginRequest(connection->id).value_or(UnknownPeer());
  if (Status admitted = pipeline_.Intake(job.context, peer, job.request.body(), &job.parsed);
      !admitted.ok()) {
    Answer(job, pipeline_.Refuse(job.context, std::move(admitted)), connection->send_aio);
    return JobPtr();
  }
  return owned;
}

// The admit stage: the fair queue, and a bound on the bytes it holds.
void Server::Admit(JobPtr job, nng_aio* aio) {
  const size_t bytes = job->request.size();
  Status admitted = OkStatus();
  if (!ReserveQueuedBytes(bytes)) {
    admitted = Status(Code::kThrottled, "too many request bytes queued");
  } else {
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

bool Server::ReserveQueuedBytes(size_t bytes) {
  size_t queued = queued_bytes_.load();
  do {
    if (queued + bytes > options_.max_queued_bytes) return false;
  } while (!queued_bytes_.compare_exchange_weak(queued, queued + bytes));
  return true;
}

// A thread executes at most this many requests in a turn before it reads
// its own connection again, unless no other thread is executing (then
// nobody else would look at the queue).
constexpr int kMaxRequestsPerTurn = 4;

// Executes what the queue has servable while fewer than `workers` requests
// execute. An admitting thread pushes before it takes execute_mu_, and a
// thread's last look at the queue and its leaving are one critical section:
// so either that look sees the new request, or the admitting thread finds a
// free place and executes it itself. A thread leaves after its turn only
// while another executes, and that one looks again when it is done: the last
// one to finish drains the queue.
void Server::ExecuteServable(nng_aio* aio) {
  std::unique_lock lock(execute_mu_);
  for (int turn = 0; executing_ < options_.workers && !stopping_.load(); ++turn) {
    if (turn >= kMaxRequestsPerTurn && executing_ > 0) break;
    auto popped = queue_->TryPop();
    if (!popped) break;
    ++executing_;
    lock.unlock();
    Execute(std::move(*popped), aio);
    lock.lock();
    --executing_;
  }
}

// The request's place among its tenant's requests in flight (the fair
// queue's ticket) is held until its reply is out, so that a tenant whose
// peers read slowly holds at most `workers - 1` of the workers; its place
// under its policy's max_concurrent_requests is given back before (a caller
// waiting for the reply may send its next at once).
void Server::Execute(FairQueue<JobPtr>::Popped popped, nng_aio* aio) {
  Job& job = *popped.item;
  queued_bytes_.fetch_sub(job.request.size());
  WipingBuffer reply = pipeline_.Execute(job.context, job.parsed);
  job.parsed.admission = Admission();
  Answer(job, reply, aio);
  popped.ticket.Release();
}

// Sends `reply` on the connection the request came in on. The reply leaves
// from `reply`'s own memory (its owner wipes it); nng copies nothing.
void Server::Answer(Job& job, const WipingBuffer& reply, nng_aio* aio) {
  Connection& connection = *job.connection;
  {
    std::lock_guard lock(connection.send_mu);
    if (!connection.broken &&
        !SendSpReply(connection.stream, aio, job.request.backtrace(),
                     std::span<const uint8_t>(reply.data(), reply.size()), kSendTimeoutMs)) {
      // Part of a frame may be out: nothing more can follow it. Its thread
      // stops reading and leaves, and the connection closes.
      connection.broken = true;
      nng_aio_stop(connection.receive_aio);
    }
  }
  job.request = SpRequest();
  gate_.EndRequest(connection.id);
}

void Server::CloseIdle(const std::vector<uint64_t>& ids) {
  std::lock_guard lock(connections_mu_);
  for (uint64_t id : ids) {
    auto it = connections_.find(id);
    // Its thread's receive ends (and no other starts); the thread leaves
    // and the connection closes.
    if (it != connections_.end()) nng_aio_stop(it->second->receive_aio);
  }
}

namespace {

// A probe waits about a second for the listener's SP header, counted in
// looks of 2 ms rather than by the clock: a kmsd suspended meanwhile
// (SIGSTOP, a frozen cgroup or VM) has not stopped accepting.
constexpr int kProbeLooks = 500;
constexpr int kProbeLookMs = 2;

// Connects to the listener as a REQ peer would and waits for kmsd's SP
// header: true when it came.
bool ProbeListener(const std::string& path) {
  // Non-blocking: a connect to a full backlog fails at once (EAGAIN).
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return false;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  const SpHeader hello = SpHeaderOf(kSpReqProtocol);
  SpHeader answer{};
  size_t got = 0;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
      send(fd, hello.data(), hello.size(), MSG_NOSIGNAL | MSG_DONTWAIT) ==
          static_cast<ssize_t>(hello.size())) {
    for (int look = 0; look < kProbeLooks && got < answer.size(); ++look) {
      pollfd ready{.fd = fd, .events = POLLIN, .revents = 0};
      if (poll(&ready, 1, kProbeLookMs) <= 0) continue;
      const ssize_t n = recv(fd, answer.data() + got, answer.size() - got, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) break;
      if (n > 0) got += static_cast<size_t>(n);
    }
  }
  close(fd);
  return got == answer.size() && answer == SpHeaderOf(kSpRepProtocol);
}

}  // namespace

void Server::Watch() {
  CurrentSystem().NameThisThread("kmsd:watchdog");
  std::unique_lock lock(stop_mu_);
  while (!stop_cv_.wait_for(lock, std::chrono::milliseconds(250), [&] { return stopped_; })) {
    lock.unlock();
    CloseIdle(gate_.Tick());
    JoinFinished();
    if (ProbeListener(options_.socket_path)) last_accepted_.store(std::chrono::steady_clock::now());
    lock.lock();
  }
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
  // The file goes first: a kmsd started from now on finds no listener and
  // makes its own, which this one must not remove later. (Only a listener
  // this one made: a Start that found another kmsd listening leaves it be.)
  if (listening_) unlink(options_.socket_path.c_str());
  if (listener_ != nullptr) nng_stream_listener_close(listener_);
  if (acceptor_.joinable()) acceptor_.join();
  // Every connection stops reading (no receive starts after nng_aio_stop);
  // its thread finishes what it took and leaves.
  std::vector<std::shared_ptr<Connection>> open;
  {
    std::lock_guard lock(connections_mu_);
    for (const auto& entry : connections_) open.push_back(entry.second);
  }
  for (const auto& connection : open) nng_aio_stop(connection->receive_aio);
  open.clear();
  std::map<uint64_t, std::thread> threads;
  {
    std::lock_guard lock(connections_mu_);
    threads.swap(threads_);
  }
  for (auto& entry : threads) entry.second.join();
  nng_aio* aio = nullptr;
  nng_aio_alloc(&aio, nullptr, nullptr);
  for (JobPtr& job : queue_->Close()) {
    queued_bytes_.fetch_sub(job->request.size());
    if (aio != nullptr) {
      Answer(*job, pipeline_.Refuse(job->context, Status(Code::kUnavailable, "kmsd is stopping")),
             aio);
    }
  }
  nng_aio_free(aio);
  {
    std::lock_guard lock(connections_mu_);
    connections_.clear();  // each closes once its requests let go
    finished_.clear();
  }
  if (listener_ != nullptr) nng_stream_listener_free(listener_);
  listener_ = nullptr;
  // Refusals end within kRefusalHandshake: before nng_fini (main) frees
  // what their aios use.
  const auto refusals_end = std::chrono::steady_clock::now() + 2 * kRefusalHandshake;
  while (refusals_->load() > 0 && std::chrono::steady_clock::now() < refusals_end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

Server::~Server() { Stop(); }

}  // namespace kmsd
