#include <openssl/crypto.h>

#include "client/esdk/message.h"

namespace kmsd::esdk {
namespace {

constexpr size_t kSequenceBytes = 4;

Status Bad(const std::string& why) { return Status(Code::kInvalidCiphertext, why); }

void Wipe(Bytes& bytes) {
  OPENSSL_cleanse(bytes.data(), bytes.size());
  bytes.clear();
}

}  // namespace

Decryptor::Decryptor(MaterialsManager& materials, DecryptOptions options, Sink sink)
    : materials_(materials), options_(std::move(options)), sink_(std::move(sink)) {}

Decryptor::~Decryptor() {
  plaintext_.Wipe();
  Wipe(held_);
}

Status Decryptor::Fail(Status status) {
  failed_ = status;
  plaintext_.Wipe();
  Wipe(held_);
  buffer_.clear();
  return status;
}

size_t Decryptor::BytesWanted(std::span<const uint8_t> pending) const {
  ByteReader in(pending);
  size_t whole = 0;  // the part's size once known
  switch (stage_) {
    case Stage::kHeader:
    case Stage::kDone:
      return std::max<size_t>(1, pending.size());  // small: take what comes
    case Stage::kBody:
      if (header_.content_type == ContentType::kNonFramed) {
        in.Take(kIvBytes);
        const uint64_t length = in.U64();
        if (in.is_short()) return kIvBytes + 8 - pending.size();
        whole =
            kIvBytes + 8 + std::min<uint64_t>(length, options_.limits.max_frame_length) + kTagBytes;
      } else if (frame_part_ != FramePart::kHead) {
        return 1;  // content and tag are taken as they come, never gathered
      } else if (const uint32_t sequence = in.U32(); in.is_short()) {
        return kSequenceBytes - pending.size();
      } else {
        whole = sequence == kFinalFrameMarker ? 3 * kSequenceBytes + kIvBytes
                                              : kSequenceBytes + kIvBytes;
      }
      break;
    case Stage::kFooter: {
      const uint16_t length = in.U16();
      if (in.is_short()) return 2 - pending.size();
      whole = 2 + length;
      break;
    }
  }
  return whole > pending.size() ? whole - pending.size() : 1;
}

// Parts that arrive whole are read straight from the caller's bytes; only a
// part split across writes is gathered in buffer_ first.
Status Decryptor::Write(std::span<const uint8_t> bytes) {
  if (failed_) return *failed_;
  while (!bytes.empty()) {
    if (buffer_.empty()) {
      auto consumed = Consume(bytes);
      if (!consumed.has_value()) return Fail(consumed.error());
      const auto rest = bytes.subspan(*consumed);
      buffer_.assign(rest.begin(), rest.end());
      return OkStatus();
    }
    const size_t take = std::min(BytesWanted(buffer_), bytes.size());
    PutBytes(buffer_, bytes.first(take));
    bytes = bytes.subspan(take);
    auto consumed = Consume(buffer_);
    if (!consumed.has_value()) return Fail(consumed.error());
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(*consumed));
  }
  return OkStatus();
}

Status Decryptor::Finish() {
  if (failed_) return *failed_;
  if (stage_ == Stage::kHeader && !buffer_.empty()) {
    finishing_ = true;  // the last chance to read a header that dripped in
    auto consumed = Consume(buffer_);
    if (!consumed.has_value()) return Fail(consumed.error());
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(*consumed));
  }
  if (stage_ != Stage::kDone) {
    static constexpr const char* kWhere[] = {"in its header", "before its final frame",
                                             "before its signature", ""};
    return Fail(
        Bad("the message ends " + std::string(kWhere[static_cast<int>(stage_)]) + " (truncated)"));
  }
  if (!buffer_.empty()) return Fail(Bad("bytes after the end of the message"));
  if (!held_.empty()) {
    if (Status status = sink_(held_); !status.ok()) return Fail(status);
    Wipe(held_);
  }
  return OkStatus();
}

Result<size_t> Decryptor::Consume(std::span<const uint8_t> bytes) {
  size_t consumed = 0;
  while (true) {
    const auto rest = bytes.subspan(consumed);
    Result<size_t> step = size_t{0};
    switch (stage_) {
      case Stage::kHeader:
        step = ConsumeHeader(rest);
        break;
      case Stage::kBody:
        step = header_.content_type == ContentType::kFramed ? ConsumeFrame(rest)
                                                            : ConsumeNonFramed(rest);
        break;
      case Stage::kFooter:
        step = ConsumeFooter(rest);
        break;
      case Stage::kDone:
        if (!rest.empty()) return Error(Bad("bytes after the end of the message"));
        return consumed;
    }
    if (!step.has_value()) return step;
    if (*step == 0) return consumed;
    consumed += *step;
  }
}

