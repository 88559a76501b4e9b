// kmsctl's shared pieces: the global options, Invocation (one run of the
// tool: the selected command, the connection to kmsd, how a failure is
// reported) and the helpers every command uses.
//
// The credential, when one is given, is read before the command runs: an API
// key or a session token (kmsctl login), whichever is found first of the file
// --api-key-file names, the file --session-file names, $KMSD_API_KEY and the
// file $KMSD_SESSION_FILE names (files must be private to their owner). It is
// held in a SecretBuffer and handed to the Connection, which sends it with
// every request. Never a command-line argument. login reads only an API key,
// logout only its session file (Credentials).
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
#include <span>
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
// The environment variable naming a session file, the last one looked at.
inline constexpr std::string_view kSessionFileEnvironment = "KMSD_SESSION_FILE";
// A credential file larger than this holds no API key or session token (both
// are 68 bytes).
inline constexpr size_t kMaxCredentialFileBytes = 1024;

struct GlobalOptions {
  std::string socket;  // --socket; empty means $KMSD_SOCKET, else the default
  bool json = false;
  double timeout_seconds = 30;
  // The largest request frame sent; match kmsd's limits.max_frame_bytes.
  size_t max_frame_bytes = kmsd::kDefaultMaxRequestBytes;
  // --api-key-file and --session-file; see the top of this file.
  std::optional<std::string> api_key_file;
  std::optional<std::string> session_file;
};

// Which credential Run() reads before the selected command runs.
enum class Credentials {
  kAny,         // --api-key-file, --session-file, $KMSD_API_KEY, $KMSD_SESSION_FILE
  kApiKeyOnly,  // --api-key-file, $KMSD_API_KEY (login: --session-file is its output)
  kByCommand,   // none: the command calls UseSessionFile() (logout)
};

class Invocation {
 public:
  GlobalOptions& options() { return options_; }
  Output output() const { return Output(options_.json); }

  // The command chosen on the command line; Run() calls it.
  void Select(std::function<Status()> action, Credentials credentials = Credentials::kAny) {
    action_ = std::move(action);
    credentials_ = credentials;
  }
  // Whether a credential was read (before the first call sends it).
  bool has_credential() const { return !credential_.empty(); }
  // Reads the session token in `path` as the credential, before the first
  // call; an unusable file is a usage error.
  Status UseSessionFile(const std::string& path);
  // Runs the selected command, reports its failure, returns the exit status.
  int Run();
  // Reports a command line the parser rejected; returns kUsageExitCode.
  int ReportUsage(std::string_view message, bool json);

  // The connection to kmsd, dialed on first use (for the client library's
  // kmsd keyring).
  Result<Connection*> Connect();
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
  // Reads the credential into credential_ (see the top of this file); a file
  // that cannot be used is INVALID_ARGUMENT, reported as a usage error.
  Status LoadCredential();

  GlobalOptions options_;
  SecretBuffer credential_;  // empty: none; moved into the Connection at dial
  std::function<Status()> action_;
  Credentials credentials_ = Credentials::kAny;
  std::unique_ptr<Connection> connection_;
  Failure failure_ = Failure::kStatus;
};

// A key or credential file: a regular file (a FIFO in its place is refused,
// never waited on) of at most `max_bytes`, and, `must_be_private`, not
// accessible by group or others (INVALID_ARGUMENT saying chmod 600). `kind`
// names it in messages ("API key file").
Result<SecretBuffer> ReadKeyFile(std::string_view kind, const std::string& path, size_t max_bytes,
                                 bool must_be_private);

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

// The reply as JSON with its binary `fields` as the text they hold (an API
// key's secret, a session token, a TOTP seed): ToJson() makes every binary
// field base64. The base64 copies are wiped; Output::Object() wipes the text
// after printing it. A field missing or not binary is a malformed reply.
Result<Json> WithBinaryAsText(const Reply& reply, std::span<const std::string_view> fields);

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
                           const std::shared_ptr<Args>& args,
                           Credentials credentials = Credentials::kAny) {
  CLI::App* command = group->add_subcommand(std::move(name), std::move(description));
  AddTenantOption(command, &args->tenant);
  command->callback([&invocation, handler, args, credentials] {
    invocation.Select([&invocation, handler, args] { return handler(invocation, *args); },
                      credentials);
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
// status [--metrics] (status_command.cc).
void AddStatusCommand(CLI::App& app, Invocation& invocation);
void AddCryptoCommands(CLI::App& app, Invocation& invocation);
void AddBatchCommands(CLI::App& app, Invocation& invocation);
// principal and apikey.
void AddAccessCommands(CLI::App& app, Invocation& invocation);
void AddRoleAndGrantCommands(CLI::App& app, Invocation& invocation);
// kmsctl tenant policy, under the `tenant` group AddAdminCommands made.
void AddPolicyCommands(CLI::App* tenant_group, Invocation& invocation);
// kmsctl key rewrap-all, under the `key` group AddAdminCommands made.
void AddRewrapCommand(CLI::App& key_group, Invocation& invocation);
// login, logout, session and mfa.
void AddSessionCommands(CLI::App& app, Invocation& invocation);
// envelope encrypt and decrypt (envelope_commands.cc).
void AddEnvelopeCommands(CLI::App& app, Invocation& invocation);
// file put, get, list, delete and rewrap (file_commands.cc).
void AddFileCommands(CLI::App& app, Invocation& invocation);
// backup create, verify, restore and prune (backup_commands.cc).
void AddBackupCommands(CLI::App& app, Invocation& invocation);
// audit verify, export and report.
void AddAuditCommands(CLI::App& app, Invocation& invocation);
// kmsctl audit report, under the `audit` group (audit_report.cc).
void AddAuditReportCommand(CLI::App* audit_group, Invocation& invocation);

}  // namespace kmsd::kmsctl
