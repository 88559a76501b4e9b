#include "daemon/peer_gate.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

namespace kmsd {

bool PeerGate::Admit(uint64_t connection_id, const Peer& peer) {
  // kmsd's own listener probe (every 250 ms): let in, not counted, not logged.
  if (peer.pid == static_cast<uint64_t>(getpid())) {
    std::lock_guard lock(mu_);
    connections_[connection_id] = ConnectionState{peer, Clock::now(), 0, false, false};
    return true;
  }
  if (!access_.MayConnect(peer)) {
    Refuse(peer, "not allowed to use kmsd");
    return false;
  }
  std::unique_lock lock(mu_);
  const auto held = connections_per_uid_.find(peer.uid);
  const size_t of_uid = held == connections_per_uid_.end() ? 0 : held->second;
  if (of_uid >= options_.max_connections_per_uid) {
    lock.unlock();
    Refuse(peer, "over limits.max_connections_per_uid (" +
                     std::to_string(options_.max_connections_per_uid) + ")");
    return false;
  }
  if (counted_ >= options_.max_connections) {
    lock.unlock();
    Refuse(peer, "over limits.max_connections (" + std::to_string(options_.max_connections) + ")");
    return false;
  }
  ++connections_per_uid_[peer.uid];
  ++counted_;
  connections_[connection_id] = ConnectionState{peer, Clock::now(), 0, true, false};
  lock.unlock();
  spdlog::debug("connection {} opened: uid {} pid {}", connection_id, peer.uid, peer.pid);
  return true;
}

void PeerGate::Release(uint64_t connection_id) {
  std::lock_guard lock(mu_);
  auto it = connections_.find(connection_id);
  if (it == connections_.end()) return;
  if (it->second.counted) {
    --counted_;
    auto uid = connections_per_uid_.find(it->second.peer.uid);
    if (uid != connections_per_uid_.end() && --uid->second == 0) connections_per_uid_.erase(uid);
  }
  connections_.erase(it);
}

void PeerGate::Refuse(const Peer& peer, std::string_view reason) {
  refused_.fetch_add(1);
  std::lock_guard lock(mu_);
  auto line = refusal_log_.Record({peer.uid, peer.pid, reason}, Clock::now());
  if (line) spdlog::warn("{}", *line);
}

std::optional<Peer> PeerGate::BeginRequest(uint64_t connection_id) {
  std::lock_guard lock(mu_);
  auto it = connections_.find(connection_id);
  if (it == connections_.end()) return std::nullopt;
  ++it->second.in_flight;
  it->second.last_activity = Clock::now();
  return it->second.peer;
}

void PeerGate::EndRequest(uint64_t connection_id) {
  std::lock_guard lock(mu_);
  auto it = connections_.find(connection_id);
  if (it == connections_.end()) return;
  --it->second.in_flight;
  it->second.last_activity = Clock::now();
}

std::vector<uint64_t> PeerGate::Tick() {
  const auto now = Clock::now();
  std::vector<uint64_t> idle;
  std::lock_guard lock(mu_);
  if (auto line = refusal_log_.Flush(now)) spdlog::warn("{}", *line);
  for (auto& [id, state] : connections_) {
    if (state.closing || state.in_flight > 0 || now - state.last_activity < options_.idle_timeout) {
      continue;
    }
    state.closing = true;
    idle.push_back(id);
  }
  if (!idle.empty()) {
    spdlog::info("closing {} connections idle for {} ms or more", idle.size(),
                 options_.idle_timeout.count());
  }
  return idle;
}

size_t PeerGate::connections() const {
  std::lock_guard lock(mu_);
  return connections_.size();
}

void PeerGate::SetOptions(PeerGateOptions options) {
  std::lock_guard lock(mu_);
  options_ = options;
}

}  // namespace kmsd
