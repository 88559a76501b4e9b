#include "tests/support/softhsm_token.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace kmsd::testing {

SoftHsmToken::SoftHsmToken(std::string label) : label_(std::move(label)) {
  const std::string token_dir = dir_ / "tokens";
  std::filesystem::create_directories(token_dir);
  conf_path_ = dir_ / "softhsm2.conf";
  std::ofstream(conf_path_) << "directories.tokendir = " << token_dir
                            << "\nobjectstore.backend = file\nlog.level = ERROR\n";
  setenv("SOFTHSM2_CONF", conf_path_.c_str(), 1);
  const std::string command = "softhsm2-util --init-token --free --label '" + label_ +
                              "' --so-pin 5678-so --pin '" + user_pin_ + "' >/dev/null";
  if (system(command.c_str()) != 0) throw std::runtime_error("softhsm2-util --init-token failed");
}

}  // namespace kmsd::testing
