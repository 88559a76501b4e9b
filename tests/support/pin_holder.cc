#include "tests/support/pin_holder.h"

#include <dlfcn.h>
#include <sqlite3.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <deque>
#include <stdexcept>

namespace kmsd::testing {
namespace {

void Check(CK_RV rv, const std::string& what) {
  if (rv != CKR_OK) throw std::runtime_error(what + " failed: " + RvName(rv));
}

// A PKCS#11 template that owns its values. Set() replaces an attribute in
// place (SoftHSM2 2.6 applies an unwrap template in order, so positions matter:
// CKA_MODIFIABLE=FALSE stays last); Without() drops one.
class Template {
 public:
  Template& Bool(CK_ATTRIBUTE_TYPE type, bool value) {
    CK_BBOOL& stored = bools_.emplace_back(value ? CK_TRUE : CK_FALSE);
    return Put(type, &stored, sizeof stored);
  }
  Template& Ulong(CK_ATTRIBUTE_TYPE type, CK_ULONG value) {
    CK_ULONG& stored = ulongs_.emplace_back(value);
    return Put(type, &stored, sizeof stored);
  }
  Template& Raw(CK_ATTRIBUTE_TYPE type, void* value, CK_ULONG length) {
    return Put(type, value, length);
  }
  Template& Without(CK_ATTRIBUTE_TYPE type) {
    std::erase_if(attributes_, [type](const CK_ATTRIBUTE& a) { return a.type == type; });
    return *this;
  }
  // Never null: SoftHSM2 answers CKR_ARGUMENTS_BAD to a null template, also
  // an empty one.
  CK_ATTRIBUTE* data() { return attributes_.empty() ? &none_ : attributes_.data(); }
  CK_ULONG size() const { return attributes_.size(); }

 private:
  Template& Put(CK_ATTRIBUTE_TYPE type, void* value, CK_ULONG length) {
    for (CK_ATTRIBUTE& a : attributes_) {
      if (a.type != type) continue;
      a.pValue = value;
      a.ulValueLen = length;
      return *this;
    }
    attributes_.push_back({type, value, length});
    return *this;
  }
  std::deque<CK_BBOOL> bools_;
  std::deque<CK_ULONG> ulongs_;
  std::vector<CK_ATTRIBUTE> attributes_;
  CK_ATTRIBUTE none_ = {};
};

// What kmsd unwraps a version into (pkcs11/key_templates.cc,
// UsableVersionTemplate), written out again here on purpose.
Template CompliantVersionTemplate() {
  Template t;
  t.Ulong(CKA_CLASS, CKO_SECRET_KEY)
      .Ulong(CKA_KEY_TYPE, CKK_AES)
      .Bool(CKA_TOKEN, false)
      .Bool(CKA_PRIVATE, true)
      .Bool(CKA_SENSITIVE, true)
      .Bool(CKA_EXTRACTABLE, false)
      .Bool(CKA_COPYABLE, false)
      .Bool(CKA_ENCRYPT, true)
      .Bool(CKA_DECRYPT, true)
      .Bool(CKA_SIGN, false)
      .Bool(CKA_VERIFY, false)
      .Bool(CKA_WRAP, false)
      .Bool(CKA_UNWRAP, false)
      .Bool(CKA_DERIVE, false)
      .Bool(CKA_MODIFIABLE, false);
  return t;
}

// A derived key the attacker could read.
Template ReadableDerivedTemplate() {
  Template t;
  t.Ulong(CKA_CLASS, CKO_SECRET_KEY)
      .Ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET)
      .Ulong(CKA_VALUE_LEN, 32)
      .Bool(CKA_TOKEN, false)
      .Bool(CKA_SENSITIVE, false)
      .Bool(CKA_EXTRACTABLE, true);
  return t;
}

constexpr CK_ATTRIBUTE_TYPE kBooleanAttributes[] = {CKA_TOKEN,
                                                    CKA_PRIVATE,
                                                    CKA_MODIFIABLE,
                                                    CKA_COPYABLE,
                                                    CKA_DESTROYABLE,
                                                    CKA_SENSITIVE,
                                                    CKA_EXTRACTABLE,
                                                    CKA_ALWAYS_SENSITIVE,
                                                    CKA_NEVER_EXTRACTABLE,
                                                    CKA_ENCRYPT,
                                                    CKA_DECRYPT,
                                                    CKA_SIGN,
                                                    CKA_VERIFY,
                                                    CKA_WRAP,
                                                    CKA_UNWRAP,
                                                    CKA_DERIVE,
                                                    CKA_LOCAL};

std::string Hex(const void* data, size_t size) {
  std::string out;
  const auto* bytes = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < size; ++i) {
    char two[3];
    std::snprintf(two, sizeof two, "%02x", bytes[i]);
    out += two;
  }
  return out;
}

void AppendU32(std::vector<uint8_t>& out, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(value >> shift));
}

}  // namespace

std::string StoredVersion::Name() const {
  return tenant + "/" + key_name + " v" + std::to_string(version);
}

