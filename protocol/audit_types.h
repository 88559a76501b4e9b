// Requests and replies of the audit operations (docs/PROTOCOL.md, "Audit";
// docs/AUDIT.md): audit.verify checks the audit log, the live one or a copy
// in another directory, against the token's seals and head. Same rules as
// protocol/operation_types.h. Plain data; thread-compatible.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "protocol/operation_types.h"

namespace kmsd {

namespace wire {
inline constexpr std::string_view kDir = "dir";
inline constexpr std::string_view kVerified = "verified";
inline constexpr std::string_view kFiles = "files";
inline constexpr std::string_view kEntries = "entries";
inline constexpr std::string_view kSeals = "seals";
inline constexpr std::string_view kFirstSeq = "first_seq";
inline constexpr std::string_view kLastSeq = "last_seq";
inline constexpr std::string_view kSealedThrough = "sealed_through";
inline constexpr std::string_view kUnsealed = "unsealed";
inline constexpr std::string_view kTokenSealed = "token_sealed";
inline constexpr std::string_view kProblem = "problem";
inline constexpr std::string_view kProblemFile = "problem_file";
inline constexpr std::string_view kProblemLine = "problem_line";
inline constexpr std::string_view kProblemSeq = "problem_seq";
inline constexpr std::string_view kSince = "since";
inline constexpr std::string_view kUntil = "until";
inline constexpr std::string_view kAfterSeq = "after_seq";
inline constexpr std::string_view kMaxLines = "max_lines";
inline constexpr std::string_view kLines = "lines";
inline constexpr std::string_view kNextAfterSeq = "next_after_seq";
inline constexpr std::string_view kSeal = "seal";
inline constexpr std::string_view kCovers = "covers";
inline constexpr std::string_view kHead = "head";
inline constexpr std::string_view kMac = "mac";
}  // namespace wire

namespace ops {

// A seal as an export carries it: entry `covers` has chain hash `head`
// (hex), and `mac` (hex) is the token's HMAC of them (docs/AUDIT.md).
struct AuditSeal {
  uint64_t covers = 0;
  std::string head;
  std::string mac;
  static constexpr auto kFields =
      std::tuple{Field{wire::kCovers, &AuditSeal::covers}, Field{wire::kHead, &AuditSeal::head},
                 Field{wire::kMac, &AuditSeal::mac}};
};

struct AuditVerifyRequest {
  // Absent: kmsd's own audit log. Else an absolute directory holding a copy
  // (read as kmsd's user).
  std::optional<std::string_view> dir;
  static constexpr auto kFields = std::tuple{Field{wire::kDir, &AuditVerifyRequest::dir}};
};

// audit.check-seals: an export's seals (whose chain the caller walked),
// checked with the token's key; for the tenant whose export it is.
struct AuditCheckSealsRequest {
  std::vector<AuditSeal> seals;
  static constexpr auto kFields = std::tuple{Field{wire::kSeals, &AuditCheckSealsRequest::seals}};
};

struct AuditVerifyReply {
  std::string dir;
  bool verified = false;
  uint64_t files = 0;
  uint64_t entries = 0;
  uint64_t requests = 0;
  uint64_t seals = 0;
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  uint64_t sealed_through = 0;
  uint64_t unsealed = 0;
  uint64_t token_sealed = 0;  // the entry the token's head covers
  // The first problem, when not verified.
  std::optional<std::string> problem;
  std::optional<std::string> problem_file;
  std::optional<uint64_t> problem_line;
  std::optional<uint64_t> problem_seq;
  static constexpr auto kFields =
      std::tuple{Field{wire::kDir, &AuditVerifyReply::dir},
                 Field{wire::kVerified, &AuditVerifyReply::verified},
                 Field{wire::kFiles, &AuditVerifyReply::files},
                 Field{wire::kEntries, &AuditVerifyReply::entries},
                 Field{wire::kRequests, &AuditVerifyReply::requests},
                 Field{wire::kSeals, &AuditVerifyReply::seals},
                 Field{wire::kFirstSeq, &AuditVerifyReply::first_seq},
                 Field{wire::kLastSeq, &AuditVerifyReply::last_seq},
                 Field{wire::kSealedThrough, &AuditVerifyReply::sealed_through},
                 Field{wire::kUnsealed, &AuditVerifyReply::unsealed},
                 Field{wire::kTokenSealed, &AuditVerifyReply::token_sealed},
                 Field{wire::kProblem, &AuditVerifyReply::problem},
                 Field{wire::kProblemFile, &AuditVerifyReply::problem_file},
                 Field{wire::kProblemLine, &AuditVerifyReply::problem_line},
                 Field{wire::kProblemSeq, &AuditVerifyReply::problem_seq}};
};

// One page of a tenant's export (docs/AUDIT.md, "Export").
struct AuditExportRequest {
  std::optional<std::string_view> since;  // 2026-12-03T12:34:56.000000Z; absent: open
  std::optional<std::string_view> until;
  std::optional<uint64_t> after_seq;  // the page before's next_after_seq
  std::optional<uint64_t> max_lines;  // 1 to 20000; default 2000
  static constexpr auto kFields =
      std::tuple{Field{wire::kSince, &AuditExportRequest::since},
                 Field{wire::kUntil, &AuditExportRequest::until},
                 Field{wire::kAfterSeq, &AuditExportRequest::after_seq},
                 Field{wire::kMaxLines, &AuditExportRequest::max_lines}};
};

struct AuditExportReply {
  std::vector<std::string> lines;
  std::optional<uint64_t> next_after_seq;  // absent: the last page
  uint64_t entries = 0;
  static constexpr auto kFields =
      std::tuple{Field{wire::kLines, &AuditExportReply::lines},
                 Field{wire::kNextAfterSeq, &AuditExportReply::next_after_seq},
                 Field{wire::kEntries, &AuditExportReply::entries}};
};

using AuditVerify = Op<OpId::kAuditVerify, AuditVerifyRequest, AuditVerifyReply>;
using AuditExport = Op<OpId::kAuditExport, AuditExportRequest, AuditExportReply>;
using AuditCheckSeals = Op<OpId::kAuditCheckSeals, AuditCheckSealsRequest, AuditVerifyReply>;

}  // namespace ops
}  // namespace kmsd
