// Requests and replies of every operation, with their wire fields side by side
// (protocol/codec.h reads and writes them; docs/PROTOCOL.md documents them).
//
// Each operation is a type: ops::Encrypt::kId names its row in the operation
// table (protocol/operations.h), ops::Encrypt::Request and ::Reply its
// messages. Request members are views (string_view, span) into the request
// frame on the daemon side and into the caller's data on the client side;
// reply members own their data (a plaintext is a SecretBuffer). Field names
// are the constants of namespace `wire`, written nowhere else.
// Plain data; thread-compatible.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "protocol/codec.h"
#include "protocol/operations.h"

namespace kmsd {

namespace wire {
inline constexpr std::string_view kAlerts = "alerts";
inline constexpr std::string_view kAlias = "alias";
inline constexpr std::string_view kAliases = "aliases";
inline constexpr std::string_view kAt = "at";
inline constexpr std::string_view kAvailable = "available";
inline constexpr std::string_view kBackend = "backend";
inline constexpr std::string_view kBytes = "bytes";
inline constexpr std::string_view kCiphertext = "ciphertext";
inline constexpr std::string_view kCode = "code";
inline constexpr std::string_view kConnections = "connections";
inline constexpr std::string_view kContext = "context";
inline constexpr std::string_view kCount = "count";
inline constexpr std::string_view kCreatedAt = "created_at";
inline constexpr std::string_view kDeletionDate = "deletion_date";
inline constexpr std::string_view kDescription = "description";
inline constexpr std::string_view kDestinationContext = "destination_context";
inline constexpr std::string_view kDestinationKey = "destination_key";
inline constexpr std::string_view kEnabled = "enabled";
inline constexpr std::string_view kEncryptions = "encryptions";
inline constexpr std::string_view kHealthy = "healthy";
inline constexpr std::string_view kId = "id";
inline constexpr std::string_view kItems = "items";
inline constexpr std::string_view kKey = "key";
inline constexpr std::string_view kKeyId = "key_id";
inline constexpr std::string_view kKeyName = "key_name";
inline constexpr std::string_view kKeySpec = "key_spec";
inline constexpr std::string_view kKeys = "keys";
inline constexpr std::string_view kKeystore = "keystore";
inline constexpr std::string_view kKind = "kind";
inline constexpr std::string_view kLabel = "label";
inline constexpr std::string_view kLatencyBuckets = "latency_buckets";
inline constexpr std::string_view kLatencySumNanos = "latency_sum_nanos";
inline constexpr std::string_view kLatestVersion = "latest_version";
inline constexpr std::string_view kMaxDataSize = "max_data_size";
inline constexpr std::string_view kMaxFileCount = "max_file_count";
inline constexpr std::string_view kMaxFileSize = "max_file_size";
inline constexpr std::string_view kManufacturer = "manufacturer";
inline constexpr std::string_view kMinDecryptionVersion = "min_decryption_version";
inline constexpr std::string_view kMessage = "message";
inline constexpr std::string_view kModel = "model";
inline constexpr std::string_view kName = "name";
inline constexpr std::string_view kNextRotationAt = "next_rotation_at";
inline constexpr std::string_view kNumberOfBytes = "number_of_bytes";
inline constexpr std::string_view kOk = "ok";
inline constexpr std::string_view kOp = "op";
inline constexpr std::string_view kOpenSessions = "open_sessions";
inline constexpr std::string_view kPath = "path";
inline constexpr std::string_view kPendingWindowDays = "pending_window_days";
inline constexpr std::string_view kPendingWindowSeconds = "pending_window_seconds";
inline constexpr std::string_view kPlaintext = "plaintext";
inline constexpr std::string_view kProtocol = "protocol";
inline constexpr std::string_view kRandom = "random";
inline constexpr std::string_view kRefusedConnections = "refused_connections";
inline constexpr std::string_view kReload = "reload";
inline constexpr std::string_view kReloads = "reloads";
inline constexpr std::string_view kRequests = "requests";
inline constexpr std::string_view kResults = "results";
inline constexpr std::string_view kRotationPeriodSeconds = "rotation_period_seconds";
inline constexpr std::string_view kSchemaVersion = "schema_version";
inline constexpr std::string_view kSourceKeyId = "source_key_id";
inline constexpr std::string_view kSourceVersion = "source_version";
inline constexpr std::string_view kState = "state";
inline constexpr std::string_view kTenant = "tenant";
inline constexpr std::string_view kTenants = "tenants";
inline constexpr std::string_view kToken = "token";
inline constexpr std::string_view kUpdatedAt = "updated_at";
inline constexpr std::string_view kUptimeSeconds = "uptime_seconds";
inline constexpr std::string_view kVersion = "version";
inline constexpr std::string_view kVersions = "versions";
}  // namespace wire

namespace ops {

// ---- shared shapes ---------------------------------------------------------

struct KeyArg {
  std::string_view key;
  static constexpr auto kFields = std::tuple{Field{wire::kKey, &KeyArg::key}};
};

struct KeyDescription {
  std::string id;  // 32 hex digits
  std::string name;
  std::string tenant;
  std::string description;
  int64_t created_at = 0;
  bool enabled = false;
  std::string state;  // enabled, disabled, pending_deletion
  std::optional<int64_t> deletion_date;
  uint64_t latest_version = 0;
  uint64_t min_decryption_version = 0;
  std::optional<int64_t> rotation_period_seconds;
  std::optional<int64_t> next_rotation_at;
  std::vector<std::string> aliases;
  static constexpr auto kFields =
      std::tuple{Field{wire::kId, &KeyDescription::id},
                 Field{wire::kName, &KeyDescription::name},
                 Field{wire::kTenant, &KeyDescription::tenant},
                 Field{wire::kDescription, &KeyDescription::description},
                 Field{wire::kCreatedAt, &KeyDescription::created_at},
                 Field{wire::kEnabled, &KeyDescription::enabled},
                 Field{wire::kState, &KeyDescription::state},
                 Field{wire::kDeletionDate, &KeyDescription::deletion_date},
                 Field{wire::kLatestVersion, &KeyDescription::latest_version},
                 Field{wire::kMinDecryptionVersion, &KeyDescription::min_decryption_version},
                 Field{wire::kRotationPeriodSeconds, &KeyDescription::rotation_period_seconds},
                 Field{wire::kNextRotationAt, &KeyDescription::next_rotation_at},
                 Field{wire::kAliases, &KeyDescription::aliases}};
};

struct TenantDescription {
  std::string name;
  int64_t created_at = 0;
  std::string state;  // active, pending_deletion
  std::optional<int64_t> deletion_date;
  uint64_t keys = 0;
  uint64_t aliases = 0;
  // The tenant policy's storage quotas (resource_quotas.storage), for the
  // client library's per-tenant storage; absent when the policy sets none.
  std::optional<uint64_t> max_data_size;  // bytes
  std::optional<uint64_t> max_file_count;
  std::optional<uint64_t> max_file_size;  // bytes
  static constexpr auto kFields =
      std::tuple{Field{wire::kName, &TenantDescription::name},
                 Field{wire::kCreatedAt, &TenantDescription::created_at},
                 Field{wire::kState, &TenantDescription::state},
                 Field{wire::kDeletionDate, &TenantDescription::deletion_date},
                 Field{wire::kKeys, &TenantDescription::keys},
                 Field{wire::kAliases, &TenantDescription::aliases},
                 Field{wire::kMaxDataSize, &TenantDescription::max_data_size},
                 Field{wire::kMaxFileCount, &TenantDescription::max_file_count},
                 Field{wire::kMaxFileSize, &TenantDescription::max_file_size}};
};

struct AliasDescription {
  std::string alias;
  std::string key;  // the key's name
  std::string key_id;
  int64_t created_at = 0;
  int64_t updated_at = 0;
  static constexpr auto kFields = std::tuple{
      Field{wire::kAlias, &AliasDescription::alias}, Field{wire::kKey, &AliasDescription::key},
      Field{wire::kKeyId, &AliasDescription::key_id},
      Field{wire::kCreatedAt, &AliasDescription::created_at},
      Field{wire::kUpdatedAt, &AliasDescription::updated_at}};
};

// A schedule-deletion's window: days (7 to 30, default 30), or seconds when
// kmsd's configuration lowers the minimum; not both.
struct PendingWindow {
  std::optional<uint64_t> pending_window_days;
  std::optional<uint64_t> pending_window_seconds;
};

// ---- service ---------------------------------------------------------------

struct TokenStatus {
  std::string label, manufacturer, model;
  bool available = false;
  static constexpr auto kFields = std::tuple{Field{wire::kLabel, &TokenStatus::label},
                                             Field{wire::kManufacturer, &TokenStatus::manufacturer},
                                             Field{wire::kModel, &TokenStatus::model},
                                             Field{wire::kAvailable, &TokenStatus::available}};
};

struct KeystoreStatus {
  std::string backend;
  uint64_t schema_version = 0;
  static constexpr auto kFields =
      std::tuple{Field{wire::kBackend, &KeystoreStatus::backend},
                 Field{wire::kSchemaVersion, &KeystoreStatus::schema_version}};
};

// Requests since start of one operation that ended with one code: their
// count, summed latency and latency histogram (protocol/metrics.h's buckets).
struct RequestCounts {
  std::string op;  // the operation's wire name, "unknown" when not known
  std::string code;
  uint64_t count = 0;
  uint64_t latency_sum_nanos = 0;
  std::vector<uint64_t> latency_buckets;
  static constexpr auto kFields =
      std::tuple{Field{wire::kOp, &RequestCounts::op}, Field{wire::kCode, &RequestCounts::code},
                 Field{wire::kCount, &RequestCounts::count},
                 Field{wire::kLatencySumNanos, &RequestCounts::latency_sum_nanos},
                 Field{wire::kLatencyBuckets, &RequestCounts::latency_buckets}};
};

// Alerts of one kind raised since start (docs/OPERATIONS.md).
struct AlertCount {
  std::string kind;
  uint64_t count = 0;
  static constexpr auto kFields =
      std::tuple{Field{wire::kKind, &AlertCount::kind}, Field{wire::kCount, &AlertCount::count}};
};

// The last reload of the configuration (SIGHUP); at = 0: none yet.
struct ReloadStatus {
  int64_t at = 0;  // unix seconds
  bool ok = true;
  std::string message;
  uint64_t reloads = 0;  // attempts since start
  static constexpr auto kFields = std::tuple{
      Field{wire::kAt, &ReloadStatus::at}, Field{wire::kOk, &ReloadStatus::ok},
      Field{wire::kMessage, &ReloadStatus::message}, Field{wire::kReloads, &ReloadStatus::reloads}};
};

struct StatusReply {
  std::string version;  // kmsd's
  uint64_t protocol = 0;
  TokenStatus token;
  KeystoreStatus keystore;
  uint64_t tenants = 0;
  uint64_t keys = 0;
  int64_t uptime_seconds = 0;
  uint64_t refused_connections = 0;
  uint64_t open_sessions = 0;
  uint64_t connections = 0;
  ReloadStatus reload;
  std::vector<RequestCounts> requests;
  std::vector<AlertCount> alerts;
  static constexpr auto kFields =
      std::tuple{Field{wire::kVersion, &StatusReply::version},
                 Field{wire::kProtocol, &StatusReply::protocol},
                 Field{wire::kToken, &StatusReply::token},
                 Field{wire::kKeystore, &StatusReply::keystore},
                 Field{wire::kTenants, &StatusReply::tenants},
                 Field{wire::kKeys, &StatusReply::keys},
                 Field{wire::kUptimeSeconds, &StatusReply::uptime_seconds},
                 Field{wire::kRefusedConnections, &StatusReply::refused_connections},
                 Field{wire::kOpenSessions, &StatusReply::open_sessions},
                 Field{wire::kConnections, &StatusReply::connections},
                 Field{wire::kReload, &StatusReply::reload},
                 Field{wire::kRequests, &StatusReply::requests},
                 Field{wire::kAlerts, &StatusReply::alerts}};
};

struct HealthReply {
  bool healthy = false;
  static constexpr auto kFields = std::tuple{Field{wire::kHealthy, &HealthReply::healthy}};
};

struct BackupRequest {
  std::string_view path;
  static constexpr auto kFields = std::tuple{Field{wire::kPath, &BackupRequest::path}};
};

struct BackupReply {
  std::string path;
  uint64_t bytes = 0;
  uint64_t schema_version = 0;
  uint64_t tenants = 0;
  uint64_t keys = 0;
  static constexpr auto kFields = std::tuple{
      Field{wire::kPath, &BackupReply::path}, Field{wire::kBytes, &BackupReply::bytes},
      Field{wire::kSchemaVersion, &BackupReply::schema_version},
      Field{wire::kTenants, &BackupReply::tenants}, Field{wire::kKeys, &BackupReply::keys}};
};

struct RandomRequest {
  uint64_t number_of_bytes = 0;
  static constexpr auto kFields =
      std::tuple{Field{wire::kNumberOfBytes, &RandomRequest::number_of_bytes}};
};

struct RandomReply {
  Bytes random;
  static constexpr auto kFields = std::tuple{Field{wire::kRandom, &RandomReply::random}};
};

// ---- tenants ---------------------------------------------------------------

struct TenantDeletionRequest : PendingWindow {
  static constexpr auto kFields = std::tuple{
      Field{wire::kPendingWindowDays, &TenantDeletionRequest::pending_window_days},
      Field{wire::kPendingWindowSeconds, &TenantDeletionRequest::pending_window_seconds}};
};

struct TenantSummary {
  std::string name;
  int64_t created_at = 0;
  std::string state;
  static constexpr auto kFields = std::tuple{Field{wire::kName, &TenantSummary::name},
                                             Field{wire::kCreatedAt, &TenantSummary::created_at},
                                             Field{wire::kState, &TenantSummary::state}};
};

struct TenantListReply {
  std::vector<TenantSummary> tenants;
  static constexpr auto kFields = std::tuple{Field{wire::kTenants, &TenantListReply::tenants}};
};

// ---- keys and aliases ------------------------------------------------------

struct KeyCreateRequest {
  std::string_view name;
  std::optional<std::string_view> description;
  static constexpr auto kFields =
      std::tuple{Field{wire::kName, &KeyCreateRequest::name},
                 Field{wire::kDescription, &KeyCreateRequest::description}};
};

struct KeyListReply {
  std::vector<KeyDescription> keys;
  static constexpr auto kFields = std::tuple{Field{wire::kKeys, &KeyListReply::keys}};
};

struct KeyDeletionRequest : PendingWindow {
  std::string_view key;
  static constexpr auto kFields =
      std::tuple{Field{wire::kKey, &KeyDeletionRequest::key},
                 Field{wire::kPendingWindowDays, &KeyDeletionRequest::pending_window_days},
                 Field{wire::kPendingWindowSeconds, &KeyDeletionRequest::pending_window_seconds}};
};

struct SetRotationRequest {
  std::string_view key;
  uint64_t rotation_period_seconds = 0;  // 0 turns it off
  static constexpr auto kFields =
      std::tuple{Field{wire::kKey, &SetRotationRequest::key},
                 Field{wire::kRotationPeriodSeconds, &SetRotationRequest::rotation_period_seconds}};
};

struct SetMinDecryptionVersionRequest {
  std::string_view key;
  uint64_t version = 0;
  static constexpr auto kFields =
      std::tuple{Field{wire::kKey, &SetMinDecryptionVersionRequest::key},
                 Field{wire::kVersion, &SetMinDecryptionVersionRequest::version}};
};

struct VersionDescription {
  uint64_t version = 0;
  int64_t created_at = 0;
  uint64_t encryptions = 0;
  static constexpr auto kFields =
      std::tuple{Field{wire::kVersion, &VersionDescription::version},
                 Field{wire::kCreatedAt, &VersionDescription::created_at},
                 Field{wire::kEncryptions, &VersionDescription::encryptions}};
};

struct VersionListReply {
  std::vector<VersionDescription> versions;
  static constexpr auto kFields = std::tuple{Field{wire::kVersions, &VersionListReply::versions}};
};

struct AliasRequest {
  std::string_view alias;
  std::string_view key;
  static constexpr auto kFields =
      std::tuple{Field{wire::kAlias, &AliasRequest::alias}, Field{wire::kKey, &AliasRequest::key}};
};

struct AliasArg {
  std::string_view alias;
  static constexpr auto kFields = std::tuple{Field{wire::kAlias, &AliasArg::alias}};
};

struct AliasListReply {
  std::vector<AliasDescription> aliases;
  static constexpr auto kFields = std::tuple{Field{wire::kAliases, &AliasListReply::aliases}};
};

// ---- cryptography ----------------------------------------------------------

struct EncryptRequest {
  std::string_view key;
  std::span<const uint8_t> plaintext;
  EncryptionContext context;
  static constexpr auto kFields = std::tuple{Field{wire::kKey, &EncryptRequest::key},
                                             Field{wire::kPlaintext, &EncryptRequest::plaintext},
                                             Field{wire::kContext, &EncryptRequest::context}};
};

// The key and version a ciphertext was made (or is read) with.
struct KeyUsed {
  std::string key_id;
  std::string key_name;
  uint64_t version = 0;
};

struct EncryptReply : KeyUsed {
  Bytes ciphertext;
  static constexpr auto kFields = std::tuple{Field{wire::kCiphertext, &EncryptReply::ciphertext},
                                             Field{wire::kKeyId, &EncryptReply::key_id},
                                             Field{wire::kKeyName, &EncryptReply::key_name},
                                             Field{wire::kVersion, &EncryptReply::version}};
};

struct DecryptRequest {
  std::span<const uint8_t> ciphertext;
  EncryptionContext context;
  std::optional<std::string_view> key;  // the key the ciphertext must be under
  static constexpr auto kFields = std::tuple{Field{wire::kCiphertext, &DecryptRequest::ciphertext},
                                             Field{wire::kContext, &DecryptRequest::context},
                                             Field{wire::kKey, &DecryptRequest::key}};
};

struct DecryptReply : KeyUsed {
  SecretBuffer plaintext;
  static constexpr auto kFields = std::tuple{Field{wire::kPlaintext, &DecryptReply::plaintext},
                                             Field{wire::kKeyId, &DecryptReply::key_id},
                                             Field{wire::kKeyName, &DecryptReply::key_name},
                                             Field{wire::kVersion, &DecryptReply::version}};
};

struct ReEncryptRequest {
  std::span<const uint8_t> ciphertext;
  EncryptionContext context;
  std::optional<std::string_view> destination_key;       // default: the ciphertext's key
  std::optional<EncryptionContext> destination_context;  // default: `context`
  static constexpr auto kFields =
      std::tuple{Field{wire::kCiphertext, &ReEncryptRequest::ciphertext},
                 Field{wire::kContext, &ReEncryptRequest::context},
                 Field{wire::kDestinationKey, &ReEncryptRequest::destination_key},
                 Field{wire::kDestinationContext, &ReEncryptRequest::destination_context}};
};

struct ReEncryptReply : KeyUsed {
  Bytes ciphertext;
  std::string source_key_id;
  uint64_t source_version = 0;
  static constexpr auto kFields =
      std::tuple{Field{wire::kCiphertext, &ReEncryptReply::ciphertext},
                 Field{wire::kKeyId, &ReEncryptReply::key_id},
                 Field{wire::kKeyName, &ReEncryptReply::key_name},
                 Field{wire::kVersion, &ReEncryptReply::version},
                 Field{wire::kSourceKeyId, &ReEncryptReply::source_key_id},
                 Field{wire::kSourceVersion, &ReEncryptReply::source_version}};
};

struct PlaintextItem {
  std::span<const uint8_t> plaintext;
  EncryptionContext context;
  static constexpr auto kFields = std::tuple{Field{wire::kPlaintext, &PlaintextItem::plaintext},
                                             Field{wire::kContext, &PlaintextItem::context}};
};

struct CiphertextItem {
  std::span<const uint8_t> ciphertext;
  EncryptionContext context;
  static constexpr auto kFields = std::tuple{Field{wire::kCiphertext, &CiphertextItem::ciphertext},
                                             Field{wire::kContext, &CiphertextItem::context}};
};

struct BatchEncryptRequest {
  std::string_view key;
  BatchItems<PlaintextItem> items;
  static constexpr auto kFields = std::tuple{Field{wire::kKey, &BatchEncryptRequest::key},
                                             Field{wire::kItems, &BatchEncryptRequest::items}};
};

struct BatchEncryptResult {
  Bytes ciphertext;
  uint64_t version = 0;
  static constexpr auto kFields =
      std::tuple{Field{wire::kCiphertext, &BatchEncryptResult::ciphertext},
                 Field{wire::kVersion, &BatchEncryptResult::version}};
};

template <typename Result>
struct BatchReply {
  ItemResults<Result> results;
  static constexpr auto kFields = std::tuple{Field{wire::kResults, &BatchReply::results}};
};

struct BatchDecryptRequest {
  BatchItems<CiphertextItem> items;
  static constexpr auto kFields = std::tuple{Field{wire::kItems, &BatchDecryptRequest::items}};
};

struct BatchReEncryptRequest {
  BatchItems<CiphertextItem> items;
  std::optional<std::string_view> destination_key;
  static constexpr auto kFields =
      std::tuple{Field{wire::kItems, &BatchReEncryptRequest::items},
                 Field{wire::kDestinationKey, &BatchReEncryptRequest::destination_key}};
};

struct DataKeyRequest {
  std::string_view key;
  EncryptionContext context;
  std::optional<std::string_view> key_spec;  // AES_256 (default) or AES_128
  std::optional<uint64_t> number_of_bytes;   // instead of key_spec: 1 to 1024
  static constexpr auto kFields = std::tuple{
      Field{wire::kKey, &DataKeyRequest::key}, Field{wire::kContext, &DataKeyRequest::context},
      Field{wire::kKeySpec, &DataKeyRequest::key_spec},
      Field{wire::kNumberOfBytes, &DataKeyRequest::number_of_bytes}};
};

struct DataKeyReply : KeyUsed {
  std::optional<SecretBuffer> plaintext;  // absent ...-without-plaintext
  Bytes ciphertext;
  static constexpr auto kFields = std::tuple{Field{wire::kPlaintext, &DataKeyReply::plaintext},
                                             Field{wire::kCiphertext, &DataKeyReply::ciphertext},
                                             Field{wire::kKeyId, &DataKeyReply::key_id},
                                             Field{wire::kKeyName, &DataKeyReply::key_name},
                                             Field{wire::kVersion, &DataKeyReply::version}};
};

// ---- the operations ------------------------------------------------------

template <OpId Id, typename RequestType, typename ReplyType>
struct Op {
  static constexpr OpId kId = Id;
  using Request = RequestType;
  using Reply = ReplyType;
  static std::string_view Name() { return InfoOf(Id).name; }
};

using ServiceStatus = Op<OpId::kStatus, NoFields, StatusReply>;
using Health = Op<OpId::kHealth, NoFields, HealthReply>;
using KeystoreBackup = Op<OpId::kKeystoreBackup, BackupRequest, BackupReply>;
using TenantCreate = Op<OpId::kTenantCreate, NoFields, TenantDescription>;
using TenantDescribe = Op<OpId::kTenantDescribe, NoFields, TenantDescription>;
using TenantScheduleDeletion =
    Op<OpId::kTenantScheduleDeletion, TenantDeletionRequest, TenantDescription>;
using TenantCancelDeletion = Op<OpId::kTenantCancelDeletion, NoFields, TenantDescription>;
using TenantList = Op<OpId::kTenantList, NoFields, TenantListReply>;
using KeyCreate = Op<OpId::kKeyCreate, KeyCreateRequest, KeyDescription>;
using KeyDescribe = Op<OpId::kKeyDescribe, KeyArg, KeyDescription>;
using KeyList = Op<OpId::kKeyList, NoFields, KeyListReply>;
using KeyRotate = Op<OpId::kKeyRotate, KeyArg, KeyDescription>;
using KeyEnable = Op<OpId::kKeyEnable, KeyArg, KeyDescription>;
using KeyDisable = Op<OpId::kKeyDisable, KeyArg, KeyDescription>;
using KeyScheduleDeletion = Op<OpId::kKeyScheduleDeletion, KeyDeletionRequest, KeyDescription>;
using KeyCancelDeletion = Op<OpId::kKeyCancelDeletion, KeyArg, KeyDescription>;
using KeySetRotation = Op<OpId::kKeySetRotation, SetRotationRequest, KeyDescription>;
using KeySetMinDecryptionVersion =
    Op<OpId::kKeySetMinDecryptionVersion, SetMinDecryptionVersionRequest, KeyDescription>;
using KeyListVersions = Op<OpId::kKeyListVersions, KeyArg, VersionListReply>;
using AliasCreate = Op<OpId::kAliasCreate, AliasRequest, AliasDescription>;
using AliasUpdate = Op<OpId::kAliasUpdate, AliasRequest, AliasDescription>;
using AliasDelete = Op<OpId::kAliasDelete, AliasArg, NoFields>;
using AliasList = Op<OpId::kAliasList, NoFields, AliasListReply>;
using Encrypt = Op<OpId::kEncrypt, EncryptRequest, EncryptReply>;
using Decrypt = Op<OpId::kDecrypt, DecryptRequest, DecryptReply>;
using ReEncrypt = Op<OpId::kReEncrypt, ReEncryptRequest, ReEncryptReply>;
using BatchEncrypt = Op<OpId::kBatchEncrypt, BatchEncryptRequest, BatchReply<BatchEncryptResult>>;
using BatchDecrypt = Op<OpId::kBatchDecrypt, BatchDecryptRequest, BatchReply<DecryptReply>>;
using BatchReEncrypt = Op<OpId::kBatchReEncrypt, BatchReEncryptRequest, BatchReply<ReEncryptReply>>;
using GenerateDataKey = Op<OpId::kGenerateDataKey, DataKeyRequest, DataKeyReply>;
using GenerateDataKeyWithoutPlaintext =
    Op<OpId::kGenerateDataKeyWithoutPlaintext, DataKeyRequest, DataKeyReply>;
using GenerateRandom = Op<OpId::kGenerateRandom, RandomRequest, RandomReply>;

}  // namespace ops
}  // namespace kmsd