std::string RvName(CK_RV rv) {
  static const std::map<CK_RV, std::string> names = {
      {CKR_OK, "CKR_OK"},
      {CKR_GENERAL_ERROR, "CKR_GENERAL_ERROR"},
      {CKR_ATTRIBUTE_READ_ONLY, "CKR_ATTRIBUTE_READ_ONLY"},
      {CKR_ATTRIBUTE_SENSITIVE, "CKR_ATTRIBUTE_SENSITIVE"},
      {CKR_ATTRIBUTE_TYPE_INVALID, "CKR_ATTRIBUTE_TYPE_INVALID"},
      {CKR_ATTRIBUTE_VALUE_INVALID, "CKR_ATTRIBUTE_VALUE_INVALID"},
      {CKR_ACTION_PROHIBITED, "CKR_ACTION_PROHIBITED"},
      {CKR_ARGUMENTS_BAD, "CKR_ARGUMENTS_BAD"},
      {CKR_KEY_HANDLE_INVALID, "CKR_KEY_HANDLE_INVALID"},
      {CKR_KEY_TYPE_INCONSISTENT, "CKR_KEY_TYPE_INCONSISTENT"},
      {CKR_KEY_FUNCTION_NOT_PERMITTED, "CKR_KEY_FUNCTION_NOT_PERMITTED"},
      {CKR_KEY_NOT_WRAPPABLE, "CKR_KEY_NOT_WRAPPABLE"},
      {CKR_KEY_UNEXTRACTABLE, "CKR_KEY_UNEXTRACTABLE"},
      {CKR_MECHANISM_INVALID, "CKR_MECHANISM_INVALID"},
      {CKR_MECHANISM_PARAM_INVALID, "CKR_MECHANISM_PARAM_INVALID"},
      {CKR_OBJECT_HANDLE_INVALID, "CKR_OBJECT_HANDLE_INVALID"},
      {CKR_TEMPLATE_INCOMPLETE, "CKR_TEMPLATE_INCOMPLETE"},
      {CKR_TEMPLATE_INCONSISTENT, "CKR_TEMPLATE_INCONSISTENT"},
      {CKR_UNWRAPPING_KEY_HANDLE_INVALID, "CKR_UNWRAPPING_KEY_HANDLE_INVALID"},
      {CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT, "CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT"},
      {CKR_WRAPPED_KEY_INVALID, "CKR_WRAPPED_KEY_INVALID"},
      {CKR_WRAPPING_KEY_TYPE_INCONSISTENT, "CKR_WRAPPING_KEY_TYPE_INCONSISTENT"},
      {CKR_ENCRYPTED_DATA_INVALID, "CKR_ENCRYPTED_DATA_INVALID"},
      {CKR_PIN_INCORRECT, "CKR_PIN_INCORRECT"},
      {CKR_USER_NOT_LOGGED_IN, "CKR_USER_NOT_LOGGED_IN"},
  };
  char hex[24];
  std::snprintf(hex, sizeof hex, "0x%lx", static_cast<unsigned long>(rv));
  auto it = names.find(rv);
  return (it == names.end() ? std::string("CKR_?") : it->second) + " (" + hex + ")";
}

KeystoreCopy ReadKeystore(const std::string& db_path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    const std::string message = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    throw std::runtime_error("cannot open " + db_path + ": " + message);
  }
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> closer(db, sqlite3_close);
  auto query = [&](const char* sql, auto&& row) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) != SQLITE_OK) {
      throw std::runtime_error(std::string("cannot read the keystore: ") + sqlite3_errmsg(db));
    }
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> finalizer(stmt, sqlite3_finalize);
    int step;
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) row(stmt);
    if (step != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(db));
  };
  auto text = [](sqlite3_stmt* stmt, int column) {
    const unsigned char* value = sqlite3_column_text(stmt, column);
    return value ? std::string(reinterpret_cast<const char*>(value)) : std::string();
  };
  KeystoreCopy copy;
  query("SELECT root_label FROM tenants WHERE root_label <> ''",
        [&](sqlite3_stmt* s) { copy.token_labels.insert(text(s, 0)); });
  query("SELECT kek_label FROM keys WHERE kek_label <> ''",
        [&](sqlite3_stmt* s) { copy.token_labels.insert(text(s, 0)); });
  query("SELECT label FROM token_objects_to_destroy ORDER BY label",
        [&](sqlite3_stmt* s) { copy.queued_for_destruction.push_back(text(s, 0)); });
  query(
      "SELECT t.name, k.name, k.id, CASE WHEN k.kek_label <> '' THEN k.kek_label "
      "ELSE t.root_label END, v.version, v.wrapped FROM key_versions v "
      "JOIN keys k ON k.id = v.key_id JOIN tenants t ON t.name = k.tenant "
      "ORDER BY t.name, k.name, v.version",
      [&](sqlite3_stmt* s) {
        StoredVersion v;
        v.tenant = text(s, 0);
        v.key_name = text(s, 1);
        v.key_id = Hex(sqlite3_column_blob(s, 2), sqlite3_column_bytes(s, 2));
        v.wrapping_label = text(s, 3);
        v.version = static_cast<uint64_t>(sqlite3_column_int64(s, 4));
        const auto* wrapped = static_cast<const uint8_t*>(sqlite3_column_blob(s, 5));
        v.wrapped.assign(wrapped, wrapped + sqlite3_column_bytes(s, 5));
        copy.versions.push_back(std::move(v));
      });
  return copy;
}

