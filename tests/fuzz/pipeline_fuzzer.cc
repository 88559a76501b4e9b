// libFuzzer target: one whole request through the daemon's pipeline
// (daemon/pipeline.h), as the server hands it a frame from a peer: intake
// (envelope, identify, authorize, the tenant rules and the tenant's policy),
// then execute (the real handlers, AllHandlers()) and record (the real audit
// recorder), or refuse. Only the server's socket and fair queue are left out.
//
// The token: kmsd has no fake token (pkcs11::Token is a concrete class over a
// PKCS#11 module), so this uses a real SoftHSM2 token in a temp directory
// (tests/support/softhsm_token.h), under /dev/shm when it exists so that the
// keystore's fsyncs cost nothing. Everything around it is kmsd's own: the
// SQLite keystore, KeyHierarchy, TenantRules, the access directory's API keys,
// sessions, lockout and the audit log (with `discard`: entries are made and
// chained, then written to /dev/null, unsealed, so nothing grows).
// The "world" is made once per process and made again every kRebuildEvery
// inputs, so that what the inputs create (tenants, keys, versions, token
// objects) stays small and every input runs against nearly the same state.
// It holds: tenant "acme" (its three default keys and aliases), a policy
// with small quotas (max_keys), principal "app" (roles manager and user) and its API
// key. The caller is one fixed peer, uid/gid 1000, which is an admin: a
// request without credentials acts as admin, one with the placeholder API
// key below (kApiKeyPlaceholder, same length as a real key) acts as "app":
// the harness swaps the placeholder for the world's real key before the
// frame goes in (same length, so the msgpack stays as it was).
//
// A finding: any crash, sanitizer report, hang or broken invariant
// (__builtin_trap): the reply must be a msgpack reply that ParseReply reads,
// echoing the request's id when the frame scan read one, carrying a known
// error code other than INTERNAL (bad input gets a clear error, DESIGN.md
// invariant 5) or a result.
//
// KMSD_FUZZ_TRACE=1 prints each reply's status. A run that ends on a finding
// leaves its world's temp directory (kmsd-test-*) behind.
//
// Seeds: corpus/pipeline/ (tests/fuzz/make_seeds.cc), requests of most
// operations on tenant "acme", as admin and as "app".
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "daemon/audit/log.h"
#include "daemon/audit/recorder.h"
#include "daemon/audit/sealer.h"
#include "daemon/handlers/handler.h"
#include "daemon/pipeline.h"
#include "daemon/sessions.h"
#include "daemon/tenant_rules.h"
#include "keystore/backup_directory.h"
#include "keystore/hierarchy.h"
#include "keystore/store.h"
#include "pkcs11/module.h"
#include "pkcs11/token.h"
#include "policy/access.h"
#include "protocol/access_types.h"
#include "protocol/clock.h"
#include "protocol/frame_scan.h"
#include "protocol/message.h"
#include "protocol/policy_types.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/fuzz_frames.h"
#include "tests/support/softhsm_token.h"

namespace {

using namespace kmsd;

constexpr size_t kRebuildEvery = 2000;
constexpr size_t kMaxFrameBytes = 64 * 1024;

using kmsd::fuzz::Check;

void Require(const Status& status, const char* what) {
  if (status.ok()) return;
  fprintf(stderr, "pipeline_fuzzer: %s: %s\n", what, status.ToString().c_str());
  abort();
}

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Members in the order they are made; they die in reverse.
struct World {
  World();
  // The reply to `frame`, from `peer`, through the whole pipeline.
  WipingBuffer Serve(std::span<const uint8_t> frame) const;
  // Serves a request built here (setting up), which must succeed; returns
  // the result's `secret`, if any.
  std::string MustServe(std::string_view op, std::string_view tenant, Value::Map args);

