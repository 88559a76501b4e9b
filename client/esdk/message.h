// Encrypting and decrypting whole ESDK messages as streams (specification:
// client-apis/encrypt.md, client-apis/decrypt.md, data-format/message-*.md).
//
// Encryptor: Start writes the header (materials from a MaterialsManager),
// Write takes plaintext in pieces of any size and writes each frame as soon
// as it is full, Finish writes the final frame (the last 0 to frame-length
// - 1 bytes: a plaintext that is an exact multiple of the frame length ends
// with an empty final frame, as the JavaScript SDK writes it; the
// specification allows that or a full one, and both are read) and, for a
// signed suite, the footer. Memory: one frame, or a batch of frames sealed at
// once (at most 1 MiB of plaintext, or two frames of up to 1 MiB each).
//
// Decryptor: Write takes the message in pieces of any size; the header is
// checked (limits, commitment policy, required context pairs, the key
// commitment, the header tag) before any frame is opened, and each frame's
// plaintext goes to the sink only after its tag authenticates (whole frames
// in the caller's bytes are opened several at once, see parallel.h, and
// released in order up to the first that fails). Finish fails
// unless the final frame (and a signed message's footer) arrived with
// nothing after it. For a signed message the sink has seen every frame
// but the last before the signature is checked at the end (the final
// frame, or a version 1 non-framed body, is always held until it verifies):
// a caller that must not act on plaintext whose signature may yet fail
// writes it somewhere it can discard (kmsctl: a temporary file renamed only
// on success), or sets `hold_signed_plaintext` to have all of it held in
// memory (at most `max_held_bytes`) until the signature verifies. The SDKs make the same
// trade-off (the JavaScript SDK's decryptUnsignedMessageStream refuses
// signed messages instead). Memory: one frame or a batch (as the Encryptor's)
// plus what Write is given.
//
// After any error an Encryptor or Decryptor keeps failing with it. Each is
// used by one thread at a time.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <span>

#include "client/esdk/header.h"
#include "client/esdk/keyring.h"
#include "client/esdk/parallel.h"

namespace kmsd::esdk {

// Receives output bytes; an error stops the stream with it.
using Sink = std::function<Status(std::span<const uint8_t>)>;

struct EncryptOptions {
  uint16_t suite_id = kCommittingSuite;
  uint32_t frame_length = kDefaultFrameLength;
  EncryptionContext context;
  // When known (a data-key cache counts it): a Write past it fails.
  std::optional<uint64_t> plaintext_bytes;
  // Whole frames in one Write are sealed on several threads (parallel.h).
  bool parallel = true;
};

class Encryptor {
 public:
  static Result<std::unique_ptr<Encryptor>> Start(MaterialsManager& materials,
                                                  const EncryptOptions& options, Sink sink);
  ~Encryptor();
  Status Write(std::span<const uint8_t> plaintext);
  Status Finish();
  const Header& header() const { return header_; }

 private:
  Encryptor(Header header, AesGcm cipher, FrameCrew crew, std::optional<Signer> signer, Sink sink);
  Status EmitFrame(std::span<const uint8_t> plaintext, bool final);
  Status EmitFrames(std::span<const uint8_t> plaintext);
  Status Emit(std::span<const uint8_t> bytes);
  Status Fail(Status status);

  Header header_;
  AesGcm cipher_;
  FrameCrew crew_;
  std::optional<Signer> signer_;
  Sink sink_;
  ScratchBuffer partial_;  // plaintext of the frame being filled (wiped)
  size_t partial_size_ = 0;
  ScratchBuffer frame_;  // one serialized frame, or a batch
  uint32_t sequence_ = 1;
  uint64_t written_ = 0;                    // plaintext bytes taken
  std::optional<uint64_t> declared_bytes_;  // EncryptOptions::plaintext_bytes
  bool parallel_ = true;                    // EncryptOptions::parallel
  bool finished_ = false;
  std::optional<Status> failed_;
};

struct DecryptOptions {
  CommitmentPolicy policy = CommitmentPolicy::kRequireEncryptRequireDecrypt;
  HeaderLimits limits;
  // Pairs the message's context must hold (INVALID_CIPHERTEXT otherwise).
  EncryptionContext required_context;
  bool hold_signed_plaintext = false;
  size_t max_held_bytes = 64u << 20;
  // Whole frames in one Write are opened on several threads (parallel.h).
  bool parallel = true;
};

class Decryptor {
 public:
  Decryptor(MaterialsManager& materials, DecryptOptions options, Sink sink);
  ~Decryptor();
  Status Write(std::span<const uint8_t> bytes);
  Status Finish();
  // The header, once read and authenticated.
  const Header* header() const { return header_ready_ ? &header_ : nullptr; }

