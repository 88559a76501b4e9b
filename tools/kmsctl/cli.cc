#include "tools/kmsctl/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "protocol/credential_text.h"
#include "protocol/session_types.h"

namespace kmsd::kmsctl {
namespace {

// What a credential file is called in messages: "API key file", "session file".
Status CredentialFileError(std::string_view kind, const std::string& path,
                           std::string_view problem) {
  return Status(Code::kInvalidArgument,
                std::string(kind) + " '" + path + "' " + std::string(problem));
}

// Reads at most max_bytes + 1 bytes of `fd` straight into a SecretBuffer;
// the returned buffer is cut to what was read.
Result<SecretBuffer> ReadCredentialBytes(int fd, std::string_view kind, const std::string& path,
                                         size_t max_bytes) {
  SecretBuffer buffer(max_bytes + 1);
  size_t used = 0;
  while (used < buffer.size()) {
    const ssize_t n = ::read(fd, buffer.RevealMutableData() + used, buffer.size() - used);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return Error(
          CredentialFileError(kind, path, "cannot be read: " + std::string(strerror(errno))));
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  buffer.Shrink(used);
  return buffer;
}

// The open file `fd` must be a regular file not accessible by group or others.
Status CheckCredentialFile(int fd, std::string_view kind, const std::string& path,
                           bool must_be_private = true) {
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    return CredentialFileError(kind, path, "cannot be read: " + std::string(strerror(errno)));
  }
  if (!S_ISREG(info.st_mode)) return CredentialFileError(kind, path, "is not a regular file");
  if (must_be_private && (info.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(info.st_mode & 07777));
    return CredentialFileError(kind, path,
                               "is accessible by group or others (mode " + std::string(mode) +
                                   "); make it private: chmod 600 '" + path + "'");
  }
  return OkStatus();
}

// The credential in `path`, an API key or a session token: its content
// without one trailing newline. The file must be readable, not empty and not
// accessible by group or others.
Result<SecretBuffer> ReadCredentialFile(std::string_view kind, const std::string& path) {
  ASSIGN_OR_RETURN(SecretBuffer secret, ReadKeyFile(kind, path, kMaxCredentialFileBytes, true));
  if (!secret.empty() && secret.RevealData()[secret.size() - 1] == '\n') {
    secret.Shrink(secret.size() - 1);
  }
  if (secret.empty()) return Error(CredentialFileError(kind, path, "is empty"));
  return secret;
}

constexpr std::string_view kApiKeyFile = "API key file";
constexpr std::string_view kSessionFile = "session file";

// The environment variable `name` when set and not empty.
std::optional<std::string_view> Environment(std::string_view name) {
  // getenv's string is the environment's own memory: copied, not wiped.
  const char* value = std::getenv(std::string(name).c_str());
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string_view(value);
}

}  // namespace

Result<SecretBuffer> ReadKeyFile(std::string_view kind, const std::string& path, size_t max_bytes,
                                 bool must_be_private) {
  // O_NONBLOCK: a FIFO put in the file's place must not hang kmsctl (it is
  // refused as not a regular file).
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    return Error(
        CredentialFileError(kind, path, "cannot be read: " + std::string(strerror(errno))));
  }
  Status usable = CheckCredentialFile(fd, kind, path, must_be_private);
  Result<SecretBuffer> secret =
      usable.ok() ? ReadCredentialBytes(fd, kind, path, max_bytes) : Error(std::move(usable));
  ::close(fd);
  if (secret.has_value() && secret->size() > max_bytes) {
    return Error(
        CredentialFileError(kind, path, "is larger than " + std::to_string(max_bytes) + " bytes"));
  }
  return secret;
}

int Invocation::Run() {
  if (!action_) return ReportUsage("no command given", options_.json);
  Status status = AsUsage(LoadCredential());
  if (status.ok()) status = action_();
  if (status.ok()) return 0;
  switch (failure_) {
    case Failure::kReported:
      return ExitCodeFor(status.code());
    case Failure::kUsage:
      output().Error(kUsageCode, status.message());
      return kUsageExitCode;
    case Failure::kStatus:
    default:
      output().Error(status);
      return ExitCodeFor(status.code());
  }
}

int Invocation::ReportUsage(std::string_view message, bool json) {
  Output out(json);
  out.Error(kUsageCode, message);
  if (!json) Output::Stderr("Run 'kmsctl --help' for more information.\n");
  return kUsageExitCode;
}

Result<Connection*> Invocation::Connect() {
  if (connection_ == nullptr) {
    const auto timeout = std::chrono::milliseconds(
        std::max<long long>(1, std::llround(options_.timeout_seconds * 1000)));
    ASSIGN_OR_RETURN(connection_,
                     Connection::Dial(ResolveSocketPath(options_.socket), timeout,
                                      options_.max_frame_bytes, std::move(credential_)));
  }
  return connection_.get();
}

Result<Reply> Invocation::Call(std::string_view op, std::string_view tenant, Value::Map args) {
  ASSIGN_OR_RETURN(Connection * connection, Connect());
  return connection->Call(op, tenant, std::move(args));
}

