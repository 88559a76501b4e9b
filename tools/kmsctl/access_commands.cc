// kmsctl's access commands: a tenant's principals (principal create,
// describe, list, delete, set-roles) and their API keys (apikey create, list,
// revoke) (docs/CLI.md).
//
// Each sends one request and prints its result. Roles and names are checked
// by kmsd; kmsctl checks only --expires-in, whose syntax is its own (a usage
// error). apikey create prints the new key's secret, the only time anyone
// sees it: as text, not base64, although it travels as a binary field.
#include <algorithm>
#include <array>
#include <charconv>
#include <memory>
#include <optional>

#include "protocol/access_types.h"
#include "tools/kmsctl/cli.h"

namespace kmsd::kmsctl {
namespace {

// Positional and option values of one command, kept alive for its callback.
struct AccessArgs {
  std::string tenant;
  std::string name;  // the principal of principal commands
  std::vector<std::string> roles;
  std::vector<uint64_t> uids;
  std::vector<uint64_t> gids;
  std::string principal;                  // apikey create / list --principal
  std::optional<std::string> expires_in;  // apikey create --expires-in
  std::string id;                         // apikey revoke
};

constexpr std::array<Column, 5> kPrincipalColumns = {{{"NAME", wire::kName},
                                                      {"ROLES", wire::kRoles},
                                                      {"UIDS", wire::kUids},
                                                      {"GIDS", wire::kGids},
                                                      {"CREATED", wire::kCreatedAt}}};
constexpr std::array<Column, 6> kApiKeyColumns = {{{"ID", wire::kId},
                                                   {"PRINCIPAL", wire::kPrincipal},
                                                   {"STATE", wire::kState},
                                                   {"CREATED", wire::kCreatedAt},
                                                   {"EXPIRES", wire::kExpiresAt},
                                                   {"LAST_USED", wire::kLastUsedAt}}};

Status PrincipalCreate(Invocation& invocation, const AccessArgs& a) {
  // No --uid and no --gid sends none: the principal is bound to no peer.
  using Ids = std::optional<std::vector<uint64_t>>;
  ops::PrincipalCreateRequest request{.name = a.name,
                                      .roles = a.roles,
                                      .uids = a.uids.empty() ? Ids() : Ids(a.uids),
                                      .gids = a.gids.empty() ? Ids() : Ids(a.gids)};
  ASSIGN_OR_RETURN(Reply reply,
                   invocation.Send<ops::PrincipalCreate>(a.tenant, std::move(request)));
  return invocation.output().Object(ToJson(reply.result()));
}

Status PrincipalDescribe(Invocation& invocation, const AccessArgs& a) {
  ASSIGN_OR_RETURN(Reply reply,
                   invocation.Send<ops::PrincipalDescribe>(a.tenant, {.name = a.name}));
  return invocation.output().Object(ToJson(reply.result()));
}

Status PrincipalList(Invocation& invocation, const AccessArgs& a) {
  ASSIGN_OR_RETURN(Reply reply, invocation.Send<ops::PrincipalList>(a.tenant, {}));
  return invocation.output().Table(ToJson(reply.result()), wire::kPrincipals, kPrincipalColumns);
}

Status PrincipalDelete(Invocation& invocation, const AccessArgs& a) {
  ASSIGN_OR_RETURN(Reply reply, invocation.Send<ops::PrincipalDelete>(a.tenant, {.name = a.name}));
  return invocation.output().Object(ToJson(reply.result()));
}

Status PrincipalSetRoles(Invocation& invocation, const AccessArgs& a) {
  ASSIGN_OR_RETURN(Reply reply, invocation.Send<ops::PrincipalSetRoles>(
                                    a.tenant, {.name = a.name, .roles = a.roles}));
  return invocation.output().Object(ToJson(reply.result()));
}

Status ApiKeyCreate(Invocation& invocation, const AccessArgs& a) {
  std::optional<uint64_t> expires_in;
  if (a.expires_in) {
    ASSIGN_OR_RETURN(expires_in, invocation.AsUsage(ParseDuration(*a.expires_in)));
  }
  ASSIGN_OR_RETURN(Reply reply,
                   invocation.Send<ops::ApiKeyCreate>(
                       a.tenant, {.principal = a.principal, .expires_in_seconds = expires_in}));
  constexpr std::array<std::string_view, 1> kAsText = {wire::kSecret};
  ASSIGN_OR_RETURN(Json object, WithBinaryAsText(reply, kAsText));
  const Output output = invocation.output();
  RETURN_IF_ERROR(output.Object(std::move(object)));
  if (!output.json()) {
    Output::Stderr(
        "kmsctl: store the secret now: it is not shown again (kmsd keeps only a hash of it)\n");
  }
  return OkStatus();
}

Status ApiKeyList(Invocation& invocation, const AccessArgs& a) {
  ASSIGN_OR_RETURN(Reply reply, invocation.Send<ops::ApiKeyList>(
                                    a.tenant, {.principal = UnlessEmpty(a.principal)}));
  return invocation.output().Table(ToJson(reply.result()), wire::kApiKeys, kApiKeyColumns);
}

Status ApiKeyRevoke(Invocation& invocation, const AccessArgs& a) {
  ASSIGN_OR_RETURN(Reply reply, invocation.Send<ops::ApiKeyRevoke>(a.tenant, {.id = a.id}));
  return invocation.output().Object(ToJson(reply.result()));
}

// Repeatable --role ROLE, one value per occurrence (never swallowing NAME).
void AddRolesOption(CLI::App* command, AccessArgs* args) {
  command
      ->add_option(
          "--role", args->roles,
          "Role to hold: manager, user, viewer or a custom role (repeatable; at least one)")
      ->type_name("ROLE")
      ->allow_extra_args(false)
      ->required();
}

void AddNameArgument(CLI::App* command, AccessArgs* args) {
  command->add_option("NAME", args->name, "Principal name")->required();
}

void AddPrincipalCommands(CLI::App& app, Invocation& invocation) {
  CLI::App* group = app.add_subcommand(
      "principal", "Create, describe, list and delete a tenant's principals; set their roles");
  group->require_subcommand(1);
  auto args = std::make_shared<AccessArgs>();

  CLI::App* create =
      AddTenantCommand(group, invocation, "create",
                       "Create a principal holding roles in the tenant", PrincipalCreate, args);
  AddNameArgument(create, args.get());
  AddRolesOption(create, args.get());
  create
      ->add_option("--uid", args->uids,
                   "Accept the principal's keys only from this uid (repeatable)")
      ->type_name("UID")
      ->allow_extra_args(false)
      ->check(UnsignedInteger());
  create
      ->add_option("--gid", args->gids,
                   "Accept the principal's keys only from this gid (repeatable)")
      ->type_name("GID")
      ->allow_extra_args(false)
      ->check(UnsignedInteger());

  AddNameArgument(
      AddTenantCommand(group, invocation, "describe", "Show a principal", PrincipalDescribe, args),
      args.get());
  AddTenantCommand(group, invocation, "list", "List the tenant's principals", PrincipalList, args);
  AddNameArgument(
      AddTenantCommand(group, invocation, "delete", "Delete a principal and all its API keys",
                       PrincipalDelete, args),
      args.get());
  CLI::App* set_roles =
      AddTenantCommand(group, invocation, "set-roles",
                       "Replace a principal's roles (its API keys keep working with the new roles)",
                       PrincipalSetRoles, args);
  AddNameArgument(set_roles, args.get());
  AddRolesOption(set_roles, args.get());
}

void AddApiKeyCommands(CLI::App& app, Invocation& invocation) {
  CLI::App* group =
      app.add_subcommand("apikey", "Create, list and revoke the API keys of a tenant's principals");
  group->require_subcommand(1);
  auto args = std::make_shared<AccessArgs>();

  CLI::App* create = AddTenantCommand(
      group, invocation, "create",
      "Create an API key for a principal and print its secret, this once only", ApiKeyCreate, args);
  create->add_option("--principal", args->principal, "Principal the key belongs to")->required();
  create
      ->add_option_function<std::string>(
          "--expires-in", [args](const std::string& text) { args->expires_in = text; },
          "Lifetime: a positive number and a unit s, m, h or d (90d, 12h); 1s to "
          "3650d (default: never expires)")
      ->type_name("DURATION");

  AddTenantCommand(group, invocation, "list", "List API keys (never their secrets)", ApiKeyList,
                   args)
      ->add_option("--principal", args->principal, "Only this principal's keys");
  AddTenantCommand(group, invocation, "revoke", "Revoke an API key at once; it cannot be undone",
                   ApiKeyRevoke, args)
      ->add_option("ID", args->id, "API key id (16 hex digits, as apikey list shows)")
      ->required();
}

}  // namespace

void AddAccessCommands(CLI::App& app, Invocation& invocation) {
  AddPrincipalCommands(app, invocation);
  AddApiKeyCommands(app, invocation);
}

}  // namespace kmsd::kmsctl