 private:
  enum class Stage { kHeader, kBody, kFooter, kDone };
  // Consumes what it can of `bytes`; returns how much.
  Result<size_t> Consume(std::span<const uint8_t> bytes);
  Result<size_t> ConsumeHeader(std::span<const uint8_t> bytes);
  Status AcceptHeader(Header header);
  Result<size_t> ConsumeFrame(std::span<const uint8_t> bytes);
  Result<size_t> ConsumeFrames(std::span<const uint8_t> bytes);
  bool IsForeignIv(uint32_t sequence, std::span<const uint8_t> iv) const;
  Result<size_t> ConsumeNonFramed(std::span<const uint8_t> bytes);
  Result<size_t> ConsumeFooter(std::span<const uint8_t> bytes);
  Status OpenAndRelease(std::span<const uint8_t> iv, std::string_view label, uint32_t sequence,
                        std::span<const uint8_t> content, std::span<const uint8_t> tag);
  Result<size_t> ConsumeFrameHead(std::span<const uint8_t> bytes);
  // To the sink, or held until the signature verifies (a signed message's
  // `last` part always, its other frames when asked).
  Status Release(std::span<const uint8_t> plaintext, bool last);
  Status Fail(Status status);

  MaterialsManager& materials_;
  const DecryptOptions options_;
  Sink sink_;
  Stage stage_ = Stage::kHeader;
  Header header_;
  bool header_ready_ = false;
  std::optional<AesGcm> cipher_;
  std::optional<FrameCrew> crew_;
  std::optional<Verifier> verifier_;
  // How many more bytes `pending` needs before the next part can be read
  // whole (at least 1 while it is incomplete).
  size_t BytesWanted(std::span<const uint8_t> pending) const;

  Bytes buffer_;             // the start of a part not yet complete
  ScratchBuffer plaintext_;  // one frame's or a batch's (wiped)
  Bytes held_;               // signed plaintext held until the signature verifies (wiped)
  uint32_t expected_sequence_ = 1;
  size_t header_retry_at_ = 0;  // parse the header again once this much has come
  bool finishing_ = false;
  // The frame being read: its head whole, its content and tag as they come
  // (a frame split across writes is opened in pieces, not gathered).
  enum class FramePart { kHead, kContent, kTag };
  FramePart frame_part_ = FramePart::kHead;
  bool frame_final_ = false;
  size_t frame_content_bytes_ = 0;
  size_t frame_content_done_ = 0;
  std::array<uint8_t, kTagBytes> frame_tag_{};
  size_t frame_tag_done_ = 0;
  std::optional<Status> failed_;
};

// Whole messages in memory, for small data and tests.
Result<Bytes> EncryptMessage(MaterialsManager& materials, const EncryptOptions& options,
                             std::span<const uint8_t> plaintext);
Result<Bytes> DecryptMessage(MaterialsManager& materials, const DecryptOptions& options,
                             std::span<const uint8_t> message, Header* header = nullptr);

// The plaintext bytes of a framed, unsigned message of `message_bytes` whose
// header (body and authentication) is `header_bytes` long, computed from the
// frame sizes without reading the body; nullopt when the message is signed
// or non-framed, or when the sizes cannot be those of such a message.
std::optional<uint64_t> FramedPlaintextBytes(const Header& header, uint64_t header_bytes,
                                             uint64_t message_bytes);

// The body AAD of a frame (data-format/message-body-aad.md): written into
// `out` (kMaxBodyAadBytes), its length returned.
inline constexpr size_t kMaxBodyAadBytes = 32 + 35 + 4 + 8;
size_t WriteBodyAad(uint8_t* out, std::span<const uint8_t> message_id, std::string_view label,
                    uint32_t sequence, uint64_t content_bytes);
inline constexpr std::string_view kFrameLabel = "AWSKMSEncryptionClient Frame";
inline constexpr std::string_view kFinalFrameLabel = "AWSKMSEncryptionClient Final Frame";
inline constexpr std::string_view kSingleBlockLabel = "AWSKMSEncryptionClient Single Block";
Bytes BodyAad(std::span<const uint8_t> message_id, std::string_view label, uint32_t sequence,
              uint64_t content_bytes);
// A frame's IV: the sequence number, big-endian, in the last 4 of 12 bytes.
// The bytes of a frame besides its content: a regular frame's sequence
// number, IV and tag; the final frame's marker, sequence number, IV, content
// length and tag.
inline constexpr size_t kFrameOverheadBytes = 4 + kIvBytes + kTagBytes;
inline constexpr size_t kFinalFrameOverheadBytes = 4 + 4 + kIvBytes + 4 + kTagBytes;
std::array<uint8_t, kIvBytes> FrameIv(uint32_t sequence);

inline constexpr uint32_t kFinalFrameMarker = 0xFFFFFFFF;

}  // namespace kmsd::esdk
