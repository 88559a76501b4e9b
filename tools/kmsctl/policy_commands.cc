// kmsctl tenant policy put|get (docs/CLI.md, "Tenant policies"): a tenant's
// security policy and resource quotas, as a YAML document of the seeds'
// shapes. Without --json, `get` prints the document as stored followed by
// what kmsd made of the fields it does not simply enforce, as YAML comments
// (so its output can be edited and put back); `put` prints those notes.
#include <memory>
#include <string>

#include "protocol/policy_types.h"
#include "tools/kmsctl/cli.h"
#include "tools/kmsctl/io.h"

namespace kmsd::kmsctl {
namespace {

struct PolicyArgs {
  std::string tenant;
  std::string file;
};

// "# FIELD: KIND: NOTE" lines.
std::string NoteLines(const ops::PolicyDescription& policy) {
  std::string lines;
  for (const ops::PolicyNoteDescription& note : policy.notes) {
    lines += "# " + Output::Printable(note.field) + ": " + Output::Printable(note.kind) + ": " +
             Output::Printable(note.note) + "\n";
  }
  return lines;
}

Status Print(Invocation& invocation, const Reply& reply, bool with_document) {
  if (invocation.output().json()) return invocation.output().Object(ToJson(reply.result()));
  ASSIGN_OR_RETURN(ops::PolicyDescription policy,
                   FromReply(Decode<ops::PolicyDescription>(reply.result())));
  std::string text;
  if (with_document) {
    if (!policy.document) {
      return Output::Stdout("# tenant '" + Output::Printable(policy.tenant) + "' has no policy\n");
    }
    text = *policy.document;
    if (!text.empty() && text.back() != '\n') text += '\n';
  }
  return Output::Stdout(text + NoteLines(policy));
}

Status PolicyPut(Invocation& invocation, const PolicyArgs& a) {
  ASSIGN_OR_RETURN(SecretBuffer file, invocation.AsUsage(ReadInput(a.file)));
  const std::span<const uint8_t> bytes = file.RevealSpan();
  const std::string_view document(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  ASSIGN_OR_RETURN(Reply reply, invocation.Send<ops::TenantPutPolicy>(a.tenant, {document}));
  return Print(invocation, reply, /*with_document=*/false);
}

Status PolicyGet(Invocation& invocation, const PolicyArgs& a) {
  ASSIGN_OR_RETURN(Reply reply, invocation.Send<ops::TenantGetPolicy>(a.tenant, {}));
  return Print(invocation, reply, /*with_document=*/true);
}

}  // namespace

void AddPolicyCommands(CLI::App* tenant_group, Invocation& invocation) {
  CLI::App* group = tenant_group->add_subcommand(
      "policy", "Put or show a tenant's security policy and resource quotas (YAML)");
  group->require_subcommand(1);
  auto args = std::make_shared<PolicyArgs>();
  CLI::App* put = group->add_subcommand(
      "put",
      "Replace the tenant's policy by FILE (the seeds' security_policies and/or "
      "resource_quotas; '-' for stdin)");
  put->add_option("NAME", args->tenant, "Tenant name")->required();
  put->add_option("FILE", args->file, "YAML document")->required();
  put->callback([&invocation, args] {
    invocation.Select([&invocation, args] { return PolicyPut(invocation, *args); });
  });
  CLI::App* get = group->add_subcommand("get", "Show the tenant's policy as put, with notes");
  get->add_option("NAME", args->tenant, "Tenant name")->required();
  get->callback([&invocation, args] {
    invocation.Select([&invocation, args] { return PolicyGet(invocation, *args); });
  });
}

}  // namespace kmsd::kmsctl
