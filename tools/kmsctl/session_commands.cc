// kmsctl's session and MFA commands (docs/CLI.md, "Sessions and MFA"):
// login, logout, session list|revoke and mfa enroll.
//
// login sends session.login with the principal's API key, never with a
// session, and stores the token kmsd gives once in a session file: the
// --session-file FILE, else $XDG_RUNTIME_DIR/kmsctl/session-TENANT.PRINCIPAL
// (the directory made 0700 when missing, and refused unless it is this
// user's and private). The file is written 0600 through a new temporary file
// renamed over it (io.h's WriteOutput), never through a symlink. The token is
// printed only with --json, which stores no file. logout sends session.logout
// with the session of its file and removes the file once the session is gone.
// mfa enroll prints the TOTP seed, its otpauth:// URI and the URI as a QR code
// (libqrencode) for an authenticator app to scan.
#include <qrencode.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "protocol/names.h"
#include "protocol/session_types.h"
#include "tools/kmsctl/cli.h"
#include "tools/kmsctl/io.h"

namespace kmsd::kmsctl {
namespace {

// Positional and option values of one command, kept alive for its callback.
struct SessionArgs {
  std::string tenant;
  std::string principal;            // login, logout, mfa enroll
  std::optional<std::string> totp;  // login --totp
  std::string id;                   // session revoke
};

constexpr std::array<Column, 7> kSessionColumns = {{{"ID", wire::kId},
                                                    {"PRINCIPAL", wire::kPrincipal},
                                                    {"API_KEY", wire::kApiKeyId},
                                                    {"MFA", wire::kMfa},
                                                    {"CREATED", wire::kCreatedAt},
                                                    {"LAST_USED", wire::kLastUsedAt},
                                                    {"IDLE_TIMEOUT", wire::kIdleTimeoutSeconds}}};

// The directory under $XDG_RUNTIME_DIR holding default session files.
constexpr std::string_view kSessionDirectory = "kmsctl";

Status Invalid(std::string message) { return Status(Code::kInvalidArgument, std::move(message)); }

// The digits of a TOTP code (policy/totp.h).
constexpr size_t kTotpDigits = 6;

bool IsTotpCode(std::string_view code) {
  return code.size() == kTotpDigits &&
         code.find_first_not_of("0123456789") == std::string_view::npos;
}

// `directory` must be a directory (not a symlink to one) of this user that
// no one else may enter: a session file in it is as private as the file.
Status CheckPrivateDirectory(const std::string& directory) {
  struct stat info {};
  if (::lstat(directory.c_str(), &info) != 0) {
    return Invalid("cannot use directory '" + directory + "': " + std::strerror(errno));
  }
  if (!S_ISDIR(info.st_mode) || info.st_uid != ::geteuid() || (info.st_mode & 077) != 0) {
    return Invalid("directory '" + directory +
                   "' for session files must be a directory of this user with mode 0700; fix it "
                   "or give --session-file FILE");
  }
  return OkStatus();
}

// $XDG_RUNTIME_DIR/kmsctl/session-TENANT.PRINCIPAL; with `create`, the
// directory is made when missing and must be private. `otherwise` says what
// to give instead when XDG_RUNTIME_DIR is not set.
Result<std::string> DefaultSessionPath(const SessionArgs& a, bool create,
                                       std::string_view otherwise) {
  // The names become a file name: only kmsd's names, never "../x".
  RETURN_IF_ERROR(ValidateTenantName(a.tenant));
  RETURN_IF_ERROR(ValidatePrincipalName(a.principal));
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  if (runtime == nullptr || *runtime == '\0') {
    return Error(
        Invalid("no session file: XDG_RUNTIME_DIR is not set; give " + std::string(otherwise)));
  }
  const std::string directory = std::string(runtime) + "/" + std::string(kSessionDirectory);
  if (create) {
    if (::mkdir(directory.c_str(), 0700) != 0 && errno != EEXIST) {
      return Error(Invalid("cannot make directory '" + directory + "': " + std::strerror(errno)));
    }
    RETURN_IF_ERROR(CheckPrivateDirectory(directory));
  }
  // '.' is in no name: tenant a-b with c and tenant a with b-c differ.
  return directory + "/session-" + a.tenant + "." + a.principal;
}

// Where login stores the session: --session-file, else the default path.
// Checked (and the default directory made) before anything is sent, since
// the token cannot be asked for again.
Result<std::string> LoginPath(Invocation& invocation, const SessionArgs& a) {
  const std::optional<std::string>& file = invocation.options().session_file;
  if (!file) {
    return DefaultSessionPath(a, /*create=*/true,
                              "--session-file FILE to store the session in, or --json to print it");
  }
  if (IsStdio(*file)) {
    return Error(Invalid("--session-file must name a file; --json prints the session instead"));
  }
  RETURN_IF_ERROR(CheckOutputPath(*file));
  return *file;
}

// The session file logout ends: --session-file, else $KMSD_SESSION_FILE,
// else the default path of --tenant and --principal.
Result<std::string> LogoutPath(Invocation& invocation, const SessionArgs& a) {
  if (invocation.options().session_file) return *invocation.options().session_file;
  const char* from_environment = std::getenv(std::string(kSessionFileEnvironment).c_str());
  if (from_environment != nullptr && *from_environment != '\0') {
    return std::string(from_environment);
  }
  if (a.principal.empty()) {
    return Error(Invalid("no session file: give --session-file FILE, set " +
                         std::string(kSessionFileEnvironment) +
                         ", or give --principal for the file login stored"));
  }
  return DefaultSessionPath(a, /*create=*/false,
                            "--session-file FILE or set " + std::string(kSessionFileEnvironment));
}

// The token of `reply`, with a newline, to `path`.
Status StoreSession(const Reply& reply, const std::string& path) {
  ASSIGN_OR_RETURN(std::span<const uint8_t> token,
                   FromReply(reply.result().Binary(wire::kSession)));
  SecretBuffer line(token.size() + 1);
  std::memcpy(line.RevealMutableData(), token.data(), token.size());
  line.RevealMutableData()[token.size()] = '\n';
  return WriteOutput(path, line.RevealSpan());
}

// The reply's fields but the token.
Json Description(const Reply& reply) {
  Json object = ToJson(reply.result());
  const auto token = object.find(wire::kSession);
  if (token != object.end()) {
    WipeJson(*token);
    object.erase(token);
  }
  return object;
}

Status Login(Invocation& invocation, const SessionArgs& a) {
  if (a.totp && !IsTotpCode(*a.totp)) {
    return invocation.AsUsage(Invalid("--totp must be the 6 digits the authenticator app shows"));
  }
  if (!invocation.has_credential()) {
    return invocation.AsUsage(
        Invalid("login needs the principal's API key: give --api-key-file FILE or set " +
                std::string(kApiKeyEnvironment)));
  }
  const bool json = invocation.output().json();
  if (json && invocation.options().session_file) {
    return invocation.AsUsage(
        Invalid("--json prints the session and stores no file: give --json or --session-file"));
  }
  std::string path;
  if (!json) {
    ASSIGN_OR_RETURN(path, invocation.AsUsage(LoginPath(invocation, a)));
  }
  using Totp = std::optional<std::string_view>;
  ASSIGN_OR_RETURN(Reply reply, invocation.Send<ops::SessionLogin>(
                                    a.tenant, {.principal = a.principal,
                                               .totp = a.totp ? Totp(*a.totp) : Totp()}));
  if (json) {
    constexpr std::array<std::string_view, 1> kAsText = {wire::kSession};
    ASSIGN_OR_RETURN(Json object, WithBinaryAsText(reply, kAsText));
    return invocation.output().Object(std::move(object));
  }
  if (Status stored = StoreSession(reply, path); !stored.ok()) {
    return Status(Code::kInternal, stored.message() + "; the session is open until it idles out " +
                                       "or is revoked (kmsctl session list, session revoke)");
  }
  RETURN_IF_ERROR(invocation.output().Object(Description(reply)));
  Output::Stderr("kmsctl: session stored in " + path + "; use it with --session-file " + path +
                 " or " + std::string(kSessionFileEnvironment) + "=" + path + "\n");
  return OkStatus();
}

// Whether kmsd's refusal of logout says the session is over (docs/PROTOCOL.md,
// "Sessions and MFA"): ACCESS_DENIED "the session is not valid" (ended,
// revoked, unknown), "session ID expired: idle too long", or the key it was
// opened with gone ("the API key is not valid", "API key ID was revoked",
// "API key ID has expired"). Other refusals (a tenant not the session's, a
// peer locked out or not bound to the principal, kmsd closing the
// connection) leave the session live, and its file is kept.
bool SessionIsGone(const Status& status) {
  const std::string_view message = status.message();
  const auto named = [&](std::string_view prefix, std::string_view suffix) {
    return message.starts_with(prefix) && message.ends_with(suffix);
  };
  return status.code() == Code::kAccessDenied &&
         (message == "the session is not valid" || message == "the API key is not valid" ||
          named("session ", " expired: idle too long") || named("API key ", " was revoked") ||
          named("API key ", " has expired"));
}

Status RemoveSessionFile(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Status(Code::kInternal,
                  "cannot remove session file '" + path + "': " + std::strerror(errno));
  }
  return OkStatus();
}

Status Logout(Invocation& invocation, const SessionArgs& a) {
  ASSIGN_OR_RETURN(std::string path, invocation.AsUsage(LogoutPath(invocation, a)));
  RETURN_IF_ERROR(invocation.UseSessionFile(path));
  Result<Reply> reply = invocation.Send<ops::SessionLogout>(a.tenant, {});
  if (!reply.has_value()) {
    if (SessionIsGone(reply.error()) && RemoveSessionFile(path).ok() &&
        !invocation.output().json()) {
      Output::Stderr("kmsctl: removed session file " + path + "\n");
    }
    return reply.error();
  }
  RETURN_IF_ERROR(RemoveSessionFile(path));
  return invocation.output().Object(ToJson(reply->result()));
}

Status SessionList(Invocation& invocation, const SessionArgs& a) {
  ASSIGN_OR_RETURN(Reply reply, invocation.Send<ops::SessionList>(a.tenant, {}));
  return invocation.output().Table(ToJson(reply.result()), wire::kSessions, kSessionColumns);
}

Status SessionRevoke(Invocation& invocation, const SessionArgs& a) {
  ASSIGN_OR_RETURN(Reply reply, invocation.Send<ops::SessionRevoke>(a.tenant, {.id = a.id}));
  return invocation.output().Object(ToJson(reply.result()));
}

// The QR code of the NUL-terminated `text` (error correction level M, 8-bit
// mode) in Unicode half blocks: one character per module column, two module
// rows per line, with a quiet zone of 2 modules all round. Light modules (and
// the quiet zone) are drawn as the terminal's foreground and dark modules
// left as its background, so the code scans on the usual light-on-dark
// terminal (phone scanners also read it inverted, on a light one):
// '█' light above and below, '▀' light above only, '▄' light below only,
// ' ' dark both. The modules and the text encode the seed: they are wiped
// (libqrencode's own work buffers are not).
Result<WipingBuffer> QrCodeText(const SecretBuffer& text) {
  constexpr int kQuietZone = 2;
  QRcode* code = QRcode_encodeString(reinterpret_cast<const char*>(text.RevealData()), 0,
                                     QR_ECLEVEL_M, QR_MODE_8, /*casesensitive=*/1);
  if (code == nullptr) {
    return Error(Code::kInternal,
                 "cannot draw the URI as a QR code: " + std::string(std::strerror(errno)));
  }
  const int width = code->width;
  const auto light = [&](int row, int column) {
    row -= kQuietZone;
    column -= kQuietZone;
    if (row < 0 || row >= width || column < 0 || column >= width) return true;
    return (code->data[row * width + column] & 1) == 0;  // bit 0: dark module
  };
  constexpr std::array<std::string_view, 4> kBlocks = {" ", "▄", "▀", "█"};
  WipingBuffer out;
  const int size = width + 2 * kQuietZone;
  for (int row = 0; row < size; row += 2) {
    for (int column = 0; column < size; ++column) {
      // Past the last row (an odd count) is more quiet zone.
      const std::string_view block =
          kBlocks[(light(row, column) ? 2 : 0) + (light(row + 1, column) ? 1 : 0)];
      out.write(block.data(), block.size());
    }
    out.write("\n", 1);
  }
  WipeMemory(code->data, static_cast<size_t>(width) * static_cast<size_t>(width));
  QRcode_free(code);
  return out;
}

Status MfaEnroll(Invocation& invocation, const SessionArgs& a) {
  ASSIGN_OR_RETURN(Reply reply,
                   invocation.Send<ops::MfaEnroll>(a.tenant, {.principal = a.principal}));
  constexpr std::array<std::string_view, 2> kAsText = {wire::kSecret, wire::kOtpauthUri};
  ASSIGN_OR_RETURN(Json object, WithBinaryAsText(reply, kAsText));
  const Output output = invocation.output();
  RETURN_IF_ERROR(output.Object(std::move(object)));
  if (output.json()) return OkStatus();
  ASSIGN_OR_RETURN(std::span<const uint8_t> uri,
                   FromReply(reply.result().Binary(wire::kOtpauthUri)));
  SecretBuffer terminated(uri.size() + 1);
  std::memcpy(terminated.RevealMutableData(), uri.data(), uri.size());
  terminated.RevealMutableData()[uri.size()] = '\0';
  ASSIGN_OR_RETURN(WipingBuffer qr, QrCodeText(terminated));
  RETURN_IF_ERROR(WriteAll(STDOUT_FILENO, qr.span(), "to stdout"));
  Output::Stderr(
      "kmsctl: the TOTP seed is shown this once: add it to the principal's authenticator app now "
      "(scan the QR code or enter the secret)\n");
  return OkStatus();
}

void AddPrincipalOption(CLI::App* command, SessionArgs* args, std::string description,
                        bool required) {
  CLI::Option* option = command->add_option("--principal", args->principal, description);
  if (required) option->required();
}

// --session-file after the command too: the same option as the global one.
void AddSessionFileOption(CLI::App* command, Invocation& invocation, std::string description) {
  command
      ->add_option_function<std::string>(
          "--session-file",
          [&invocation](const std::string& path) { invocation.options().session_file = path; },
          std::move(description))
      ->type_name("FILE");
}

void AddLoginCommands(CLI::App& app, Invocation& invocation,
                      const std::shared_ptr<SessionArgs>& args) {
  CLI::App* login = AddTenantCommand(
      &app, invocation, "login",
      "Open a session with the principal's API key (--api-key-file or $" +
          std::string(kApiKeyEnvironment) + ") and store its token in a private file",
      Login, args, Credentials::kApiKeyOnly);
  AddPrincipalOption(login, args.get(), "The API key's principal", /*required=*/true);
  login
      ->add_option_function<std::string>(
          "--totp", [args](const std::string& code) { args->totp = code; },
          "The 6-digit code of the principal's authenticator app (when it has enrolled)")
      ->type_name("CODE");
  AddSessionFileOption(login, invocation,
                       "File to store the token in, made 0600 (default: "
                       "$XDG_RUNTIME_DIR/kmsctl/session-TENANT.PRINCIPAL)");

  CLI::App* logout = AddTenantCommand(&app, invocation, "logout",
                                      "End the session of a session file and remove the file",
                                      Logout, args, Credentials::kByCommand);
  AddPrincipalOption(logout, args.get(), "Principal whose default session file to use",
                     /*required=*/false);
  AddSessionFileOption(logout, invocation,
                       "Session file (default: $" + std::string(kSessionFileEnvironment) +
                           ", else $XDG_RUNTIME_DIR/kmsctl/session-TENANT.PRINCIPAL)");
}

}  // namespace

void AddSessionCommands(CLI::App& app, Invocation& invocation) {
  auto args = std::make_shared<SessionArgs>();
  AddLoginCommands(app, invocation, args);

  CLI::App* session = app.add_subcommand("session", "List and revoke a tenant's sessions");
  session->require_subcommand(1);
  AddTenantCommand(session, invocation, "list", "List the tenant's sessions (never their tokens)",
                   SessionList, args);
  AddTenantCommand(session, invocation, "revoke", "End a session at once", SessionRevoke, args)
      ->add_option("ID", args->id, "Session id (16 hex digits, as session list shows)")
      ->required();

  CLI::App* mfa = app.add_subcommand("mfa", "Enroll a tenant's principals in TOTP MFA");
  mfa->require_subcommand(1);
  AddPrincipalOption(
      AddTenantCommand(mfa, invocation, "enroll",
                       "Give a principal a new TOTP seed and print it, this once only, with its "
                       "otpauth:// URI as a QR code",
                       MfaEnroll, args),
      args.get(), "Principal to enroll", /*required=*/true);
}

}  // namespace kmsd::kmsctl
