// kmsctl's shared pieces: the global options, Invocation (one run of the
// tool: the selected command, the connection to kmsd, how a failure is
// reported) and the helpers every command uses.
//
// The API key, when one is given, is read before the command runs: from the
// file --api-key-file names (which must be private to its owner), else from
// $KMSD_API_KEY. It is held in a SecretBuffer and handed to the Connection,
// which sends it with every request. Never a command-line argument.
//
// A run parses the command line (CLI11), whose callback selects one action;
// Invocation::Run() then runs it and turns its Status into output and an exit
// status (docs/CLI.md): 0 on success, 2 for a usage error, ExitCodeFor(code)
// otherwise. Single-threaded; an Invocation lives for the whole process and
// owns its Connection.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/connection.h"
#include "client/typed_call.h"
#include "protocol/ciphertext.h"
#include "protocol/codec.h"
#include "protocol/limits.h"
#include "protocol/operation_types.h"
#include "protocol/secret_buffer.h"
#include "protocol/status.h"
#include "protocol/value.h"
#include "tools/kmsctl/output.h"

namespace kmsd::kmsctl {

// The code reported for usage errors; exit status 2.
inline constexpr std::string_view kUsageCode = "USAGE";
inline constexpr int kUsageExitCode = 2;

// Bounds nng's millisecond timeouts (int32) well inside their range.
inline constexpr double kMaxTimeoutSeconds = 86400;

// The environment variable an API key is read from without --api-key-file.
inline constexpr std::string_view kApiKeyEnvironment = "KMSD_API_KEY";
// An API key file larger than this is not an API key (they are 68 bytes).
inline constexpr size_t kMaxApiKeyFileBytes = 1024;

struct GlobalOptions {
  std::string socket;  // --socket; empty means $KMSD_SOCKET, else the default
  bool json = false;
  double timeout_seconds = 30;
  // The largest request frame sent; match kmsd's limits.max_frame_bytes.
  size_t max_frame_bytes = kmsd::kDefaultMaxRequestBytes;
  // --api-key-file; absent means $KMSD_API_KEY, else no API key.
  std::optional<std::string> api_key_file;
};

class Invocation {
 public:
  GlobalOptions& options() { return options_; }
  Output output() const { return Output(options_.json); }

  // The command chosen on the command line; Run() calls it.
  void Select(std::function<Status()> action) { action_ = std::move(action); }
  // Runs the selected command, reports its failure, returns the exit status.
  int Run();
  // Reports a command line the parser rejected; returns kUsageExitCode.
  int ReportUsage(std::string_view message, bool json);

  // Sends one request, dialing kmsd on first use.
  Result<Reply> Call(std::string_view op, std::string_view tenant, Value::Map args = {});
  // Sends operation Op with its typed request (protocol/operation_types.h).
  template <typename Op>
  Result<Reply> Send(std::string_view tenant, typename Op::Request request) {
    return Call(Op::Name(), tenant, Encode(std::move(request)));
  }

  // Marks a failure found before anything was sent (bad argument value,
  // unreadable input, unusable output path) as a usage error: reported with
  // code USAGE and exit status 2.
  Status AsUsage(Status status);
  template <typename T>
  Result<T> AsUsage(Result<T> result) {
    if (!result.has_value()) failure_ = Failure::kUsage;
    return result;
  }
  // The command already reported `status` in its output (batch items): Run()
  // prints nothing more and exits with its code.
  Status AlreadyReported(Status status);

 private:
  enum class Failure { kStatus, kUsage, kReported };
  // Reads the API key into api_key_ (see the top of this file); a file that
  // cannot be used is INVALID_ARGUMENT, reported as a usage error.
  Status LoadApiKey();

  GlobalOptions options_;
  SecretBuffer api_key_;  // empty: none; moved into the Connection at dial
  std::function<Status()> action_;
  std::unique_ptr<Connection> connection_;
  Failure failure_ = Failure::kStatus;
};

// "k=v" strings (split at the first '=') into a context; INVALID_ARGUMENT
// for an entry without '=' or a key given twice.
Result<EncryptionContext> ParseContext(const std::vector<std::string>& entries);

// "90d", "12h", "15m", "30s": seconds. INVALID_ARGUMENT for anything else,
// zero, or more seconds than a uint64 holds; kmsd checks the bounds.
Result<uint64_t> ParseDuration(std::string_view text);

// For reading a reply's fields: a field kmsd must send but did not, or sent
// with the wrong type, is kmsd's fault (client/typed_call.h's MalformedReply).
template <typename T>
Result<T> FromReply(Result<T> field) {
  if (!field.has_value()) return Error(MalformedReply(field.error()));
  return field;
}

// An empty option value as "not given".
inline std::optional<std::string_view> UnlessEmpty(const std::string& text) {
  if (text.empty()) return std::nullopt;
  return text;
}

// Options shared by several commands.
CLI::Option* AddTenantOption(CLI::App* command, std::string* tenant);

// Adds `name` under `group`, with --tenant; when chosen, it runs `handler` on
// the command's values (`args`, kept alive by the callback).
template <typename Args>
CLI::App* AddTenantCommand(CLI::App* group, Invocation& invocation, std::string name,
                           std::string description, Status (*handler)(Invocation&, const Args&),
                           const std::shared_ptr<Args>& args) {
  CLI::App* command = group->add_subcommand(std::move(name), std::move(description));
  AddTenantOption(command, &args->tenant);
  command->callback([&invocation, handler, args] {
    invocation.Select([&invocation, handler, args] { return handler(invocation, *args); });
  });
  return command;
}
// Repeatable --NAME k=v; one value per occurrence, so that it never swallows
// the positional arguments after it.
CLI::Option* AddContextOption(CLI::App* command, std::string name, std::vector<std::string>* out,
                              std::string description);

// Accepts only decimal digits, for counts (CLI11 would take "-1" as 2^64-1).
CLI::Validator UnsignedInteger();

// The command groups, each in its own file.
void AddAdminCommands(CLI::App& app, Invocation& invocation);
void AddCryptoCommands(CLI::App& app, Invocation& invocation);
void AddBatchCommands(CLI::App& app, Invocation& invocation);
// principal and apikey.
void AddAccessCommands(CLI::App& app, Invocation& invocation);
void AddRoleAndGrantCommands(CLI::App& app, Invocation& invocation);
// kmsctl tenant policy, under the `tenant` group AddAdminCommands made.
void AddPolicyCommands(CLI::App* tenant_group, Invocation& invocation);
// kmsctl key rewrap-all, under the `key` group AddAdminCommands made.
void AddRewrapCommand(CLI::App& key_group, Invocation& invocation);

}  // namespace kmsd::kmsctl
