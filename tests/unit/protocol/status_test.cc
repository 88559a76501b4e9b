// Status, Result and the RETURN_IF_ERROR / ASSIGN_OR_RETURN macros.
#include "protocol/status.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "protocol/secret_buffer.h"

namespace kmsd {
namespace {

using ::testing::HasSubstr;

struct CodeRow {
  Code code;
  std::string_view name;
  int exit_code;
};

// docs/CLI.md's exit status table and docs/PROTOCOL.md's wire names.
const std::vector<CodeRow>& AllCodes() {
  static const std::vector<CodeRow> rows = {
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
      {Code::kThrottled, "THROTTLED", 12},
      {Code::kQuotaExceeded, "QUOTA_EXCEEDED", 8},
      {Code::kTokenUnavailable, "TOKEN_UNAVAILABLE", 7},
      {Code::kUnavailable, "UNAVAILABLE", 9},
      {Code::kInternal, "INTERNAL", 1},
  };
  return rows;
}

TEST(CodeTest, EveryCodeHasItsDocumentedWireNameAndExitCode) {
  for (const auto& row : AllCodes()) {
    EXPECT_EQ(CodeName(row.code), row.name);
    EXPECT_EQ(ExitCodeFor(row.code), row.exit_code) << row.name;
  }
}

TEST(CodeTest, WireNamesAreUniqueAndParseBackToTheirCode) {
  std::set<std::string_view> seen;
  for (const auto& row : AllCodes()) {
    EXPECT_TRUE(seen.insert(row.name).second) << row.name;
    EXPECT_EQ(CodeFromName(row.name), row.code) << row.name;
  }
}

TEST(CodeTest, UnknownWireNamesParseAsInternal) {
  EXPECT_EQ(CodeFromName(""), Code::kInternal);
  EXPECT_EQ(CodeFromName("not_found"), Code::kInternal);  // case matters
  EXPECT_EQ(CodeFromName("NOT_FOUND "), Code::kInternal);
  EXPECT_EQ(CodeFromName(std::string_view("OK\0", 3)), Code::kInternal);
  EXPECT_EQ(CodeFromName("USAGE"), Code::kInternal);  // kmsctl's own, never on the wire
}

TEST(CodeTest, OnlyOkExitsZeroAndNoCodeTakesTheUsageExitCode) {
  for (const auto& row : AllCodes()) {
    if (row.code != Code::kOk) {
      EXPECT_NE(ExitCodeFor(row.code), 0) << row.name;
    }
    EXPECT_NE(ExitCodeFor(row.code), 2) << row.name;
  }
}

TEST(CodeTest, OutOfRangeCodeIsReportedAsInternal) {
  const Code bogus = static_cast<Code>(999);
  EXPECT_EQ(CodeName(bogus), "INTERNAL");
  EXPECT_EQ(ExitCodeFor(bogus), 1);
}

TEST(StatusTest, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), Code::kOk);
  EXPECT_EQ(s.message(), "");
  EXPECT_EQ(s.ToString(), "OK");
  EXPECT_TRUE(OkStatus().ok());
}

TEST(StatusTest, ErrorCarriesCodeAndMessage) {
  Status s(Code::kNotFound, "no key 'billing'");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_EQ(s.message(), "no key 'billing'");
  EXPECT_EQ(s.ToString(), "NOT_FOUND: no key 'billing'");
  std::ostringstream out;
  out << s << "|" << Code::kAccessDenied;
  EXPECT_EQ(out.str(), "NOT_FOUND: no key 'billing'|ACCESS_DENIED");
}

TEST(StatusTest, ErrorHelpersBuildUnexpected) {
  Result<int> a = Error(Code::kThrottled, "slow down");
  ASSERT_FALSE(a.has_value());
  EXPECT_EQ(a.error().code(), Code::kThrottled);
  EXPECT_EQ(a.error().message(), "slow down");
  Result<int> b = Error(Status(Code::kQuotaExceeded, "full"));
  ASSERT_FALSE(b.has_value());
  EXPECT_EQ(b.error().code(), Code::kQuotaExceeded);
}

