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

// How a kmsd child is started: which binary (empty: the one built with the
// tests) and whether Start* returns only once it answers `health`.
struct SpawnOptions {
  std::string binary;
  bool wait_until_ready = true;
  std::vector<std::string> extra_args;  // after kmsd's own (--dev DIR, ...)
};

class DaemonProcess {
 public:
  // `kmsd --dev DIR`, its log in DIR/../<basename>.log.
  static std::unique_ptr<DaemonProcess> StartDev(const std::string& dir,
                                                 const SpawnOptions& options = {});
  // `kmsd --config FILE`; `socket_path` is the config's; extra environment
  // (SOFTHSM2_CONF) is passed to the child.
  static std::unique_ptr<DaemonProcess> StartWithConfig(
      const std::string& config_path, const std::string& socket_path, const std::string& log_path,
      const std::map<std::string, std::string>& env = {}, const SpawnOptions& options = {});
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
  // Returns once it answers `health`; throws if it exits or takes over 30 s.
  void WaitUntilReady();
  // Whether the child has exited (reaped here); its status in `exit_status`.
  bool Exited(int* exit_status = nullptr);
  bool running() const { return pid_ > 0; }

 private:
  DaemonProcess() = default;
  static std::unique_ptr<DaemonProcess> Spawn(const std::vector<std::string>& args,
                                              const std::string& socket_path,
                                              const std::string& log_path,
                                              const std::map<std::string, std::string>& env,
                                              const SpawnOptions& options);
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
// kmsctl --socket SOCKET args..., with `env` added to the environment.
CommandResult RunKmsctl(const std::string& socket, const std::vector<std::string>& args,
                        const std::string& stdin_data = "",
                        const std::map<std::string, std::string>& env = {});

// Runs kmsd with `args` to its exit (for start-up errors): exit code and output.
CommandResult RunKmsd(const std::vector<std::string>& args,
                      const std::map<std::string, std::string>& env = {});

}  // namespace kmsd::testing