std::unique_ptr<PinHolder> PinHolder::Login(const std::string& module_path,
                                            const std::string& token_label,
                                            const std::string& pin) {
  std::unique_ptr<PinHolder> holder(new PinHolder);
  holder->library_ = dlopen(module_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (holder->library_ == nullptr) throw std::runtime_error(std::string("dlopen: ") + dlerror());
  auto get_list =
      reinterpret_cast<CK_C_GetFunctionList>(dlsym(holder->library_, "C_GetFunctionList"));
  if (get_list == nullptr) throw std::runtime_error("no C_GetFunctionList in " + module_path);
  Check(get_list(&holder->fn_), "C_GetFunctionList");
  CK_C_INITIALIZE_ARGS args = {};
  args.flags = CKF_OS_LOCKING_OK;
  Check(holder->fn_->C_Initialize(&args), "C_Initialize");

  CK_ULONG count = 0;
  Check(holder->fn_->C_GetSlotList(CK_TRUE, nullptr, &count), "C_GetSlotList");
  std::vector<CK_SLOT_ID> slots(count);
  Check(holder->fn_->C_GetSlotList(CK_TRUE, slots.data(), &count), "C_GetSlotList");
  bool found = false;
  for (CK_ULONG i = 0; i < count && !found; ++i) {
    CK_TOKEN_INFO info;
    if (holder->fn_->C_GetTokenInfo(slots[i], &info) != CKR_OK) continue;
    std::string label(reinterpret_cast<const char*>(info.label), sizeof info.label);
    label.erase(label.find_last_not_of(' ') + 1);
    found = label == token_label;
    if (found) holder->slot_ = slots[i];
  }
  if (!found) throw std::runtime_error("no token labelled " + token_label);
  holder->session_ = holder->OpenSession();
  std::string user_pin = pin;
  Check(holder->fn_->C_Login(holder->session_, CKU_USER,
                             reinterpret_cast<CK_UTF8CHAR*>(user_pin.data()), user_pin.size()),
        "C_Login");
  return holder;
}

PinHolder::~PinHolder() {
  if (fn_ != nullptr) {
    if (session_ != CK_INVALID_HANDLE) fn_->C_Logout(session_);
    fn_->C_CloseAllSessions(slot_);
    fn_->C_Finalize(nullptr);
  }
  if (library_ != nullptr) dlclose(library_);
}

CK_SESSION_HANDLE PinHolder::OpenSession() {
  CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
  Check(fn_->C_OpenSession(slot_, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &session),
        "C_OpenSession");
  return session;
}

void PinHolder::ReopenSession() {
  // Another session first: closing the last one would log the user out.
  const CK_SESSION_HANDLE next = OpenSession();
  Check(fn_->C_CloseSession(session_), "C_CloseSession");
  session_ = next;
  attacker_key_ = CK_INVALID_HANDLE;  // a session object of the closed session
}

std::vector<TokenKey> PinHolder::SecretKeys() {
  CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
  CK_BBOOL yes = CK_TRUE;
  CK_ATTRIBUTE query[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_TOKEN, &yes, sizeof yes}};
  const std::vector<CK_OBJECT_HANDLE> handles = FindHandles(query, 2);
  std::vector<TokenKey> keys;
  for (size_t i = 0; i < handles.size(); ++i) {
    CK_ATTRIBUTE attrs[] = {{CKA_LABEL, nullptr, 0}, {CKA_KEY_TYPE, nullptr, 0}};
    Check(fn_->C_GetAttributeValue(session_, handles[i], attrs, 2), "C_GetAttributeValue");
    TokenKey key{std::string(attrs[0].ulValueLen, '\0'), handles[i], CKK_VENDOR_DEFINED};
    attrs[0].pValue = key.label.data();
    attrs[1].pValue = &key.key_type;
    Check(fn_->C_GetAttributeValue(session_, handles[i], attrs, 2), "C_GetAttributeValue");
    keys.push_back(std::move(key));
  }
  return keys;
}

std::vector<CK_OBJECT_HANDLE> PinHolder::FindHandles(CK_ATTRIBUTE* query, CK_ULONG count) {
  Check(fn_->C_FindObjectsInit(session_, query, count), "C_FindObjectsInit");
  std::vector<CK_OBJECT_HANDLE> handles(4096);
  CK_ULONG found = 0;
  const CK_RV rv = fn_->C_FindObjects(session_, handles.data(), handles.size(), &found);
  fn_->C_FindObjectsFinal(session_);
  Check(rv, "C_FindObjects");
  handles.resize(found);
  return handles;
}

size_t PinHolder::CountMatching(CK_ATTRIBUTE* query, CK_ULONG count) {
  return FindHandles(query, count).size();
}

namespace {
constexpr char kAuditHeadLabel[] = "global/audit-log-head";
}  // namespace

