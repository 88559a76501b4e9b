// kmsctl's role and grant commands: a tenant's custom roles (role create,
// update, describe, list, delete) and grants (grant create, list, retire)
// (docs/CLI.md). Each sends one request and prints its result; names,
// statements and operations are checked by kmsd. kmsctl checks only the
// syntax of its own flags (--expires-in, --context k=v, --operations a,b):
// a usage error.
#include <memory>
#include <optional>

#include "protocol/access_types.h"
#include "tools/kmsctl/cli.h"

namespace kmsd::kmsctl {
namespace {

// Positional and option values of one command, kept alive for its callback.
struct RoleGrantArgs {
  std::string tenant;
  std::string name;  // role commands
  std::vector<std::string> inherits;
  std::vector<std::string> allow;
  std::string key;  // grant create / list --key
  std::string principal;
  std::vector<std::string> operations;
  std::vector<std::string> context;
  std::optional<std::string> expires_in;
  std::string id;  // grant retire
};

constexpr std::array<Column, 5> kRoleColumns = {{{"NAME", wire::kName},
                                                 {"INHERITS", wire::kInherits},
                                                 {"ALLOW", wire::kAllow},
                                                 {"CREATED", wire::kCreatedAt},
                                                 {"UPDATED", wire::kUpdatedAt}}};
constexpr std::array<Column, 7> kGrantColumns = {{{"ID", wire::kId},
                                                  {"KEY", wire::kKeyName},
                                                  {"PRINCIPAL", wire::kPrincipal},
                                                  {"OPERATIONS", wire::kOperations},
                                                  {"STATE", wire::kState},
                                                  {"CREATED", wire::kCreatedAt},
                                                  {"EXPIRES", wire::kExpiresAt}}};

using Strings = std::optional<std::vector<std::string>>;

ops::RoleRequest RoleRequestOf(const RoleGrantArgs& a) {
  return {.name = a.name,
          .inherits = a.inherits.empty() ? Strings() : Strings(a.inherits),
          .allow = a.allow.empty() ? Strings() : Strings(a.allow)};
}

Status RoleCreate(Invocation& invocation, const RoleGrantArgs& a) {
  ASSIGN_OR_RETURN(Reply reply, invocation.Send<ops::RoleCreate>(a.tenant, RoleRequestOf(a)));
  return invocation.output().Object(ToJson(reply.result()));
}

Status RoleUpdate(Invocation& invocation, const RoleGrantArgs& a) {
  ASSIGN_OR_RETURN(Reply reply, invocation.Send<ops::RoleUpdate>(a.tenant, RoleRequestOf(a)));
  return invocation.output().Object(ToJson(reply.result()));
}

Status RoleDescribe(Invocation& invocation, const RoleGrantArgs& a) {
  ASSIGN_OR_RETURN(Reply reply, invocation.Send<ops::RoleDescribe>(a.tenant, {.name = a.name}));
  return invocation.output().Object(ToJson(reply.result()));
}

Status RoleList(Invocation& invocation, const RoleGrantArgs& a) {
  ASSIGN_OR_RETURN(Reply reply, invocation.Send<ops::RoleList>(a.tenant, {}));
  return invocation.output().Table(ToJson(reply.result()), wire::kRoles, kRoleColumns);
}

Status RoleDelete(Invocation& invocation, const RoleGrantArgs& a) {
  ASSIGN_OR_RETURN(Reply reply, invocation.Send<ops::RoleDelete>(a.tenant, {.name = a.name}));
  return invocation.output().Object(ToJson(reply.result()));
}

// "encrypt,decrypt" and repeated flags alike: every name, in order.
std::vector<std::string> SplitOperations(const std::vector<std::string>& flags) {
  std::vector<std::string> out;
  for (const std::string& flag : flags) {
    size_t start = 0;
    while (start <= flag.size()) {
      const size_t comma = flag.find(',', start);
      out.push_back(flag.substr(start, comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  return out;
}

Status GrantCreate(Invocation& invocation, const RoleGrantArgs& a) {
  std::optional<uint64_t> expires_in;
  if (a.expires_in) {
    ASSIGN_OR_RETURN(expires_in, invocation.AsUsage(ParseDuration(*a.expires_in)));
  }
  std::optional<EncryptionContext> context;
  if (!a.context.empty()) {
    ASSIGN_OR_RETURN(context, invocation.AsUsage(ParseContext(a.context)));
  }
  ASSIGN_OR_RETURN(Reply reply, invocation.Send<ops::GrantCreate>(
                                    a.tenant, {.key = a.key,
                                               .principal = a.principal,
                                               .operations = SplitOperations(a.operations),
                                               .expires_in_seconds = expires_in,
                                               .context = std::move(context)}));
  return invocation.output().Object(ToJson(reply.result()));
}

Status GrantList(Invocation& invocation, const RoleGrantArgs& a) {
  ASSIGN_OR_RETURN(Reply reply, invocation.Send<ops::GrantList>(
                                    a.tenant, {.key = UnlessEmpty(a.key),
                                               .principal = UnlessEmpty(a.principal)}));
  return invocation.output().Table(ToJson(reply.result()), wire::kGrants, kGrantColumns);
}

Status GrantRetire(Invocation& invocation, const RoleGrantArgs& a) {
  ASSIGN_OR_RETURN(Reply reply, invocation.Send<ops::GrantRetire>(a.tenant, {.id = a.id}));
  return invocation.output().Object(ToJson(reply.result()));
}

// A repeatable option taking one value per occurrence.
CLI::Option* AddRepeatable(CLI::App* command, std::string flag, std::vector<std::string>* into,
                           std::string description, std::string type) {
  return command->add_option(std::move(flag), *into, std::move(description))
      ->type_name(std::move(type))
      ->allow_extra_args(false);
}

void AddRoleDefinition(CLI::App* command, RoleGrantArgs* args) {
  command->add_option("NAME", args->name, "Role name")->required();
  AddRepeatable(command, "--inherits", &args->inherits,
                "Role whose permissions this one has too: built-in or custom (repeatable)", "ROLE");
  AddRepeatable(command, "--allow", &args->allow,
                "Permission statement PERMISSION[@RESOURCE], e.g. crypto:encrypt@key/orders "
                "(repeatable; docs/POLICY.md)",
                "STATEMENT");
}

void AddRoleCommands(CLI::App& app, Invocation& invocation) {
  CLI::App* group = app.add_subcommand(
      "role", "Create, change, describe, list and delete a tenant's custom roles");
  group->require_subcommand(1);
  auto args = std::make_shared<RoleGrantArgs>();
  AddRoleDefinition(
      AddTenantCommand(group, invocation, "create",
                       "Create a custom role: roles it inherits and statements it allows",
                       RoleCreate, args),
      args.get());
  AddRoleDefinition(
      AddTenantCommand(
          group, invocation, "update",
          "Replace a custom role's inherited roles and statements (cycles are refused)", RoleUpdate,
          args),
      args.get());
  AddTenantCommand(group, invocation, "describe", "Show a custom role and what it gives",
                   RoleDescribe, args)
      ->add_option("NAME", args->name, "Role name")
      ->required();
  AddTenantCommand(group, invocation, "list", "List the tenant's custom roles", RoleList, args);
  AddTenantCommand(group, invocation, "delete",
                   "Delete a custom role no principal holds and no role inherits", RoleDelete, args)
      ->add_option("NAME", args->name, "Role name")
      ->required();
}

void AddGrantCommands(CLI::App& app, Invocation& invocation) {
  CLI::App* group =
      app.add_subcommand("grant", "Create, list and retire grants: use of one key by a principal");
  group->require_subcommand(1);
  auto args = std::make_shared<RoleGrantArgs>();
  CLI::App* create =
      AddTenantCommand(group, invocation, "create",
                       "Let a principal use one key for some operations", GrantCreate, args);
  create->add_option("--key", args->key, "Key name or alias")->required();
  create->add_option("--principal", args->principal, "Principal the grant is for")->required();
  AddRepeatable(create, "--operations", &args->operations,
                "Operations, comma-separated: encrypt, decrypt, re-encrypt-from, re-encrypt-to, "
                "generate-data-key, describe-key",
                "OPS")
      ->required();
  AddContextOption(create, "--context", &args->context,
                   "Only for requests whose encryption context holds k=v (repeatable)");
  create
      ->add_option_function<std::string>(
          "--expires-in", [args](const std::string& text) { args->expires_in = text; },
          "Lifetime: a positive number and a unit s, m, h or d (1h, 30d); 1s to 3650d "
          "(default: until retired)")
      ->type_name("DURATION");
  CLI::App* list = AddTenantCommand(group, invocation, "list", "List grants", GrantList, args);
  list->add_option("--key", args->key, "Only grants on this key");
  list->add_option("--principal", args->principal, "Only this principal's grants");
  AddTenantCommand(group, invocation, "retire", "Retire a grant at once; it cannot be undone",
                   GrantRetire, args)
      ->add_option("ID", args->id, "Grant id (16 hex digits, as grant list shows)")
      ->required();
}

}  // namespace

void AddRoleAndGrantCommands(CLI::App& app, Invocation& invocation) {
  AddRoleCommands(app, invocation);
  AddGrantCommands(app, invocation);
}

}  // namespace kmsd::kmsctl
