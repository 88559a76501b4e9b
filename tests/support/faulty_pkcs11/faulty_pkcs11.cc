// faulty_pkcs11: a PKCS#11 module for tests that makes the token go away.
//
// It exports C_GetFunctionList, dlopens the real module named by
// KMSD_FAULTY_REAL_MODULE (default: SoftHSM2's) and forwards every call to it,
// except while the control file named by KMSD_FAULTY_CONTROL exists. Then:
// - the calls that need the token (sessions, login, objects, crypto, random,
//   C_GetTokenInfo, mechanisms, C_InitToken) return the error the file names;
// - C_GetSlotList(tokenPresent=TRUE) lists no slot, and C_GetSlotInfo clears
//   CKF_TOKEN_PRESENT;
// - the first call that sees the fault closes every session of the real
//   module (C_CloseAllSessions on each slot), as a real device does when it
//   goes: its session objects and its login are gone, and after the fault the
//   old session handles answer CKR_SESSION_HANDLE_INVALID (SoftHSM2 never
//   reuses a handle while it is initialized).
// C_Initialize, C_Finalize, C_GetInfo and C_WaitForSlotEvent always forward.
//
// The control file holds words separated by white space. The first names the
// error: DEVICE_REMOVED, TOKEN_NOT_PRESENT, DEVICE_ERROR or a number (0x32);
// an empty file means DEVICE_REMOVED. Further words are function names
// (C_Encrypt ...): only those fail; `keep-sessions`: sessions are not
// closed when the fault begins (a fault that loses nothing); `after=N`: the
// fault begins only after N calls have gone through since the file appeared
// (to cut a batch in the middle). The file is read on every call, so a test
// switches the fault by creating and removing it.
// Thread-safe.
#include <dlfcn.h>
#include <p11-kit/pkcs11.h>
#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <sstream>
#include <string>
#include <vector>

namespace {

constexpr const char* kDefaultRealModule = "/usr/lib/softhsm/libsofthsm2.so";

CK_FUNCTION_LIST* g_real = nullptr;
CK_FUNCTION_LIST g_list;
std::mutex g_mu;
// Forwarded calls hold it shared; closing every session holds it alone, so
// that SoftHSM2 never frees a session another thread is in the middle of.
std::shared_mutex g_calls_mu;
bool g_faulted = false;  // guarded by g_mu: the fault was on at the last call
uint64_t g_seen = 0;     // guarded by g_mu: calls since the control file appeared

struct Fault {
  CK_RV rv = CKR_DEVICE_REMOVED;
  std::set<std::string> calls;  // empty: every call that needs the token
  bool keep_sessions = false;
  uint64_t after = 0;
};

std::optional<Fault> ReadFault() {
  const char* path = std::getenv("KMSD_FAULTY_CONTROL");
  if (path == nullptr || *path == '\0') return std::nullopt;
  struct stat st;
  if (::stat(path, &st) != 0) return std::nullopt;
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  Fault fault;
  std::string word;
  bool first = true;
  while (text >> word) {
    if (first) {
      first = false;
      if (word == "DEVICE_REMOVED") continue;
      if (word == "TOKEN_NOT_PRESENT") {
        fault.rv = CKR_TOKEN_NOT_PRESENT;
        continue;
      }
      if (word == "DEVICE_ERROR") {
        fault.rv = CKR_DEVICE_ERROR;
        continue;
      }
      if (!word.empty() && word[0] >= '0' && word[0] <= '9') {
        fault.rv = std::strtoul(word.c_str(), nullptr, 0);
        continue;
      }
    }
    if (word == "keep-sessions") {
      fault.keep_sessions = true;
    } else if (word.starts_with("after=")) {
      fault.after = std::strtoull(word.c_str() + 6, nullptr, 10);
    } else {
      fault.calls.insert(word);
    }
  }
  return fault;
}

// What the module does about `call` now: the fault that applies to it, if
// any. Begins and ends the fault (closing the real sessions as it begins).
std::optional<Fault> FaultFor(const char* call) {
  std::optional<Fault> fault = ReadFault();
  std::lock_guard lock(g_mu);
  if (!fault) {
    g_faulted = false;
    g_seen = 0;
    return std::nullopt;
  }
  if (g_seen++ < fault->after) return std::nullopt;
  if (!g_faulted) {
    g_faulted = true;
    if (!fault->keep_sessions) {
      std::unique_lock alone(g_calls_mu);
      CK_ULONG count = 0;
      if (g_real->C_GetSlotList(CK_FALSE, nullptr, &count) == CKR_OK) {
        std::vector<CK_SLOT_ID> slots(count);
        if (g_real->C_GetSlotList(CK_FALSE, slots.data(), &count) == CKR_OK) {
          for (CK_ULONG i = 0; i < count; ++i) g_real->C_CloseAllSessions(slots[i]);
        }
      }
    }
  }
  if (!fault->calls.empty() && !fault->calls.contains(call)) return std::nullopt;
  return fault;
}

template <auto Member, const char* Name, typename Fn>
struct Guarded;

// Returns the fault's error, or forwards.
template <auto Member, const char* Name, typename... Args>
struct Guarded<Member, Name, CK_RV (*)(Args...)> {
  static CK_RV Call(Args... args) {
    if (std::optional<Fault> fault = FaultFor(Name)) return fault->rv;
    std::shared_lock shared(g_calls_mu);
    return (g_real->*Member)(args...);
  }
};

CK_RV GetSlotList(CK_BBOOL token_present, CK_SLOT_ID* slots, CK_ULONG* count) {
  if (token_present && FaultFor("C_GetSlotList")) {
    if (count == nullptr) return CKR_ARGUMENTS_BAD;
    *count = 0;
    return CKR_OK;
  }
  return g_real->C_GetSlotList(token_present, slots, count);
}

CK_RV GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO* info) {
  CK_RV rv = g_real->C_GetSlotInfo(slot, info);
  if (rv == CKR_OK && FaultFor("C_GetSlotInfo")) info->flags &= ~CKF_TOKEN_PRESENT;
  return rv;
}

