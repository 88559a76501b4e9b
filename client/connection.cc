#include "client/connection.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/transport/ipc/ipc.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <optional>
#include <utility>

#include "protocol/nng_ids.h"

namespace kmsd {
namespace {

Status NngError(int rv, std::string_view what) { return NngError(Code::kUnavailable, rv, what); }

}  // namespace

std::string ResolveSocketPath(std::string_view flag_value) {
  if (!flag_value.empty()) return std::string(flag_value);
  const char* env = std::getenv("KMSD_SOCKET");
  if (env != nullptr && *env != '\0') return env;
  return std::string(kDefaultSocketPath);
}

namespace internal {

// What nng's callbacks tell a waiting call: its aio finished, or pipes to kmsd
// opened and closed while the call was active.
struct CallWatch {
  using Clock = std::chrono::steady_clock;
  std::mutex mu;
  std::condition_variable changed;
  bool active = false;                      // guarded by mu
  bool done = false;                        // guarded by mu
  int closes = 0;                           // guarded by mu
  std::optional<Clock::time_point> opened;  // guarded by mu; the latest pipe's
  bool latest_open = false;                 // guarded by mu
  int opens = 0;                            // guarded by mu; pipes opened since Dial
  uint32_t latest_pipe = 0;                 // guarded by mu; its nng id
  // guarded by mu; the last pipes added, and pipes whose close came before
  // their ADD_POST (nng starts a pipe, and kmsd may close it, before then)
  std::deque<uint32_t> added, closed_unadded;
  // guarded by mu; when the latest pipe opened or last brought a reply
  std::optional<Clock::time_point> last_heard;
  // guarded by mu; how long the last pipe kmsd closed between calls had been
  // idle: kmsd's idle timeout, give or take its watchdog's tick
  std::optional<Clock::duration> idle_close_age;
};

}  // namespace internal

namespace {

using Clock = internal::CallWatch::Clock;

constexpr int kClosedByPeer = -1;

void OnAioDone(void* arg) {
  auto* watch = static_cast<internal::CallWatch*>(arg);
  std::lock_guard lock(watch->mu);
  watch->done = true;
  watch->changed.notify_all();
}

// Redial delays: nng waits a random time below the current delay.
constexpr nng_duration kRedialMs = 50;
constexpr nng_duration kMaxRedialMs = 200;
constexpr nng_duration kSlowRedialMs = 3600 * 1000;

// kmsd's idle timeout is at least this long: a pipe closed between calls
// sooner was closed for another reason (a restart).
constexpr auto kShortestIdleClose = std::chrono::milliseconds(100);
// A pipe idle this long is replaced before a call, or sooner once kmsd was
// seen closing pipes sooner (kmsd's default idle timeout is 30 s).
constexpr auto kIdleBeforeRedial = std::chrono::seconds(20);

bool Holds(const std::deque<uint32_t>& ids, uint32_t id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

void Remember(std::deque<uint32_t>& ids, uint32_t id) {
  constexpr size_t kRemembered = 8;
  ids.push_back(id);
  if (ids.size() > kRemembered) ids.pop_front();
}

// How long a pipe may have been idle and still carry a call. kmsd closes a
// connection at the first watchdog tick (every 250 ms) after its timeout T, so
// a close seen between calls came after T to T + 250 ms (and the close's news
// takes time to arrive): three quarters of that, and at least 300 ms under it,
// is below T.
Clock::duration IdleBeforeRedial(std::optional<Clock::duration> idle_close_age) {
  constexpr auto kTickAndNews = std::chrono::milliseconds(300);
  constexpr auto kShortest = std::chrono::milliseconds(50);
  if (!idle_close_age) return kIdleBeforeRedial;
  const Clock::duration learned = std::min(*idle_close_age * 3 / 4, *idle_close_age - kTickAndNews);
  return std::clamp<Clock::duration>(learned, kShortest, kIdleBeforeRedial);
}

void OnPipeEvent(nng_pipe pipe, nng_pipe_ev event, void* arg) {
  auto* watch = static_cast<internal::CallWatch*>(arg);
  std::lock_guard lock(watch->mu);
  const auto now = Clock::now();
  if (event == NNG_PIPE_EV_ADD_POST) {
    ++watch->opens;
    // A pipe whose close came first (below) is not open.
    if (std::erase(watch->closed_unadded, pipe.id) == 0) {
      watch->opened = now;
      watch->last_heard = now;
      watch->latest_open = true;
      watch->latest_pipe = pipe.id;
      Remember(watch->added, pipe.id);
    }
  } else if (pipe.id == watch->latest_pipe && watch->latest_open) {
    // kmsd closed the open pipe: during a call, maybe a refusal; between
    // calls, its idle timeout (or a restart).
    watch->latest_open = false;
    if (watch->active) ++watch->closes;
    const auto idle = now - watch->last_heard.value_or(now);
    if (!watch->active && idle >= kShortestIdleClose) watch->idle_close_age = idle;
  } else if (!Holds(watch->added, pipe.id)) {
    // Closed before it was added: kmsd closed it at once.
    if (watch->active) ++watch->closes;
    Remember(watch->closed_unadded, pipe.id);
  }
  // Else a pipe this client closed itself, or one already replaced.
  watch->changed.notify_all();
}

void StartSend(uint32_t socket_id, nng_aio* aio) { nng_send_aio(SocketOf(socket_id), aio); }
void StartRecv(uint32_t socket_id, nng_aio* aio) { nng_recv_aio(SocketOf(socket_id), aio); }

Status ClosedByPeerStatus() {
  return Status(Code::kAccessDenied,
                "kmsd closed the connection before answering: this user may not use kmsd, has "
                "too many connections open, or sent a frame over the daemon's limit");
}

}  // namespace

Connection::Connection(uint32_t socket_id, std::chrono::milliseconds timeout,
                       size_t max_request_bytes)
    : socket_id_(socket_id),
      timeout_(timeout),
      max_request_bytes_(max_request_bytes),
      watch_(std::make_unique<internal::CallWatch>()) {}

Result<std::unique_ptr<Connection>> Connection::Dial(const std::string& socket_path,
                                                     std::chrono::milliseconds timeout,
                                                     size_t max_request_bytes,
                                                     SecretBuffer api_key) {
  // Replies may carry plaintexts and data keys: give SecretBuffer a locked
  // heap, or every reply would cost its own mmap/mlock/munmap.
  InitSecureHeap(1 << 20);
  nng_socket socket;
  if (int rv = nng_req0_open(&socket); rv != 0) return Error(NngError(rv, "cannot open socket"));
  std::unique_ptr<Connection> connection(new Connection(socket.id, timeout, max_request_bytes));
  connection->api_key_ = std::move(api_key);
  if (int rv = nng_aio_alloc(&connection->aio_, OnAioDone, connection->watch_.get()); rv != 0) {
    return Error(NngError(rv, "nng_aio_alloc"));
  }
  for (nng_pipe_ev event : {NNG_PIPE_EV_ADD_POST, NNG_PIPE_EV_REM_POST}) {
    if (int rv = nng_pipe_notify(socket, event, OnPipeEvent, connection->watch_.get()); rv != 0) {
      return Error(NngError(rv, "nng_pipe_notify"));
    }
  }
  // A REQ socket resends after this long; keep it beyond the timeout so a
  // slow operation is never executed twice.
  nng_socket_set_ms(socket, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
  nng_socket_set_size(socket, NNG_OPT_RECVMAXSZ, 0);
  // Redial a local socket quickly (nng backs off from 100 ms by default, doubling):
  // a refused peer is told so within a few redials (ExplainReset).
  nng_socket_set_ms(socket, NNG_OPT_RECONNMINT, kRedialMs);
  nng_socket_set_ms(socket, NNG_OPT_RECONNMAXT, kMaxRedialMs);
  connection->url_ = "ipc://" + socket_path;
  nng_dialer dialer;
  if (int rv = nng_dial(socket, connection->url_.c_str(), &dialer, 0); rv != 0) {
    return Error(NngError(rv, "cannot connect to kmsd at " + socket_path));
  }
  connection->dialer_id_ = dialer.id;
  return connection;
}

Connection::~Connection() {
  if (aio_ != nullptr) nng_aio_free(aio_);  // cancels and waits for its callback
  nng_pipe_notify(SocketOf(socket_id_), NNG_PIPE_EV_ADD_POST, nullptr, nullptr);
  nng_pipe_notify(SocketOf(socket_id_), NNG_PIPE_EV_REM_POST, nullptr, nullptr);
  nng_close(SocketOf(socket_id_));
}

int Connection::Await(void (*start)(uint32_t socket_id, nng_aio* aio)) {
  {
    std::lock_guard lock(watch_->mu);
    watch_->done = false;
  }
  nng_aio_set_timeout(aio_, static_cast<nng_duration>(timeout_.count()));
  start(socket_id_, aio_);
  std::unique_lock lock(watch_->mu);
  watch_->changed.wait(lock,
                       [&] { return watch_->done || watch_->closes >= kPeerClosesBeforeDenied; });
  if (watch_->done) return nng_aio_result(aio_);
  lock.unlock();
  nng_aio_cancel(aio_);
  nng_aio_wait(aio_);
  // The operation may have completed just before the cancel took.
  const int rv = nng_aio_result(aio_);
  return rv == 0 ? 0 : kClosedByPeer;
}

// With resends off, nng's REQ fails a call with NNG_ECONNRESET as soon as the
// connection it went out on closes. kmsd refuses peers by closing every
// connection they make, before reading anything; a restart or an idle close
// closes one, and the next stays open. The request is never resent (it may
// have run): this only watches the redials, for up to two seconds.
Status Connection::ExplainReset(Clock::time_point call_deadline) {
  const Status reset = NngError(NNG_ECONNRESET, "no reply from kmsd");
  const auto until = std::min(call_deadline, Clock::now() + std::chrono::seconds(2));
  constexpr auto kStaysOpen = std::chrono::milliseconds(250);
  std::unique_lock lock(watch_->mu);
  while (true) {
    if (watch_->closes >= kPeerClosesBeforeDenied) {
      lock.unlock();
      return Refused();
    }
    const auto now = Clock::now();
    if (watch_->latest_open && now - *watch_->opened >= kStaysOpen) return reset;
    if (now >= until) return reset;
    watch_->changed.wait_for(lock, std::chrono::milliseconds(25));
  }
}

// A refused peer's dialer redials all the time, each time costing kmsd a
// refused connection, and hanging up while the dialer is in a handshake
// tripped nng#1518 in kmsds that used nng's own listener. So the dialer is
// told to wait about an hour before its next redial, and the call returns
// once a pipe opened after that (whose close will start that wait), or after
// 300 ms. The next call replaces the dialer.
Status Connection::Refused() {
  nng_dialer dialer;
  dialer.id = dialer_id_;
  nng_dialer_set_ms(dialer, NNG_OPT_RECONNMINT, kSlowRedialMs);
  std::unique_lock lock(watch_->mu);
  const int opens = watch_->opens;
  watch_->changed.wait_for(lock, std::chrono::milliseconds(300),
                           [&] { return watch_->opens > opens; });
  refused_ = true;
  return ClosedByPeerStatus();
}

// After a refusal the dialer sleeps or holds a pipe kmsd is closing: replace
// it. So also when its pipe has been idle for most of kmsd's idle timeout (as
// last seen; IdleBeforeRedial), or 20 s: kmsd may be closing that pipe as the
// request goes out on it, and the call would fail with NNG_ECONNRESET. And
// dial again when the last attempt failed.
Status Connection::PrepareDialer() {
  std::unique_lock lock(watch_->mu);
  const bool stale =
      watch_->latest_open && Clock::now() - watch_->last_heard.value_or(Clock::now()) >=
                                 IdleBeforeRedial(watch_->idle_close_age);
  if (!std::exchange(refused_, false) && !stale && dialer_id_ != 0) return OkStatus();
  // Its pipe's close is this client's, not kmsd's: nothing to count or learn.
  watch_->latest_open = false;
  lock.unlock();
  nng_dialer dialer;
  if (dialer_id_ != 0) {
    dialer.id = std::exchange(dialer_id_, 0);
    nng_dialer_close(dialer);
  }
  if (int rv = nng_dial(SocketOf(socket_id_), url_.c_str(), &dialer, NNG_FLAG_NONBLOCK); rv != 0) {
    return NngError(rv, "cannot connect to kmsd");  // the next call dials again
  }
  dialer_id_ = dialer.id;
  return OkStatus();
}

Result<SecretBuffer> Connection::RoundTrip(std::span<const uint8_t> frame) {
  if (frame.size() > max_request_bytes_) {
    return Error(Code::kFrameTooLarge, "request frame of " + std::to_string(frame.size()) +
                                           " bytes is over the limit of " +
                                           std::to_string(max_request_bytes_));
  }
  RETURN_IF_ERROR(PrepareDialer());
  nng_msg* request;
  if (int rv = nng_msg_alloc(&request, 0); rv != 0) return Error(NngError(rv, "nng_msg_alloc"));
  if (int rv = nng_msg_append(request, frame.data(), frame.size()); rv != 0) {
    nng_msg_free(request);
    return Error(NngError(rv, "nng_msg_append"));
  }
  {
    std::lock_guard lock(watch_->mu);
    watch_->active = true;
    watch_->closes = 0;
  }
  struct Inactive {
    internal::CallWatch& watch;
    ~Inactive() {
      std::lock_guard lock(watch.mu);
      watch.active = false;
    }
  } inactive{*watch_};
  const auto call_deadline = Clock::now() + timeout_;
  nng_aio_set_msg(aio_, request);
  if (int rv = Await(StartSend); rv != 0) {
    // Not sent: the message is still ours.
    WipeMemory(nng_msg_body(request), nng_msg_len(request));
    nng_msg_free(request);
    if (rv == kClosedByPeer) return Error(Refused());
    return Error(NngError(rv, "cannot send request to kmsd"));
  }
  if (int rv = Await(StartRecv); rv != 0) {
    if (rv == kClosedByPeer) return Error(Refused());
    if (rv == NNG_ECONNRESET) return Error(ExplainReset(call_deadline));
    return Error(NngError(rv, "no reply from kmsd"));
  }
  {
    std::lock_guard lock(watch_->mu);
    watch_->last_heard = Clock::now();
  }
  nng_msg* reply = nng_aio_get_msg(aio_);
  SecretBuffer bytes =
      SecretBuffer::CopyOf({static_cast<const uint8_t*>(nng_msg_body(reply)), nng_msg_len(reply)});
  WipeMemory(nng_msg_body(reply), nng_msg_len(reply));
  nng_msg_free(reply);
  return bytes;
}

Result<Reply> Connection::Call(std::string_view op, std::string_view tenant, Value::Map args) {
  const uint64_t id = next_id_++;
  std::optional<std::string_view> api_key;
  if (!api_key_.empty()) {
    api_key =
        std::string_view(reinterpret_cast<const char*>(api_key_.RevealData()), api_key_.size());
  }
  WipingBuffer request = EncodeValue(BuildRequest(id, op, tenant, std::move(args), api_key));
  ASSIGN_OR_RETURN(SecretBuffer bytes, RoundTrip(request.span()));
  ASSIGN_OR_RETURN(Frame frame, Frame::Decode(bytes.RevealSpan()));
  Reply reply(std::move(bytes), std::move(frame));
  ASSIGN_OR_RETURN(ReplyEnvelope envelope, ParseReply(reply.frame_.root()));
  if (!envelope.status.ok()) return Error(std::move(envelope.status));
  if (envelope.id != id) return Error(Code::kInternal, "reply id does not match the request id");
  reply.id_ = id;
  reply.result_ = envelope.result;
  return reply;
}

Result<Connection::RawReply> Connection::CallRaw(std::span<const uint8_t> frame) {
  ASSIGN_OR_RETURN(SecretBuffer bytes, RoundTrip(frame));
  ASSIGN_OR_RETURN(Frame decoded, Frame::Decode(bytes.RevealSpan()));
  ASSIGN_OR_RETURN(ReplyEnvelope envelope, ParseReply(decoded.root()));
  return RawReply{envelope.id, std::move(envelope.status)};
}

}  // namespace kmsd
