#include "client/esdk/rewrap.h"

#include "client/esdk/crypto.h"

namespace kmsd::esdk {

Result<Bytes> RewrapHeader(const Header& header, std::span<const uint8_t> data_key,
                           std::vector<EncryptedDataKey> edks) {
  const Suite& suite = *header.suite;
  if (suite.signature != Signature::kNone) {
    return Error(Code::kInvalidArgument,
                 "a signed message cannot be re-wrapped: its signature covers the header");
  }
  if (suite.message_version != 2) {
    return Error(Code::kInvalidArgument, "only version 2 messages are re-wrapped");
  }
  if (edks.empty()) return Error(Code::kInvalidArgument, "a message needs an encrypted data key");
  ASSIGN_OR_RETURN(DerivedKeys keys, DeriveKeys(suite, data_key, header.message_id));
  if (!CommitmentMatches(keys.commitment, header.commitment)) {
    return Error(Code::kInvalidCiphertext,
                 "the message's key commitment does not match its data key");
  }
  ASSIGN_OR_RETURN(AesGcm cipher, AesGcm::Create(keys.data_key.RevealSpan(), AesGcm::Use::kBoth));
  static constexpr std::array<uint8_t, kIvBytes> kZeroIv{};
  if (!cipher.Open(kZeroIv, header.body, {}, header.tag, nullptr)) {
    return Error(Code::kInvalidCiphertext, "the message's header does not authenticate");
  }
  Header rewrapped;
  rewrapped.suite = header.suite;
  rewrapped.message_id = header.message_id;
  rewrapped.context = header.context;
  rewrapped.edks = std::move(edks);
  rewrapped.content_type = header.content_type;
  rewrapped.frame_length = header.frame_length;
  rewrapped.commitment = header.commitment;
  ASSIGN_OR_RETURN(rewrapped.body, SerializeHeaderBody(rewrapped));
  ASSIGN_OR_RETURN(rewrapped.tag, HeaderTag(cipher, rewrapped.body));
  Bytes bytes = rewrapped.body;
  const Bytes auth = SerializeHeaderAuth(rewrapped);
  bytes.insert(bytes.end(), auth.begin(), auth.end());
  return bytes;
}

}  // namespace kmsd::esdk
