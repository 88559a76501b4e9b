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
    {{"NAME", "name"}, {"CREATED", "created_at"}, {"STATE", "state"}}};
constexpr std::array<Column, 8> kKeyColumns = {{{"NAME", "name"},
                                                {"ID", "id"},
                                                {"VERSION", "latest_version"},
                                                {"ENABLED", "enabled"},
                                                {"STATE", "state"},
                                                {"CREATED", "created_at"},
                                                {"ALIASES", "aliases"},
                                                {"DESCRIPTION", "description"}}};
constexpr std::array<Column, 3> kVersionColumns = {
    {{"VERSION", "version"}, {"CREATED", "created_at"}, {"ENCRYPTIONS", "encryptions"}}};
constexpr std::array<Column, 5> kAliasColumns = {{{"ALIAS", "alias"},
                                                  {"KEY", "key"},
                                                  {"KEY_ID", "key_id"},
                                                  {"CREATED", "created_at"},
                                                  {"UPDATED", "updated_at"}}};

// Builds a request's arguments from `args` when the command runs.
using ArgsBuilder = std::function<Value::Map(const AdminArgs&)>;

Value::Map NoArgs(const AdminArgs&) { return {}; }

Value::Map KeyArg(const AdminArgs& a) {
  Value::Map map;
  map.emplace_back("key", a.key);
  return map;
}

Value::Map AliasArg(const AdminArgs& a) {
  Value::Map map;
  map.emplace_back("alias", a.alias);
  return map;
}

// The pending window of a schedule-deletion; kmsd checks its bounds.
Value::Map WindowArgs(const AdminArgs& a) {
  Value::Map map;
  if (a.days) map.emplace_back("pending_window_days", *a.days);
  if (a.seconds) map.emplace_back("pending_window_seconds", *a.seconds);
  return map;
}

Value::Map KeyAndWindowArgs(const AdminArgs& a) {
  Value::Map map = KeyArg(a);
  for (auto& entry : WindowArgs(a)) map.push_back(std::move(entry));
  return map;
}

// The rotation period; 0 (--off) turns automatic rotation off.
Value::Map KeyAndRotationArgs(const AdminArgs& a) {
  Value::Map map = KeyArg(a);
  uint64_t seconds = 0;
  constexpr uint64_t kDay = kSecondsPerDay;
  if (a.days) seconds = *a.days > UINT64_MAX / kDay ? UINT64_MAX : *a.days * kDay;
  if (a.seconds) seconds = *a.seconds;
  map.emplace_back("rotation_period_seconds", seconds);
  return map;
}

Value::Map KeyAndVersionArgs(const AdminArgs& a) {
  Value::Map map = KeyArg(a);
  map.emplace_back("version", a.version);
  return map;
}

Value::Map AliasAndKeyArgs(const AdminArgs& a) {
  Value::Map map = AliasArg(a);
  map.emplace_back("key", a.key);
  return map;
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
  CLI::App* group =
      app.add_subcommand("tenant", "Create, describe, list and schedule deletion of tenants");
  group->require_subcommand(1);
  auto args = std::make_shared<AdminArgs>();
  AddSimple(group, invocation, "create", "Create a tenant with its root key, keys and aliases",
            TenantFrom::kName, {"tenant.create"}, args)
      ->add_option("NAME", args->name, "Tenant name")
      ->required();
  AddSimple(group, invocation, "describe", "Show a tenant", TenantFrom::kName, {"tenant.describe"},
            args)
      ->add_option("NAME", args->name, "Tenant name")
      ->required();
  AddSimple(group, invocation, "list", "List tenants", TenantFrom::kNone,
            {"tenant.list", NoArgs, "tenants", kTenantColumns}, args);
  CLI::App* schedule =
      AddSimple(group, invocation, "schedule-deletion",
                "Schedule a tenant's deletion; it serves nothing during the window",
                TenantFrom::kName, {"tenant.schedule-deletion", WindowArgs}, args);
  schedule->add_option("NAME", args->name, "Tenant name")->required();
  AddWindowOptions(schedule, args);
  AddSimple(group, invocation, "cancel-deletion", "Cancel a tenant's scheduled deletion",
            TenantFrom::kName, {"tenant.cancel-deletion"}, args)
      ->add_option("NAME", args->name, "Tenant name")
      ->required();
}

