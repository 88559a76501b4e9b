#include "protocol/status.h"

#include <array>
#include <system_error>

namespace kmsd {
namespace {

struct CodeInfo {
  Code code;
  std::string_view name;
  int exit_code;
  ErrorClass error_class;
};

constexpr ErrorClass kCaller = ErrorClass::kCaller;
constexpr ErrorClass kState = ErrorClass::kState;
constexpr ErrorClass kTransient = ErrorClass::kTransient;

// Exit codes group codes by what a script does next: 3 fix the request,
// 4 fix permissions, 5 the data is bad, 6 key state, 7 retry later (the token),
// 8 quota, 12 throttled (retry after the time kmsd names), 13 the audit log
// cannot be written (an operator must act), 1 bug.
constexpr std::array<CodeInfo, 17> kCodes = {{
    {Code::kOk, "OK", 0, ErrorClass::kNone},
    {Code::kInvalidArgument, "INVALID_ARGUMENT", 3, kCaller},
    {Code::kNotFound, "NOT_FOUND", 10, kCaller},
    {Code::kAlreadyExists, "ALREADY_EXISTS", 11, kCaller},
    {Code::kAccessDenied, "ACCESS_DENIED", 4, kCaller},
    {Code::kInvalidCiphertext, "INVALID_CIPHERTEXT", 5, kCaller},
    {Code::kKeyDisabled, "KEY_DISABLED", 6, kState},
    {Code::kKeyPendingDeletion, "KEY_PENDING_DELETION", 6, kState},
    {Code::kFrameTooLarge, "FRAME_TOO_LARGE", 3, kCaller},
    {Code::kUnsupportedVersion, "UNSUPPORTED_VERSION", 3, kCaller},
    {Code::kUnknownOperation, "UNKNOWN_OPERATION", 3, kCaller},
    {Code::kThrottled, "THROTTLED", 12, kTransient},
    {Code::kQuotaExceeded, "QUOTA_EXCEEDED", 8, kCaller},
    {Code::kTokenUnavailable, "TOKEN_UNAVAILABLE", 7, kTransient},
    {Code::kUnavailable, "UNAVAILABLE", 9, kTransient},
    {Code::kInternal, "INTERNAL", 1, ErrorClass::kInternal},
    {Code::kAuditUnavailable, "AUDIT_UNAVAILABLE", 13, kTransient},
}};

}  // namespace

std::string_view CodeName(Code code) {
  for (const auto& info : kCodes) {
    if (info.code == code) return info.name;
  }
  return "INTERNAL";
}

Code CodeFromName(std::string_view name) {
  for (const auto& info : kCodes) {
    if (info.name == name) return info.code;
  }
  return Code::kInternal;
}

int ExitCodeFor(Code code) {
  for (const auto& info : kCodes) {
    if (info.code == code) return info.exit_code;
  }
  return 1;
}

ErrorClass ClassOf(Code code) {
  for (const auto& info : kCodes) {
    if (info.code == code) return info.error_class;
  }
  return ErrorClass::kInternal;
}

std::string_view ErrorClassName(ErrorClass error_class) {
  switch (error_class) {
    case ErrorClass::kNone:
      return "";
    case ErrorClass::kCaller:
      return "caller";
    case ErrorClass::kState:
      return "state";
    case ErrorClass::kTransient:
      return "transient";
    case ErrorClass::kInternal:
      return "internal";
  }
  return "internal";
}

Status ErrnoStatus(Code code, const std::string& what, int error) {
  return Status(code, what + ": " + std::generic_category().message(error));
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(CodeName(code_)) + ": " + message_;
}

}  // namespace kmsd
