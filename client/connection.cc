#include "client/connection.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/transport/ipc/ipc.h>

#include <cstdlib>

namespace kmsd {
namespace {

nng_socket SocketOf(uint32_t id) {
  nng_socket s;
  s.id = id;
  return s;
}

Status NngError(int rv, std::string_view what) {
  return Status(Code::kUnavailable, std::string(what) + ": " + nng_strerror(rv));
}

}  // namespace

std::string ResolveSocketPath(std::string_view flag_value) {
  if (!flag_value.empty()) return std::string(flag_value);
  const char* env = std::getenv("KMSD_SOCKET");
  if (env != nullptr && *env != '\0') return env;
  return std::string(kDefaultSocketPath);
}

Result<std::unique_ptr<Connection>> Connection::Dial(const std::string& socket_path,
                                                     std::chrono::milliseconds timeout) {
  // Replies may carry plaintexts and data keys: give SecretBuffer a locked
  // heap, or every reply would cost its own mmap/mlock/munmap.
  InitSecureHeap(1 << 20);
  nng_socket socket;
  if (int rv = nng_req0_open(&socket); rv != 0) return Error(NngError(rv, "cannot open socket"));
  std::unique_ptr<Connection> connection(new Connection(socket.id));
  const auto ms = static_cast<nng_duration>(timeout.count());
  nng_socket_set_ms(socket, NNG_OPT_RECVTIMEO, ms);
  nng_socket_set_ms(socket, NNG_OPT_SENDTIMEO, ms);
  // A REQ socket resends after this long; keep it beyond the timeout so a
  // slow operation is never executed twice.
  nng_socket_set_ms(socket, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
  nng_socket_set_size(socket, NNG_OPT_RECVMAXSZ, 0);
  const std::string url = "ipc://" + socket_path;
  if (int rv = nng_dial(socket, url.c_str(), nullptr, 0); rv != 0) {
    return Error(NngError(rv, "cannot connect to kmsd at " + socket_path));
  }
  return connection;
}

Connection::~Connection() { nng_close(SocketOf(socket_id_)); }

Result<SecretBuffer> Connection::RoundTrip(std::span<const uint8_t> frame) {
  nng_msg* request;
  if (int rv = nng_msg_alloc(&request, 0); rv != 0) return Error(NngError(rv, "nng_msg_alloc"));
  if (int rv = nng_msg_append(request, frame.data(), frame.size()); rv != 0) {
    nng_msg_free(request);
    return Error(NngError(rv, "nng_msg_append"));
  }
  if (int rv = nng_sendmsg(SocketOf(socket_id_), request, 0); rv != 0) {
    WipeMemory(nng_msg_body(request), nng_msg_len(request));
    nng_msg_free(request);
    return Error(NngError(rv, "cannot send request to kmsd"));
  }
  nng_msg* reply;
  if (int rv = nng_recvmsg(SocketOf(socket_id_), &reply, 0); rv != 0) {
    return Error(NngError(rv, "no reply from kmsd"));
  }
  SecretBuffer bytes =
      SecretBuffer::CopyOf({static_cast<const uint8_t*>(nng_msg_body(reply)), nng_msg_len(reply)});
  WipeMemory(nng_msg_body(reply), nng_msg_len(reply));
  nng_msg_free(reply);
  return bytes;
}

Result<Reply> Connection::Call(std::string_view op, std::string_view tenant, Value::Map args) {
  const uint64_t id = next_id_++;
  WipingBuffer request = EncodeValue(BuildRequest(id, op, tenant, std::move(args)));
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
