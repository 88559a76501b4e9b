// kmsctl's data commands: encrypt, decrypt, re-encrypt, data-key and random
// (docs/CLI.md).
//
// Each checks its arguments, reads its input and checks its output path
// before sending anything (failures there are usage errors), then sends one
// request. The binary result goes raw to --out or stdout; with --json and no
// --out it goes base64 into the JSON object instead. With --out, the other
// result fields are printed on stdout. Nothing is written when the request
// fails.
#include <memory>
#include <optional>

#include "tools/kmsctl/cli.h"
#include "tools/kmsctl/io.h"

namespace kmsd::kmsctl {
namespace {

struct CryptoArgs {
  std::string tenant;
  std::string key;
  std::vector<std::string> context;
  std::string destination_key;
  std::vector<std::string> destination_context;
  std::string in;
  std::string out;
  bool no_plaintext = false;
  std::optional<uint64_t> bytes;
  std::string key_spec;
};

// Prints `reply`, whose `field` is the command's binary output.
Status Emit(Invocation& invocation, const Reply& reply, std::string_view field,
            const std::string& out_path) {
  ASSIGN_OR_RETURN(std::span<const uint8_t> bytes, FromReply(reply.result().Binary(field)));
  const Output output = invocation.output();
  if (output.json() && IsStdio(out_path)) return output.Object(ToJson(reply.result()));
  RETURN_IF_ERROR(WriteOutput(out_path, bytes));
  if (IsStdio(out_path)) return OkStatus();
  Json rest = ToJson(reply.result());
  rest.erase(std::string(field));
  return output.Object(std::move(rest));
}

// Reads --in and checks --out and the contexts: the part that can fail
// before anything is sent.
struct Prepared {
  SecretBuffer input;
  EncryptionContext context;
};

Result<Prepared> Prepare(Invocation& invocation, const CryptoArgs& a) {
  Prepared prepared;
  ASSIGN_OR_RETURN(prepared.context, invocation.AsUsage(ParseContext(a.context)));
  RETURN_IF_ERROR(invocation.AsUsage(CheckOutputPath(a.out)));
  ASSIGN_OR_RETURN(prepared.input, invocation.AsUsage(ReadInput(a.in)));
  return prepared;
}

Status Encrypt(Invocation& invocation, const CryptoArgs& a) {
  ASSIGN_OR_RETURN(Prepared prepared, Prepare(invocation, a));
  ASSIGN_OR_RETURN(Reply reply, invocation.Send<ops::Encrypt>(
                                    a.tenant, {.key = a.key,
                                               .plaintext = prepared.input.RevealSpan(),
                                               .context = std::move(prepared.context)}));
  return Emit(invocation, reply, wire::kCiphertext, a.out);
}

Status Decrypt(Invocation& invocation, const CryptoArgs& a) {
  ASSIGN_OR_RETURN(Prepared prepared, Prepare(invocation, a));
  ASSIGN_OR_RETURN(Reply reply, invocation.Send<ops::Decrypt>(
                                    a.tenant, {.ciphertext = prepared.input.RevealSpan(),
                                               .context = std::move(prepared.context),
                                               .key = UnlessEmpty(a.key)}));
  return Emit(invocation, reply, wire::kPlaintext, a.out);
}

Status ReEncrypt(Invocation& invocation, const CryptoArgs& a) {
  ASSIGN_OR_RETURN(Prepared prepared, Prepare(invocation, a));
  ASSIGN_OR_RETURN(EncryptionContext destination_context,
                   invocation.AsUsage(ParseContext(a.destination_context)));
  // No --destination-context sends none: kmsd then uses --context.
  std::optional<EncryptionContext> destination;
  if (!destination_context.empty()) destination = std::move(destination_context);
  ASSIGN_OR_RETURN(Reply reply, invocation.Send<ops::ReEncrypt>(
                                    a.tenant, {.ciphertext = prepared.input.RevealSpan(),
                                               .context = std::move(prepared.context),
                                               .destination_key = UnlessEmpty(a.destination_key),
                                               .destination_context = std::move(destination)}));
  return Emit(invocation, reply, wire::kCiphertext, a.out);
}

Status DataKey(Invocation& invocation, const CryptoArgs& a) {
  ASSIGN_OR_RETURN(EncryptionContext context, invocation.AsUsage(ParseContext(a.context)));
  ops::DataKeyRequest request{.key = a.key,
                              .context = std::move(context),
                              .key_spec = UnlessEmpty(a.key_spec),
                              .number_of_bytes = a.bytes};
  ASSIGN_OR_RETURN(
      Reply reply,
      a.no_plaintext
          ? invocation.Send<ops::GenerateDataKeyWithoutPlaintext>(a.tenant, std::move(request))
          : invocation.Send<ops::GenerateDataKey>(a.tenant, std::move(request)));
  return invocation.output().Object(ToJson(reply.result()));
}

Status Random(Invocation& invocation, const CryptoArgs& a) {
  RETURN_IF_ERROR(invocation.AsUsage(CheckOutputPath(a.out)));
  ASSIGN_OR_RETURN(Reply reply, invocation.Send<ops::GenerateRandom>(
                                    {}, {.number_of_bytes = a.bytes.value_or(0)}));
  return Emit(invocation, reply, wire::kRandom, a.out);
}

using Handler = Status (*)(Invocation&, const CryptoArgs&);

CLI::App* AddCommand(CLI::App& app, Invocation& invocation, std::string name,
                     std::string description, Handler handler, std::shared_ptr<CryptoArgs> args) {
  CLI::App* command = app.add_subcommand(std::move(name), std::move(description));
  command->callback([&invocation, handler, args] {
    invocation.Select([&invocation, handler, args] { return handler(invocation, *args); });
  });
  return command;
}

void AddInOut(CLI::App* command, CryptoArgs* args, std::string_view in_what,
              std::string_view out_what) {
  command->add_option("--in", args->in, std::string(in_what) + " (default: stdin)");
  command->add_option("--out", args->out, std::string(out_what) + " (default: stdout)");
}

}  // namespace

void AddCryptoCommands(CLI::App& app, Invocation& invocation) {
  auto args = std::make_shared<CryptoArgs>();
  constexpr std::string_view kContextHelp = "Encryption context entry (repeatable)";

  CLI::App* encrypt =
      AddCommand(app, invocation, "encrypt", "Encrypt data under a key", Encrypt, args);
  AddTenantOption(encrypt, &args->tenant);
  encrypt->add_option("--key", args->key, "Key name or alias")->required();
  AddContextOption(encrypt, "--context", &args->context, std::string(kContextHelp));
  AddInOut(encrypt, args.get(), "Plaintext file", "Ciphertext file");

  CLI::App* decrypt = AddCommand(app, invocation, "decrypt", "Decrypt a ciphertext", Decrypt, args);
  AddTenantOption(decrypt, &args->tenant);
  AddContextOption(decrypt, "--context", &args->context,
                   "Encryption context entry given at encryption (repeatable)");
  decrypt->add_option("--key", args->key,
                      "Key name or alias the ciphertext must be under (default: any)");
  AddInOut(decrypt, args.get(), "Ciphertext file", "Plaintext file");

  CLI::App* reencrypt = AddCommand(
      app, invocation, "re-encrypt",
      "Decrypt and encrypt again under the newest key version, inside kmsd", ReEncrypt, args);
  AddTenantOption(reencrypt, &args->tenant);
  AddContextOption(reencrypt, "--context", &args->context, std::string(kContextHelp));
  reencrypt->add_option("--destination-key", args->destination_key,
                        "Key name or alias to encrypt under (default: the ciphertext's key)");
  AddContextOption(reencrypt, "--destination-context", &args->destination_context,
                   "Context entry for the new ciphertext (repeatable; default: --context)");
  AddInOut(reencrypt, args.get(), "Ciphertext file", "New ciphertext file");

  CLI::App* data_key = AddCommand(app, invocation, "data-key",
                                  "Generate a data key and its ciphertext", DataKey, args);
  AddTenantOption(data_key, &args->tenant);
  data_key->add_option("--key", args->key, "Key name or alias to encrypt the data key under")
      ->required();
  AddContextOption(data_key, "--context", &args->context, std::string(kContextHelp));
  data_key->add_flag("--no-plaintext", args->no_plaintext, "Return only the encrypted data key");
  CLI::Option* bytes =
      data_key->add_option("--bytes", args->bytes, "Data key size in bytes (1-1024)")
          ->check(UnsignedInteger());
  data_key->add_option("--key-spec", args->key_spec, "AES_256 (default) or AES_128")
      ->excludes(bytes);

  CLI::App* random = AddCommand(app, invocation, "random",
                                "Random bytes from the token's generator", Random, args);
  random->add_option("--bytes", args->bytes, "Number of bytes (1-1024)")
      ->required()
      ->check(UnsignedInteger());
  random->add_option("--out", args->out, "Output file (default: stdout)");
}

}  // namespace kmsd::kmsctl
