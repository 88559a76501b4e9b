// Token's persistent objects across reconnections (token.h, "Losing the
// token"): the handles callers hold, and the module's handles now.
#include <cstring>
#include <map>
#include <utility>

#include "pkcs11/token.h"

namespace kmsd::pkcs11 {

ObjectHandle Token::Track(ObjectHandle current, CK_OBJECT_CLASS cls, std::string_view label,
                          std::optional<Bytes> value) {
  std::unique_lock lock(objects_mu_);
  ObjectHandle held = current;
  if (auto it = stable_.find(current); it != stable_.end()) held = it->second;
  auto [entry, added] = tracked_.try_emplace(held, Tracked{cls, std::string(label), {}, current});
  if (!added) entry->second.current = current;
  if (value) entry->second.value = std::move(value);
  return held;
}

void Token::Untrack(ObjectHandle held) {
  std::unique_lock lock(objects_mu_);
  auto it = tracked_.find(held);
  if (it == tracked_.end()) return;
  stable_.erase(it->second.current);
  tracked_.erase(it);
}

ObjectHandle Token::Current(ObjectHandle held) const {
  std::shared_lock lock(objects_mu_);
  auto it = tracked_.find(held);
  return it == tracked_.end() ? held : it->second.current;
}

Status Token::RemapObjectsLocked() {
  {
    std::shared_lock lock(objects_mu_);
    if (tracked_.empty()) return OkStatus();
  }
  // One scan of each class (C_FindObjects is linear), then the labels, and
  // the values of data objects that share a label.
  struct Candidate {
    ObjectHandle handle;
    std::optional<std::string> value;
  };
  std::map<std::pair<CK_OBJECT_CLASS, std::string>, std::vector<Candidate>> found;
  for (CK_OBJECT_CLASS cls : {CKO_SECRET_KEY, CKO_DATA}) {
    ASSIGN_OR_RETURN(std::vector<ObjectHandle> handles, FindTokenObjects(cls, std::nullopt));
    for (ObjectHandle handle : handles) {
      ASSIGN_OR_RETURN(std::string label, ReadAttributeLocked(handle, CKA_LABEL));
      found[{cls, std::move(label)}].push_back({handle, std::nullopt});
    }
  }
  for (auto& [key, candidates] : found) {
    if (key.first != CKO_DATA || candidates.size() < 2) continue;
    for (Candidate& candidate : candidates) {
      ASSIGN_OR_RETURN(candidate.value, ReadAttributeLocked(candidate.handle, CKA_VALUE));
    }
  }
  std::unique_lock lock(objects_mu_);
  stable_.clear();
  for (auto& [held, object] : tracked_) {
    object.current = CK_INVALID_HANDLE;
    auto it = found.find({object.cls, object.label});
    if (it == found.end()) continue;
    if (it->second.size() == 1) {
      object.current = it->second.front().handle;
    } else if (object.value) {
      for (const Candidate& candidate : it->second) {
        const std::string& value = candidate.value.value_or("");
        if (value.size() == object.value->size() &&
            std::memcmp(value.data(), object.value->data(), value.size()) == 0) {
          object.current = candidate.handle;
          break;
        }
      }
    }
    if (object.current != CK_INVALID_HANDLE && object.current != held) {
      stable_[object.current] = held;
    }
  }
  return OkStatus();
}

}  // namespace kmsd::pkcs11