void AddKeyCommands(CLI::App& app, Invocation& invocation) {
  CLI::App* group =
      app.add_subcommand("key", "Create, describe, list, rotate, enable, disable and delete keys");
  group->require_subcommand(1);
  auto args = std::make_shared<AdminArgs>();

  CLI::App* create =
      AddSimple(group, invocation, "create", "Create a key (version 1)", TenantFrom::kOption,
                {"key.create",
                 [](const AdminArgs& a) {
                   Value::Map map;
                   map.emplace_back("name", a.name);
                   if (!a.description.empty()) map.emplace_back("description", a.description);
                   return map;
                 }},
                args);
  create->add_option("NAME", args->name, "Key name")->required();
  create->add_option("--description", args->description, "What the key is for");

  AddSimple(group, invocation, "describe", "Show a key", TenantFrom::kOption,
            {"key.describe", KeyArg}, args)
      ->add_option("KEYREF", args->key, "Key name or alias")
      ->required();
  AddSimple(group, invocation, "list", "List the tenant's keys", TenantFrom::kOption,
            {"key.list", NoArgs, "keys", kKeyColumns}, args);
  AddSimple(group, invocation, "rotate", "Add a key version used by new encryptions",
            TenantFrom::kOption, {"key.rotate", KeyArg}, args)
      ->add_option("KEYREF", args->key, "Key name or alias")
      ->required();
  AddSimple(group, invocation, "versions", "List a key's versions", TenantFrom::kOption,
            {"key.list-versions", KeyArg, "versions", kVersionColumns}, args)
      ->add_option("KEYREF", args->key, "Key name or alias")
      ->required();
  for (const auto& [name, op, description] :
       {std::tuple{"enable", "key.enable", "Enable a disabled key"},
        std::tuple{"disable", "key.disable", "Disable a key: it neither encrypts nor decrypts"},
        std::tuple{"cancel-deletion", "key.cancel-deletion",
                   "Cancel a key's scheduled deletion; the key stays disabled"}}) {
    AddSimple(group, invocation, name, description, TenantFrom::kOption, {op, KeyArg}, args)
        ->add_option("KEYREF", args->key, "Key name or alias")
        ->required();
  }
  CLI::App* schedule =
      AddSimple(group, invocation, "schedule-deletion",
                "Schedule a key's deletion; it is unusable during the window", TenantFrom::kOption,
                {"key.schedule-deletion", KeyAndWindowArgs}, args);
  schedule->add_option("KEYREF", args->key, "Key name or alias")->required();
  AddWindowOptions(schedule, args);

  CLI::App* rotation =
      AddSimple(group, invocation, "set-rotation",
                "Rotate a key by itself: a new version this long after its newest (or --off)",
                TenantFrom::kOption, {"key.set-rotation", KeyAndRotationArgs}, args);
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
      TenantFrom::kOption, {"key.set-min-decryption-version", KeyAndVersionArgs}, args);
  min_version->add_option("KEYREF", args->key, "Key name or alias")->required();
  min_version->add_option("VERSION", args->version, "Lowest version that still decrypts")
      ->required()
      ->check(UnsignedInteger());
}

void AddAliasCommands(CLI::App& app, Invocation& invocation) {
  CLI::App* group = app.add_subcommand("alias", "Create, update, delete and list aliases");
  group->require_subcommand(1);
  auto args = std::make_shared<AdminArgs>();
  for (const auto& [name, op, description] :
       {std::tuple{"create", "alias.create", "Create an alias pointing at a key"},
        std::tuple{"update", "alias.update", "Point an existing alias at another key"}}) {
    CLI::App* command = AddSimple(group, invocation, name, description, TenantFrom::kOption,
                                  {op, AliasAndKeyArgs}, args);
    command->add_option("ALIAS", args->alias, "Alias name (alias/NAME)")->required();
    command->add_option("KEY", args->key, "Key name (not an alias)")->required();
  }
  AddSimple(group, invocation, "delete", "Delete an alias", TenantFrom::kOption,
            {"alias.delete", AliasArg}, args)
      ->add_option("ALIAS", args->alias, "Alias name (alias/NAME)")
      ->required();
  AddSimple(group, invocation, "list", "List the tenant's aliases", TenantFrom::kOption,
            {"alias.list", NoArgs, "aliases", kAliasColumns}, args);
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
            {"keystore.backup",
             [](const AdminArgs& a) {
               Value::Map map;
               map.emplace_back("path", a.name);
               return map;
             }},
            args)
      ->add_option("NAME", args->name,
                   "A file name in kmsd's backup directory, or an absolute path directly in it; "
                   "must not exist")
      ->required();
}

}  // namespace

void AddAdminCommands(CLI::App& app, Invocation& invocation) {
  auto args = std::make_shared<AdminArgs>();
  AddSimple(&app, invocation, "status", "Show kmsd's version, token, keystore and counts",
            TenantFrom::kNone, {"status"}, args);
  AddSimple(&app, invocation, "health", "Check that kmsd and its token answer", TenantFrom::kNone,
            {"health"}, args);
  AddTenantCommands(app, invocation);
  AddKeyCommands(app, invocation);
  AddAliasCommands(app, invocation);
  AddKeystoreCommands(app, invocation);
}

}  // namespace kmsd::kmsctl
