// Server: kmsd's listening socket, a thread per connection that receives,
// admits and executes, and the admit stage (the request's path:
// daemon/pipeline.h).
//
// nng's IPC stream listener accepts (the socket file's mode, the peer's
// credentials); kmsd speaks the SP REP protocol on each connection itself
// (daemon/sp_stream.h). The PeerGate admits each connection before a byte is
// read from it; an admitted one gets a thread of its own, which sends kmsd's
// SP header, reads the peer's, then reads one request at a time and runs the
// pipeline's intake on it (envelope, identify, authorize; cheap, no keystore
// or token work) and admits it to a fair queue with one lane per tenant
// (daemon/fair_queue.h). Then, while fewer than `workers` requests execute,
// it executes and answers what the queue hands it (usually the request it
// just received: no hand-off between threads), a few at most unless no
// other thread is executing, and reads again. So at most `workers` requests
// execute at once, and a connection's reading waits only on its own thread.
// A reply goes out on the connection its request came in on (one frame at a
// time per connection, 5 s at most, or the connection ends). The queue lets
// at most `workers - 1` requests of one tenant run at once, their replies'
// writing included, in round robin across tenants, so one tenant's burst or
// its peers that do not read cannot hold every worker. A lane or the
// queue that is full, or queued frames over `max_queued_bytes`, get
// THROTTLED with a retry-after. A frame declared over max_frame_bytes (plus
// the REQ header), or one that breaks the SP rules, ends its connection
// before anything is allocated for it. Request frames are wiped after
// handling: they may hold plaintext.
//
// Start() returns once the socket listens; Stop() (or the destructor) stops
// accepting and reading, lets each thread finish what it took, answers what
// is still queued with UNAVAILABLE, removes the socket file and closes every
// connection. Start/Stop from one thread.
//
// Why not nng's REP socket: its replies and requests pass through nng's
// protocol layers and their task threads (about 4 wake-ups per request); a
// request read straight off the stream costs one (kmsd_bench, README). It
// also leaves nng 1.5.2's SP transport bugs behind (a listener that stops
// accepting when a peer hangs up during the handshake, nanomsg/nng#1518; a
// hang when a pipe closes just after part of a frame arrived, #1543).
//
// A watchdog thread ticks the PeerGate every 250 ms (closing the connections
// it finds idle) and probes the listener with a bare SP handshake, for
// Accepting() (the service manager's watchdog).
#pragma once

#include <nng/nng.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
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
  struct Connection;
  struct Job;
  // A request is received, queued and executed by pointer: its context is
  // large, and moved three times per request otherwise.
  using JobPtr = std::unique_ptr<Job>;
  Server(const Pipeline& pipeline, PeerGate& gate, ServerOptions options,
         std::unique_ptr<FairQueue<JobPtr>> queue);
  Status Listen();
  void Accept();  // the accepting thread's loop
  void Open(nng_stream* stream);
  void Serve(const std::shared_ptr<Connection>& connection);  // a connection's thread
  // The next request of the connection, admitted or (null) answered already;
  // nullopt once the connection is over.
  std::optional<JobPtr> Receive(const std::shared_ptr<Connection>& connection);
  void Admit(JobPtr job, nng_aio* aio);
  void ExecuteServable(nng_aio* aio);
  void Execute(FairQueue<JobPtr>::Popped popped, nng_aio* aio);
  // Reserves `bytes` of the queue's byte budget; false when it is spent.
  bool ReserveQueuedBytes(size_t bytes);
  void Answer(Job& job, const WipingBuffer& reply, nng_aio* aio);
  void CloseIdle(const std::vector<uint64_t>& ids);
  void JoinFinished();
  void Watch();

  // Constant after Start.
  const Pipeline& pipeline_;
  PeerGate& gate_;
  const ServerOptions options_;
  const std::unique_ptr<FairQueue<JobPtr>> queue_;
  nng_stream_listener* listener_ = nullptr;
  std::thread acceptor_;
  std::thread watchdog_;
  std::atomic<size_t> queued_bytes_{0};
  // Refused connections still shaking hands (server.cc's Refusal).
  const std::shared_ptr<std::atomic<int>> refusals_ = std::make_shared<std::atomic<int>>(0);
  std::atomic<uint64_t> next_sequence_{1};
  std::atomic<std::chrono::steady_clock::time_point> last_accepted_{
      std::chrono::steady_clock::now()};

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopped_ = false;               // guarded by stop_mu_
  std::atomic<bool> stopping_{false};  // threads stop reading when set

  // Requests executing; a thread executes only while there are fewer than
  // `workers`, and its last look at the queue and its leaving are one
  // critical section with an admitting thread's look (ExecuteServable).
  std::mutex execute_mu_;
  size_t executing_ = 0;  // guarded by execute_mu_

  // Open connections and their threads; finished threads are joined by the
  // accepting thread and by Stop.
  std::mutex connections_mu_;
  std::map<uint64_t, std::shared_ptr<Connection>> connections_;  // guarded by connections_mu_
  std::map<uint64_t, std::thread> threads_;                      // guarded by connections_mu_
  std::vector<uint64_t> finished_;                               // guarded by connections_mu_
  uint64_t next_connection_ = 1;                                 // accepting thread only
  bool listening_ = false;  // the socket file is ours to remove; set by Start
};

}  // namespace kmsd
