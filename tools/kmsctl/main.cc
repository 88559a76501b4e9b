// kmsctl: the operator command line of kmsd (docs/CLI.md).
//
//   kmsctl [--socket PATH] [--api-key-file FILE | --session-file FILE] [--json]
//          [--timeout SECONDS] GROUP VERB ...
#include <CLI/CLI.hpp>
#include <exception>
#include <string_view>

#include "tools/kmsctl/cli.h"

namespace {

// Whether --json was on the command line, for reporting a parse error in the
// requested form even when the parser stopped before reaching it.
bool JsonRequested(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") return false;
    if (arg == "--json") return true;
  }
  return false;
}

int Main(int argc, char** argv) {
  using namespace kmsd::kmsctl;
  Invocation invocation;
  GlobalOptions& options = invocation.options();

  CLI::App app("kmsctl: the operator command line of kmsd, the key-management daemon", "kmsctl");
  app.set_version_flag("--version", KMSD_VERSION);
  app.require_subcommand(1);
  app.fallthrough();  // global options are accepted after the command too
  app.add_option(
      "--socket", options.socket,
      "kmsd's socket (default: $KMSD_SOCKET, else " + std::string(kmsd::kDefaultSocketPath) + ")");
  const std::string credential_order = "; used first: --api-key-file, --session-file, $" +
                                       std::string(kApiKeyEnvironment) + ", $" +
                                       std::string(kSessionFileEnvironment) + ")";
  app.add_option_function<std::string>(
      "--api-key-file", [&options](const std::string& path) { options.api_key_file = path; },
      "File holding the API key to call as (mode 0600 or stricter" + credential_order);
  app.add_option_function<std::string>(
      "--session-file", [&options](const std::string& path) { options.session_file = path; },
      "File holding the session token (kmsctl login) to call with (mode 0600 or stricter" +
          credential_order);
  app.add_flag("--json", options.json, "Print one JSON object on stdout");
  app.add_option("--timeout", options.timeout_seconds, "Seconds to wait for kmsd")
      ->check(CLI::Range(0.001, kMaxTimeoutSeconds))
      ->capture_default_str();
  app.add_option("--max-frame-bytes", options.max_frame_bytes,
                 "Largest request to send; kmsd's limits.max_frame_bytes")
      ->check(CLI::Range(size_t{1024}, size_t{64} << 20))
      ->capture_default_str();
  AddStatusCommand(app, invocation);
  AddAdminCommands(app, invocation);
  AddCryptoCommands(app, invocation);
  AddBatchCommands(app, invocation);
  AddAccessCommands(app, invocation);
  AddRoleAndGrantCommands(app, invocation);
  AddSessionCommands(app, invocation);
  AddAuditCommands(app, invocation);
  AddEnvelopeCommands(app, invocation);
  AddFileCommands(app, invocation);
  AddBackupCommands(app, invocation);
  AddRewrapCommand(*app.get_subcommand("key"), invocation);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    return invocation.ReportUsage(e.what(), JsonRequested(argc, argv));
  }
  return invocation.Run();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    kmsd::kmsctl::Output(JsonRequested(argc, argv))
        .Error(kmsd::Status(kmsd::Code::kInternal, e.what()));
    return kmsd::ExitCodeFor(kmsd::Code::kInternal);
  }
}