// One search, each object looked at: counting every object and then the
// heads, in two searches, came out one short when kmsd sealed in between.
size_t PinHolder::CountTokenObjects() {
  CK_BBOOL yes = CK_TRUE;
  CK_ATTRIBUTE query[] = {{CKA_TOKEN, &yes, sizeof yes}};
  size_t objects = 0;
  for (CK_OBJECT_HANDLE handle : FindHandles(query, 1)) {
    CK_OBJECT_CLASS cls = 0;
    char label[sizeof kAuditHeadLabel] = {};
    CK_ATTRIBUTE attrs[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_LABEL, label, sizeof label}};
    const CK_RV rv = fn_->C_GetAttributeValue(session_, handle, attrs, 2);
    // Gone since the search: a head kmsd replaced (a key that went would
    // make the count short, which the callers see).
    if (rv == CKR_OBJECT_HANDLE_INVALID) continue;
    // A longer label does not fit (CKR_BUFFER_TOO_SMALL): not a head.
    const bool head = rv == CKR_OK && cls == CKO_DATA &&
                      attrs[1].ulValueLen == sizeof kAuditHeadLabel - 1 &&
                      std::memcmp(label, kAuditHeadLabel, sizeof kAuditHeadLabel - 1) == 0;
    if (!head) ++objects;
  }
  return objects;
}

size_t PinHolder::CountAuditHeads() {
  CK_BBOOL yes = CK_TRUE;
  CK_OBJECT_CLASS data = CKO_DATA;
  CK_ATTRIBUTE query[] = {
      {CKA_TOKEN, &yes, sizeof yes},
      {CKA_CLASS, &data, sizeof data},
      {CKA_LABEL, const_cast<char*>(kAuditHeadLabel), sizeof kAuditHeadLabel - 1}};
  return CountMatching(query, 3);
}

std::vector<CK_OBJECT_HANDLE> PinHolder::FindKeys(const std::string& label) {
  std::vector<CK_OBJECT_HANDLE> handles;
  for (const TokenKey& key : SecretKeys()) {
    if (key.label == label) handles.push_back(key.handle);
  }
  return handles;
}

std::map<std::string, std::string> PinHolder::Describe() {
  std::map<std::string, std::string> described;
  for (const TokenKey& key : SecretKeys()) {
    std::string line = "type=" + std::to_string(key.key_type);
    for (CK_ATTRIBUTE_TYPE type : kBooleanAttributes) {
      std::optional<bool> value = ReadBool(key.handle, type);
      line += " " + std::to_string(type) + "=" + (value ? std::to_string(*value) : "?");
    }
    described[key.label] += line + ";";
  }
  return described;
}

std::optional<bool> PinHolder::ReadBool(CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type) {
  CK_BBOOL value = CK_FALSE;
  CK_ATTRIBUTE attr = {type, &value, sizeof value};
  if (fn_->C_GetAttributeValue(session_, object, &attr, 1) != CKR_OK) return std::nullopt;
  return value == CK_TRUE;
}

std::map<CK_ATTRIBUTE_TYPE, bool> PinHolder::ReadTemplateBools(CK_OBJECT_HANDLE object,
                                                               CK_ATTRIBUTE_TYPE type) {
  std::map<CK_ATTRIBUTE_TYPE, bool> out;
  CK_ATTRIBUTE attr = {type, nullptr, 0};
  if (fn_->C_GetAttributeValue(session_, object, &attr, 1) != CKR_OK) return out;
  // PKCS#11 2.40 section 5.2: the size, then each element's type and length,
  // then the values.
  std::vector<CK_ATTRIBUTE> elements(attr.ulValueLen / sizeof(CK_ATTRIBUTE));
  if (elements.empty()) return out;
  for (CK_ATTRIBUTE& e : elements) e = {0, nullptr, 0};
  attr.pValue = elements.data();
  if (fn_->C_GetAttributeValue(session_, object, &attr, 1) != CKR_OK) return out;
  std::deque<std::vector<uint8_t>> values;
  for (CK_ATTRIBUTE& e : elements) e.pValue = values.emplace_back(e.ulValueLen).data();
  if (fn_->C_GetAttributeValue(session_, object, &attr, 1) != CKR_OK) return out;
  for (const CK_ATTRIBUTE& e : elements) {
    if (e.ulValueLen == sizeof(CK_BBOOL)) {
      out[e.type] = *static_cast<const CK_BBOOL*>(e.pValue) == CK_TRUE;
    }
  }
  return out;
}

std::vector<std::string> PinHolder::Weaknesses(const TokenKey& key) {
  std::vector<std::string> out;
  auto expect = [&](CK_ATTRIBUTE_TYPE type, const char* name, bool wanted) {
    const std::optional<bool> value = ReadBool(key.handle, type);
    if (value == wanted) return;
    out.push_back(std::string(name) + (!value ? " unreadable" : *value ? "=TRUE" : "=FALSE"));
  };
  expect(CKA_MODIFIABLE, "CKA_MODIFIABLE", false);
  expect(CKA_COPYABLE, "CKA_COPYABLE", false);
  expect(CKA_SENSITIVE, "CKA_SENSITIVE", true);
  expect(CKA_EXTRACTABLE, "CKA_EXTRACTABLE", false);
  expect(CKA_DERIVE, "CKA_DERIVE", false);
  if (key.key_type != CKK_AES) return out;
  const std::map<CK_ATTRIBUTE_TYPE, bool> unwrap =
      ReadTemplateBools(key.handle, CKA_UNWRAP_TEMPLATE);
  if (unwrap.empty()) out.push_back("no CKA_UNWRAP_TEMPLATE");
  auto forced = [&](CK_ATTRIBUTE_TYPE type, bool wanted) {
    auto it = unwrap.find(type);
    return it != unwrap.end() && it->second == wanted;
  };
  if (!forced(CKA_SENSITIVE, true) || !forced(CKA_EXTRACTABLE, false)) {
    out.push_back("CKA_UNWRAP_TEMPLATE lets an unwrapped key be exported");
  }
  return out;
}