Result<size_t> Decryptor::ConsumeHeader(std::span<const uint8_t> bytes) {
  // A header that arrives a byte at a time is parsed again only once what
  // has come doubles (or the message ends: Finish), not on every byte.
  if (bytes.size() < header_retry_at_ && !finishing_) return size_t{0};
  ASSIGN_OR_RETURN(std::optional<ParsedHeader> parsed, ParseHeader(bytes, options_.limits));
  if (!parsed) {
    header_retry_at_ = std::min(2 * bytes.size(), options_.limits.max_header_bytes);
    return size_t{0};
  }
  RETURN_IF_ERROR(AcceptHeader(std::move(parsed->header)));
  if (verifier_) RETURN_IF_ERROR(verifier_->Update(bytes.first(parsed->size)));
  return parsed->size;
}

// Everything about the header is checked before a frame is opened.
Status Decryptor::AcceptHeader(Header header) {
  const Suite& suite = *header.suite;
  RETURN_IF_ERROR(CheckDecryptAllowed(suite, options_.policy));
  for (const auto& [key, value] : options_.required_context) {
    const auto found = header.context.find(key);
    if (found == header.context.end() || found->second != value) {
      return Bad("the message's encryption context does not hold " + key + "=" + value);
    }
  }
  ASSIGN_OR_RETURN(DecryptionMaterials materials,
                   materials_.DecryptMaterials(suite, header.context, header.edks));
  ASSIGN_OR_RETURN(DerivedKeys keys,
                   DeriveKeys(suite, materials.data_key.RevealSpan(), header.message_id));
  if (suite.committing && !CommitmentMatches(keys.commitment, header.commitment)) {
    return Bad("the message's key commitment does not match its data key");
  }
  ASSIGN_OR_RETURN(AesGcm cipher, AesGcm::Create(keys.data_key.RevealSpan(), AesGcm::Use::kOpen));
  static constexpr std::array<uint8_t, kIvBytes> kZeroIv{};
  const std::span<const uint8_t> iv =
      suite.message_version == 1 ? std::span<const uint8_t>(header.header_iv) : kZeroIv;
  if (!cipher.Open(iv, header.body, {}, header.tag, nullptr)) {
    return Bad("the message's header does not authenticate");
  }
  if (suite.signature != Signature::kNone) {
    const auto public_key = header.context.find(std::string(kPublicKeyContextKey));
    if (public_key == header.context.end()) {
      return Bad("a signed message carries no verification key");
    }
    ASSIGN_OR_RETURN(Verifier verifier, Verifier::Create(suite, public_key->second));
    verifier_ = std::move(verifier);
  }
  cipher_ = std::move(cipher);
  crew_.emplace(std::move(keys.data_key), AesGcm::Use::kOpen);
  header_ = std::move(header);
  header_ready_ = true;
  stage_ = Stage::kBody;
  return OkStatus();
}

Status Decryptor::OpenAndRelease(std::span<const uint8_t> iv, std::string_view label,
                                 uint32_t sequence, std::span<const uint8_t> content,
                                 std::span<const uint8_t> tag) {
  uint8_t aad[kMaxBodyAadBytes];
  const size_t aad_size = WriteBodyAad(aad, header_.message_id, label, sequence, content.size());
  uint8_t* plaintext = plaintext_.Reserve(content.size());
  if (!cipher_->Open(iv, {aad, aad_size}, content, tag, plaintext)) {
    plaintext_.Wipe();
    return Bad("frame " + std::to_string(sequence) + " does not authenticate");
  }
  return Release({plaintext, content.size()}, true);
}

// A signed message's last part (its final frame, or a non-framed body) is
// always held until the signature verifies (the specification's MUST); its
// other frames too when the caller asks.
Status Decryptor::Release(std::span<const uint8_t> plaintext, bool last) {
  if (verifier_ && (options_.hold_signed_plaintext || last)) {
    if (held_.size() + plaintext.size() > options_.max_held_bytes) {
      return Bad("a signed message over " + std::to_string(options_.max_held_bytes) +
                 " bytes cannot be held until its signature verifies");
    }
    PutBytes(held_, plaintext);
  } else if (!plaintext.empty()) {
    RETURN_IF_ERROR(sink_(plaintext));
  }
  return OkStatus();
}

