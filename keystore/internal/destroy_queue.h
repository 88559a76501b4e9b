// The destroy queue of crypto-shredding (DESIGN.md invariant 2): token
// objects (KEKs, old tenant roots) the keystore has forgotten and queued for
// destruction in the same transaction, destroyed in the token next and then
// dequeued in the keystore. A queue a crash left is worked off at the next
// start, before anything is served, so an older copy of the keystore put
// back later finds nothing to unwrap with. Private to keystore/.
//
// Thread-safe: the queue and the destruction run under the queue's own mutex,
// never under the catalog's lock.
#pragma once

#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "keystore/store.h"
#include "pkcs11/token.h"

namespace kmsd::keystore_internal {

class DestroyQueue {
 public:
  DestroyQueue(pkcs11::Token& token, KeyStore& store) : token_(token), store_(store) {}

  // Adds labels the keystore has queued.
  void Add(const std::vector<std::string>& labels);
  // Destroys every object of each queued label and dequeues the label once
  // the token has none left; what fails stays queued for the next call.
  // Returns how many objects were destroyed.
  size_t DestroyQueued();

 private:
  Status Destroy(const std::string& label, size_t& destroyed);

  pkcs11::Token& token_;
  KeyStore& store_;
  std::mutex mu_;
  std::set<std::string> labels_;  // guarded by mu_
};

}  // namespace kmsd::keystore_internal