// Both steps of reading CKA_VALUE: the length, then the bytes.
CK_RV PinHolder::ReadValue(CK_OBJECT_HANDLE object) {
  CK_ATTRIBUTE attr = {CKA_VALUE, nullptr, 0};
  CK_RV rv = fn_->C_GetAttributeValue(session_, object, &attr, 1);
  if (rv != CKR_OK) return rv;
  std::vector<uint8_t> value(attr.ulValueLen);
  attr.pValue = value.data();
  return fn_->C_GetAttributeValue(session_, object, &attr, 1);
}

CK_OBJECT_HANDLE PinHolder::AttackerKey() {
  if (attacker_key_ != CK_INVALID_HANDLE) return attacker_key_;
  CK_MECHANISM generate = {CKM_AES_KEY_GEN, nullptr, 0};
  Template t;
  t.Ulong(CKA_CLASS, CKO_SECRET_KEY)
      .Ulong(CKA_KEY_TYPE, CKK_AES)
      .Ulong(CKA_VALUE_LEN, 32)
      .Bool(CKA_TOKEN, false)
      .Bool(CKA_SENSITIVE, false)
      .Bool(CKA_EXTRACTABLE, true)
      .Bool(CKA_ENCRYPT, true)
      .Bool(CKA_DECRYPT, true)
      .Bool(CKA_WRAP, true)
      .Bool(CKA_UNWRAP, true);
  Check(fn_->C_GenerateKey(session_, &generate, t.data(), t.size(), &attacker_key_),
        "C_GenerateKey (attacker's key)");
  return attacker_key_;
}

void PinHolder::FollowUp(const Attempt& attempt, CK_OBJECT_HANDLE made, std::vector<Attempt>& out) {
  out.push_back(attempt);
  if (attempt.rv != CKR_OK || made == CK_INVALID_HANDLE) return;
  out.push_back({attempt.route + ", then read CKA_VALUE", attempt.target, ReadValue(made)});
  fn_->C_DestroyObject(session_, made);
}

void PinHolder::ModifyRoutes(const std::string& prefix, const std::string& target,
                             CK_OBJECT_HANDLE object, std::vector<Attempt>& out) {
  auto set = [&](const std::string& route, CK_ATTRIBUTE attr) {
    out.push_back(
        {prefix + "set " + route, target, fn_->C_SetAttributeValue(session_, object, &attr, 1)});
  };
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  set("CKA_EXTRACTABLE=TRUE", {CKA_EXTRACTABLE, &yes, sizeof yes});
  set("CKA_SENSITIVE=FALSE", {CKA_SENSITIVE, &no, sizeof no});
  set("CKA_MODIFIABLE=TRUE", {CKA_MODIFIABLE, &yes, sizeof yes});
  set("CKA_COPYABLE=TRUE", {CKA_COPYABLE, &yes, sizeof yes});
  const std::pair<CK_ATTRIBUTE_TYPE, const char*> usages[] = {
      {CKA_ENCRYPT, "CKA_ENCRYPT"}, {CKA_DECRYPT, "CKA_DECRYPT"}, {CKA_SIGN, "CKA_SIGN"},
      {CKA_VERIFY, "CKA_VERIFY"},   {CKA_WRAP, "CKA_WRAP"},       {CKA_UNWRAP, "CKA_UNWRAP"},
      {CKA_DERIVE, "CKA_DERIVE"}};
  for (auto [type, name] : usages) {
    CK_BBOOL& flipped = ReadBool(object, type).value_or(false) ? no : yes;
    set(std::string(name) + " toggled", {type, &flipped, sizeof flipped});
  }
  std::string label = "attacker/renamed";
  set("CKA_LABEL", {CKA_LABEL, label.data(), static_cast<CK_ULONG>(label.size())});
  CK_ATTRIBUTE permissive[] = {{CKA_EXTRACTABLE, &yes, sizeof yes},
                               {CKA_SENSITIVE, &no, sizeof no}};
  CK_ATTRIBUTE empty[1] = {};
  set("CKA_UNWRAP_TEMPLATE to an empty template", {CKA_UNWRAP_TEMPLATE, empty, 0});
  set("CKA_UNWRAP_TEMPLATE to a permissive template",
      {CKA_UNWRAP_TEMPLATE, permissive, sizeof permissive});
  set("CKA_WRAP_TEMPLATE to an empty template", {CKA_WRAP_TEMPLATE, empty, 0});
}

void PinHolder::CopyRoutes(const std::string& prefix, const std::string& target,
                           CK_OBJECT_HANDLE object, std::vector<Attempt>& out) {
  auto copy = [&](const std::string& route, Template t) {
    CK_OBJECT_HANDLE made = CK_INVALID_HANDLE;
    const CK_RV rv = fn_->C_CopyObject(session_, object, t.data(), t.size(), &made);
    FollowUp({prefix + "copy " + route, target, rv}, made, out);
  };
  const bool on_token = ReadBool(object, CKA_TOKEN).value_or(false);
  copy("with CKA_TOKEN flipped", std::move(Template().Bool(CKA_TOKEN, !on_token)));
  copy("with CKA_EXTRACTABLE=TRUE", std::move(Template().Bool(CKA_EXTRACTABLE, true)));
  copy("with CKA_SENSITIVE=FALSE", std::move(Template().Bool(CKA_SENSITIVE, false)));
  copy("with CKA_MODIFIABLE=TRUE", std::move(Template().Bool(CKA_MODIFIABLE, true)));
  copy("with an empty template", Template());
}

