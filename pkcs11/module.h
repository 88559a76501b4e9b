// Module: one PKCS#11 library loaded with dlopen and initialized for
// multi-threaded use (CKF_OS_LOCKING_OK). Any module path works; tokens are
// found by label, never by slot number. Thread-safe; shared by the Tokens
// opened from it, which keep it alive. C_Finalize and dlclose run when the
// last reference goes. Before C_Initialize, a SoftHSM2 token.object that a
// crash cut short is restored from kmsd's copy (softhsm_files.h).
#pragma once

#include <p11-kit/pkcs11.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/secret_buffer.h"
#include "protocol/status.h"

namespace kmsd::pkcs11 {

// CK_RV → Status, naming the call. Used inside pkcs11/ only.
Status FromRv(CK_RV rv, std::string_view call);

class Module {
 public:
  static Result<std::shared_ptr<Module>> Load(const std::string& path);
  ~Module();
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  CK_FUNCTION_LIST* functions() const { return functions_; }
  const std::string& path() const { return path_; }
  // SoftHSM2's token directory when this module is SoftHSM2 with its file
  // backend (softhsm_files.h), found once at Load.
  const std::optional<std::filesystem::path>& softhsm_token_root() const {
    return softhsm_token_root_;
  }

  // NOT_FOUND when no present token carries `label`.
  Result<CK_SLOT_ID> FindSlotByTokenLabel(std::string_view label) const;

  // Initializes the first slot whose token is not yet initialized (SoftHSM2
  // keeps one free) with `label`, then sets the user PIN. For `kmsd --dev`.
  Status InitializeFreeToken(std::string_view label, const SecretBuffer& so_pin,
                             const SecretBuffer& user_pin) const;

 private:
  Result<std::vector<std::pair<CK_SLOT_ID, CK_TOKEN_INFO>>> TokensPresent() const;
  Module(void* handle, CK_FUNCTION_LIST* functions, std::string path,
         std::optional<std::filesystem::path> softhsm_token_root)
      : handle_(handle),
        functions_(functions),
        path_(std::move(path)),
        softhsm_token_root_(std::move(softhsm_token_root)) {}
  void* handle_;
  CK_FUNCTION_LIST* functions_;
  std::string path_;
  std::optional<std::filesystem::path> softhsm_token_root_;
};

}  // namespace kmsd::pkcs11