TEST(StatusTest, ClassComesFromTheCode) {
  EXPECT_EQ(OkStatus().error_class(), ErrorClass::kNone);
  for (Code code : {Code::kInvalidArgument, Code::kNotFound, Code::kAlreadyExists,
                    Code::kAccessDenied, Code::kInvalidCiphertext, Code::kFrameTooLarge,
                    Code::kUnsupportedVersion, Code::kUnknownOperation, Code::kQuotaExceeded}) {
    EXPECT_EQ(Status(code, "m").error_class(), ErrorClass::kCaller) << CodeName(code);
  }
  for (Code code : {Code::kKeyDisabled, Code::kKeyPendingDeletion}) {
    EXPECT_EQ(Status(code, "m").error_class(), ErrorClass::kState) << CodeName(code);
  }
  for (Code code : {Code::kThrottled, Code::kTokenUnavailable, Code::kUnavailable}) {
    EXPECT_EQ(Status(code, "m").error_class(), ErrorClass::kTransient) << CodeName(code);
  }
  EXPECT_EQ(Status(Code::kInternal, "m").error_class(), ErrorClass::kInternal);
  EXPECT_EQ(ErrorClassName(ErrorClass::kCaller), "caller");
  EXPECT_EQ(ErrorClassName(ErrorClass::kState), "state");
  EXPECT_EQ(ErrorClassName(ErrorClass::kTransient), "transient");
  EXPECT_EQ(ErrorClassName(ErrorClass::kInternal), "internal");
}

TEST(StatusTest, RetryAfterIsAbsentUnlessSet) {
  EXPECT_EQ(Status(Code::kThrottled, "slow down").retry_after_ms(), std::nullopt);
  Status s = Status(Code::kThrottled, "slow down").WithRetryAfter(250);
  EXPECT_EQ(s.retry_after_ms(), std::optional<uint32_t>(250));
  EXPECT_EQ(s.code(), Code::kThrottled);
  EXPECT_EQ(s.message(), "slow down");
  Result<int> r = Error(std::move(s));
  EXPECT_EQ(r.error().retry_after_ms(), std::optional<uint32_t>(250));
}

// --- RETURN_IF_ERROR / ASSIGN_OR_RETURN --------------------------------------

Status Fails(Code code) { return Status(code, "failed here"); }
Result<int> Number(int n) {
  if (n < 0) return Error(Code::kInvalidArgument, "negative");
  return n;
}
Result<std::unique_ptr<int>> Owned(int n) {
  if (n < 0) return Error(Code::kNotFound, "no such int");
  return std::make_unique<int>(n);
}

Status ReturnIfErrorInStatusFunction(const Status& inner, int* reached) {
  RETURN_IF_ERROR(inner);
  ++*reached;
  return OkStatus();
}

Result<std::string> ReturnIfErrorInResultFunction(const Status& inner, int* reached) {
  RETURN_IF_ERROR(inner);
  ++*reached;
  return std::string("after");
}

TEST(ReturnIfErrorTest, ContinuesOnOkInStatusFunction) {
  int reached = 0;
  EXPECT_TRUE(ReturnIfErrorInStatusFunction(OkStatus(), &reached).ok());
  EXPECT_EQ(reached, 1);
}

TEST(ReturnIfErrorTest, ReturnsTheErrorUnchangedFromStatusFunction) {
  int reached = 0;
  Status s = ReturnIfErrorInStatusFunction(Fails(Code::kAccessDenied), &reached);
  EXPECT_EQ(s.code(), Code::kAccessDenied);
  EXPECT_EQ(s.message(), "failed here");
  EXPECT_EQ(reached, 0);
}

