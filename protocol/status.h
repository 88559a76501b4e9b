// Status and Result: how every kmsd module reports failure.
//
// A Status is a stable Code from a short list plus a human message. The code is
// what programs branch on (it travels on the wire and becomes kmsctl's exit
// code); the message is for people and never carries secret bytes. Each code
// belongs to one ErrorClass, which tells a caller what to do next, and a
// THROTTLED status may say how long to wait (retry_after_ms). Result<T>
// is either a T or a non-OK Status. Both are plain values: copyable, movable,
// safe to share between threads once built.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <utility>

namespace kmsd {

// Wire names are the enumerator names (see CodeName). Append only: the
// numeric values are not on the wire, but kmsctl's exit codes derive from them.
enum class Code {
  kOk = 0,
  kInvalidArgument,     // caller error: bad field, bad name, bad size
  kNotFound,            // caller error: no such tenant, key, alias or version
  kAlreadyExists,       // caller error: name taken
  kAccessDenied,        // caller error: the peer may not do this
  kInvalidCiphertext,   // caller error: malformed, tampered or foreign ciphertext
  kKeyDisabled,         // state: key exists but is disabled
  kKeyPendingDeletion,  // state: key or tenant is scheduled for deletion
  kFrameTooLarge,       // caller error: request frame over the configured limit
  kUnsupportedVersion,  // caller error: protocol version not spoken here
  kUnknownOperation,    // caller error: op not known
  kThrottled,           // transient: rate limit
  kQuotaExceeded,       // caller error: quota
  kTokenUnavailable,    // transient: PKCS#11 token not usable
  kUnavailable,         // transient: daemon not reachable / shutting down
  kInternal,            // bug or environment failure
  kAuditUnavailable,    // transient: the audit log cannot be written; nothing is served
};

// What a caller does about an error: fix the request (caller), change the
// key's or tenant's state (state), retry later (transient), or report a bug
// (internal). Derived from the code; on the wire as ErrorClassName.
enum class ErrorClass { kNone, kCaller, kState, kTransient, kInternal };

std::string_view CodeName(Code code);
ErrorClass ClassOf(Code code);
// "caller", "state", "transient", "internal" ("" for kNone).
std::string_view ErrorClassName(ErrorClass error_class);
// Parses a wire name; unknown names map to kInternal.
Code CodeFromName(std::string_view name);
// kmsctl exit code for a code (documented in docs/CLI.md): 0 ok, 2 usage.
int ExitCodeFor(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  ErrorClass error_class() const { return ClassOf(code_); }
  const std::string& message() const { return message_; }
  // How long the caller should wait before retrying, when the daemon knows.
  std::optional<uint32_t> retry_after_ms() const { return retry_after_ms_; }
  Status WithRetryAfter(uint32_t ms) && {
    retry_after_ms_ = ms;
    return std::move(*this);
  }
  std::string ToString() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
  std::optional<uint32_t> retry_after_ms_;
};

inline Status OkStatus() { return Status(); }

// `code` with "<what>: <the error's description>", for a failed system call
// whose errno is `error`.
Status ErrnoStatus(Code code, const std::string& what, int error);

// For test failure messages and logs; codes and messages carry no secrets.
inline std::ostream& operator<<(std::ostream& out, Code code) { return out << CodeName(code); }
inline std::ostream& operator<<(std::ostream& out, const Status& s) { return out << s.ToString(); }

template <typename T>
using Result = tl::expected<T, Status>;

inline tl::unexpected<Status> Error(Code code, std::string message) {
  return tl::unexpected<Status>(Status(code, std::move(message)));
}
inline tl::unexpected<Status> Error(Status status) {
  return tl::unexpected<Status>(std::move(status));
}

namespace internal {
// What RETURN_IF_ERROR returns: converts to Status and to any Result<T>.
struct ErrorReturn {
  Status status;
  operator Status() && { return std::move(status); }
  template <typename T>
  operator Result<T>() && {
    return tl::unexpected<Status>(std::move(status));
  }
};
inline Status ToStatus(const Status& s) { return s; }
template <typename T>
Status ToStatus(const Result<T>& r) {
  return r.has_value() ? Status() : r.error();
}
}  // namespace internal

// A Result's error, or OK: for callers that only need to know whether it failed.
template <typename T>
Status StatusOf(const Result<T>& result) {
  return internal::ToStatus(result);
}

}  // namespace kmsd

#define KMSD_CONCAT_INNER(a, b) a##b
#define KMSD_CONCAT(a, b) KMSD_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function if `expr` (a Status or a
// Result) failed. Works in functions returning Status or Result<T>.
#define RETURN_IF_ERROR(expr)                                                              \
  do {                                                                                     \
    ::kmsd::Status _kmsd_status = ::kmsd::internal::ToStatus((expr));                      \
    if (!_kmsd_status.ok()) return ::kmsd::internal::ErrorReturn{std::move(_kmsd_status)}; \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(KMSD_CONCAT(_kmsd_result_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)                                         \
  auto tmp = (expr);                                                                  \
  if (!tmp.has_value()) return ::kmsd::internal::ErrorReturn{std::move(tmp).error()}; \
  lhs = std::move(tmp).value()
