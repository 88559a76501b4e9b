// DecryptingSource: a backup's plaintext, decrypted from a file by a thread
// of its own while the caller parses it (archive.h's Source), so that
// AES-GCM and the reader's SHA-256 and tar parsing run on two cores. Pieces
// are handed over through a bounded queue (a few MiB: constant memory); a
// piece is released only after its frame authenticated (esdk::Decryptor).
// The first error ends the stream with it. Next() and the rest are called
// from one thread; the destructor stops and joins the producer.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "client/esdk/message.h"

namespace kmsd::backup {

class DecryptingSource {
 public:
  DecryptingSource(esdk::MaterialsManager& materials, int fd);
  ~DecryptingSource();
  DecryptingSource(const DecryptingSource&) = delete;
  DecryptingSource& operator=(const DecryptingSource&) = delete;

  // The next piece (valid until the next call); empty at the end.
  Result<std::span<const uint8_t>> Next();
  // The message's header, once the stream ended (Next gave the empty piece).
  const esdk::Header* header();

 private:
  void Produce();
  Status ProduceAll();
  Status Hand(std::vector<uint8_t> piece);  // waits while the queue is full

  const int fd_;
  esdk::Decryptor decryptor_;     // the producer's
  std::vector<uint8_t> filling_;  // the producer's: the sink appends here

  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<std::vector<uint8_t>> ready_;  // guarded by mu_
  bool done_ = false;                       // guarded by mu_
  bool stopping_ = false;                   // guarded by mu_
  std::optional<Status> error_;             // guarded by mu_
  std::vector<uint8_t> current_;            // the consumer's: the piece handed out last
  std::thread producer_;
};

}  // namespace kmsd::backup
