// Fixture for end-to-end tests that need a kmsd started from a config file
// (to lower lifecycle limits, or to restart on the same token and keystore):
// a private SoftHSM2 token, a PIN file, and `kmsd --config` in a temp dir.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <memory>
#include <string>

#include "client/connection.h"
#include "tests/support/daemon_process.h"
#include "tests/support/softhsm_token.h"
#include "tests/support/temp_dir.h"

namespace kmsd::testing {

class ConfiguredKmsdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(pin_path_) << token_.user_pin() << "\n";
    chmod(pin_path_.c_str(), 0600);
  }

  // A complete config; `extra` is appended (a lifecycle section, say).
  std::string ConfigYaml(const std::string& extra) const {
    return "pkcs11:\n  module: " + token_.module_path() + "\n  token_label: " + token_.label() +
           "\n  pin_file: " + pin_path_ + "\nsocket:\n  path: " + socket_path_ +
           "\nkeystore:\n  path: " + keystore_path() + "\n  backup_dir: " + (dir_ / "backups") +
           "\nadmins:\n  uids: [" + std::to_string(getuid()) + "]\n" + extra;
  }

  std::string WriteConfig(const std::string& yaml) {
    const std::string path = dir_ / ("config" + std::to_string(++configs_) + ".yaml");
    std::ofstream(path) << yaml;
    return path;
  }

  std::map<std::string, std::string> Env() const { return {{"SOFTHSM2_CONF", token_.conf_path()}}; }
  std::string keystore_path() const { return dir_ / "keystore.db"; }

  // Starts kmsd (stopping a running one first) with `extra` in its config.
  void Start(const std::string& extra) {
    Stop();
    extra_ = extra;
    config_path_ = WriteConfig(ConfigYaml(extra));
    daemon_ = DaemonProcess::StartWithConfig(config_path_, socket_path_, dir_ / "kmsd.log", Env());
    connection_ = daemon_->Connect();
  }
  void Restart() { Start(extra_); }
  void Stop() {
    connection_.reset();
    if (daemon_) {
      EXPECT_EQ(daemon_->Stop(), 0);
    }
    daemon_.reset();
  }

  Result<Reply> Call(std::string_view op, std::string_view tenant, Value::Map args = {}) {
    return connection_->Call(op, tenant, std::move(args));
  }

  SoftHsmToken token_;  // first: sets SOFTHSM2_CONF
  TempDir dir_;
  std::string pin_path_ = dir_ / "user.pin";
  std::string socket_path_ = dir_ / "kmsd.sock";
  std::string config_path_;
  std::string extra_;
  int configs_ = 0;
  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<Connection> connection_;
};

}  // namespace kmsd::testing