CK_RV GetFunctionList(CK_FUNCTION_LIST** list);

#define KMSD_GUARD(name)                   \
  static constexpr char k##name[] = #name; \
  g_list.name = &Guarded<&CK_FUNCTION_LIST::name, k##name, decltype(g_list.name)>::Call

// Loads the real module once and builds the list: a copy of the real one
// with the guarded functions in place.
CK_RV Load() {
  if (g_real != nullptr) return CKR_OK;
  const char* path = std::getenv("KMSD_FAULTY_REAL_MODULE");
  if (path == nullptr || *path == '\0') path = kDefaultRealModule;
  void* handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) return CKR_GENERAL_ERROR;
  auto get = reinterpret_cast<CK_C_GetFunctionList>(dlsym(handle, "C_GetFunctionList"));
  CK_FUNCTION_LIST* real = nullptr;
  if (get == nullptr || get(&real) != CKR_OK || real == nullptr) return CKR_GENERAL_ERROR;
  g_real = real;
  g_list = *real;
  g_list.C_GetFunctionList = &GetFunctionList;
  g_list.C_GetSlotList = &GetSlotList;
  g_list.C_GetSlotInfo = &GetSlotInfo;
  KMSD_GUARD(C_GetTokenInfo);
  KMSD_GUARD(C_GetMechanismList);
  KMSD_GUARD(C_GetMechanismInfo);
  KMSD_GUARD(C_InitToken);
  KMSD_GUARD(C_InitPIN);
  KMSD_GUARD(C_SetPIN);
  KMSD_GUARD(C_OpenSession);
  KMSD_GUARD(C_CloseSession);
  KMSD_GUARD(C_CloseAllSessions);
  KMSD_GUARD(C_GetSessionInfo);
  KMSD_GUARD(C_GetOperationState);
  KMSD_GUARD(C_SetOperationState);
  KMSD_GUARD(C_Login);
  KMSD_GUARD(C_Logout);
  KMSD_GUARD(C_CreateObject);
  KMSD_GUARD(C_CopyObject);
  KMSD_GUARD(C_DestroyObject);
  KMSD_GUARD(C_GetObjectSize);
  KMSD_GUARD(C_GetAttributeValue);
  KMSD_GUARD(C_SetAttributeValue);
  KMSD_GUARD(C_FindObjectsInit);
  KMSD_GUARD(C_FindObjects);
  KMSD_GUARD(C_FindObjectsFinal);
  KMSD_GUARD(C_EncryptInit);
  KMSD_GUARD(C_Encrypt);
  KMSD_GUARD(C_EncryptUpdate);
  KMSD_GUARD(C_EncryptFinal);
  KMSD_GUARD(C_DecryptInit);
  KMSD_GUARD(C_Decrypt);
  KMSD_GUARD(C_DecryptUpdate);
  KMSD_GUARD(C_DecryptFinal);
  KMSD_GUARD(C_DigestInit);
  KMSD_GUARD(C_Digest);
  KMSD_GUARD(C_DigestUpdate);
  KMSD_GUARD(C_DigestKey);
  KMSD_GUARD(C_DigestFinal);
  KMSD_GUARD(C_SignInit);
  KMSD_GUARD(C_Sign);
  KMSD_GUARD(C_SignUpdate);
  KMSD_GUARD(C_SignFinal);
  KMSD_GUARD(C_SignRecoverInit);
  KMSD_GUARD(C_SignRecover);
  KMSD_GUARD(C_VerifyInit);
  KMSD_GUARD(C_Verify);
  KMSD_GUARD(C_VerifyUpdate);
  KMSD_GUARD(C_VerifyFinal);
  KMSD_GUARD(C_VerifyRecoverInit);
  KMSD_GUARD(C_VerifyRecover);
  KMSD_GUARD(C_DigestEncryptUpdate);
  KMSD_GUARD(C_DecryptDigestUpdate);
  KMSD_GUARD(C_SignEncryptUpdate);
  KMSD_GUARD(C_DecryptVerifyUpdate);
  KMSD_GUARD(C_GenerateKey);
  KMSD_GUARD(C_GenerateKeyPair);
  KMSD_GUARD(C_WrapKey);
  KMSD_GUARD(C_UnwrapKey);
  KMSD_GUARD(C_DeriveKey);
  KMSD_GUARD(C_SeedRandom);
  KMSD_GUARD(C_GenerateRandom);
  return CKR_OK;
}

CK_RV GetFunctionList(CK_FUNCTION_LIST** list) {
  if (list == nullptr) return CKR_ARGUMENTS_BAD;
  static std::mutex load_mu;
  std::lock_guard lock(load_mu);
  if (CK_RV rv = Load(); rv != CKR_OK) return rv;
  *list = &g_list;
  return CKR_OK;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) CK_RV C_GetFunctionList(CK_FUNCTION_LIST** list) {
  return GetFunctionList(list);
}
