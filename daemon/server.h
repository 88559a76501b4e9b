// Server: kmsd's nng REP socket, its worker threads (which receive, admit
// and execute) and the admit stage (the request's path: daemon/pipeline.h).
//
// The socket (REP) is served by `workers + 1` threads, all of which wait to
// receive, each on an nng context of its own. The thread that receives a
// frame runs the pipeline's intake on it (envelope, identify, authorize;
// cheap, no keystore or token work) and admits it to a fair queue with one
// lane per tenant (daemon/fair_queue.h). Then, if another thread is still
// receiving, it executes and answers what the queue hands it (usually the
// request it just received: no hand-off between threads) until nothing is
// servable, and receives again; if it is the last one receiving, it goes on
// receiving and leaves the request to the next thread that finishes. So
// receiving never waits on execution, and at most `workers` requests execute
// at once. A request keeps the context it came in on until its reply goes
// out on it (to the pipe it came from); a thread that receives again before
// then takes another context from a pool. The queue lets at most
// `workers - 1` requests of one tenant run at once, in round robin across
// tenants, so one tenant's burst cannot hold every worker. A lane or the
// queue that is full, or queued frames over `max_queued_bytes`, get
// THROTTLED with a retry-after. The peer's uid/gid/pid come from the IPC
// pipe (SO_PEERCRED). Request frames are wiped after handling: they may hold
// plaintext. Start() returns once the socket listens; Stop() (or the
// destructor) stops receiving, lets each thread finish what it took, answers
// what is still queued with UNAVAILABLE, removes the socket file, ends each
// connection (its reading shut down: see EndConnections) and closes
// the socket. Start/Stop from one thread.
//
// Why contexts and not a raw socket: nng's raw REP hands each reply through
// two message queues and a task thread before it reaches the pipe, which
// cost about 10% of kmsd_bench's 1-client throughput; a context's reply is
// written by the thread that sends it.
//
// Who may connect, how many connections a uid may hold and how long an idle
// connection stays open are the PeerGate's (daemon/peer_gate.h): the server
// attaches it to the socket before listening, tells it when each request
// starts and ends, and ticks it from the watchdog. The transport drops frames
// over max_frame_bytes (plus the REQ header) from their declared length alone.
//
// A watchdog thread probes the listener every 250 ms with a bare SP
// handshake and re-creates it when it stops accepting (two probes in a row
// whose handshake came back but whose pipe never reached the socket; a probe
// that got no handshake back in time counts for nothing): nng 1.5.2 (Debian 12)
// stops accepting for good when a client hangs up during the handshake
// (nanomsg/nng#1518, fixed upstream in #1519), which would let any local
// process lock every client out.
#pragma once

#include <nng/nng.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "daemon/fair_queue.h"
#include "daemon/peer_gate.h"
#include "daemon/pipeline.h"

namespace kmsd {

struct ServerOptions {
  std::string socket_path;
  uint32_t socket_mode = 0600;
  size_t workers = 8;
  size_t max_frame_bytes = 1 << 20;
  // Admission: requests of one tenant queued, of all tenants queued, and
  // their frames' bytes.
  size_t max_queued_per_tenant = 64;
  size_t max_queued = 256;
  size_t max_queued_bytes = 64 << 20;
};

// True if a process accepts connections on the Unix socket at `path` (an
// nng REQ dial succeeds); false for no file or a file nobody listens on.
bool SocketHasListener(const std::string& path);
// UNAVAILABLE "another kmsd is already listening on PATH" if one is, else OK.
Status CheckNoListener(const std::string& path);

class Server {
 public:
  // `pipeline` and `gate` must outlive the Server.
  static Result<std::unique_ptr<Server>> Start(const ServerOptions& options,
                                               const Pipeline& pipeline, PeerGate& gate);
  ~Server();
  void Stop();
  // Whether the listener accepted the watchdog's probe within `window`: the
  // server takes connections (for the service manager's watchdog).
  bool Accepting(std::chrono::steady_clock::duration window) const {
    return std::chrono::steady_clock::now() - last_accepted_.load() < window;
  }

 private:
  struct Job;
  // A request is received, queued and executed by pointer: its context is
  // large, and moved three times per request otherwise.
  using JobPtr = std::unique_ptr<Job>;
  struct ThreadIo;
  Server(uint32_t socket_id, const Pipeline& pipeline, PeerGate& gate, ServerOptions options,
         std::unique_ptr<FairQueue<JobPtr>> queue);
  void Serve();  // a worker thread's loop
  bool LeaveReceivers();
  void ExecuteServableAndRejoin(nng_aio* aio);
  std::optional<nng_ctx> TakeContext();
  void ReturnContext(nng_ctx ctx);
  JobPtr Receive(ThreadIo& io);
  void Admit(JobPtr job, nng_aio* aio);
  void Execute(FairQueue<JobPtr>::Popped popped, nng_aio* aio);
  void Answer(Job& job, const WipingBuffer& reply, nng_aio* aio);
  Status Listen();        // creates and starts the listener, sets listener_id_
  void EndConnections();  // all of them, without closing a pipe through nng
  void Watch();

  // Constant after Start.
  const uint32_t socket_id_;
  const Pipeline& pipeline_;
  PeerGate& gate_;
  const ServerOptions options_;
  const std::unique_ptr<FairQueue<JobPtr>> queue_;
  std::vector<std::thread> workers_;
  std::thread watchdog_;
  std::atomic<size_t> queued_bytes_{0};
  std::atomic<uint64_t> next_sequence_{1};
  std::atomic<std::chrono::steady_clock::time_point> last_accepted_{
      std::chrono::steady_clock::now()};

  uint32_t listener_id_ = 0;  // set by Start, then only by the watchdog
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopped_ = false;               // guarded by stop_mu_
  std::atomic<bool> stopping_{false};  // workers stop receiving when set

  std::mutex contexts_mu_;
  std::vector<nng_ctx> idle_contexts_;  // guarded by contexts_mu_

  // Threads waiting in Receive, or about to (Serve).
  std::mutex receivers_mu_;
  size_t receivers_ = 0;  // guarded by receivers_mu_

  // Each worker thread's aio: a receive has no timeout (nng 1.5.2's expiry
  // thread spins for up to a millisecond at each one: an idle kmsd used about
  // 18 ms of CPU a second), so Stop cancels the receives under way.
  void CancelReceives();
  std::mutex threads_io_mu_;
  std::vector<ThreadIo*> threads_io_;  // guarded by threads_io_mu_
};

}  // namespace kmsd
