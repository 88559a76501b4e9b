#include "protocol/status.h"

#include <array>

namespace kmsd {
namespace {

struct CodeInfo {
  Code code;
  std::string_view name;
  int exit_code;
};

// Exit codes group codes by what a script does next: 3 fix the request,
// 4 fix permissions, 5 the data is bad, 6 key state, 7 retry later, 1 bug.
constexpr std::array<CodeInfo, 16> kCodes = {{
    {Code::kOk, "OK", 0},
    {Code::kInvalidArgument, "INVALID_ARGUMENT", 3},
    {Code::kNotFound, "NOT_FOUND", 10},
    {Code::kAlreadyExists, "ALREADY_EXISTS", 11},
    {Code::kAccessDenied, "ACCESS_DENIED", 4},
    {Code::kInvalidCiphertext, "INVALID_CIPHERTEXT", 5},
    {Code::kKeyDisabled, "KEY_DISABLED", 6},
    {Code::kKeyPendingDeletion, "KEY_PENDING_DELETION", 6},
    {Code::kFrameTooLarge, "FRAME_TOO_LARGE", 3},
    {Code::kUnsupportedVersion, "UNSUPPORTED_VERSION", 3},
    {Code::kUnknownOperation, "UNKNOWN_OPERATION", 3},
    {Code::kThrottled, "THROTTLED", 7},
    {Code::kQuotaExceeded, "QUOTA_EXCEEDED", 8},
    {Code::kTokenUnavailable, "TOKEN_UNAVAILABLE", 7},
    {Code::kUnavailable, "UNAVAILABLE", 9},
    {Code::kInternal, "INTERNAL", 1},
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

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(CodeName(code_)) + ": " + message_;
}

}  // namespace kmsd
