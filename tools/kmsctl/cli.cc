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

namespace kmsd::kmsctl {
namespace {

Status ApiKeyFileError(const std::string& path, std::string_view problem) {
  return Status(Code::kInvalidArgument, "API key file '" + path + "' " + std::string(problem));
}

// Reads at most kMaxApiKeyFileBytes + 1 bytes of `fd` straight into a
// SecretBuffer; the returned buffer is cut to what was read.
Result<SecretBuffer> ReadKeyBytes(int fd, const std::string& path) {
  SecretBuffer buffer(kMaxApiKeyFileBytes + 1);
  size_t used = 0;
  while (used < buffer.size()) {
    const ssize_t n = ::read(fd, buffer.RevealMutableData() + used, buffer.size() - used);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return Error(ApiKeyFileError(path, "cannot be read: " + std::string(strerror(errno))));
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  buffer.Shrink(used);
  return buffer;
}

// The key in `path`: its content without one trailing newline. The file must
// be readable, not empty and not accessible by group or others.
Result<SecretBuffer> ReadApiKeyFile(const std::string& path) {
  // O_NONBLOCK: a FIFO put in the key file's place must not hang kmsctl
  // (it is refused below as not a regular file).
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    return Error(ApiKeyFileError(path, "cannot be read: " + std::string(strerror(errno))));
  }
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int error = errno;
    ::close(fd);
    return Error(ApiKeyFileError(path, "cannot be read: " + std::string(strerror(error))));
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    return Error(ApiKeyFileError(path, "is not a regular file"));
  }
  if ((info.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(info.st_mode & 07777));
    return Error(ApiKeyFileError(path, "is accessible by group or others (mode " +
                                           std::string(mode) + "); make it private: chmod 600 '" +
                                           path + "'"));
  }
  Result<SecretBuffer> key = ReadKeyBytes(fd, path);
  ::close(fd);
  if (!key.has_value()) return key;
  if (key->size() > kMaxApiKeyFileBytes) {
    return Error(ApiKeyFileError(
        path, "is larger than " + std::to_string(kMaxApiKeyFileBytes) + " bytes: not an API key"));
  }
  if (!key->empty() && key->RevealData()[key->size() - 1] == '\n') key->Shrink(key->size() - 1);
  if (key->empty()) return Error(ApiKeyFileError(path, "is empty"));
  return key;
}

}  // namespace

int Invocation::Run() {
  if (!action_) return ReportUsage("no command given", options_.json);
  Status status = AsUsage(LoadApiKey());
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

Result<Reply> Invocation::Call(std::string_view op, std::string_view tenant, Value::Map args) {
  if (connection_ == nullptr) {
    const auto timeout = std::chrono::milliseconds(
        std::max<long long>(1, std::llround(options_.timeout_seconds * 1000)));
    ASSIGN_OR_RETURN(connection_, Connection::Dial(ResolveSocketPath(options_.socket), timeout,
                                                   options_.max_frame_bytes, std::move(api_key_)));
  }
  return connection_->Call(op, tenant, std::move(args));
}

Status Invocation::LoadApiKey() {
  if (options_.api_key_file) {
    ASSIGN_OR_RETURN(api_key_, ReadApiKeyFile(*options_.api_key_file));
    return OkStatus();
  }
  // getenv's string is the environment's own memory: copied, not wiped.
  const char* from_environment = std::getenv(std::string(kApiKeyEnvironment).c_str());
  if (from_environment != nullptr && *from_environment != '\0') {
    api_key_ = SecretBuffer::CopyOf(std::string_view(from_environment));
  }
  return OkStatus();
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
