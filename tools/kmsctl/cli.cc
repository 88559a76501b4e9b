#include "tools/kmsctl/cli.h"

#include <algorithm>
#include <cmath>

namespace kmsd::kmsctl {

int Invocation::Run() {
  if (!action_) return ReportUsage("no command given", options_.json);
  Status status = action_();
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
                                                   options_.max_frame_bytes));
  }
  return connection_->Call(op, tenant, std::move(args));
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

}  // namespace kmsd::kmsctl
