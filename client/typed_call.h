// Typed calls: one operation of protocol/operation_types.h over a Connection.
//
//   ASSIGN_OR_RETURN(ops::EncryptReply reply,
//                    CallOp<ops::Encrypt>(connection, "acme", {.key = "alias/data", ...}));
//
// The request is encoded from its type (its fields' names are written only
// there) and the reply decoded into its type, leniently (fields a newer kmsd
// adds are ignored). An error reply comes back as its Status (with class and
// retry-after); a reply that does not fit the type is INTERNAL, kmsd's fault.
// As thread-safe as the Connection: one per thread.
#pragma once

#include <string_view>

#include "client/connection.h"
#include "protocol/codec.h"
#include "protocol/operation_types.h"

namespace kmsd {

// A reply kmsd sent that does not read as it must (a missing field, a wrong
// type): kmsd's fault, so INTERNAL, not the INVALID_ARGUMENT the decoder says.
inline Status MalformedReply(const Status& status) {
  return Status(Code::kInternal, "malformed reply from kmsd: " + status.message());
}

template <typename Op>
Result<typename Op::Reply> CallOp(Connection& connection, std::string_view tenant,
                                  typename Op::Request request) {
  ASSIGN_OR_RETURN(Reply reply, connection.Call(Op::Name(), tenant, Encode(std::move(request))));
  auto decoded = Decode<typename Op::Reply>(reply.result(), Strictness::kLenient);
  if (!decoded.has_value()) return Error(MalformedReply(decoded.error()));
  return decoded;
}

}  // namespace kmsd
