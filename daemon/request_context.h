// RequestContext: what the pipeline knows about one request, from the moment
// it is received to its record (docs/ARCHITECTURE.md, the request's path).
//
// Each stage fills its part: receive (sequence, caller, times), identify
// (principal), envelope (request id, operation, tenant), authorize (decision), execute (keys and
// versions touched, outcome), record reads it all. It never holds request
// arguments or results: what the record stage may write down is exactly
// what is here. One context per request, owned by the stage running it;
// not synchronized.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/access.h"
#include "protocol/operations.h"
#include "protocol/status.h"

namespace kmsd {

// A key version a request used: for audit, which key decrypted what.
struct KeyTouched {
  std::string key_id;  // hex
  std::string key_name;
  uint64_t version = 0;
  std::string_view role;         // "source", "destination" or "" (the one key)
  std::optional<uint32_t> item;  // the batch item that used it
};

struct Decision {
  bool decided = false;
  bool allowed = false;
  // Let in for some keys or aliases only: the execute stage must check the
  // one it acts on (resource_checked) before anything leaves.
  bool resource_pending = false;
  bool resource_checked = false;
  std::optional<Permission> permission;  // the permission asked for
  std::string reason;                    // why not, when denied
  std::vector<std::string> grants;       // the grants that let a key in (ids)
};

struct RequestContext {
  using Clock = std::chrono::steady_clock;

  uint64_t sequence = 0;               // daemon-wide, in order of receipt
  std::optional<uint64_t> request_id;  // the envelope's id, once read
  Peer caller;
  // The tenant principal, when the request carried its API key.
  std::optional<PrincipalIdentity> principal;
  std::string_view op_name = "-";  // the table's name once known
  const OperationInfo* op = nullptr;
  std::string tenant;  // empty for service operations
  Decision decision;
  std::vector<KeyTouched> keys;
  std::vector<Code> item_outcomes;  // a batch's, in item order
  Status outcome;
  size_t request_bytes = 0;
  size_t reply_bytes = 0;
  Clock::time_point received{};
  Clock::time_point started{};  // when a worker took it
  Clock::time_point finished{};
};

}  // namespace kmsd