// Version 2 writers use the sequence number as the IV (version 1 did not
// always): anything else is not a message an SDK wrote.
bool Decryptor::IsForeignIv(uint32_t sequence, std::span<const uint8_t> iv) const {
  const auto own = FrameIv(sequence);
  return header_.suite->message_version == 2 && !std::equal(iv.begin(), iv.end(), own.begin());
}

Result<size_t> Decryptor::ConsumeFrameHead(std::span<const uint8_t> bytes) {
  ByteReader in(bytes);
  uint32_t sequence = in.U32();
  const bool final = sequence == kFinalFrameMarker;
  if (final) sequence = in.U32();
  const auto iv = in.Take(kIvBytes);
  const uint32_t length = final ? in.U32() : header_.frame_length;
  if (in.is_short()) return size_t{0};
  if (sequence != expected_sequence_) {
    return Error(Bad("frame " + std::to_string(sequence) + " where frame " +
                     std::to_string(expected_sequence_) + " belongs (frames out of order)"));
  }
  if (length > header_.frame_length) {
    return Error(Bad("a final frame longer than the frame length"));
  }
  if (IsForeignIv(sequence, iv)) {
    return Error(Bad("frame " + std::to_string(sequence) + " has an IV that is not its own"));
  }
  uint8_t aad[kMaxBodyAadBytes];
  const size_t aad_size = WriteBodyAad(aad, header_.message_id,
                                       final ? kFinalFrameLabel : kFrameLabel, sequence, length);
  if (!cipher_->BeginOpen(iv, {aad, aad_size})) return Error(Bad("AES-GCM set-up failed"));
  plaintext_.Reserve(length);
  if (verifier_) RETURN_IF_ERROR(verifier_->Update(bytes.first(in.offset())));
  frame_final_ = final;
  frame_content_bytes_ = length;
  frame_content_done_ = 0;
  frame_tag_done_ = 0;
  frame_part_ = FramePart::kContent;
  return in.offset();
}

// Whole regular frames at the start of `bytes`, opened at once (parallel.h)
// and released in order, up to the first that does not authenticate; 0 when
// too few are there, and they are read one at a time. A batch ends before a
// frame whose head the one-at-a-time path would refuse (out of order, an IV
// not its own) or treat apart (the final frame): that path reads it next.
Result<size_t> Decryptor::ConsumeFrames(std::span<const uint8_t> bytes) {
  const size_t length = header_.frame_length, framed = length + kFrameOverheadBytes;
  size_t count = options_.parallel ? FramesPerBatch(length, bytes.size() / framed) : 0;
  for (size_t k = 0; k < count; ++k) {
    const uint8_t* at = bytes.data() + k * framed;
    const uint64_t sequence = uint64_t{expected_sequence_} + k;
    if (sequence + 1 >= kFinalFrameMarker || LoadU32(at) != sequence ||
        IsForeignIv(static_cast<uint32_t>(sequence), {at + kSequenceBytes, kIvBytes})) {
      count = FramesPerBatch(length, k);
      break;
    }
  }
  if (count == 0) return size_t{0};
  uint8_t* const plaintext = plaintext_.Reserve(count * length);
  std::vector<char> opened(count, 0);
  RETURN_IF_ERROR(crew_->ForEachRun(count, [&](size_t first, size_t end, AesGcm& cipher) {
    for (size_t k = first; k < end; ++k) {
      const uint8_t* const iv = bytes.data() + k * framed + kSequenceBytes;
      const uint8_t* const content = iv + kIvBytes;
      uint8_t aad[kMaxBodyAadBytes];
      const size_t aad_size = WriteBodyAad(aad, header_.message_id, kFrameLabel,
                                           expected_sequence_ + static_cast<uint32_t>(k), length);
      opened[k] = cipher.Open({iv, kIvBytes}, {aad, aad_size}, {content, length},
                              {content + length, kTagBytes}, plaintext + k * length);
      if (!opened[k]) return;  // the frames after it are not released
    }
  }));
  if (verifier_) RETURN_IF_ERROR(verifier_->Update(bytes.first(count * framed)));
  for (size_t k = 0; k < count; ++k) {
    if (!opened[k]) {
      plaintext_.Wipe();
      return Error(Bad("frame " + std::to_string(expected_sequence_) + " does not authenticate"));
    }
    RETURN_IF_ERROR(Release({plaintext + k * length, length}, false));
    ++expected_sequence_;
  }
  return count * framed;
}