TEST(ReturnIfErrorTest, ContinuesOnOkInResultFunction) {
  int reached = 0;
  Result<std::string> r = ReturnIfErrorInResultFunction(OkStatus(), &reached);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, "after");
  EXPECT_EQ(reached, 1);
}

TEST(ReturnIfErrorTest, ReturnsTheErrorUnchangedFromResultFunction) {
  int reached = 0;
  Result<std::string> r = ReturnIfErrorInResultFunction(Fails(Code::kKeyDisabled), &reached);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kKeyDisabled);
  EXPECT_EQ(r.error().message(), "failed here");
  EXPECT_EQ(reached, 0);
}

Status ReturnIfErrorOnResult(int n, int* reached) {
  RETURN_IF_ERROR(Number(n));
  ++*reached;
  return OkStatus();
}

TEST(ReturnIfErrorTest, AcceptsAResultAndPropagatesItsError) {
  int reached = 0;
  EXPECT_TRUE(ReturnIfErrorOnResult(5, &reached).ok());
  EXPECT_EQ(reached, 1);
  Status s = ReturnIfErrorOnResult(-1, &reached);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(s.message(), "negative");
  EXPECT_EQ(reached, 1);
}

Status CountedCall(int* calls) {
  ++*calls;
  return OkStatus();
}
Status EvaluateOnce(int* calls) {
  RETURN_IF_ERROR(CountedCall(calls));
  return OkStatus();
}

TEST(ReturnIfErrorTest, EvaluatesItsExpressionExactlyOnce) {
  int calls = 0;
  EXPECT_TRUE(EvaluateOnce(&calls).ok());
  EXPECT_EQ(calls, 1);
}

Result<int> SumOfTwo(int a, int b) {
  ASSIGN_OR_RETURN(int x, Number(a));
  ASSIGN_OR_RETURN(int y, Number(b));  // a second use in one scope must compile
  return x + y;
}

TEST(AssignOrReturnTest, AssignsValuesInResultFunction) {
  Result<int> r = SumOfTwo(2, 3);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, 5);
}

TEST(AssignOrReturnTest, ReturnsTheFirstErrorFromResultFunction) {
  Result<int> first = SumOfTwo(-1, 3);
  ASSERT_FALSE(first.has_value());
  EXPECT_EQ(first.error().code(), Code::kInvalidArgument);
  Result<int> second = SumOfTwo(1, -3);
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code(), Code::kInvalidArgument);
}

Status StoreOwned(int n, std::unique_ptr<int>* out) {
  ASSIGN_OR_RETURN(*out, Owned(n));  // assigns to an existing lvalue, move-only type
  return OkStatus();
}

TEST(AssignOrReturnTest, MovesMoveOnlyValuesInStatusFunction) {
  std::unique_ptr<int> out;
  ASSERT_TRUE(StoreOwned(7, &out).ok());
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(*out, 7);
}

TEST(AssignOrReturnTest, ReturnsTheErrorFromStatusFunctionAndLeavesTargetAlone) {
  auto out = std::make_unique<int>(1);
  Status s = StoreOwned(-1, &out);
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_EQ(s.message(), "no such int");
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(*out, 1);
}

Result<SecretBuffer> Secret(bool ok) {
  if (!ok) return Error(Code::kTokenUnavailable, "token gone");
  return SecretBuffer::CopyOf(std::string_view("key"));
}
Result<size_t> SecretSize(bool ok) {
  ASSIGN_OR_RETURN(SecretBuffer secret, Secret(ok));
  return secret.size();
}

TEST(AssignOrReturnTest, WorksWithSecretBuffer) {
  ASSERT_TRUE(SecretSize(true).has_value());
  EXPECT_EQ(*SecretSize(true), 3u);
  Result<size_t> r = SecretSize(false);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kTokenUnavailable);
  EXPECT_THAT(r.error().message(), HasSubstr("token gone"));
}

}  // namespace
}  // namespace kmsd
