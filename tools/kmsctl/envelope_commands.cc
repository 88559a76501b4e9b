// kmsctl envelope encrypt | decrypt: messages in the AWS Encryption SDK
// format (client/esdk/), streamed from --in to --out (docs/CLI.md).
//
// The keyrings, context and output path are checked before anything is
// read or sent (usage errors). Output goes to a temporary file renamed over
// --out only when the whole message is done and, on decrypt, authenticated
// (every frame, and a signed message's signature): a failed command leaves
// --out as it was. To stdout, decrypt releases each frame once its tag
// authenticates and checks a signature at the end; the exit status says
// whether all of it was good. On success with --out, a summary is printed.
#include <openssl/crypto.h>
#include <unistd.h>

#include <memory>

#include "client/esdk/message.h"
#include "tools/kmsctl/io.h"
#include "tools/kmsctl/keyring_spec.h"
#include "tools/kmsctl/progress.h"

namespace kmsd::kmsctl {
namespace {

constexpr size_t kReadChunk = 1 << 20;

struct EnvelopeArgs {
  std::vector<std::string> keyrings;
  std::vector<std::string> context;
  std::string suite = "committing";
  uint32_t frame_size = esdk::kDefaultFrameLength;
  std::string commitment_policy = "require";
  std::string rsa_padding = "oaep-sha256";
  size_t max_edks = esdk::HeaderLimits{}.max_edks;
  std::string in;
  std::string out;
};

struct EnvelopeInputs {
  std::unique_ptr<esdk::Keyring> keyring;
  EncryptionContext context;
  InputStream input;
};

Result<EnvelopeInputs> Prepare(Invocation& invocation, const EnvelopeArgs& a) {
  if (invocation.output().json() && IsStdio(a.out)) {
    return Error(invocation.AsUsage(
        Status(Code::kInvalidArgument, "--json prints a summary: give the data an --out file")));
  }
  ASSIGN_OR_RETURN(EncryptionContext context, invocation.AsUsage(ParseContext(a.context)));
  RETURN_IF_ERROR(invocation.AsUsage(CheckOutputPath(a.out)));
  const auto padding = esdk::RsaPaddingNamed(a.rsa_padding);
  if (!padding) {
    return Error(invocation.AsUsage(Status(Code::kInvalidArgument,
                                           "--rsa-padding is oaep-sha1, oaep-sha256, "
                                           "oaep-sha384, oaep-sha512 or pkcs1")));
  }
  ASSIGN_OR_RETURN(auto keyring, KeyringFromSpecs(invocation, a.keyrings, *padding));
  ASSIGN_OR_RETURN(InputStream input, invocation.AsUsage(InputStream::Open(a.in)));
  return EnvelopeInputs{std::move(keyring), std::move(context), std::move(input)};
}

// Reads all of `input` into `write`, counting for `progress`.
template <typename Write>
Status Pump(InputStream& input, Progress& progress, Write write) {
  std::vector<uint8_t> chunk(kReadChunk);
  Status status;
  while (status.ok()) {
    auto n = input.Read(chunk);
    if (!n.has_value()) {
      status = n.error();
    } else if (*n == 0) {
      break;
    } else {
      status = write(std::span<const uint8_t>(chunk.data(), *n));
      progress.Add(*n);
    }
  }
  OPENSSL_cleanse(chunk.data(), chunk.size());  // it may have held plaintext
  return status;
}

// Progress on stderr, unless it is JSON output or would write over data
// going to the same terminal.
bool ShowProgress(const Invocation& invocation, const EnvelopeArgs& a) {
  return !invocation.output().json() && !(IsStdio(a.out) && ::isatty(STDOUT_FILENO) == 1);
}

std::string SuiteText(uint16_t id) {
  char text[8];
  std::snprintf(text, sizeof text, "0x%04x", id);
  return text;
}

Status Summarize(Invocation& invocation, const EnvelopeArgs& a, const esdk::Header& header,
                 uint64_t in_bytes, uint64_t out_bytes, bool decrypt) {
  if (IsStdio(a.out)) return OkStatus();
  Json context = Json::object();
  for (const auto& [key, value] : header.context) context[key] = value;
  Json summary = {{"suite", SuiteText(header.suite->id)},
                  {"message_version", header.suite->message_version},
                  {"frame_length", header.frame_length},
                  {"encrypted_data_keys", header.edks.size()},
                  {"context", std::move(context)},
                  {decrypt ? "message_bytes" : "plaintext_bytes", in_bytes},
                  {decrypt ? "plaintext_bytes" : "message_bytes", out_bytes}};
  return invocation.output().Object(std::move(summary));
}

Status EnvelopeEncrypt(Invocation& invocation, const EnvelopeArgs& a) {
  if (a.suite != "committing" && a.suite != "committing-signed") {
    return invocation.AsUsage(
        Status(Code::kInvalidArgument, "--suite is committing or committing-signed"));
  }
  ASSIGN_OR_RETURN(EnvelopeInputs prepared, Prepare(invocation, a));
  esdk::KeyringMaterials materials(*prepared.keyring);
  ASSIGN_OR_RETURN(OutputStream out, OutputStream::Open(a.out));
  uint64_t written = 0;
  const esdk::EncryptOptions options{
      .suite_id = a.suite == "committing" ? esdk::kCommittingSuite : esdk::kCommittingSignedSuite,
      .frame_length = a.frame_size,
      .context = std::move(prepared.context),
      .plaintext_bytes = prepared.input.size()};
  ASSIGN_OR_RETURN(auto encryptor,
                   esdk::Encryptor::Start(materials, options, [&](std::span<const uint8_t> bytes) {
                     written += bytes.size();
                     return out.Write(bytes);
                   }));
  Progress progress(ShowProgress(invocation, a), "encrypting", prepared.input.size());
  uint64_t read = 0;
  RETURN_IF_ERROR(Pump(prepared.input, progress, [&](std::span<const uint8_t> bytes) {
    read += bytes.size();
    return encryptor->Write(bytes);
  }));
  RETURN_IF_ERROR(encryptor->Finish());
  progress.Finish();
  RETURN_IF_ERROR(out.Commit());
  return Summarize(invocation, a, encryptor->header(), read, written, false);
}

Status EnvelopeDecrypt(Invocation& invocation, const EnvelopeArgs& a) {
  const auto policy = esdk::CommitmentPolicyNamed(a.commitment_policy);
  if (!policy) {
    return invocation.AsUsage(
        Status(Code::kInvalidArgument, "--commitment-policy is require or allow-v1"));
  }
  ASSIGN_OR_RETURN(EnvelopeInputs prepared, Prepare(invocation, a));
  esdk::KeyringMaterials materials(*prepared.keyring);
  ASSIGN_OR_RETURN(OutputStream out, OutputStream::Open(a.out));
  esdk::DecryptOptions options;
  options.policy = *policy;
  options.limits.max_edks = a.max_edks;
  options.required_context = std::move(prepared.context);
  uint64_t written = 0;
  esdk::Decryptor decryptor(materials, options, [&](std::span<const uint8_t> bytes) {
    written += bytes.size();
    return out.Write(bytes);
  });
  Progress progress(ShowProgress(invocation, a), "decrypting", prepared.input.size());
  uint64_t read = 0;
  RETURN_IF_ERROR(Pump(prepared.input, progress, [&](std::span<const uint8_t> bytes) {
    read += bytes.size();
    return decryptor.Write(bytes);
  }));
  RETURN_IF_ERROR(decryptor.Finish());
  progress.Finish();
  RETURN_IF_ERROR(out.Commit());
  return Summarize(invocation, a, *decryptor.header(), read, written, true);
}

void AddCommonOptions(CLI::App* command, EnvelopeArgs& args) {
  command
      ->add_option("--keyring", args.keyrings,
                   "kmsd:TENANT/KEY, raw-aes:NAMESPACE/NAME:KEYFILE or "
                   "raw-rsa:NAMESPACE/NAME:PEMFILE (repeatable; the first generates)")
      ->required()
      ->allow_extra_args(false);
  AddContextOption(command, "--context", &args.context,
                   "Encryption context pair (repeatable); on decrypt, a pair the message's "
                   "context must hold");
  command->add_option("--rsa-padding", args.rsa_padding,
                      "RSA padding of raw-rsa keyrings: oaep-sha1, oaep-sha256 (default), "
                      "oaep-sha384, oaep-sha512 or pkcs1 (decrypt only)");
  command->add_option("--in", args.in, "Input file (default: stdin)");
  command->add_option("--out", args.out, "Output file, written only on success (default: stdout)");
}

}  // namespace

void AddEnvelopeCommands(CLI::App& app, Invocation& invocation) {
  CLI::App* group = app.add_subcommand(
      "envelope", "Encrypt and decrypt data locally in the AWS Encryption SDK message format");
  group->require_subcommand(1);
  auto encrypt_args = std::make_shared<EnvelopeArgs>();
  CLI::App* encrypt = group->add_subcommand("encrypt", "Encrypt --in into a message");
  AddCommonOptions(encrypt, *encrypt_args);
  encrypt->add_option("--suite", encrypt_args->suite,
                      "committing (0x0478, default) or committing-signed (0x0578, ECDSA P-384)");
  encrypt->add_option("--frame-size", encrypt_args->frame_size, "Bytes per frame (default 4096)")
      ->check(CLI::Range(uint32_t{1}, uint32_t{64} << 20));
  encrypt->callback([&invocation, encrypt_args] {
    invocation.Select(
        [&invocation, encrypt_args] { return EnvelopeEncrypt(invocation, *encrypt_args); });
  });
  auto decrypt_args = std::make_shared<EnvelopeArgs>();
  CLI::App* decrypt = group->add_subcommand("decrypt", "Decrypt the message in --in");
  AddCommonOptions(decrypt, *decrypt_args);
  decrypt->add_option("--commitment-policy", decrypt_args->commitment_policy,
                      "require (default: committing suites only) or allow-v1 (also version 1 "
                      "messages of older SDKs)");
  decrypt
      ->add_option("--max-encrypted-data-keys", decrypt_args->max_edks,
                   "Refuse messages with more EDKs (default 16)")
      ->check(CLI::Range(size_t{1}, size_t{65535}));
  decrypt->callback([&invocation, decrypt_args] {
    invocation.Select(
        [&invocation, decrypt_args] { return EnvelopeDecrypt(invocation, *decrypt_args); });
  });
}

}  // namespace kmsd::kmsctl
