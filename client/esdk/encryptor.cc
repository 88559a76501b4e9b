#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "client/esdk/message.h"

namespace kmsd::esdk {
namespace {

constexpr size_t kMessageIdBytes = 32;
constexpr uint32_t kMaxWriteFrameLength = 64u << 20;

void Wipe(Bytes& bytes) {
  OPENSSL_cleanse(bytes.data(), bytes.size());
  bytes.clear();
}

}  // namespace

Bytes BodyAad(std::span<const uint8_t> message_id, std::string_view label, uint32_t sequence,
              uint64_t content_bytes) {
  Bytes aad;
  aad.reserve(message_id.size() + label.size() + 12);
  PutBytes(aad, message_id);
  PutBytes(aad, label);
  PutU32(aad, sequence);
  PutU64(aad, content_bytes);
  return aad;
}

std::array<uint8_t, kIvBytes> FrameIv(uint32_t sequence) {
  std::array<uint8_t, kIvBytes> iv{};
  StoreU32(iv.data() + kIvBytes - 4, sequence);
  return iv;
}

Result<std::unique_ptr<Encryptor>> Encryptor::Start(MaterialsManager& materials,
                                                    const EncryptOptions& options, Sink sink) {
  const Suite* suite = FindSuite(options.suite_id);
  if (suite == nullptr || !suite->committing) {
    return Error(Status(Code::kInvalidArgument,
                        "kmsd encrypts with the committing suites 0x0478 and 0x0578 only"));
  }
  if (options.frame_length == 0 || options.frame_length > kMaxWriteFrameLength) {
    return Error(Status(Code::kInvalidArgument, "a frame length of 1 byte to 64 MiB"));
  }
  ASSIGN_OR_RETURN(EncryptionMaterials made, materials.GetEncryptionMaterials(
                                                 *suite, options.context, options.plaintext_bytes));
  Header header;
  header.suite = suite;
  header.message_id.resize(kMessageIdBytes);
  if (RAND_bytes(header.message_id.data(), kMessageIdBytes) != 1) {
    return Error(Status(Code::kInternal, "OpenSSL: no random bytes"));
  }
  header.context = std::move(made.context);
  header.edks = std::move(made.edks);
  header.frame_length = options.frame_length;
  ASSIGN_OR_RETURN(DerivedKeys keys,
                   DeriveKeys(*suite, made.data_key.RevealSpan(), header.message_id));
  header.commitment = std::move(keys.commitment);
  ASSIGN_OR_RETURN(AesGcm cipher, AesGcm::Create(keys.data_key.RevealSpan()));
  ASSIGN_OR_RETURN(header.body, SerializeHeaderBody(header));
  ASSIGN_OR_RETURN(header.tag, HeaderTag(cipher, header.body));
  std::unique_ptr<Encryptor> encryptor(
      new Encryptor(std::move(header), std::move(cipher), std::move(made.signer), std::move(sink)));
  RETURN_IF_ERROR(encryptor->Emit(encryptor->header_.body));
  RETURN_IF_ERROR(encryptor->Emit(SerializeHeaderAuth(encryptor->header_)));
  return encryptor;
}

Encryptor::Encryptor(Header header, AesGcm cipher, std::optional<Signer> signer, Sink sink)
    : header_(std::move(header)),
      cipher_(std::move(cipher)),
      signer_(std::move(signer)),
      sink_(std::move(sink)) {
  partial_.reserve(header_.frame_length);
}

Encryptor::~Encryptor() { Wipe(partial_); }

Status Encryptor::Fail(Status status) {
  failed_ = status;
  Wipe(partial_);
  return status;
}

Status Encryptor::Emit(std::span<const uint8_t> bytes) {
  if (signer_) RETURN_IF_ERROR(signer_->Update(bytes));
  return sink_(bytes);
}

Status Encryptor::EmitFrame(std::span<const uint8_t> plaintext, bool final) {
  if (sequence_ == kFinalFrameMarker) {
    return Status(Code::kInvalidArgument, "a message holds at most 2^32 - 1 frames");
  }
  const auto iv = FrameIv(sequence_);
  const Bytes aad = BodyAad(header_.message_id, final ? kFinalFrameLabel : kFrameLabel, sequence_,
                            plaintext.size());
  frame_.clear();
  if (final) PutU32(frame_, kFinalFrameMarker);
  PutU32(frame_, sequence_);
  PutBytes(frame_, iv);
  if (final) PutU32(frame_, static_cast<uint32_t>(plaintext.size()));
  const size_t at = frame_.size();
  frame_.resize(at + plaintext.size() + kTagBytes);
  RETURN_IF_ERROR(
      cipher_.Seal(iv, aad, plaintext, frame_.data() + at, frame_.data() + at + plaintext.size()));
  ++sequence_;
  return Emit(frame_);
}

Status Encryptor::Write(std::span<const uint8_t> plaintext) {
  if (failed_) return *failed_;
  if (finished_) return Status(Code::kInvalidArgument, "the message is already finished");
  const size_t frame_length = header_.frame_length;
  while (!plaintext.empty()) {
    // A whole frame straight from the caller's bytes when one more follows it.
    if (partial_.empty() && plaintext.size() > frame_length) {
      if (Status status = EmitFrame(plaintext.first(frame_length), false); !status.ok()) {
        return Fail(status);
      }
      plaintext = plaintext.subspan(frame_length);
      continue;
    }
    const size_t take = std::min(frame_length - partial_.size(), plaintext.size());
    partial_.insert(partial_.end(), plaintext.begin(), plaintext.begin() + take);
    plaintext = plaintext.subspan(take);
    if (partial_.size() == frame_length && !plaintext.empty()) {
      if (Status status = EmitFrame(partial_, false); !status.ok()) return Fail(status);
      Wipe(partial_);
    }
  }
  return OkStatus();
}

Status Encryptor::Finish() {
  if (failed_) return *failed_;
  if (finished_) return Status(Code::kInvalidArgument, "the message is already finished");
  if (Status status = EmitFrame(partial_, true); !status.ok()) return Fail(status);
  Wipe(partial_);
  if (signer_) {
    auto signature = signer_->Finish();
    if (!signature.has_value()) return Fail(signature.error());
    Bytes footer;
    PutU16(footer, static_cast<uint16_t>(signature->size()));
    PutBytes(footer, *signature);
    if (Status status = sink_(footer); !status.ok()) return Fail(status);
  }
  finished_ = true;
  return OkStatus();
}

Result<Bytes> EncryptMessage(MaterialsManager& materials, const EncryptOptions& options,
                             std::span<const uint8_t> plaintext) {
  Bytes out;
  const Sink sink = [&out](std::span<const uint8_t> bytes) {
    PutBytes(out, bytes);
    return OkStatus();
  };
  EncryptOptions with_size = options;
  with_size.plaintext_bytes = plaintext.size();
  ASSIGN_OR_RETURN(std::unique_ptr<Encryptor> encryptor,
                   Encryptor::Start(materials, with_size, sink));
  RETURN_IF_ERROR(encryptor->Write(plaintext));
  RETURN_IF_ERROR(encryptor->Finish());
  return out;
}

}  // namespace kmsd::esdk
