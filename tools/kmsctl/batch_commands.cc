// kmsctl batch encrypt|decrypt and key rewrap-all: one item per input file
// (docs/CLI.md).
//
// batch encrypt writes FILE.enc; batch decrypt writes FILE without its ".enc"
// suffix, or FILE.dec when it has none; key rewrap-all replaces each
// ciphertext FILE by its re-encryption under the newest version of its key,
// in calls of up to 1024 files. Outputs are replaced atomically. Every file is
// read and every output path checked before the first call (a failure is a
// usage error). A failed item is reported and the others still written; the
// exit status is then that of the first failed item's code.
#include <filesystem>
#include <memory>

#include "tools/kmsctl/cli.h"
#include "tools/kmsctl/io.h"

namespace kmsd::kmsctl {
namespace {

enum class Mode { kEncrypt, kDecrypt, kRewrap };

struct BatchArgs {
  std::string tenant;
  std::string key;
  std::vector<std::string> context;
  std::vector<std::string> files;
};

std::string OutputName(const std::string& file, Mode mode) {
  if (mode == Mode::kEncrypt) return file + ".enc";
  if (mode == Mode::kRewrap) return file;  // in place
  constexpr std::string_view kSuffix = ".enc";
  const std::string base = std::filesystem::path(file).filename().string();
  if (base.size() > kSuffix.size() && base.ends_with(kSuffix)) {
    return file.substr(0, file.size() - kSuffix.size());
  }
  return file + ".dec";
}

struct Item {
  std::string file;
  std::string output;
  SecretBuffer input;
};

Result<std::vector<Item>> ReadItems(Invocation& invocation, const BatchArgs& a, Mode mode) {
  if (mode != Mode::kRewrap && a.files.size() > kMaxBatchItems) {
    RETURN_IF_ERROR(invocation.AsUsage(Status(
        Code::kInvalidArgument, "at most " + std::to_string(kMaxBatchItems) + " files per batch")));
  }
  std::vector<Item> items;
  for (const std::string& file : a.files) {
    Item item{file, OutputName(file, mode), {}};
    RETURN_IF_ERROR(invocation.AsUsage(CheckOutputPath(item.output)));
    ASSIGN_OR_RETURN(item.input, invocation.AsUsage(ReadInput(file)));
    items.push_back(std::move(item));
  }
  return items;
}

// Handles one entry of the reply's `results`: writes the output file and
// returns the JSON line for it; `failure` receives the item's error.
Json HandleResult(const msgpack::object& object, const Item& item, std::string_view field,
                  Status* failure) {
  Json entry = Json::object();
  entry["file"] = item.file;
  Status status = [&]() -> Status {
    ASSIGN_OR_RETURN(Fields result, FromReply(Fields::Of(object, "result item")));
    ASSIGN_OR_RETURN(bool ok, FromReply(result.OptionalBool("ok", false)));
    if (!ok) {
      ASSIGN_OR_RETURN(Fields error, FromReply(result.Map("error")));
      Status item_status;
      if (Status malformed = DecodeError(error, &item_status); !malformed.ok()) {
        return MalformedReply(malformed);
      }
      return item_status;
    }
    ASSIGN_OR_RETURN(std::span<const uint8_t> bytes, FromReply(result.Binary(field)));
    RETURN_IF_ERROR(WriteOutput(item.output, bytes));
    entry["output"] = item.output;
    Json rest = ToJson(result);
    rest.erase(std::string(field));
    for (auto& [key, value] : rest.items()) entry[key] = std::move(value);
    return OkStatus();
  }();
  if (!status.ok()) {
    entry["ok"] = false;
    entry["error"]["code"] = std::string(CodeName(status.code()));
    entry["error"]["message"] = status.message();
    entry["error"]["class"] = std::string(ErrorClassName(status.error_class()));
  }
  *failure = std::move(status);
  return entry;
}

void PrintHuman(const Json& entry, const Status& status) {
  const std::string file = Output::Printable(entry["file"].get<std::string>());
  if (status.ok()) {
    (void)Output::Stdout(file + " -> " + Output::Printable(entry["output"].get<std::string>()) +
                         "\n");
    return;
  }
  Output::Stderr("kmsctl: " + file + ": " + std::string(CodeName(status.code())) + ": " +
                 Output::Printable(status.message()) + "\n");
}

// Sends items[begin, end) in one call; returns one JSON line per item.
Status CallChunk(Invocation& invocation, const BatchArgs& a, Mode mode,
                 const EncryptionContext& context, std::vector<Item>& items, size_t begin,
                 size_t end, Json& lines, Status& first_failure) {
  const std::string_view field = mode == Mode::kDecrypt ? wire::kPlaintext : wire::kCiphertext;
  auto request = [&]() -> Result<Reply> {
    if (mode == Mode::kEncrypt) {
      ops::BatchEncryptRequest batch{.key = a.key, .items = {}};
      for (size_t i = begin; i < end; ++i) {
        batch.items.items.push_back({.plaintext = items[i].input.RevealSpan(), .context = context});
      }
      return invocation.Send<ops::BatchEncrypt>(a.tenant, std::move(batch));
    }
    BatchItems<ops::CiphertextItem> ciphertexts;
    for (size_t i = begin; i < end; ++i) {
      ciphertexts.items.push_back({.ciphertext = items[i].input.RevealSpan(), .context = context});
    }
    if (mode == Mode::kDecrypt) {
      return invocation.Send<ops::BatchDecrypt>(a.tenant, {.items = std::move(ciphertexts)});
    }
    return invocation.Send<ops::BatchReEncrypt>(
        a.tenant, {.items = std::move(ciphertexts), .destination_key = std::nullopt});
  };
  ASSIGN_OR_RETURN(Reply reply, request());
  ASSIGN_OR_RETURN(std::span<const msgpack::object> results,
                   FromReply(reply.result().Array(wire::kResults)));
  if (results.size() != end - begin) {
    return MalformedReply(Status(Code::kInternal, "'results' does not have one entry per item"));
  }
  const Output output = invocation.output();
  for (size_t i = begin; i < end; ++i) {
    Status status;
    Json entry = HandleResult(results[i - begin], items[i], field, &status);
    if (!output.json()) PrintHuman(entry, status);
    if (first_failure.ok()) first_failure = status;
    lines.push_back(std::move(entry));
  }
  return OkStatus();
}

Status RunBatch(Invocation& invocation, const BatchArgs& a, Mode mode) {
  ASSIGN_OR_RETURN(EncryptionContext context, invocation.AsUsage(ParseContext(a.context)));
  ASSIGN_OR_RETURN(std::vector<Item> items, ReadItems(invocation, a, mode));
  Json lines = Json::array();
  Status first_failure;
  for (size_t begin = 0; begin < items.size(); begin += kMaxBatchItems) {
    const size_t end = std::min(items.size(), begin + kMaxBatchItems);
    RETURN_IF_ERROR(
        CallChunk(invocation, a, mode, context, items, begin, end, lines, first_failure));
  }
  if (invocation.output().json()) {
    Json object = Json::object();
    object["results"] = std::move(lines);
    RETURN_IF_ERROR(invocation.output().Object(std::move(object)));
  }
  return invocation.AlreadyReported(first_failure);
}

void AddBatchCommand(CLI::App* group, Invocation& invocation, bool encrypt) {
  const Mode mode = encrypt ? Mode::kEncrypt : Mode::kDecrypt;
  auto args = std::make_shared<BatchArgs>();
  CLI::App* command = group->add_subcommand(
      encrypt ? "encrypt" : "decrypt",
      encrypt ? "Encrypt each FILE to FILE.enc"
              : "Decrypt each FILE.enc to FILE (a FILE without .enc to FILE.dec)");
  AddTenantOption(command, &args->tenant);
  if (encrypt) command->add_option("--key", args->key, "Key name or alias")->required();
  AddContextOption(command, "--context", &args->context,
                   "Encryption context entry for every file (repeatable)");
  command->add_option("FILE", args->files, "Input files")->required();
  command->callback([&invocation, args, mode] {
    invocation.Select([&invocation, args, mode] { return RunBatch(invocation, *args, mode); });
  });
}

}  // namespace

void AddBatchCommands(CLI::App& app, Invocation& invocation) {
  CLI::App* group = app.add_subcommand("batch", "Encrypt or decrypt many files in one call");
  group->require_subcommand(1);
  AddBatchCommand(group, invocation, true);
  AddBatchCommand(group, invocation, false);
}

void AddRewrapCommand(CLI::App& key_group, Invocation& invocation) {
  auto args = std::make_shared<BatchArgs>();
  CLI::App* command = key_group.add_subcommand(
      "rewrap-all",
      "Re-encrypt each ciphertext FILE, in place, under the newest version of its key");
  AddTenantOption(command, &args->tenant);
  AddContextOption(command, "--context", &args->context,
                   "Encryption context entry of every file (repeatable)");
  command->add_option("FILE", args->files, "Ciphertext files")->required();
  command->callback([&invocation, args] {
    invocation.Select([&invocation, args] { return RunBatch(invocation, *args, Mode::kRewrap); });
  });
}

}  // namespace kmsd::kmsctl
