// DaemonProcess: a real kmsd child process for end-to-end tests, on a real
// SoftHSM2 token and a real socket, stopped (SIGTERM) when the object dies.
// RunKmsctl runs the real kmsctl binary. Not thread-safe; one owner.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "client/connection.h"

namespace kmsd::testing {

class DaemonProcess {
 public:
  // `kmsd --dev DIR`, its log in DIR/../<basename>.log.
  static std::unique_ptr<DaemonProcess> StartDev(const std::string& dir);
  // `kmsd --config FILE`; `socket_path` is the config's; extra environment
  // (SOFTHSM2_CONF) is passed to the child.
  static std::unique_ptr<DaemonProcess> StartWithConfig(
      const std::string& config_path, const std::string& socket_path, const std::string& log_path,
      const std::map<std::string, std::string>& env = {});
  ~DaemonProcess();

  const std::string& socket_path() const { return socket_path_; }
  const std::string& log_path() const { return log_path_; }
  pid_t pid() const { return pid_; }
  std::string ReadLog() const;
  std::unique_ptr<Connection> Connect() const;

  // SIGTERM and wait; returns the exit status (or 128+signal).
  int Stop();
  // SIGKILL and wait.
  void Kill();
  bool running() const { return pid_ > 0; }

 private:
  DaemonProcess() = default;
  static std::unique_ptr<DaemonProcess> Spawn(const std::vector<std::string>& args,
                                              const std::string& socket_path,
                                              const std::string& log_path,
                                              const std::map<std::string, std::string>& env);
  int Wait();
  pid_t pid_ = -1;
  std::string socket_path_;
  std::string log_path_;
};

// Runs a program to completion, feeding `stdin_data`; stdout and stderr are
// captured separately.
struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& stdin_data = "",
                         const std::map<std::string, std::string>& env = {});
// kmsctl --socket SOCKET args...
CommandResult RunKmsctl(const std::string& socket, const std::vector<std::string>& args,
                        const std::string& stdin_data = "");

// Runs kmsd with `args` to its exit (for start-up errors): exit code and output.
CommandResult RunKmsd(const std::vector<std::string>& args,
                      const std::map<std::string, std::string>& env = {});

}  // namespace kmsd::testing
