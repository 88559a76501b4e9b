// The pipeline's stages with fakes around them: envelope, identify,
// authorize, the tenant rules, execute (handler and pending check) and record.
#include "daemon/pipeline.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

#include "protocol/operation_types.h"
#include "tests/support/value_builders.h"

namespace kmsd {
namespace {

using ::testing::HasSubstr;
using testing::MapOf;

class FakeAuthorizer final : public Authorizer {
 public:
  Status Authorize(RequestContext& context, const AccessQuestion& question) const override {
    const std::string resource = question.resource ? std::string(question.resource->name) : "";
    asked.push_back({std::string(question.operation), question.permission,
                     std::string(question.tenant), resource});
    const bool allowed = !deny_all && resource != denied_resource;
    if (question.resource == nullptr && let_in_pending) context.decision.resource_pending = true;
    context.decision.decided = true;
    context.decision.allowed = allowed;
    context.decision.permission = question.permission;
    if (allowed) return OkStatus();
    return Status(Code::kAccessDenied, "denied by the fake");
  }
  struct Asked {
    std::string operation;
    std::optional<Permission> permission;
    std::string tenant;
    std::string resource;
  };
  mutable std::vector<Asked> asked;
  bool deny_all = false;
  // Lets requests in with the resource check pending, as for a principal
  // allowed on some keys only.
  bool let_in_pending = false;
  std::string denied_resource = "forbidden";
};

class FakeRecorder final : public Recorder {
 public:
  Status Ready() const override { return ready; }
  Status Record(const RequestContext& context) override {
    records.push_back({context.request_id, std::string(context.op_name), context.tenant,
                       context.outcome, context.keys.size(), context.decision.allowed});
    return written;
  }
  Status ready;
  Status written;  // what Record answers
  struct Entry {
    std::optional<uint64_t> id;
    std::string op;
    std::string tenant;
    Status outcome;
    size_t keys;
    bool allowed;
  };
  std::vector<Entry> records;
};

int handler_runs = 0;

Result<ops::EncryptReply> FakeEncrypt(Call& call, const ops::EncryptRequest& request) {
  ++handler_runs;
  ops::EncryptReply reply;
  reply.ciphertext = Bytes(request.plaintext.begin(), request.plaintext.end());
  reply.key_id = "00";
  reply.key_name = std::string(request.key);
  reply.version = 7;
  call.Touched(reply.key_id, reply.key_name, reply.version);
  return reply;
}

// Authorizes each item's key through the pipeline's authorize stage.
Result<ops::BatchReply<ops::BatchEncryptResult>> FakeBatch(
    Call& call, const ops::BatchEncryptRequest& request) {
  ++handler_runs;
  ops::BatchReply<ops::BatchEncryptResult> reply;
  for (size_t i = 0; i < request.items.size(); ++i) {
    auto item = DecodeItem(request.items, i);
    const std::string resource = item ? std::string(item->context.at("key")) : "";
    Status allowed = call.AuthorizeKey(Permission::kEncrypt, resource);
    if (allowed.ok()) {
      reply.results.emplace_back(ops::BatchEncryptResult{.ciphertext = {}, .version = 1});
    } else {
      reply.results.emplace_back(Error(std::move(allowed)));
    }
  }
  return reply;
}

// Acts on a key without asking about it: a handler with a bug.
Result<ops::DecryptReply> ForgetfulDecrypt(Call&, const ops::DecryptRequest&) {
  ++handler_runs;
  ops::DecryptReply reply;
  reply.plaintext = SecretBuffer::CopyOf(Bytes{1, 2, 3});
  return reply;
}

Result<ops::HealthReply> FakeHealth(Call&, const NoFields&) {
  ++handler_runs;
  return ops::HealthReply{.healthy = true};
}

class PipelineTest : public ::testing::Test {
 protected:
  PipelineTest() {
    handler_runs = 0;
    handlers_.Add<ops::Encrypt, FakeEncrypt>();
    handlers_.Add<ops::BatchEncrypt, FakeBatch, ResourceCheck::kHandlerChecks>();
    handlers_.Add<ops::Health, FakeHealth>();
    handlers_.Add<ops::Decrypt, ForgetfulDecrypt, ResourceCheck::kHandlerChecks>();
    handlers_.Add<ops::TenantCancelDeletion, FakeTenantOp>();
    handlers_.Add<ops::TenantScheduleDeletion, FakeScheduleOp>();
  }
  static Result<ops::TenantDescription> FakeTenantOp(Call& call, const NoFields&) {
    ++handler_runs;
    ops::TenantDescription description;
    description.name = std::string(call.tenant());
    return description;
  }
  static Result<ops::TenantDescription> FakeScheduleOp(Call& call,
                                                       const ops::TenantDeletionRequest&) {
    return FakeTenantOp(call, {});
  }