  kmsd::testing::SoftHsmToken softhsm{"kmsd-fuzz"};
  std::shared_ptr<pkcs11::Module> module;
  std::unique_ptr<pkcs11::Token> token;
  SystemClock clock;
  std::unique_ptr<KeyHierarchy> hierarchy;
  std::unique_ptr<TenantRules> rules;
  std::unique_ptr<audit::TokenSealer> sealer;
  std::unique_ptr<audit::Log> audit_log;
  std::unique_ptr<AccessPolicy> access;
  std::unique_ptr<SessionTable> sessions;
  std::unique_ptr<AuthLockout> lockout;
  std::unique_ptr<ServiceDeps> deps;
  HandlerTable handlers = AllHandlers();
  std::unique_ptr<ApiKeyIdentifier> identify;
  std::unique_ptr<PolicyAuthorizer> authorize;
  std::unique_ptr<AuditRecorder> record;
  std::unique_ptr<Pipeline> pipeline;
  Peer peer{.uid = 1000, .gid = 1000, .pid = 4242, .groups = {}};
  std::string api_key;  // "app"'s, as text
  mutable uint64_t sequence = 0;
};

World::World() {
  auto loaded = pkcs11::Module::Load(softhsm.module_path());
  Require(loaded ? OkStatus() : loaded.error(), "loading SoftHSM2");
  module = *loaded;
  auto opened =
      pkcs11::Token::Open(module, softhsm.label(), SecretBuffer::CopyOf(softhsm.user_pin()), 2);
  Require(opened ? OkStatus() : opened.error(), "opening the token");
  token = std::move(*opened);
  auto store = OpenSqliteKeyStore(softhsm.dir() / "keystore.db");
  Require(store ? OkStatus() : store.error(), "opening the keystore");
  auto made = KeyHierarchy::Open(*token, std::move(*store), clock);
  Require(made ? OkStatus() : made.error(), "opening the key hierarchy");
  hierarchy = std::move(*made);
  rules = std::make_unique<TenantRules>(hierarchy->access(), *hierarchy, NowNanos);
  rules->Load();
  auto sealed = audit::TokenSealer::Open(*token);
  Require(sealed ? OkStatus() : sealed.error(), "opening the audit sealer");
  sealer = std::move(*sealed);
  auto log = audit::Log::Open({.dir = softhsm.dir().path().string(),
                               .commit_interval = std::chrono::milliseconds(200),
                               .max_file_bytes = 64ull << 20,
                               .reserve_bytes = 4096,
                               .discard = true,
                               .kmsd_version = "fuzz",
                               .now_nanos = nullptr,
                               .retention_nanos = nullptr,
                               .prune_interval = std::chrono::milliseconds(3600000)},
                              *sealer);
  Require(log ? OkStatus() : log.error(), "opening the audit log");
  audit_log = std::move(*log);

  AccessDirectory& directory = hierarchy->access();
  access = std::make_unique<AccessPolicy>(AccessPolicyOptions{
      .admins = {{1000}, {}}, .api_key_peers = {}, .is_bound_peer = [&directory](const Peer& p) {
        std::vector<uint64_t> gids = p.groups;
        gids.push_back(p.gid);
        return directory.IsBoundPeer(p.uid, gids);
      }});
  auto backups = BackupDirectory::Prepare(softhsm.dir() / "backups");
  Require(backups ? OkStatus() : backups.error(), "preparing the backup directory");
  sessions = std::make_unique<SessionTable>(directory.clock());
  lockout = std::make_unique<AuthLockout>(LockoutOptions{},
                                          [this](const Peer& p) { return access->IsAdmin(p); });
  deps = std::make_unique<ServiceDeps>(ServiceDeps{.hierarchy = hierarchy.get(),
                                                   .token = token.get(),
                                                   .backups = *backups,
                                                   .gate = nullptr,
                                                   .rules = rules.get(),
                                                   .sessions = sessions.get(),
                                                   .lockout = lockout.get(),
                                                   .audit_log = audit_log.get(),
                                                   .audit_sealer = sealer.get()});
  identify = std::make_unique<ApiKeyIdentifier>(directory, *sessions, *lockout);
  authorize = std::make_unique<PolicyAuthorizer>(*access, [&directory] { return directory.Now(); });
  record = std::make_unique<AuditRecorder>(*audit_log);
  pipeline = std::make_unique<Pipeline>(
      kMaxFrameBytes,
      PipelineStages{
          *identify, *authorize, *record, handlers,
          [this](std::string_view tenant) { return hierarchy->CheckNotPendingDeletion(tenant); },
          [this](RequestContext& context) { return rules->Admit(context); }},
      *deps);

  // The tenant, its policy, its principal and the principal's API key.
  MustServe("tenant.create", fuzz::kTenant, {});
  MustServe("tenant.put-policy", fuzz::kTenant,
            Encode(ops::PolicyPutRequest{.document = fuzz::kTenantPolicy}));
  MustServe("principal.create", fuzz::kTenant,
            Encode(ops::PrincipalCreateRequest{
                .name = fuzz::kPrincipal, .roles = {"manager", "user"}, .uids = {}, .gids = {}}));
  api_key = MustServe(
      "apikey.create", fuzz::kTenant,
      Encode(ops::ApiKeyCreateRequest{.principal = fuzz::kPrincipal, .expires_in_seconds = {}}));
  Check(api_key.size() == fuzz::kApiKeyPlaceholder.size());
}

std::string World::MustServe(std::string_view op, std::string_view tenant, Value::Map args) {
  const WipingBuffer request = EncodeValue(BuildRequest(1, op, tenant, std::move(args)));
  const WipingBuffer reply_bytes = Serve(request.span());
  auto frame = Frame::Decode(reply_bytes.span());
  Require(frame ? OkStatus() : frame.error(), "decoding a reply");
  auto reply = ParseReply(frame->root());
  Require(reply ? OkStatus() : reply.error(), "reading a reply");
  Require(reply->status, std::string(op).c_str());
  if (!reply->result.Has("secret")) return std::string();
  auto secret = reply->result.Binary("secret");  // a SecretBuffer: bin
  Require(secret ? OkStatus() : secret.error(), "reading the secret");
  return std::string(secret->begin(), secret->end());
}

WipingBuffer World::Serve(std::span<const uint8_t> frame) const {
  RequestContext context;
  context.sequence = ++sequence;
  context.received = RequestContext::Clock::now();
  ParsedRequest parsed;
  if (Status admitted = pipeline->Intake(context, peer, frame, &parsed); !admitted.ok()) {
    return pipeline->Refuse(context, std::move(admitted));
  }
  WipingBuffer reply = pipeline->Execute(context, parsed);
  parsed.admission = Admission();
  return reply;
}

// The request id the reply must echo: the one the envelope's first reading
// (ScanRequestFrame, before identify) finds.
std::optional<uint64_t> RequestIdOf(std::span<const uint8_t> frame) {
  if (frame.size() > kMaxFrameBytes) return std::nullopt;
  auto scanned = ScanRequestFrame(frame);
  return scanned ? scanned->id : std::nullopt;
}

void CheckReply(std::span<const uint8_t> request, const WipingBuffer& reply_bytes) {
  auto frame = Frame::Decode(reply_bytes.span());
  Check(frame.has_value());
  auto reply = ParseReply(frame->root());
  Check(reply.has_value());
  const Code code = reply->status.code();
  Check(code >= Code::kOk && code <= Code::kAuditUnavailable);
  if (code == Code::kInternal) {
    fprintf(stderr, "pipeline_fuzzer: INTERNAL: %s\n", reply->status.ToString().c_str());
    __builtin_trap();
  }
  if (const std::optional<uint64_t> id = RequestIdOf(request); id && reply->id != id) {
    fprintf(stderr, "pipeline_fuzzer: request id %llu, reply id %s: %s\n",
            static_cast<unsigned long long>(*id),
            reply->id ? std::to_string(*reply->id).c_str() : "none",
            reply->status.ToString().c_str());
    __builtin_trap();
  }
  static const bool trace = getenv("KMSD_FUZZ_TRACE") != nullptr;
  if (trace) fprintf(stderr, "pipeline_fuzzer: %s\n", reply->status.ToString().c_str());
}

std::unique_ptr<World>& TheWorld() {
  static std::unique_ptr<World> world;
  return world;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  // The token and keystore in memory, where the machine has it.
  if (::access("/dev/shm", W_OK) == 0) setenv("TMPDIR", "/dev/shm", 1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static size_t served = 0;
  std::unique_ptr<World>& world = TheWorld();
  if (world == nullptr || ++served % kRebuildEvery == 0) {
    world.reset();  // the old one's token goes before the new one is made
    world = std::make_unique<World>();
  }
  // The placeholder, wherever it is, becomes the real key.
  std::vector<uint8_t> frame(data, data + size);
  const std::string_view placeholder = fuzz::kApiKeyPlaceholder;
  auto at = frame.begin();
  while ((at = std::search(at, frame.end(), placeholder.begin(), placeholder.end())) !=
         frame.end()) {
    at = std::copy(world->api_key.begin(), world->api_key.end(), at);
  }
  const WipingBuffer reply = world->Serve(frame);
  CheckReply(frame, reply);
  return 0;
}