void PinHolder::WrapRoutes(const std::string& prefix, const std::string& target,
                           CK_OBJECT_HANDLE object, std::vector<Attempt>& out) {
  std::array<uint8_t, 16> iv = {};
  const std::pair<CK_MECHANISM, const char*> mechanisms[] = {
      {{CKM_AES_KEY_WRAP_PAD, nullptr, 0}, "CKM_AES_KEY_WRAP_PAD"},
      {{CKM_AES_KEY_WRAP, nullptr, 0}, "CKM_AES_KEY_WRAP"},
      {{CKM_AES_CBC, iv.data(), iv.size()}, "CKM_AES_CBC"},
  };
  const CK_OBJECT_HANDLE attacker = AttackerKey();
  for (auto [mechanism, name] : mechanisms) {
    std::vector<uint8_t> wrapped(1024);
    CK_ULONG length = wrapped.size();
    out.push_back(
        {prefix + "wrap under the attacker's key with " + name, target,
         fn_->C_WrapKey(session_, &mechanism, attacker, object, wrapped.data(), &length)});
  }
}

void PinHolder::DeriveRoutes(const std::string& prefix, const std::string& target,
                             CK_OBJECT_HANDLE object, std::vector<Attempt>& out) {
  std::array<uint8_t, 32> data = {};
  CK_KEY_DERIVATION_STRING_DATA string_data = {data.data(), data.size()};
  CK_AES_CBC_ENCRYPT_DATA_PARAMS cbc_data = {};
  cbc_data.pData = data.data();
  cbc_data.length = data.size();
  CK_OBJECT_HANDLE other = AttackerKey();
  const std::pair<CK_MECHANISM, const char*> mechanisms[] = {
      {{CKM_AES_ECB_ENCRYPT_DATA, &string_data, sizeof string_data}, "CKM_AES_ECB_ENCRYPT_DATA"},
      {{CKM_AES_CBC_ENCRYPT_DATA, &cbc_data, sizeof cbc_data}, "CKM_AES_CBC_ENCRYPT_DATA"},
      {{CKM_CONCATENATE_BASE_AND_DATA, &string_data, sizeof string_data},
       "CKM_CONCATENATE_BASE_AND_DATA"},
      {{CKM_CONCATENATE_DATA_AND_BASE, &string_data, sizeof string_data},
       "CKM_CONCATENATE_DATA_AND_BASE"},
      {{CKM_CONCATENATE_BASE_AND_KEY, &other, sizeof other}, "CKM_CONCATENATE_BASE_AND_KEY"},
      {{CKM_XOR_BASE_AND_DATA, &string_data, sizeof string_data}, "CKM_XOR_BASE_AND_DATA"},
  };
  for (auto [mechanism, name] : mechanisms) {
    Template t = ReadableDerivedTemplate();
    CK_OBJECT_HANDLE made = CK_INVALID_HANDLE;
    const CK_RV rv = fn_->C_DeriveKey(session_, &mechanism, object, t.data(), t.size(), &made);
    FollowUp({prefix + "derive with " + name, target, rv}, made, out);
  }
}

// Data usage on a key that has none: undoing RFC 5649 by hand (AES-ECB
// decryption of the wrapped bytes), or encrypting with a KEK. Each in a
// session of its own, so that an init that works leaves nothing active.
void PinHolder::DataUsageRoutes(const std::string& target, CK_OBJECT_HANDLE object,
                                std::vector<Attempt>& out) {
  std::array<uint8_t, 16> iv = {};
  CK_GCM_PARAMS gcm = {};
  gcm.pIv = iv.data();
  gcm.ulIvLen = 12;
  gcm.ulIvBits = 96;
  gcm.ulTagBits = 128;
  const std::pair<CK_MECHANISM, const char*> mechanisms[] = {
      {{CKM_AES_ECB, nullptr, 0}, "CKM_AES_ECB"},
      {{CKM_AES_CBC, iv.data(), iv.size()}, "CKM_AES_CBC"},
      {{CKM_AES_GCM, &gcm, sizeof gcm}, "CKM_AES_GCM"},
      {{CKM_AES_KEY_WRAP, nullptr, 0}, "CKM_AES_KEY_WRAP"},
      {{CKM_AES_KEY_WRAP_PAD, nullptr, 0}, "CKM_AES_KEY_WRAP_PAD"},
  };
  for (auto [mechanism, name] : mechanisms) {
    for (bool encrypt : {true, false}) {
      const CK_SESSION_HANDLE session = OpenSession();
      const CK_RV rv = encrypt ? fn_->C_EncryptInit(session, &mechanism, object)
                               : fn_->C_DecryptInit(session, &mechanism, object);
      fn_->C_CloseSession(session);
      out.push_back({std::string(encrypt ? "C_EncryptInit with " : "C_DecryptInit with ") + name,
                     target, rv});
    }
  }
}

