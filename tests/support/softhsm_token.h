// SoftHsmToken: a private SoftHSM2 token in its own temp directory, made with
// softhsm2-util. Sets SOFTHSM2_CONF for this process (tests that use it must
// not run two tokens at once in one process). Each test gets its own token
// directory: sibling tokens slow each other (NOTES.md).
#pragma once

#include <string>

#include "tests/support/temp_dir.h"

namespace kmsd::testing {

class SoftHsmToken {
 public:
  explicit SoftHsmToken(std::string label = "kmsd-test");
  const std::string& label() const { return label_; }
  const std::string& user_pin() const { return user_pin_; }
  const std::string& conf_path() const { return conf_path_; }
  std::string module_path() const { return SOFTHSM_MODULE; }
  const TempDir& dir() const { return dir_; }

 private:
  TempDir dir_;
  std::string label_;
  std::string user_pin_ = "1234-user";
  std::string conf_path_;
};

}  // namespace kmsd::testing