  Pipeline MakePipeline(size_t max_frame_bytes = 1 << 20) {
    return Pipeline(max_frame_bytes,
                    {identify_, authorize_, record_, handlers_,
                     [this](std::string_view tenant) {
                       checked_.emplace_back(tenant);
                       return tenant == "pending"
                                  ? Status(Code::kKeyPendingDeletion, "tenant is pending deletion")
                                  : OkStatus();
                     }},
                    deps_);
  }

  static std::vector<uint8_t> RequestFrame(std::string_view op, std::string_view tenant,
                                           Value::Map args, uint64_t id = 5) {
    WipingBuffer buffer = EncodeValue(BuildRequest(id, op, tenant, std::move(args)));
    return {buffer.data(), buffer.data() + buffer.size()};
  }

  // Intake, then Execute or Refuse, as the server does; the reply's status.
  Status Run(const std::vector<uint8_t>& frame, size_t max_frame_bytes = 1 << 20) {
    Pipeline pipeline = MakePipeline(max_frame_bytes);
    RequestContext context;
    ParsedRequest parsed;
    Status admitted = pipeline.Intake(context, Peer{.uid = 1000, .gid = 1000}, frame, &parsed);
    WipingBuffer reply =
        admitted.ok() ? pipeline.Execute(context, parsed) : pipeline.Refuse(context, admitted);
    auto decoded = Frame::Decode(reply.span());
    EXPECT_TRUE(decoded.has_value());
    auto envelope = ParseReply(decoded->root());
    EXPECT_TRUE(envelope.has_value());
    last_context_ = std::move(context);
    return envelope->status;
  }

