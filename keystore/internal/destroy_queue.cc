#include "keystore/internal/destroy_queue.h"

#include <spdlog/spdlog.h>

namespace kmsd::keystore_internal {

void DestroyQueue::Add(const std::vector<std::string>& labels) {
  std::lock_guard lock(mu_);
  labels_.insert(labels.begin(), labels.end());
}

Status DestroyQueue::Destroy(const std::string& label, size_t& destroyed) {
  ASSIGN_OR_RETURN(std::vector<pkcs11::ObjectHandle> handles,
                   token_.FindTokenSecretKeysByLabel(label));
  for (pkcs11::ObjectHandle handle : handles) {
    if (Status status = token_.DestroyObject(handle);
        !status.ok() && status.code() != Code::kNotFound) {
      return status;
    }
    ++destroyed;
  }
  // Dequeued only once the token finds no object of that label.
  ASSIGN_OR_RETURN(handles, token_.FindTokenSecretKeysByLabel(label));
  if (!handles.empty()) return Status(Code::kInternal, "still in the token after C_DestroyObject");
  return store_.TokenObjectDestroyed(label);
}

size_t DestroyQueue::DestroyQueued() {
  std::lock_guard lock(mu_);
  size_t destroyed = 0;
  for (auto it = labels_.begin(); it != labels_.end();) {
    if (Status status = Destroy(*it, destroyed); !status.ok()) {
      spdlog::error("cannot destroy token object {} (will retry): {}", *it, status.ToString());
      ++it;
      continue;
    }
    spdlog::info("token object {} destroyed", *it);
    it = labels_.erase(it);
  }
  return destroyed;
}

}  // namespace kmsd::keystore_internal
