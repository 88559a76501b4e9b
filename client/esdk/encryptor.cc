#include <openssl/crypto.h>

#include "client/esdk/message.h"
#include "client/esdk/random_pool.h"

namespace kmsd::esdk {
namespace {

constexpr size_t kMessageIdBytes = 32;
constexpr uint32_t kMaxWriteFrameLength = 64u << 20;

}  // namespace

size_t WriteBodyAad(uint8_t* out, std::span<const uint8_t> message_id, std::string_view label,
                    uint32_t sequence, uint64_t content_bytes) {
  uint8_t* at = std::copy(message_id.begin(), message_id.end(), out);
  at = std::copy(label.begin(), label.end(), at);
  StoreU32(at, sequence);
  StoreU32(at + 4, static_cast<uint32_t>(content_bytes >> 32));
  StoreU32(at + 8, static_cast<uint32_t>(content_bytes));
  return static_cast<size_t>(at + 12 - out);
}

Bytes BodyAad(std::span<const uint8_t> message_id, std::string_view label, uint32_t sequence,
              uint64_t content_bytes) {
  Bytes aad(kMaxBodyAadBytes);
  aad.resize(WriteBodyAad(aad.data(), message_id, label, sequence, content_bytes));
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
  RETURN_IF_ERROR(FillUniqueRandom(header.message_id));
  header.context = std::move(made.context);
  header.edks = std::move(made.edks);
  header.frame_length = options.frame_length;
  ASSIGN_OR_RETURN(DerivedKeys keys,
                   DeriveKeys(*suite, made.data_key.RevealSpan(), header.message_id));
  header.commitment = std::move(keys.commitment);
  ASSIGN_OR_RETURN(AesGcm cipher, AesGcm::Create(keys.data_key.RevealSpan(), AesGcm::Use::kSeal));
  ASSIGN_OR_RETURN(header.body, SerializeHeaderBody(header));
  // Nothing a reader with the default limits would refuse.
  const HeaderLimits limits;
  if (header.edks.size() > limits.max_edks ||
      header.body.size() + kTagBytes > limits.max_header_bytes) {
    return Error(Status(Code::kInvalidArgument,
                        "a header of " + std::to_string(header.edks.size()) +
                            " encrypted data keys and " + std::to_string(header.body.size()) +
                            " bytes: readers refuse more than " + std::to_string(limits.max_edks) +
                            " or " + std::to_string(limits.max_header_bytes) + " bytes"));
  }
  ASSIGN_OR_RETURN(header.tag, HeaderTag(cipher, header.body));
  std::unique_ptr<Encryptor> encryptor(new Encryptor(
      std::move(header), std::move(cipher), FrameCrew(std::move(keys.data_key), AesGcm::Use::kSeal),
      std::move(made.signer), std::move(sink)));
  encryptor->declared_bytes_ = options.plaintext_bytes;
  encryptor->parallel_ = options.parallel;
  RETURN_IF_ERROR(encryptor->Emit(encryptor->header_.body));
  RETURN_IF_ERROR(encryptor->Emit(SerializeHeaderAuth(encryptor->header_)));
  return encryptor;
}

Encryptor::Encryptor(Header header, AesGcm cipher, FrameCrew crew, std::optional<Signer> signer,
                     Sink sink)
    : header_(std::move(header)),
      cipher_(std::move(cipher)),
      crew_(std::move(crew)),
      signer_(std::move(signer)),
      sink_(std::move(sink)) {}

Encryptor::~Encryptor() { partial_.Wipe(); }

Status Encryptor::Fail(Status status) {
  failed_ = status;
  partial_.Wipe();
  partial_size_ = 0;
  return status;
}

Status Encryptor::Emit(std::span<const uint8_t> bytes) {
  if (signer_) RETURN_IF_ERROR(signer_->Update(bytes));
  return sink_(bytes);
}

namespace {

// Writes frame `sequence` (the final one when `final`) sealed with `cipher`
// at `out` (room for plaintext.size() + kFinalFrameOverheadBytes); returns its
// size. A frame: [marker (4)] sequence (4) | IV (12) | [length (4)] | content |
// tag (16).
Result<size_t> SealFrame(AesGcm& cipher, std::span<const uint8_t> message_id, uint32_t sequence,
                         bool final, std::span<const uint8_t> plaintext, uint8_t* out) {
  const auto iv = FrameIv(sequence);
  uint8_t aad[kMaxBodyAadBytes];
  const size_t aad_size = WriteBodyAad(aad, message_id, final ? kFinalFrameLabel : kFrameLabel,
                                       sequence, plaintext.size());
  uint8_t* at = out;
  if (final) {
    StoreU32(at, kFinalFrameMarker);
    at += 4;
  }
  StoreU32(at, sequence);
  at = std::copy(iv.begin(), iv.end(), at + 4);
  if (final) {
    StoreU32(at, static_cast<uint32_t>(plaintext.size()));
    at += 4;
  }
  RETURN_IF_ERROR(cipher.Seal(iv, {aad, aad_size}, plaintext, at, at + plaintext.size()));
  return static_cast<size_t>(at - out) + plaintext.size() + kTagBytes;
}

}  // namespace

Status Encryptor::EmitFrame(std::span<const uint8_t> plaintext, bool final) {
  if (sequence_ == kFinalFrameMarker) {
    return Status(Code::kInvalidArgument, "a message holds at most 2^32 - 1 frames");
  }
  uint8_t* const out = frame_.Reserve(plaintext.size() + kFinalFrameOverheadBytes);
  ASSIGN_OR_RETURN(const size_t size,
                   SealFrame(cipher_, header_.message_id, sequence_, final, plaintext, out));
  ++sequence_;
  return Emit({out, size});
}

// Whole frames sealed at once (parallel.h) and written out as one piece.
Status Encryptor::EmitFrames(std::span<const uint8_t> plaintext) {
  const size_t length = header_.frame_length, count = plaintext.size() / length;
  const size_t framed = length + kFrameOverheadBytes;
  uint8_t* const out = frame_.Reserve(count * framed);
  std::vector<Status> failures(count);
  RETURN_IF_ERROR(crew_.ForEachRun(count, [&](size_t first, size_t end, AesGcm& cipher) {
    for (size_t k = first; k < end; ++k) {
      auto sealed = SealFrame(cipher, header_.message_id, static_cast<uint32_t>(sequence_ + k),
                              false, plaintext.subspan(k * length, length), out + k * framed);
      if (!sealed) failures[k] = sealed.error();
    }
  }));
  for (const Status& failure : failures) RETURN_IF_ERROR(failure);
  sequence_ += static_cast<uint32_t>(count);
  return Emit({out, count * framed});
}

Status Encryptor::Write(std::span<const uint8_t> plaintext) {
  if (failed_) return *failed_;
  if (finished_) return Status(Code::kInvalidArgument, "the message is already finished");
  // A data key reused under a cache's byte limit was given for this many.
  if (declared_bytes_ && plaintext.size() > *declared_bytes_ - written_) {
    return Fail(
        Status(Code::kInvalidArgument,
               "more plaintext than the " + std::to_string(*declared_bytes_) + " bytes declared"));
  }
  written_ += plaintext.size();
  const size_t frame_length = header_.frame_length;
  while (!plaintext.empty()) {
    // Whole frames straight from the caller's bytes: several at once when
    // there are enough, the last ones of a message one at a time.
    if (partial_size_ == 0 && plaintext.size() >= frame_length) {
      const size_t batch =
          parallel_ ? FramesPerBatch(frame_length, plaintext.size() / frame_length) : 0;
      const bool parallel = batch > 0 && uint64_t{sequence_} + batch < kFinalFrameMarker;
      const size_t bytes = parallel ? batch * frame_length : frame_length;
      Status status = parallel ? EmitFrames(plaintext.first(bytes))
                               : EmitFrame(plaintext.first(frame_length), false);
      if (!status.ok()) return Fail(status);
      plaintext = plaintext.subspan(bytes);
      continue;
    }
    const size_t take = std::min(frame_length - partial_size_, plaintext.size());
    partial_.Grow(partial_size_ + take, partial_size_, frame_length);
    std::copy(plaintext.begin(), plaintext.begin() + static_cast<std::ptrdiff_t>(take),
              partial_.data() + partial_size_);
    partial_size_ += take;
    plaintext = plaintext.subspan(take);
    if (partial_size_ == frame_length) {
      if (Status status = EmitFrame({partial_.data(), frame_length}, false); !status.ok()) {
        return Fail(status);
      }
      partial_size_ = 0;
    }
  }
  return OkStatus();
}

Status Encryptor::Finish() {
  if (failed_) return *failed_;
  if (finished_) return Status(Code::kInvalidArgument, "the message is already finished");
  if (Status status = EmitFrame({partial_.data(), partial_size_}, true); !status.ok()) {
    return Fail(status);
  }
  partial_.Wipe();
  partial_size_ = 0;
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

std::optional<uint64_t> FramedPlaintextBytes(const Header& header, uint64_t header_bytes,
                                             uint64_t message_bytes) {
  if (header.suite == nullptr || header.suite->signature != Signature::kNone ||
      header.content_type != ContentType::kFramed || header.frame_length == 0) {
    return std::nullopt;
  }
  // A frame: sequence number, IV, content, tag. The final frame: its
  // marker, sequence number, IV, content length, content (0 to the frame
  // length), tag. So the body is n frames and a final one of c bytes, with
  // c < frame + kFrameOverheadBytes: one way only.
  if (message_bytes < header_bytes + kFinalFrameOverheadBytes) return std::nullopt;
  const uint64_t frames = message_bytes - header_bytes - kFinalFrameOverheadBytes;
  const uint64_t frame = header.frame_length;
  const uint64_t last = frames % (frame + kFrameOverheadBytes);
  if (last > frame) return std::nullopt;
  return frames / (frame + kFrameOverheadBytes) * frame + last;
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
