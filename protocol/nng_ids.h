// Small helpers shared by both ends of the nng transport (daemon/server.cc,
// client/connection.cc): kmsd keeps nng handles as their uint32_t ids.
// Header-only so that protocol/ itself does not link nng.
#pragma once

#include <nng/nng.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/status.h"

namespace kmsd {

inline nng_socket SocketOf(uint32_t id) {
  nng_socket socket;
  socket.id = id;
  return socket;
}

// `what`: nng's words for `rv`, as a Status with `code`.
inline Status NngError(Code code, int rv, std::string_view what) {
  return Status(code, std::string(what) + ": " + nng_strerror(rv));
}

}  // namespace kmsd