Result<size_t> Decryptor::ConsumeFrame(std::span<const uint8_t> bytes) {
  size_t consumed = 0;
  while (true) {
    const auto rest = bytes.subspan(consumed);
    switch (frame_part_) {
      case FramePart::kHead: {
        ASSIGN_OR_RETURN(const size_t batch, ConsumeFrames(rest));
        if (batch > 0) {
          consumed += batch;
          break;
        }
        ASSIGN_OR_RETURN(const size_t head, ConsumeFrameHead(rest));
        if (head == 0) return consumed;
        consumed += head;
        break;
      }
      case FramePart::kContent: {
        const size_t take = std::min(frame_content_bytes_ - frame_content_done_, rest.size());
        if (!cipher_->UpdateOpen(rest.first(take), plaintext_.data() + frame_content_done_)) {
          return Error(Bad("AES-GCM failed"));
        }
        if (verifier_) RETURN_IF_ERROR(verifier_->Update(rest.first(take)));
        frame_content_done_ += take;
        consumed += take;
        if (frame_content_done_ < frame_content_bytes_) return consumed;
        frame_part_ = FramePart::kTag;
        break;
      }
      case FramePart::kTag: {
        const size_t take = std::min(kTagBytes - frame_tag_done_, rest.size());
        std::copy(rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(take),
                  frame_tag_.begin() + static_cast<std::ptrdiff_t>(frame_tag_done_));
        if (verifier_) RETURN_IF_ERROR(verifier_->Update(rest.first(take)));
        frame_tag_done_ += take;
        consumed += take;
        if (frame_tag_done_ < kTagBytes) return consumed;
        if (!cipher_->FinishOpen(frame_tag_)) {
          plaintext_.Wipe();
          return Error(
              Bad("frame " + std::to_string(expected_sequence_) + " does not authenticate"));
        }
        RETURN_IF_ERROR(Release({plaintext_.data(), frame_content_bytes_}, frame_final_));
        frame_part_ = FramePart::kHead;
        ++expected_sequence_;
        if (frame_final_) {
          stage_ = verifier_ ? Stage::kFooter : Stage::kDone;
          return consumed;
        }
        if (expected_sequence_ == kFinalFrameMarker) {
          return Error(Bad("a message of more than 2^32 - 1 frames"));
        }
        break;
      }
    }
  }
}

// Version 1 messages may be one block: IV, length (8), content, tag. It is
// held whole, so it is read up to the frame limit only.
Result<size_t> Decryptor::ConsumeNonFramed(std::span<const uint8_t> bytes) {
  ByteReader in(bytes);
  const auto iv = in.Take(kIvBytes);
  const uint64_t length = in.U64();
  if (in.is_short()) return size_t{0};
  if (length > options_.limits.max_frame_length) {
    return Error(Bad("a non-framed message over this reader's limit of " +
                     std::to_string(options_.limits.max_frame_length) + " bytes"));
  }
  const auto content = in.Take(length);
  const auto tag = in.Take(kTagBytes);
  if (in.is_short()) return size_t{0};
  RETURN_IF_ERROR(OpenAndRelease(iv, kSingleBlockLabel, 1, content, tag));
  if (verifier_) RETURN_IF_ERROR(verifier_->Update(bytes.first(in.offset())));
  stage_ = verifier_ ? Stage::kFooter : Stage::kDone;
  return in.offset();
}

Result<size_t> Decryptor::ConsumeFooter(std::span<const uint8_t> bytes) {
  ByteReader in(bytes);
  const auto signature = in.Take(in.U16());
  if (in.is_short()) return size_t{0};
  RETURN_IF_ERROR(verifier_->Finish(signature));
  stage_ = Stage::kDone;
  return in.offset();
}

Result<Bytes> DecryptMessage(MaterialsManager& materials, const DecryptOptions& options,
                             std::span<const uint8_t> message, Header* header) {
  Bytes out;
  Decryptor decryptor(materials, options, [&out](std::span<const uint8_t> bytes) {
    PutBytes(out, bytes);
    return OkStatus();
  });
  Status status = decryptor.Write(message);
  if (status.ok()) status = decryptor.Finish();
  if (!status.ok()) {
    OPENSSL_cleanse(out.data(), out.size());
    return Error(status);
  }
  if (header != nullptr) *header = *decryptor.header();
  return out;
}

}  // namespace kmsd::esdk
