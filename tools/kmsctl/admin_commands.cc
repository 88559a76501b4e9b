// kmsctl's administrative commands: status, health, tenant, key and alias
// (docs/CLI.md). Each sends one request and prints its result.
#include <array>
#include <memory>
#include <optional>

#include "protocol/lifecycle_limits.h"
#include "tools/kmsctl/cli.h"

namespace kmsd::kmsctl {
namespace {

// Positional and option values of one command, kept alive for its callback.
struct AdminArgs {
  std::string tenant;
  std::string name;
  std::string key;
  std::string alias;
  std::string description;
  std::optional<uint64_t> days;     // --days
  std::optional<uint64_t> seconds;  // --seconds
  bool off = false;                 // --off
  uint64_t version = 0;
};

constexpr std::array<Column, 3> kTenantColumns = {
    {{"NAME", wire::kName}, {"CREATED", wire::kCreatedAt}, {"STATE", wire::kState}}};
constexpr std::array<Column, 8> kKeyColumns = {{{"NAME", wire::kName},
                                                {"ID", wire::kId},
                                                {"VERSION", wire::kLatestVersion},
                                                {"ENABLED", wire::kEnabled},
                                                {"STATE", wire::kState},
                                                {"CREATED", wire::kCreatedAt},
                                                {"ALIASES", wire::kAliases},
                                                {"DESCRIPTION", wire::kDescription}}};
constexpr std::array<Column, 3> kVersionColumns = {{{"VERSION", wire::kVersion},
                                                    {"CREATED", wire::kCreatedAt},
                                                    {"ENCRYPTIONS", wire::kEncryptions}}};
constexpr std::array<Column, 5> kAliasColumns = {{{"ALIAS", wire::kAlias},
                                                  {"KEY", wire::kKey},
                                                  {"KEY_ID", wire::kKeyId},
                                                  {"CREATED", wire::kCreatedAt},
                                                  {"UPDATED", wire::kUpdatedAt}}};

// Builds a request's arguments from `args` when the command runs.
using ArgsBuilder = std::function<Value::Map(const AdminArgs&)>;

Value::Map NoArgs(const AdminArgs&) { return {}; }

Value::Map KeyArg(const AdminArgs& a) { return Encode(ops::KeyArg{.key = a.key}); }

Value::Map AliasArg(const AdminArgs& a) { return Encode(ops::AliasArg{.alias = a.alias}); }

// The pending window of a schedule-deletion; kmsd checks its bounds.
Value::Map WindowArgs(const AdminArgs& a) {
  ops::TenantDeletionRequest request;
  request.pending_window_days = a.days;
  request.pending_window_seconds = a.seconds;
  return Encode(std::move(request));
}

Value::Map KeyAndWindowArgs(const AdminArgs& a) {
  ops::KeyDeletionRequest request;
  request.key = a.key;
  request.pending_window_days = a.days;
  request.pending_window_seconds = a.seconds;
  return Encode(std::move(request));
}

// The rotation period; 0 (--off) turns automatic rotation off.
Value::Map KeyAndRotationArgs(const AdminArgs& a) {
  uint64_t seconds = 0;
  constexpr uint64_t kDay = kSecondsPerDay;
  if (a.days) seconds = *a.days > UINT64_MAX / kDay ? UINT64_MAX : *a.days * kDay;
  if (a.seconds) seconds = *a.seconds;
  return Encode(ops::SetRotationRequest{.key = a.key, .rotation_period_seconds = seconds});
}

Value::Map KeyAndVersionArgs(const AdminArgs& a) {
  return Encode(ops::SetMinDecryptionVersionRequest{.key = a.key, .version = a.version});
}

Value::Map AliasAndKeyArgs(const AdminArgs& a) {
  return Encode(ops::AliasRequest{.alias = a.alias, .key = a.key});
}

// A command that sends `op` and prints the result as key: value lines, or as
// a table when `rows_key` is set.
struct Spec {
  std::string_view op;
  ArgsBuilder build = NoArgs;
  std::string_view rows_key = {};
  std::span<const Column> columns = {};
};

Status RunSimple(Invocation& invocation, const Spec& spec, const AdminArgs& args,
                 std::string_view tenant) {
  ASSIGN_OR_RETURN(Reply reply, invocation.Call(spec.op, tenant, spec.build(args)));
  if (spec.rows_key.empty()) return invocation.output().Object(ToJson(reply.result()));
  return invocation.output().Table(ToJson(reply.result()), spec.rows_key, spec.columns);
}

// Where a command's envelope tenant comes from: none, --tenant, or the NAME
// positional (tenant commands).
enum class TenantFrom { kNone, kOption, kName };

// Adds `name` under `parent`; when chosen, it sends spec.op.
CLI::App* AddSimple(CLI::App* parent, Invocation& invocation, std::string name,
                    std::string description, TenantFrom tenant_from, Spec spec,
                    std::shared_ptr<AdminArgs> args) {
  CLI::App* command = parent->add_subcommand(std::move(name), std::move(description));
  if (tenant_from == TenantFrom::kOption) AddTenantOption(command, &args->tenant);
  command->callback([&invocation, spec, args, tenant_from] {
    invocation.Select([&invocation, spec, args, tenant_from] {
      const std::string& tenant = tenant_from == TenantFrom::kOption ? args->tenant
                                  : tenant_from == TenantFrom::kName ? args->name
                                                                     : std::string();
      return RunSimple(invocation, spec, *args, tenant);
    });
  });
  return command;
}

// --days N | --seconds N on a schedule-deletion command.
void AddWindowOptions(CLI::App* command, const std::shared_ptr<AdminArgs>& args) {
  CLI::Option* days = command
                          ->add_option_function<uint64_t>(
                              "--days", [args](const uint64_t& n) { args->days = n; },
                              "Pending window in days, " + std::to_string(kMinPendingWindowDays) +
                                  " to " + std::to_string(kMaxPendingWindowDays) + " (default " +
                                  std::to_string(kDefaultPendingWindowDays) + ")")
                          ->check(UnsignedInteger());
  CLI::Option* seconds = command
                             ->add_option_function<uint64_t>(
                                 "--seconds", [args](const uint64_t& n) { args->seconds = n; },
                                 "Pending window in seconds, when kmsd's configuration allows it")
                             ->check(UnsignedInteger());
  days->excludes(seconds);
}

void AddTenantCommands(CLI::App& app, Invocation& invocation) {
  CLI::App* group = app.add_subcommand(
      "tenant", "Create, describe, list and schedule deletion of tenants; their policies");
  group->require_subcommand(1);
  auto args = std::make_shared<AdminArgs>();
  AddSimple(group, invocation, "create", "Create a tenant with its root key, keys and aliases",
            TenantFrom::kName, {ops::TenantCreate::Name()}, args)
      ->add_option("NAME", args->name, "Tenant name")
      ->required();
  AddSimple(group, invocation, "describe", "Show a tenant", TenantFrom::kName,
            {ops::TenantDescribe::Name()}, args)
      ->add_option("NAME", args->name, "Tenant name")
      ->required();
  AddSimple(group, invocation, "list", "List tenants", TenantFrom::kNone,
            {ops::TenantList::Name(), NoArgs, wire::kTenants, kTenantColumns}, args);
  CLI::App* schedule =
      AddSimple(group, invocation, "schedule-deletion",
                "Schedule a tenant's deletion; it serves nothing during the window",
                TenantFrom::kName, {ops::TenantScheduleDeletion::Name(), WindowArgs}, args);
  schedule->add_option("NAME", args->name, "Tenant name")->required();
  AddWindowOptions(schedule, args);
  AddSimple(group, invocation, "cancel-deletion", "Cancel a tenant's scheduled deletion",
            TenantFrom::kName, {ops::TenantCancelDeletion::Name()}, args)
      ->add_option("NAME", args->name, "Tenant name")
      ->required();
  AddPolicyCommands(group, invocation);
}

// key set-rotation and key set-min-decryption-version.
void AddKeySettingCommands(CLI::App* group, Invocation& invocation,
                           const std::shared_ptr<AdminArgs>& args) {
  CLI::App* rotation =
      AddSimple(group, invocation, "set-rotation",
                "Rotate a key by itself: a new version this long after its newest (or --off)",
                TenantFrom::kOption, {ops::KeySetRotation::Name(), KeyAndRotationArgs}, args);
  rotation->add_option("KEYREF", args->key, "Key name or alias")->required();
  // Exactly one of the three.
  CLI::Option_group* period = rotation->add_option_group("period");
  period
      ->add_option_function<uint64_t>(
          "--days", [args](const uint64_t& n) { args->days = n; }, "Rotation period in days")
      ->check(UnsignedInteger());
  period
      ->add_option_function<uint64_t>(
          "--seconds", [args](const uint64_t& n) { args->seconds = n; },
          "Rotation period in seconds, when kmsd's configuration allows it")
      ->check(UnsignedInteger());
  period->add_flag("--off", args->off, "Turn automatic rotation off");
  period->require_option(1);

  CLI::App* min_version = AddSimple(
      group, invocation, "set-min-decryption-version",
      "Refuse to decrypt versions below VERSION (raise after rewrap-all; can be lowered again)",
      TenantFrom::kOption, {ops::KeySetMinDecryptionVersion::Name(), KeyAndVersionArgs}, args);
  min_version->add_option("KEYREF", args->key, "Key name or alias")->required();
  min_version->add_option("VERSION", args->version, "Lowest version that still decrypts")
      ->required()
      ->check(UnsignedInteger());
}

void AddKeyCommands(CLI::App& app, Invocation& invocation) {
  CLI::App* group =
      app.add_subcommand("key", "Create, describe, list, rotate, enable, disable and delete keys");
  group->require_subcommand(1);
  auto args = std::make_shared<AdminArgs>();

  CLI::App* create =
      AddSimple(group, invocation, "create", "Create a key (version 1)", TenantFrom::kOption,
                {ops::KeyCreate::Name(),
                 [](const AdminArgs& a) {
                   return Encode(ops::KeyCreateRequest{.name = a.name,
                                                       .description = UnlessEmpty(a.description)});
                 }},
                args);
  create->add_option("NAME", args->name, "Key name")->required();
  create->add_option("--description", args->description, "What the key is for");

  AddSimple(group, invocation, "describe", "Show a key", TenantFrom::kOption,
            {ops::KeyDescribe::Name(), KeyArg}, args)
      ->add_option("KEYREF", args->key, "Key name or alias")
      ->required();
  AddSimple(group, invocation, "list", "List the tenant's keys", TenantFrom::kOption,
            {ops::KeyList::Name(), NoArgs, wire::kKeys, kKeyColumns}, args);
  AddSimple(group, invocation, "rotate", "Add a key version used by new encryptions",
            TenantFrom::kOption, {ops::KeyRotate::Name(), KeyArg}, args)
      ->add_option("KEYREF", args->key, "Key name or alias")
      ->required();
  AddSimple(group, invocation, "versions", "List a key's versions", TenantFrom::kOption,
            {ops::KeyListVersions::Name(), KeyArg, wire::kVersions, kVersionColumns}, args)
      ->add_option("KEYREF", args->key, "Key name or alias")
      ->required();
  for (const auto& [name, op, description] :
       {std::tuple{"enable", ops::KeyEnable::Name(), "Enable a disabled key"},
        std::tuple{"disable", ops::KeyDisable::Name(),
                   "Disable a key: it neither encrypts nor decrypts"},
        std::tuple{"cancel-deletion", ops::KeyCancelDeletion::Name(),
                   "Cancel a key's scheduled deletion; the key stays disabled"}}) {
    AddSimple(group, invocation, name, description, TenantFrom::kOption, {op, KeyArg}, args)
        ->add_option("KEYREF", args->key, "Key name or alias")
        ->required();
  }
  CLI::App* schedule =
      AddSimple(group, invocation, "schedule-deletion",
                "Schedule a key's deletion; it is unusable during the window", TenantFrom::kOption,
                {ops::KeyScheduleDeletion::Name(), KeyAndWindowArgs}, args);
  schedule->add_option("KEYREF", args->key, "Key name or alias")->required();
  AddWindowOptions(schedule, args);

  AddKeySettingCommands(group, invocation, args);
}

void AddAliasCommands(CLI::App& app, Invocation& invocation) {
  CLI::App* group = app.add_subcommand("alias", "Create, update, delete and list aliases");
  group->require_subcommand(1);
  auto args = std::make_shared<AdminArgs>();
  for (const auto& [name, op, description] :
       {std::tuple{"create", ops::AliasCreate::Name(), "Create an alias pointing at a key"},
        std::tuple{"update", ops::AliasUpdate::Name(), "Point an existing alias at another key"}}) {
    CLI::App* command = AddSimple(group, invocation, name, description, TenantFrom::kOption,
                                  {op, AliasAndKeyArgs}, args);
    command->add_option("ALIAS", args->alias, "Alias name (alias/NAME)")->required();
    command->add_option("KEY", args->key, "Key name (not an alias)")->required();
  }
  AddSimple(group, invocation, "delete", "Delete an alias", TenantFrom::kOption,
            {ops::AliasDelete::Name(), AliasArg}, args)
      ->add_option("ALIAS", args->alias, "Alias name (alias/NAME)")
      ->required();
  AddSimple(group, invocation, "list", "List the tenant's aliases", TenantFrom::kOption,
            {ops::AliasList::Name(), NoArgs, wire::kAliases, kAliasColumns}, args);
}

// kmsd writes the backup into its backup directory (keystore.backup_dir):
// NAME goes as given, and kmsd resolves it there.
void AddKeystoreCommands(CLI::App& app, Invocation& invocation) {
  CLI::App* group = app.add_subcommand("keystore", "Back up kmsd's keystore");
  group->require_subcommand(1);
  auto args = std::make_shared<AdminArgs>();
  AddSimple(group, invocation, "backup",
            "Write a consistent copy of the keystore to NAME in kmsd's backup directory "
            "(keystore.backup_dir; created by kmsd, mode 0600)",
            TenantFrom::kNone,
            {ops::KeystoreBackup::Name(),
             [](const AdminArgs& a) { return Encode(ops::BackupRequest{.path = a.name}); }},
            args)
      ->add_option("NAME", args->name,
                   "A file name in kmsd's backup directory, or an absolute path directly in it; "
                   "must not exist")
      ->required();
}

}  // namespace

void AddAdminCommands(CLI::App& app, Invocation& invocation) {
  auto args = std::make_shared<AdminArgs>();
  AddSimple(&app, invocation, "health", "Check that kmsd and its token answer", TenantFrom::kNone,
            {ops::Health::Name()}, args);
  AddTenantCommands(app, invocation);
  AddKeyCommands(app, invocation);
  AddAliasCommands(app, invocation);
  AddKeystoreCommands(app, invocation);
}

}  // namespace kmsd::kmsctl