void PinHolder::UseRoutes(const TokenKey& key, std::vector<Attempt>& out) {
  if (key.key_type == CKK_GENERIC_SECRET) {
    CK_MECHANISM hmac = {CKM_SHA256_HMAC, nullptr, 0};
    uint8_t data[] = "audit record";
    std::array<uint8_t, 32> mac = {};
    CK_ULONG length = mac.size();
    CK_RV rv = fn_->C_SignInit(session_, &hmac, key.handle);
    if (rv == CKR_OK) rv = fn_->C_Sign(session_, data, sizeof data, mac.data(), &length);
    if (rv == CKR_OK) rv = fn_->C_VerifyInit(session_, &hmac, key.handle);
    if (rv == CKR_OK) rv = fn_->C_Verify(session_, data, sizeof data, mac.data(), length);
    out.push_back({"use: HMAC-SHA256 sign and verify", key.label, rv});
    return;
  }
  // A wrapping key wraps only what its CKA_WRAP_TEMPLATE allows: a fresh
  // sensitive AES session key without usages, not the attacker's key.
  CK_MECHANISM pad = {CKM_AES_KEY_WRAP_PAD, nullptr, 0};
  std::vector<uint8_t> wrapped(1024);
  CK_ULONG length = wrapped.size();
  out.push_back(
      {"wrap the attacker's key (with usages, not sensitive)", key.label,
       fn_->C_WrapKey(session_, &pad, key.handle, AttackerKey(), wrapped.data(), &length)});
  CK_MECHANISM generate = {CKM_AES_KEY_GEN, nullptr, 0};
  Template fresh;
  fresh.Ulong(CKA_CLASS, CKO_SECRET_KEY)
      .Ulong(CKA_KEY_TYPE, CKK_AES)
      .Ulong(CKA_VALUE_LEN, 32)
      .Bool(CKA_TOKEN, false)
      .Bool(CKA_SENSITIVE, true)
      .Bool(CKA_EXTRACTABLE, true)
      .Bool(CKA_ENCRYPT, false)
      .Bool(CKA_DECRYPT, false)
      .Bool(CKA_WRAP, false)
      .Bool(CKA_UNWRAP, false)
      .Bool(CKA_DERIVE, false);
  CK_OBJECT_HANDLE made = CK_INVALID_HANDLE;
  CK_RV rv = fn_->C_GenerateKey(session_, &generate, fresh.data(), fresh.size(), &made);
  length = wrapped.size();
  if (rv == CKR_OK) {
    rv = fn_->C_WrapKey(session_, &pad, key.handle, made, wrapped.data(), &length);
    fn_->C_DestroyObject(session_, made);
  }
  out.push_back({"use: wrap a fresh sensitive AES key without usages", key.label, rv});
}

std::vector<Attempt> PinHolder::AttackTokenKey(const TokenKey& key) {
  std::vector<Attempt> out;
  out.push_back({"read CKA_VALUE", key.label, ReadValue(key.handle)});
  // Changes first, so that against a token that allows them (kmsd before the
  // hardening) the routes after use what they changed, as an attacker would.
  ModifyRoutes("", key.label, key.handle, out);
  DataUsageRoutes(key.label, key.handle, out);
  CopyRoutes("", key.label, key.handle, out);
  WrapRoutes("", key.label, key.handle, out);
  DeriveRoutes("", key.label, key.handle, out);
  UseRoutes(key, out);
  return out;
}

CK_RV PinHolder::UnwrapUsable(CK_OBJECT_HANDLE wrapping_key, std::span<const uint8_t> wrapped,
                              CK_OBJECT_HANDLE* key) {
  CK_MECHANISM pad = {CKM_AES_KEY_WRAP_PAD, nullptr, 0};
  Template t = CompliantVersionTemplate();
  std::vector<uint8_t> bytes(wrapped.begin(), wrapped.end());
  return fn_->C_UnwrapKey(session_, &pad, wrapping_key, bytes.data(), bytes.size(), t.data(),
                          t.size(), key);
}

CK_RV PinHolder::GcmRoundTrip(CK_OBJECT_HANDLE key) {
  std::array<uint8_t, 12> iv = {1, 2, 3};
  uint8_t aad[] = "aad";
  CK_GCM_PARAMS params = {iv.data(), iv.size(), 96, aad, sizeof aad, 128};
  CK_MECHANISM gcm = {CKM_AES_GCM, &params, sizeof params};
  uint8_t plaintext[] = "a PIN holder may use a key while it exists";
  std::vector<uint8_t> sealed(sizeof plaintext + 16), opened(sizeof plaintext + 16);
  CK_ULONG sealed_length = sealed.size(), opened_length = opened.size();
  CK_RV rv = fn_->C_EncryptInit(session_, &gcm, key);
  if (rv == CKR_OK) {
    rv = fn_->C_Encrypt(session_, plaintext, sizeof plaintext, sealed.data(), &sealed_length);
  }
  if (rv == CKR_OK) rv = fn_->C_DecryptInit(session_, &gcm, key);
  if (rv == CKR_OK) {
    rv = fn_->C_Decrypt(session_, sealed.data(), sealed_length, opened.data(), &opened_length);
  }
  if (rv == CKR_OK && (opened_length != sizeof plaintext ||
                       std::memcmp(opened.data(), plaintext, sizeof plaintext) != 0)) {
    rv = CKR_GENERAL_ERROR;
  }
  return rv;
}

