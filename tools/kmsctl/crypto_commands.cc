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

void AddContextIfAny(Value::Map& args, std::string_view name, const EncryptionContext& context) {
  if (!context.empty()) args.emplace_back(name, ContextValue(context));
}

Status Encrypt(Invocation& invocation, const CryptoArgs& a) {
  ASSIGN_OR_RETURN(Prepared prepared, Prepare(invocation, a));
  Value::Map args;
  args.emplace_back("key", a.key);
  args.emplace_back("plaintext", std::move(prepared.input));
  AddContextIfAny(args, "context", prepared.context);
  ASSIGN_OR_RETURN(Reply reply, invocation.Call("encrypt", a.tenant, std::move(args)));
  return Emit(invocation, reply, "ciphertext", a.out);
}

Status Decrypt(Invocation& invocation, const CryptoArgs& a) {
  ASSIGN_OR_RETURN(Prepared prepared, Prepare(invocation, a));
  Value::Map args;
  args.emplace_back("ciphertext", std::move(prepared.input));
  AddContextIfAny(args, "context", prepared.context);
  if (!a.key.empty()) args.emplace_back("key", a.key);
  ASSIGN_OR_RETURN(Reply reply, invocation.Call("decrypt", a.tenant, std::move(args)));
  return Emit(invocation, reply, "plaintext", a.out);
}

Status ReEncrypt(Invocation& invocation, const CryptoArgs& a) {
  ASSIGN_OR_RETURN(Prepared prepared, Prepare(invocation, a));
  ASSIGN_OR_RETURN(EncryptionContext destination_context,
                   invocation.AsUsage(ParseContext(a.destination_context)));
  Value::Map args;
  args.emplace_back("ciphertext", std::move(prepared.input));
  AddContextIfAny(args, "context", prepared.context);
  if (!a.destination_key.empty()) args.emplace_back("destination_key", a.destination_key);
  AddContextIfAny(args, "destination_context", destination_context);
  ASSIGN_OR_RETURN(Reply reply, invocation.Call("re-encrypt", a.tenant, std::move(args)));
  return Emit(invocation, reply, "ciphertext", a.out);
}

Status DataKey(Invocation& invocation, const CryptoArgs& a) {
  ASSIGN_OR_RETURN(EncryptionContext context, invocation.AsUsage(ParseContext(a.context)));
  Value::Map args;
  args.emplace_back("key", a.key);
  AddContextIfAny(args, "context", context);
  if (a.bytes.has_value()) args.emplace_back("number_of_bytes", *a.bytes);
  if (!a.key_spec.empty()) args.emplace_back("key_spec", a.key_spec);
  const std::string_view op =
      a.no_plaintext ? "generate-data-key-without-plaintext" : "generate-data-key";
  ASSIGN_OR_RETURN(Reply reply, invocation.Call(op, a.tenant, std::move(args)));
  return invocation.output().Object(ToJson(reply.result()));
}

Status Random(Invocation& invocation, const CryptoArgs& a) {
  RETURN_IF_ERROR(invocation.AsUsage(CheckOutputPath(a.out)));
  Value::Map args;
  args.emplace_back("number_of_bytes", a.bytes.value_or(0));
  ASSIGN_OR_RETURN(Reply reply, invocation.Call("generate-random", {}, std::move(args)));
  return Emit(invocation, reply, "random", a.out);
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
