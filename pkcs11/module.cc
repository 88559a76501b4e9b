#include "pkcs11/module.h"

#include <dlfcn.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <vector>

#include "pkcs11/internal/text_fields.h"
#include "pkcs11/softhsm_files.h"

namespace kmsd::pkcs11 {
namespace {

std::string RvHex(CK_RV rv) {
  char buf[32];
  snprintf(buf, sizeof buf, "0x%lx", static_cast<unsigned long>(rv));
  return buf;
}

using internal::PadInto;
using internal::Trim;

// Before SoftHSM2 reads its tokens (softhsm_files.h): a failure here is
// logged, and the module then reports what it finds.
void RestoreSoftHsmTokenObjects(const std::filesystem::path& token_root) {
  auto restored = RestoreTokenObjects(token_root);
  if (!restored) {
    spdlog::error("cannot restore SoftHSM2's token.object from kmsd's copy: {}",
                  restored.error().ToString());
    return;
  }
  for (const std::string& file : *restored) {
    spdlog::warn(
        "restored {} from kmsd's copy ({}): it was empty, as a process killed while "
        "SoftHSM2 rewrote it leaves it",
        file, kTokenObjectCopyName);
  }
}

}  // namespace

Status FromRv(CK_RV rv, std::string_view call) {
  if (rv == CKR_OK) return OkStatus();
  std::string message = std::string(call) + " failed with CK_RV " + RvHex(rv);
  switch (rv) {
    case CKR_DEVICE_REMOVED:
    case CKR_DEVICE_ERROR:
    case CKR_DEVICE_MEMORY:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_TOKEN_NOT_RECOGNIZED:
    case CKR_SESSION_CLOSED:
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
    case CKR_PIN_INCORRECT:
    case CKR_PIN_LOCKED:
      return Status(Code::kTokenUnavailable, message);
    case CKR_OBJECT_HANDLE_INVALID:  // SoftHSM2 returns this for a destroyed key
    case CKR_KEY_HANDLE_INVALID:
    case CKR_WRAPPING_KEY_HANDLE_INVALID:
    case CKR_UNWRAPPING_KEY_HANDLE_INVALID:
      return Status(Code::kNotFound, message);
    case CKR_ENCRYPTED_DATA_INVALID:
    case CKR_ENCRYPTED_DATA_LEN_RANGE:
    case CKR_WRAPPED_KEY_INVALID:
    case CKR_WRAPPED_KEY_LEN_RANGE:
      return Status(Code::kInvalidCiphertext, message);
    default:
      return Status(Code::kInternal, message);
  }
}

Result<std::shared_ptr<Module>> Module::Load(const std::string& path) {
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    return Error(Code::kTokenUnavailable,
                 "cannot load PKCS#11 module " + path + ": " + (why ? why : "unknown error"));
  }
  auto get_list = reinterpret_cast<CK_C_GetFunctionList>(dlsym(handle, "C_GetFunctionList"));
  if (get_list == nullptr) {
    dlclose(handle);
    return Error(Code::kTokenUnavailable, path + " is not a PKCS#11 module (no C_GetFunctionList)");
  }
  CK_FUNCTION_LIST* functions = nullptr;
  if (Status s = FromRv(get_list(&functions), "C_GetFunctionList"); !s.ok()) {
    dlclose(handle);
    return Error(std::move(s));
  }
  std::optional<std::filesystem::path> softhsm_token_root = SoftHsmTokenDir(path);
  if (softhsm_token_root) RestoreSoftHsmTokenObjects(*softhsm_token_root);
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  CK_RV rv = functions->C_Initialize(&args);
  if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
    dlclose(handle);
    return Error(FromRv(rv, "C_Initialize"));
  }
  return std::shared_ptr<Module>(
      new Module(handle, functions, path, std::move(softhsm_token_root)));
}

Module::~Module() {
  functions_->C_Finalize(nullptr);
  dlclose(handle_);
}

// Slots with a token present, each with its token's info.
Result<std::vector<std::pair<CK_SLOT_ID, CK_TOKEN_INFO>>> Module::TokensPresent() const {
  CK_ULONG count = 0;
  RETURN_IF_ERROR(FromRv(functions_->C_GetSlotList(CK_TRUE, nullptr, &count), "C_GetSlotList"));
  std::vector<CK_SLOT_ID> slots(count);
  RETURN_IF_ERROR(
      FromRv(functions_->C_GetSlotList(CK_TRUE, slots.data(), &count), "C_GetSlotList"));
  slots.resize(count);
  std::vector<std::pair<CK_SLOT_ID, CK_TOKEN_INFO>> tokens;
  for (CK_SLOT_ID slot : slots) {
    CK_TOKEN_INFO info{};
    if (functions_->C_GetTokenInfo(slot, &info) == CKR_OK) tokens.emplace_back(slot, info);
  }
  return tokens;
}

Result<CK_SLOT_ID> Module::FindSlotByTokenLabel(std::string_view label) const {
  ASSIGN_OR_RETURN(auto tokens, TokensPresent());
  for (const auto& [slot, info] : tokens) {
    if ((info.flags & CKF_TOKEN_INITIALIZED) == 0) continue;
    if (Trim(info.label, sizeof info.label) == label) return slot;
  }
  return Error(Code::kNotFound,
               "no token labelled '" + std::string(label) + "' in module " + path_);
}

Status Module::InitializeFreeToken(std::string_view label, const SecretBuffer& so_pin,
                                   const SecretBuffer& user_pin) const {
  ASSIGN_OR_RETURN(auto tokens, TokensPresent());
  for (const auto& [slot, info] : tokens) {
    if (info.flags & CKF_TOKEN_INITIALIZED) continue;
    unsigned char padded_label[32];
    PadInto(padded_label, sizeof padded_label, label);
    auto* so = const_cast<CK_UTF8CHAR*>(so_pin.RevealData());
    RETURN_IF_ERROR(
        FromRv(functions_->C_InitToken(slot, so, so_pin.size(), padded_label), "C_InitToken"));
    CK_SESSION_HANDLE session;
    RETURN_IF_ERROR(FromRv(functions_->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION,
                                                     nullptr, nullptr, &session),
                           "C_OpenSession"));
    Status status = FromRv(functions_->C_Login(session, CKU_SO, so, so_pin.size()), "C_Login(SO)");
    if (status.ok()) {
      auto* pin = const_cast<CK_UTF8CHAR*>(user_pin.RevealData());
      status = FromRv(functions_->C_InitPIN(session, pin, user_pin.size()), "C_InitPIN");
      functions_->C_Logout(session);
    }
    functions_->C_CloseSession(session);
    return status;
  }
  return Status(Code::kTokenUnavailable, "module " + path_ + " has no uninitialized token slot");
}

}  // namespace kmsd::pkcs11
