#include "client/backup/decrypting_source.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include <cstring>

namespace kmsd::backup {
namespace {

constexpr size_t kReadBytes = 1 << 20;
constexpr size_t kMaxReadyPieces = 4;

void Wipe(std::vector<uint8_t>& bytes) {
  OPENSSL_cleanse(bytes.data(), bytes.size());
  bytes.clear();
}

}  // namespace

DecryptingSource::DecryptingSource(esdk::MaterialsManager& materials, int fd)
    : fd_(fd),
      decryptor_(materials, esdk::DecryptOptions(), [this](std::span<const uint8_t> bytes) {
        filling_.insert(filling_.end(), bytes.begin(), bytes.end());
        return OkStatus();
      }) {
  producer_ = std::thread([this] { Produce(); });
}

DecryptingSource::~DecryptingSource() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  producer_.join();
  for (auto& piece : ready_) Wipe(piece);
  Wipe(current_);
  Wipe(filling_);
}

void DecryptingSource::Produce() {
  Status status = ProduceAll();
  std::lock_guard lock(mu_);
  if (!status.ok() && !error_) error_ = std::move(status);
  done_ = true;
  changed_.notify_all();
}

Status DecryptingSource::ProduceAll() {
  std::vector<uint8_t> ciphertext(kReadBytes);
  off_t offset = 0;
  while (true) {
    const ssize_t n = ::pread(fd_, ciphertext.data(), ciphertext.size(), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return Status(Code::kInternal,
                    std::string("cannot read the backup: ") + std::strerror(errno));
    }
    if (n == 0) {
      RETURN_IF_ERROR(decryptor_.Finish());
      return filling_.empty() ? OkStatus() : Hand(std::exchange(filling_, {}));
    }
    offset += n;
    RETURN_IF_ERROR(decryptor_.Write({ciphertext.data(), static_cast<size_t>(n)}));
    if (filling_.size() >= kReadBytes) RETURN_IF_ERROR(Hand(std::exchange(filling_, {})));
  }
}

Status DecryptingSource::Hand(std::vector<uint8_t> piece) {
  std::unique_lock lock(mu_);
  changed_.wait(lock, [&] { return stopping_ || ready_.size() < kMaxReadyPieces; });
  if (stopping_) {
    Wipe(piece);
    return Status(Code::kUnavailable, "the reader stopped");
  }
  ready_.push_back(std::move(piece));
  changed_.notify_all();
  return OkStatus();
}

Result<std::span<const uint8_t>> DecryptingSource::Next() {
  Wipe(current_);
  std::unique_lock lock(mu_);
  changed_.wait(lock, [&] { return !ready_.empty() || done_; });
  if (!ready_.empty()) {
    current_ = std::move(ready_.front());
    ready_.pop_front();
    changed_.notify_all();
    return std::span<const uint8_t>(current_);
  }
  if (error_) return Error(*error_);
  return std::span<const uint8_t>();
}

const esdk::Header* DecryptingSource::header() {
  std::lock_guard lock(mu_);
  return done_ && !error_ ? decryptor_.header() : nullptr;
}

}  // namespace kmsd::backup
