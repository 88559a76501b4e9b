#include "daemon/peer_gate.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <unordered_set>

#include "os/system.h"

namespace kmsd {

Status PeerGate::Attach(nng_socket socket, std::string socket_path) {
  socket_path_ = std::move(socket_path);
  for (nng_pipe_ev event : {NNG_PIPE_EV_ADD_PRE, NNG_PIPE_EV_REM_POST}) {
    if (int rv = nng_pipe_notify(socket, event, &PeerGate::OnPipeEvent, this); rv != 0) {
      return Status(Code::kInternal, std::string("nng_pipe_notify: ") + nng_strerror(rv));
    }
  }
  return OkStatus();
}

void PeerGate::OnPipeEvent(nng_pipe pipe, nng_pipe_ev event, void* self) {
  auto* gate = static_cast<PeerGate*>(self);
  if (event == NNG_PIPE_EV_ADD_PRE) gate->Admit(pipe);
  if (event == NNG_PIPE_EV_REM_POST) gate->Release(nng_pipe_id(pipe));
}

void PeerGate::Admit(nng_pipe pipe) {
  // An unreadable peer is nobody: MayConnect refuses it.
  const Peer peer = CurrentSystem().PeerOfPipe(nng_pipe_id(pipe)).value_or(UnknownPeer());
  const bool self = peer.pid == static_cast<uint64_t>(getpid());
  if (!self && !access_.MayConnect(peer)) {
    Refuse(peer, "not allowed to use kmsd");
    nng_pipe_close(pipe);
    return;
  }
  std::unique_lock lock(mu_);
  if (!self && pipes_per_uid_[peer.uid] >= options_.max_connections_per_uid) {
    lock.unlock();
    Refuse(peer, "over limits.max_connections_per_uid (" +
                     std::to_string(options_.max_connections_per_uid) + ")");
    nng_pipe_close(pipe);
    return;
  }
  if (!self) ++pipes_per_uid_[peer.uid];
  pipes_[nng_pipe_id(pipe)] = PipeState{std::move(peer), Clock::now(), 0, !self, false};
  if (self) own_pipes_.fetch_add(1);
}

void PeerGate::Release(uint32_t pipe_id) {
  std::lock_guard lock(mu_);
  auto it = pipes_.find(pipe_id);
  if (it == pipes_.end()) return;  // refused at ADD_PRE: never counted
  if (it->second.counted) {
    auto uid = pipes_per_uid_.find(it->second.peer.uid);
    if (uid != pipes_per_uid_.end() && --uid->second == 0) pipes_per_uid_.erase(uid);
  }
  pipes_.erase(it);
}

void PeerGate::Refuse(const Peer& peer, std::string_view reason) {
  refused_.fetch_add(1);
  std::lock_guard lock(mu_);
  auto line = refusal_log_.Record({peer.uid, peer.pid, reason}, Clock::now());
  if (line) spdlog::warn("{}", *line);
}

std::optional<Peer> PeerGate::BeginRequest(uint32_t pipe_id) {
  std::lock_guard lock(mu_);
  auto it = pipes_.find(pipe_id);
  if (it == pipes_.end()) return std::nullopt;
  ++it->second.in_flight;
  it->second.last_activity = Clock::now();
  return it->second.peer;
}

void PeerGate::EndRequest(uint32_t pipe_id) {
  std::lock_guard lock(mu_);
  auto it = pipes_.find(pipe_id);
  if (it == pipes_.end()) return;
  --it->second.in_flight;
  it->second.last_activity = Clock::now();
}

void PeerGate::Tick() {
  const auto now = Clock::now();
  std::chrono::milliseconds idle_timeout;
  std::unordered_map<uint64_t, std::vector<uint32_t>> idle_by_pid;
  {
    std::lock_guard lock(mu_);
    idle_timeout = options_.idle_timeout;
    if (auto line = refusal_log_.Flush(now)) spdlog::warn("{}", *line);
    std::unordered_set<uint64_t> busy_pids;
    for (const auto& [id, state] : pipes_) {
      if (state.closing) continue;
      if (state.in_flight > 0 || now - state.last_activity < idle_timeout) {
        busy_pids.insert(state.peer.pid);
      } else {
        idle_by_pid[state.peer.pid].push_back(id);
      }
    }
    std::erase_if(idle_by_pid, [&](const auto& entry) { return busy_pids.contains(entry.first); });
  }
  if (idle_by_pid.empty()) return;
  // Outside the lock: a connection that ends runs REM_POST, which takes it.
  std::unordered_set<uint64_t> idle_pids;
  for (const auto& entry : idle_by_pid) idle_pids.insert(entry.first);
  std::unordered_set<uint64_t> ended_pids;
  for (const EndedConnection& connection :
       CurrentSystem().ShutDownReadingOfConnectionsTo(socket_path_, idle_pids)) {
    ended_pids.insert(connection.peer_pid);
  }
  size_t ended = 0;
  {
    std::lock_guard lock(mu_);
    for (uint64_t pid : ended_pids) {
      for (uint32_t id : idle_by_pid[pid]) {
        auto it = pipes_.find(id);
        if (it != pipes_.end()) it->second.closing = true;
      }
      ended += idle_by_pid[pid].size();
    }
  }
  if (ended > 0) {
    spdlog::info("closed {} connections idle for {} ms or more", ended, idle_timeout.count());
  }
}

size_t PeerGate::connections() const {
  std::lock_guard lock(mu_);
  return pipes_.size();
}

void PeerGate::SetOptions(PeerGateOptions options) {
  std::lock_guard lock(mu_);
  options_ = options;
}

}  // namespace kmsd