  PeerIdentifier identify_;
  FakeAuthorizer authorize_;
  FakeRecorder record_;
  HandlerTable handlers_;
  ServiceDeps deps_;
  std::vector<std::string> checked_;
  RequestContext last_context_;
};

TEST_F(PipelineTest, AGoodRequestRunsItsHandlerAndIsRecordedOnceWithItsKeys) {
  Status status = Run(RequestFrame("encrypt", "acme", MapOf("key", "k", "plaintext", Bytes{1})));
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(handler_runs, 1);
  ASSERT_EQ(record_.records.size(), 1u);
  const auto& entry = record_.records[0];
  EXPECT_EQ(entry.id, std::optional<uint64_t>(5));
  EXPECT_EQ(entry.op, "encrypt");
  EXPECT_EQ(entry.tenant, "acme");
  EXPECT_TRUE(entry.outcome.ok());
  EXPECT_EQ(entry.keys, 1u);
  EXPECT_TRUE(entry.allowed);
  EXPECT_EQ(last_context_.caller.uid, 1000u);
  // The request at intake, then its key before the handler ran.
  ASSERT_EQ(authorize_.asked.size(), 2u);
  EXPECT_EQ(authorize_.asked[0].permission, std::optional<Permission>(Permission::kEncrypt));
  EXPECT_EQ(authorize_.asked[0].resource, "");
  EXPECT_EQ(authorize_.asked[1].permission, std::optional<Permission>(Permission::kEncrypt));
  EXPECT_EQ(authorize_.asked[1].resource, "k");
  EXPECT_EQ(checked_, (std::vector<std::string>{"acme"}));
}

TEST_F(PipelineTest, ARequestIsRefusedUnreadWhileTheRecorderIsNotReady) {
  record_.ready = Status(Code::kAuditUnavailable, "disk full");
  Status status = Run(RequestFrame("encrypt", "acme", MapOf("key", "k", "plaintext", Bytes{1})));
  EXPECT_EQ(status.code(), Code::kAuditUnavailable);
  EXPECT_EQ(handler_runs, 0);
  EXPECT_TRUE(authorize_.asked.empty());
  // Its refusal is offered to the recorder too.
  ASSERT_EQ(record_.records.size(), 1u);
  EXPECT_EQ(record_.records[0].outcome.code(), Code::kAuditUnavailable);
}

TEST_F(PipelineTest, AResultWhoseRecordCannotBeWrittenIsNotSent) {
  record_.written = Status(Code::kAuditUnavailable, "the audit log cannot be written");
  Status status = Run(RequestFrame("encrypt", "acme", MapOf("key", "k", "plaintext", Bytes{1})));
  EXPECT_EQ(status.code(), Code::kAuditUnavailable);
  EXPECT_EQ(status.message(), "the audit log cannot be written");
  EXPECT_EQ(handler_runs, 1);
  // A refusal keeps its own code.
  status = Run(RequestFrame("encrypt", "", {}));
  EXPECT_EQ(status.code(), Code::kInvalidArgument);
}

TEST_F(PipelineTest, TheRecordKnowsTheSizesOfRequestAndReply) {
  const auto frame = RequestFrame("encrypt", "acme", MapOf("key", "k", "plaintext", Bytes(100)));
  ASSERT_TRUE(Run(frame).ok());
  EXPECT_EQ(last_context_.request_bytes, frame.size());
  EXPECT_GT(last_context_.reply_bytes, 100u);
}

TEST_F(PipelineTest, AFrameOverTheLimitIsRefusedBeforeAnythingElse) {
  Status status =
      Run(RequestFrame("encrypt", "acme", MapOf("key", "k", "plaintext", Bytes(100))), 64);
  EXPECT_EQ(status.code(), Code::kFrameTooLarge);
  EXPECT_TRUE(authorize_.asked.empty());
  EXPECT_EQ(handler_runs, 0);
  ASSERT_EQ(record_.records.size(), 1u);
  EXPECT_EQ(record_.records[0].id, std::nullopt);
}

// Found by pipeline_fuzzer (tests/fuzz/corpus/pipeline/regress-envelope-int-key): the scan
// reads the id, then the envelope is refused for its integer key; the reply
// still carries the id.
TEST_F(PipelineTest, AnEnvelopeRefusedAfterItsIdWasReadEchoesTheId) {
  const std::vector<uint8_t> frame = {0x85, 0xa7, 'v', 'e',  'r',  's', 'i', 'o',  'n', 0x01,
                                      0xa2, 'i',  'd', 0x45, 0xa2, 'o', 'p', 0xae, 'p', 'r',
                                      'i',  'n',  'c', 'i',  'p',  'a', 'l', '.',  'l', 0xa4,
                                      'a',  'c',  'm', 'e',  0xa4, 'a', 'r', 'g',  's', 0x80};
  Status status = Run(frame);
  EXPECT_EQ(status.code(), Code::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("key that is not a string"));
  EXPECT_EQ(last_context_.request_id, std::optional<uint64_t>(69));
  ASSERT_EQ(record_.records.size(), 1u);
  EXPECT_EQ(record_.records[0].id, std::optional<uint64_t>(69));
  EXPECT_EQ(handler_runs, 0);
}

TEST_F(PipelineTest, ADeniedCallerHearsAccessDeniedBeforeUnknownOperation) {
  authorize_.deny_all = true;
  Status status = Run(RequestFrame("no-such-op", "", {}));
  EXPECT_EQ(status.code(), Code::kAccessDenied);
  EXPECT_EQ(handler_runs, 0);
  ASSERT_EQ(record_.records.size(), 1u);
  EXPECT_FALSE(record_.records[0].allowed);
  EXPECT_EQ(record_.records[0].id, std::optional<uint64_t>(5));
  ASSERT_EQ(authorize_.asked.size(), 1u);
  EXPECT_EQ(authorize_.asked[0].permission, std::nullopt);
}

TEST_F(PipelineTest, AnUnknownOperationIsRefused) {
  Status status = Run(RequestFrame("no-such-op", "", {}));
  EXPECT_EQ(status.code(), Code::kUnknownOperation);
  EXPECT_EQ(record_.records.at(0).op, "-");
}

TEST_F(PipelineTest, TenantRulesComeFromTheOperationTable) {
  EXPECT_THAT(Run(RequestFrame("encrypt", "", MapOf("key", "k", "plaintext", Bytes{1}))).message(),
              HasSubstr("needs the request's 'tenant' field"));
  EXPECT_THAT(Run(RequestFrame("health", "acme", {})).message(), HasSubstr("takes no tenant"));
  EXPECT_EQ(
      Run(RequestFrame("encrypt", "Bad Name", MapOf("key", "k", "plaintext", Bytes{1}))).code(),
      Code::kInvalidArgument);
  EXPECT_EQ(handler_runs, 0);
  EXPECT_TRUE(Run(RequestFrame("health", "", {})).ok());
  EXPECT_TRUE(checked_.empty());  // service operations have no tenant to check
}

TEST_F(PipelineTest, APendingTenantIsServedOnlyByTheOperationsThatSaySo) {
  EXPECT_EQ(
      Run(RequestFrame("encrypt", "pending", MapOf("key", "k", "plaintext", Bytes{1}))).code(),
      Code::kKeyPendingDeletion);
  EXPECT_EQ(Run(RequestFrame("tenant.schedule-deletion", "pending", {})).code(),
            Code::kKeyPendingDeletion);
  EXPECT_EQ(handler_runs, 0);
  EXPECT_TRUE(Run(RequestFrame("tenant.cancel-deletion", "pending", {})).ok());
  EXPECT_EQ(handler_runs, 1);
}

TEST_F(PipelineTest, BadArgumentsFailInTheHandlersDecodeAndChangeNothing) {
  Status status = Run(RequestFrame("encrypt", "acme", MapOf("key", "k", "plaintext", "text")));
  EXPECT_EQ(status.code(), Code::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("'plaintext' must be binary"));
  EXPECT_EQ(handler_runs, 0);
  ASSERT_EQ(record_.records.size(), 1u);
  EXPECT_EQ(record_.records[0].outcome.code(), Code::kInvalidArgument);
}

TEST_F(PipelineTest, BatchItemsAreAuthorizedOneByOneThroughTheSameStage) {
  Value::Array items;
  items.emplace_back(MapOf("plaintext", Bytes{1}, "context", MapOf("key", "allowed")));
  items.emplace_back(MapOf("plaintext", Bytes{1}, "context", MapOf("key", "forbidden")));
  Pipeline pipeline = MakePipeline();
  RequestContext context;
  ParsedRequest parsed;
  const auto frame =
      RequestFrame("batch-encrypt", "acme", MapOf("key", "k", "items", std::move(items)));
  ASSERT_TRUE(pipeline.Intake(context, Peer{}, frame, &parsed).ok());
  WipingBuffer reply = pipeline.Execute(context, parsed);
  auto decoded = Frame::Decode(reply.span());
  ASSERT_TRUE(decoded.has_value());
  auto envelope = ParseReply(decoded->root());
  ASSERT_TRUE(envelope.has_value() && envelope->status.ok());
  auto results =
      Decode<ops::BatchReply<ops::BatchEncryptResult>>(envelope->result, Strictness::kLenient);
  ASSERT_TRUE(results.has_value()) << results.error();
  ASSERT_EQ(results->results.size(), 2u);
  EXPECT_TRUE(results->results[0].has_value());
  ASSERT_FALSE(results->results[1].has_value());
  EXPECT_EQ(results->results[1].error().code(), Code::kAccessDenied);
  // The request once, then each item with its resource, all as batch-encrypt.
  ASSERT_EQ(authorize_.asked.size(), 3u);
  EXPECT_EQ(authorize_.asked[1].resource, "allowed");
  EXPECT_EQ(authorize_.asked[2].resource, "forbidden");
  EXPECT_EQ(authorize_.asked[2].operation, "batch-encrypt");
  EXPECT_EQ(authorize_.asked[2].tenant, "acme");
  EXPECT_FALSE(context.decision.allowed);  // the first denial stays
}

TEST(HandlerTableTest, EveryOperationHasAHandler) {
  const HandlerTable table = AllHandlers();
  const auto missing = table.Missing();
  EXPECT_EQ(missing, std::nullopt) << InfoOf(*missing).name;
}

TEST(HandlerTableTest, AnEmptyTableNamesTheFirstMissingOperation) {
  HandlerTable table;
  EXPECT_EQ(table.Missing(), std::optional<OpId>(OpId::kStatus));
}

TEST_F(PipelineTest, APendingDecisionIsCheckedOnTheKeyOrNothingLeaves) {
  authorize_.let_in_pending = true;
  // The table checks an encrypt's key: asked, then allowed or refused by name.
  Status allowed = Run(RequestFrame("encrypt", "acme", MapOf("key", "k", "plaintext", Bytes{1})));
  EXPECT_TRUE(allowed.ok()) << allowed;
  EXPECT_TRUE(last_context_.decision.resource_checked);
  Status refused =
      Run(RequestFrame("encrypt", "acme", MapOf("key", "forbidden", "plaintext", Bytes{1})));
  EXPECT_EQ(refused.code(), Code::kAccessDenied);
  EXPECT_EQ(handler_runs, 1);
  // A handler that never asks about its key: its reply never leaves.
  Status forgot = Run(RequestFrame("decrypt", "acme", MapOf("ciphertext", Bytes{1, 2})));
  EXPECT_EQ(forgot.code(), Code::kInternal);
  EXPECT_THAT(forgot.message(), HasSubstr("did not check the key"));
  EXPECT_EQ(handler_runs, 2);
  // Without a pending decision the same handler's reply goes out.
  authorize_.let_in_pending = false;
  EXPECT_TRUE(Run(RequestFrame("decrypt", "acme", MapOf("ciphertext", Bytes{1, 2}))).ok());
}

}  // namespace
}  // namespace kmsd