std::vector<Attempt> PinHolder::AttackVersion(const StoredVersion& version,
                                              CK_OBJECT_HANDLE wrapping_key) {
  std::vector<Attempt> out;
  const std::string target = version.Name();
  CK_MECHANISM pad = {CKM_AES_KEY_WRAP_PAD, nullptr, 0};
  std::vector<uint8_t> wrapped = version.wrapped;
  auto unwrap = [&](const std::string& route, Template t) {
    CK_OBJECT_HANDLE made = CK_INVALID_HANDLE;
    const CK_RV rv = fn_->C_UnwrapKey(session_, &pad, wrapping_key, wrapped.data(), wrapped.size(),
                                      t.data(), t.size(), &made);
    FollowUp({"unwrap " + route, target, rv}, made, out);
  };
  unwrap("with CKA_SENSITIVE=FALSE",
         std::move(CompliantVersionTemplate().Bool(CKA_SENSITIVE, false)));
  unwrap("with CKA_EXTRACTABLE=TRUE",
         std::move(CompliantVersionTemplate().Bool(CKA_EXTRACTABLE, true)));
  unwrap(
      "with CKA_SENSITIVE=FALSE and CKA_EXTRACTABLE=TRUE",
      std::move(CompliantVersionTemplate().Bool(CKA_SENSITIVE, false).Bool(CKA_EXTRACTABLE, true)));
  unwrap("with CKA_TOKEN=TRUE", std::move(CompliantVersionTemplate().Bool(CKA_TOKEN, true)));
  unwrap("with CKA_WRAP=TRUE", std::move(CompliantVersionTemplate().Bool(CKA_WRAP, true)));
  unwrap("with CKA_UNWRAP=TRUE", std::move(CompliantVersionTemplate().Bool(CKA_UNWRAP, true)));
  unwrap("with CKA_DERIVE=TRUE", std::move(CompliantVersionTemplate().Bool(CKA_DERIVE, true)));
  unwrap("with CKA_COPYABLE=TRUE", std::move(CompliantVersionTemplate().Bool(CKA_COPYABLE, true)));
  unwrap("with CKA_MODIFIABLE=TRUE",
         std::move(CompliantVersionTemplate().Bool(CKA_MODIFIABLE, true)));
  unwrap("as a CKK_GENERIC_SECRET key",
         std::move(CompliantVersionTemplate().Ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET)));
  unwrap("without the restricted attributes", std::move(Template()
                                                            .Ulong(CKA_CLASS, CKO_SECRET_KEY)
                                                            .Ulong(CKA_KEY_TYPE, CKK_AES)
                                                            .Bool(CKA_ENCRYPT, true)
                                                            .Bool(CKA_DECRYPT, true)));

  // Positive control: kmsd's own template works, and what it yields can be
  // used but not taken out.
  CK_OBJECT_HANDLE usable = CK_INVALID_HANDLE;
  const CK_RV unwrapped = UnwrapUsable(wrapping_key, version.wrapped, &usable);
  out.push_back({"unwrap with the compliant template", target, unwrapped});
  if (unwrapped != CKR_OK) return out;
  out.push_back({"use: AES-GCM encrypt and decrypt", target, GcmRoundTrip(usable)});
  out.push_back({"unwrapped: read CKA_VALUE", target, ReadValue(usable)});
  ModifyRoutes("unwrapped: ", target, usable, out);
  CopyRoutes("unwrapped: ", target, usable, out);
  WrapRoutes("unwrapped: ", target, usable, out);
  DeriveRoutes("unwrapped: ", target, usable, out);
  out.push_back({"unwrapped: destroy", target, fn_->C_DestroyObject(session_, usable)});
  return out;
}

CK_RV PinHolder::DecryptCiphertext(CK_OBJECT_HANDLE key, const std::string& tenant,
                                   std::span<const uint8_t> ciphertext, std::string* plaintext) {
  constexpr size_t kHeader = 22, kIv = 12, kTag = 16;
  if (ciphertext.size() < kHeader + kIv + kTag) return CKR_ARGUMENTS_BAD;
  std::vector<uint8_t> aad(ciphertext.begin(), ciphertext.begin() + kHeader);
  AppendU32(aad, static_cast<uint32_t>(tenant.size()));
  aad.insert(aad.end(), tenant.begin(), tenant.end());
  AppendU32(aad, 0);  // no encryption context
  std::vector<uint8_t> iv(ciphertext.begin() + kHeader, ciphertext.begin() + kHeader + kIv);
  std::vector<uint8_t> sealed(ciphertext.begin() + kHeader + kIv, ciphertext.end());
  CK_GCM_PARAMS params = {iv.data(), iv.size(), 96, aad.data(), aad.size(), 128};
  CK_MECHANISM gcm = {CKM_AES_GCM, &params, sizeof params};
  std::vector<uint8_t> opened(sealed.size());
  CK_ULONG length = opened.size();
  CK_RV rv = fn_->C_DecryptInit(session_, &gcm, key);
  if (rv == CKR_OK)
    rv = fn_->C_Decrypt(session_, sealed.data(), sealed.size(), opened.data(), &length);
  if (rv == CKR_OK) plaintext->assign(opened.begin(), opened.begin() + length);
  return rv;
}

}  // namespace kmsd::testing
