#include "tests/support/daemon_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace kmsd::testing {
namespace {

std::vector<std::string> MergedEnvironment(const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> merged;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    auto eq = entry.find('=');
    if (eq != std::string::npos) merged[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  for (const auto& [k, v] : extra) merged[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : merged) out.push_back(k + "=" + v);
  return out;
}

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

std::unique_ptr<DaemonProcess> DaemonProcess::Spawn(const std::vector<std::string>& args,
                                                    const std::string& socket_path,
                                                    const std::string& log_path,
                                                    const std::map<std::string, std::string>& env,
                                                    const SpawnOptions& options) {
  std::unique_ptr<DaemonProcess> daemon(new DaemonProcess());
  daemon->socket_path_ = socket_path;
  daemon->log_path_ = log_path;
  std::vector<std::string> argv = {options.binary.empty() ? KMSD_BINARY : options.binary};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<std::string> envp = MergedEnvironment(env);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  auto argv_ptrs = Pointers(argv);
  auto env_ptrs = Pointers(envp);
  int rv = posix_spawn(&daemon->pid_, argv[0].c_str(), &actions, nullptr, argv_ptrs.data(),
                       env_ptrs.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rv != 0) throw std::runtime_error("cannot spawn kmsd");
  if (options.wait_until_ready) daemon->WaitUntilReady();
  return daemon;
}

void DaemonProcess::WaitUntilReady() {
  // Ready when it answers health (ACCESS_DENIED counts: a daemon whose admins
  // exclude the test's uid serves, but not us); a child that exits early
  // fails the start.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("kmsd exited during start-up: " + ReadFile(log_path_));
    }
    if (std::filesystem::exists(socket_path_)) {
      auto connection = Connection::Dial(socket_path_, std::chrono::milliseconds(2000));
      if (connection) {
        auto health = (*connection)->Call("health");
        if (health || health.error().code() == Code::kAccessDenied) return;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  throw std::runtime_error("kmsd did not become ready: " + ReadFile(log_path_));
}

std::unique_ptr<DaemonProcess> DaemonProcess::StartDev(const std::string& dir,
                                                       const SpawnOptions& options) {
  std::filesystem::path path(dir);
  const std::string log = (path.parent_path() / (path.filename().string() + ".log")).string();
  std::vector<std::string> args = {"--dev", dir};
  args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
  return Spawn(args, (path / "kmsd.sock").string(), log, {}, options);
}

std::unique_ptr<DaemonProcess> DaemonProcess::StartWithConfig(
    const std::string& config_path, const std::string& socket_path, const std::string& log_path,
    const std::map<std::string, std::string>& env, const SpawnOptions& options) {
  return Spawn({"--config", config_path}, socket_path, log_path, env, options);
}

bool DaemonProcess::Exited(int* exit_status) {
  if (!running()) return true;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) != pid_) return false;
  pid_ = -1;
  if (exit_status != nullptr) *exit_status = DecodeWaitStatus(status);
  return true;
}

DaemonProcess::~DaemonProcess() {
  if (running()) Stop();
}

int DaemonProcess::Wait() {
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  return DecodeWaitStatus(status);
}

int DaemonProcess::Stop() {
  if (!running()) return -1;
  kill(pid_, SIGTERM);
  const int status = Wait();
  // A daemon that does not stop cleanly explains itself in its log: show the
  // end of it where CI keeps test output.
  if (status != 0) {
    const std::string log = ReadLog();
    std::fprintf(stderr, "kmsd exited with %d; end of its log:\n%s\n", status,
                 log.substr(log.size() > 8000 ? log.size() - 8000 : 0).c_str());
  }
  return status;
}

void DaemonProcess::Kill() {
  if (!running()) return;
  kill(pid_, SIGKILL);
  Wait();
}

std::string DaemonProcess::ReadLog() const { return ReadFile(log_path_); }

std::unique_ptr<Connection> DaemonProcess::Connect() const {
  auto connection = Connection::Dial(socket_path_, std::chrono::milliseconds(10000));
  if (!connection) throw std::runtime_error("cannot connect: " + connection.error().ToString());
  return std::move(*connection);
}

CommandResult RunCommand(const std::vector<std::string>& argv_in, const std::string& stdin_data,
                         const std::map<std::string, std::string>& env) {
  char in_path[] = "/tmp/kmsd-cmd-in-XXXXXX";
  char out_path[] = "/tmp/kmsd-cmd-out-XXXXXX";
  char err_path[] = "/tmp/kmsd-cmd-err-XXXXXX";
  int in_fd = mkstemp(in_path), out_fd = mkstemp(out_path), err_fd = mkstemp(err_path);
  if (write(in_fd, stdin_data.data(), stdin_data.size()) !=
      static_cast<ssize_t>(stdin_data.size())) {
    throw std::runtime_error("cannot write stdin file");
  }
  lseek(in_fd, 0, SEEK_SET);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_fd, 0);
  posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
  posix_spawn_file_actions_adddup2(&actions, err_fd, 2);
  std::vector<std::string> argv = argv_in;
  std::vector<std::string> envp = MergedEnvironment(env);
  auto argv_ptrs = Pointers(argv);
  auto env_ptrs = Pointers(envp);
  pid_t pid;
  int rv = posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, argv_ptrs.data(), env_ptrs.data());
  posix_spawn_file_actions_destroy(&actions);
  close(in_fd);
  close(out_fd);
  close(err_fd);
  CommandResult result;
  if (rv == 0) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    result.exit_code = DecodeWaitStatus(status);
  }
  result.out = ReadFile(out_path);
  result.err = ReadFile(err_path);
  unlink(in_path);
  unlink(out_path);
  unlink(err_path);
  return result;
}

CommandResult RunKmsctl(const std::string& socket, const std::vector<std::string>& args,
                        const std::string& stdin_data,
                        const std::map<std::string, std::string>& env) {
  std::vector<std::string> argv = {KMSCTL_BINARY, "--socket", socket};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, stdin_data, env);
}

CommandResult RunKmsd(const std::vector<std::string>& args,
                      const std::map<std::string, std::string>& env) {
  std::vector<std::string> argv = {KMSD_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, "", env);
}

}  // namespace kmsd::testing