Status Invocation::LoadCredential() {
  if (credentials_ == Credentials::kByCommand) return OkStatus();
  if (options_.api_key_file) {
    ASSIGN_OR_RETURN(credential_, ReadCredentialFile(kApiKeyFile, *options_.api_key_file));
    return OkStatus();
  }
  const bool sessions = credentials_ == Credentials::kAny;
  if (sessions && options_.session_file) return UseSessionFile(*options_.session_file);
  if (const auto api_key = Environment(kApiKeyEnvironment)) {
    credential_ = SecretBuffer::CopyOf(*api_key);
    return OkStatus();
  }
  if (const auto session_file = Environment(kSessionFileEnvironment); sessions && session_file) {
    return UseSessionFile(std::string(*session_file));
  }
  return OkStatus();
}

// Only a file that holds a session token is one: anything else (a key
// file named by mistake) is never sent, and never removed by logout.
Status Invocation::UseSessionFile(const std::string& path) {
  ASSIGN_OR_RETURN(SecretBuffer token, AsUsage(ReadCredentialFile(kSessionFile, path)));
  const std::string_view text(reinterpret_cast<const char*>(token.RevealData()), token.size());
  if (!CredentialIdOf(text, kSessionTokenPrefix)) {
    return AsUsage(Status(Code::kInvalidArgument,
                          "session file '" + path + "' does not hold a kmsd session token"));
  }
  credential_ = std::move(token);
  return OkStatus();
}

Result<Json> WithBinaryAsText(const Reply& reply, std::span<const std::string_view> fields) {
  Json object = ToJson(reply.result());
  for (const std::string_view name : fields) {
    Result<std::span<const uint8_t>> bytes = FromReply(reply.result().Binary(name));
    if (!bytes.has_value()) {
      WipeJson(object);
      return Error(bytes.error());
    }
    Json& field = object[std::string(name)];
    WipeJson(field);
    field = std::string(reinterpret_cast<const char*>(bytes->data()), bytes->size());
  }
  return object;
}

Status Invocation::AsUsage(Status status) {
  if (!status.ok()) failure_ = Failure::kUsage;
  return status;
}

Status Invocation::AlreadyReported(Status status) {
  if (!status.ok()) failure_ = Failure::kReported;
  return status;
}

Result<EncryptionContext> ParseContext(const std::vector<std::string>& entries) {
  EncryptionContext context;
  for (const std::string& entry : entries) {
    const size_t equals = entry.find('=');
    if (equals == std::string::npos) {
      return Error(Code::kInvalidArgument,
                   "context entry '" + entry + "' is not of the form key=value");
    }
    if (!context.emplace(entry.substr(0, equals), entry.substr(equals + 1)).second) {
      return Error(Code::kInvalidArgument,
                   "context key '" + entry.substr(0, equals) + "' is given twice");
    }
  }
  return context;
}

CLI::Option* AddTenantOption(CLI::App* command, std::string* tenant) {
  return command->add_option("--tenant", *tenant, "Tenant the operation acts in")->required();
}

CLI::Option* AddContextOption(CLI::App* command, std::string name, std::vector<std::string>* out,
                              std::string description) {
  return command->add_option(std::move(name), *out, std::move(description))
      ->type_name("KEY=VALUE")
      ->allow_extra_args(false);
}

CLI::Validator UnsignedInteger() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        const bool digits = !value.empty() && std::all_of(value.begin(), value.end(), [](char c) {
          return c >= '0' && c <= '9';
        });
        return digits ? std::string() : "'" + value + "' is not a non-negative integer";
      },
      "");
}

namespace {

Status BadDuration(std::string_view text, std::string_view why) {
  return Status(Code::kInvalidArgument, "--expires-in '" + std::string(text) + "' " +
                                            std::string(why) +
                                            ": give a positive whole number followed by s, m, h "
                                            "or d (30s, 15m, 12h, 90d)");
}

}  // namespace

Result<uint64_t> ParseDuration(std::string_view text) {
  constexpr std::array<std::pair<char, uint64_t>, 4> kUnits = {
      {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}}};
  if (text.size() < 2) return Error(BadDuration(text, "is not a duration"));
  const auto unit = std::find_if(kUnits.begin(), kUnits.end(),
                                 [&](const auto& entry) { return entry.first == text.back(); });
  if (unit == kUnits.end()) return Error(BadDuration(text, "has no unit s, m, h or d"));
  const std::string_view digits = text.substr(0, text.size() - 1);
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return Error(BadDuration(text, "is not a duration"));
  }
  uint64_t count = 0;
  const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), count);
  if (error != std::errc() || end != digits.data() + digits.size() ||
      count > UINT64_MAX / unit->second) {
    return Error(BadDuration(text, "is too long"));
  }
  if (count == 0) return Error(BadDuration(text, "is not positive"));
  return count * unit->second;
}

}  // namespace kmsd::kmsctl
