#include <gtest/gtest.h>

#include <random>

#include "client/esdk/message.h"
#include "client/esdk/raw_aes_keyring.h"
#include "protocol/base64.h"
#include "tests/support/test_helpers.h"

namespace kmsd::esdk {
namespace {

std::unique_ptr<RawAesKeyring> AesKeyring(uint8_t fill = 0x11, size_t bytes = 32,
                                          std::string name = "k1") {
  return std::move(
      *RawAesKeyring::Create("escrow", std::move(name), SecretBuffer::CopyOf(Bytes(bytes, fill))));
}

Bytes Pattern(size_t size) { return PatternBytes(size, 7); }

struct Fixture : ::testing::Test {
  std::unique_ptr<RawAesKeyring> keyring = AesKeyring();
  KeyringMaterials materials{*keyring};

  Bytes Encrypt(size_t size, uint32_t frame = 16, uint16_t suite = kCommittingSuite,
                EncryptionContext context = {{"tenant", "acme"}}) {
    EncryptOptions options{.suite_id = suite,
                           .frame_length = frame,
                           .context = context,
                           .plaintext_bytes = std::nullopt};
    auto message = EncryptMessage(materials, options, Pattern(size));
    EXPECT_TRUE(message.has_value()) << message.error().message();
    return *message;
  }
  Result<Bytes> Decrypt(std::span<const uint8_t> message, DecryptOptions options = {}) {
    return DecryptMessage(materials, options, message);
  }
};

using EsdkMessageTest = Fixture;

TEST_F(EsdkMessageTest, RoundTripsEverySizeAroundTheFrameLength) {
  for (uint16_t suite : {kCommittingSuite, kCommittingSignedSuite}) {
    for (size_t size : {0, 1, 15, 16, 17, 32, 33, 1000}) {
      const Bytes message = Encrypt(size, 16, suite);
      auto plaintext = Decrypt(message);
      ASSERT_TRUE(plaintext.has_value()) << size << ": " << plaintext.error().message();
      EXPECT_EQ(*plaintext, Pattern(size)) << size;
    }
  }
}

TEST_F(EsdkMessageTest, FramesAsTheJavaScriptSdkDoes) {
  // 32 bytes in 16-byte frames: two regular frames and an empty final frame.
  const Bytes message = Encrypt(32, 16);
  Header header;
  ASSERT_TRUE(DecryptMessage(materials, {}, message, &header).has_value());
  const size_t header_size = header.body.size() + kTagBytes;
  const size_t regular = 4 + kIvBytes + 16 + kTagBytes;
  const size_t final = 4 + 4 + kIvBytes + 4 + kTagBytes;
  ASSERT_EQ(message.size(), header_size + 2 * regular + final);
  EXPECT_EQ(LoadU32(&message[header_size]), 1u);
  EXPECT_EQ(LoadU32(&message[header_size + regular]), 2u);
  EXPECT_EQ(LoadU32(&message[header_size + 2 * regular]), kFinalFrameMarker);
  EXPECT_EQ(LoadU32(&message[header_size + 2 * regular + 4]), 3u);
  EXPECT_EQ(LoadU32(&message[header_size + 2 * regular + 8 + kIvBytes]), 0u);
  // 20 bytes: a regular frame and a final frame of 4.
  const Bytes twenty = Encrypt(20, 16);
  EXPECT_EQ(twenty.size(), header_size + regular + final + 4);
  // An empty plaintext: one empty final frame.
  const Bytes empty = Encrypt(0, 16);
  EXPECT_EQ(empty.size(), header_size + final);
}

// A full final frame (what the other SDKs may write) reads too.
TEST_F(EsdkMessageTest, ReadsAFullFinalFrame) {
  const Bytes message = Encrypt(16, 16);  // regular frame 1, empty final frame 2
  Header header;
  ASSERT_TRUE(DecryptMessage(materials, {}, message, &header).has_value());
  auto recovered = materials.DecryptMaterials(*header.suite, header.context, header.edks);
  auto keys = DeriveKeys(*header.suite, recovered->data_key.RevealSpan(), header.message_id);
  auto cipher = AesGcm::Create(keys->data_key.RevealSpan());
  Bytes rewritten(message.begin(),
                  message.begin() + static_cast<std::ptrdiff_t>(header.body.size() + kTagBytes));
  const auto iv = FrameIv(1);
  const Bytes aad = BodyAad(header.message_id, kFinalFrameLabel, 1, 16);
  const Bytes plaintext = Pattern(16);
  Bytes content(16);
  uint8_t tag[kTagBytes];
  ASSERT_TRUE(cipher->Seal(iv, aad, plaintext, content.data(), tag).ok());
  PutU32(rewritten, kFinalFrameMarker);
  PutU32(rewritten, 1);
  PutBytes(rewritten, iv);
  PutU32(rewritten, 16);
  PutBytes(rewritten, content);
  PutBytes(rewritten, std::span<const uint8_t>(tag, kTagBytes));
  auto read = Decrypt(rewritten);
  ASSERT_TRUE(read.has_value()) << read.error().message();
  EXPECT_EQ(*read, plaintext);
}

TEST_F(EsdkMessageTest, StreamsInPiecesOfAnySize) {
  std::mt19937 random(7);
  const Bytes plaintext = Pattern(5000);
  for (int round = 0; round < 20; ++round) {
    Bytes message;
    auto encryptor =
        Encryptor::Start(materials,
                         {.suite_id = round % 2 ? kCommittingSignedSuite : kCommittingSuite,
                          .frame_length = static_cast<uint32_t>(1 + random() % 700),
                          .context = {},
                          .plaintext_bytes = std::nullopt},
                         [&](std::span<const uint8_t> bytes) {
                           PutBytes(message, bytes);
                           return OkStatus();
                         });
    ASSERT_TRUE(encryptor.has_value());
    for (size_t at = 0; at < plaintext.size();) {
      const size_t piece = std::min<size_t>(random() % 900, plaintext.size() - at);
      ASSERT_TRUE((*encryptor)->Write(std::span(plaintext).subspan(at, piece)).ok());
      at += piece;
    }
    ASSERT_TRUE((*encryptor)->Finish().ok());
    Bytes out;
    Decryptor decryptor(materials, {}, [&](std::span<const uint8_t> bytes) {
      PutBytes(out, bytes);
      return OkStatus();
    });
    for (size_t at = 0; at < message.size();) {
      const size_t piece = std::min<size_t>(random() % 900, message.size() - at);
      ASSERT_TRUE(decryptor.Write(std::span(message).subspan(at, piece)).ok());
      at += piece;
    }
    ASSERT_TRUE(decryptor.Finish().ok());
    EXPECT_EQ(out, plaintext);
  }
}

TEST_F(EsdkMessageTest, EveryFlippedBitFailsAndReleasesNothingUnauthenticated) {
  for (uint16_t suite : {kCommittingSuite, kCommittingSignedSuite}) {
    const Bytes message = Encrypt(40, 16, suite);
    for (size_t bit = 0; bit < message.size() * 8; ++bit) {
      Bytes tampered = message;
      tampered[bit / 8] ^= static_cast<uint8_t>(1 << (bit % 8));
      Bytes released;
      Decryptor decryptor(materials, {}, [&](std::span<const uint8_t> bytes) {
        PutBytes(released, bytes);
        return OkStatus();
      });
      Status status = decryptor.Write(tampered);
      if (status.ok()) status = decryptor.Finish();
      ASSERT_EQ(status.code(), Code::kInvalidCiphertext) << "bit " << bit;
      // What was released is a prefix of the plaintext: never altered bytes.
      const Bytes expected = Pattern(40);
      ASSERT_LE(released.size(), expected.size());
      EXPECT_TRUE(std::equal(released.begin(), released.end(), expected.begin())) << bit;
    }
  }
}

TEST_F(EsdkMessageTest, EveryTruncationFails) {
  for (uint16_t suite : {kCommittingSuite, kCommittingSignedSuite}) {
    const Bytes message = Encrypt(40, 16, suite);
    for (size_t cut = 0; cut < message.size(); ++cut) {
      auto result = Decrypt(std::span(message).first(cut));
      ASSERT_FALSE(result.has_value()) << cut;
      EXPECT_EQ(result.error().code(), Code::kInvalidCiphertext) << cut;
    }
    Bytes longer = message;
    longer.push_back(0);
    EXPECT_EQ(Decrypt(longer).error().code(), Code::kInvalidCiphertext);
  }
}

TEST_F(EsdkMessageTest, SwappedDroppedAndDuplicatedFramesFail) {
  const Bytes message = Encrypt(40, 16);  // frames 1, 2 (regular), 3 (final, 8 bytes)
  Header header;
  ASSERT_TRUE(DecryptMessage(materials, {}, message, &header).has_value());
  const size_t start = header.body.size() + kTagBytes;
  const size_t regular = 4 + kIvBytes + 16 + kTagBytes;
  const auto frame = [&](int n) {
    return Bytes(message.begin() + static_cast<std::ptrdiff_t>(start + n * regular),
                 message.begin() + static_cast<std::ptrdiff_t>(start + (n + 1) * regular));
  };
  const Bytes head(message.begin(), message.begin() + static_cast<std::ptrdiff_t>(start));
  const Bytes tail(message.begin() + static_cast<std::ptrdiff_t>(start + 2 * regular),
                   message.end());
  const auto join = [&](std::initializer_list<Bytes> parts) {
    Bytes out = head;
    for (const Bytes& part : parts) PutBytes(out, part);
    PutBytes(out, tail);
    return out;
  };
  EXPECT_TRUE(Decrypt(join({frame(0), frame(1)})).has_value());
  EXPECT_EQ(Decrypt(join({frame(1), frame(0)})).error().code(), Code::kInvalidCiphertext);
  EXPECT_EQ(Decrypt(join({frame(0)})).error().code(), Code::kInvalidCiphertext);
  EXPECT_EQ(Decrypt(join({frame(0), frame(0), frame(1)})).error().code(), Code::kInvalidCiphertext);
  EXPECT_EQ(Decrypt(join({frame(0), frame(1), frame(1)})).error().code(), Code::kInvalidCiphertext);
  // The final frame dropped.
  Bytes no_final = head;
  PutBytes(no_final, frame(0));
  PutBytes(no_final, frame(1));
  EXPECT_EQ(Decrypt(no_final).error().code(), Code::kInvalidCiphertext);
}

TEST_F(EsdkMessageTest, AWrongKeyOrContextFails) {
  const Bytes message = Encrypt(40);
  auto other = AesKeyring(0x22);
  KeyringMaterials other_materials(*other);
  EXPECT_EQ(DecryptMessage(other_materials, {}, message).error().code(), Code::kInvalidCiphertext);
  auto renamed = AesKeyring(0x11, 32, "k2");
  KeyringMaterials renamed_materials(*renamed);
  EXPECT_EQ(DecryptMessage(renamed_materials, {}, message).error().code(),
            Code::kInvalidCiphertext);
  DecryptOptions required;
  required.required_context = {{"tenant", "acme"}};
  EXPECT_TRUE(Decrypt(message, required).has_value());
  required.required_context = {{"tenant", "globex"}};
  EXPECT_EQ(Decrypt(message, required).error().code(), Code::kInvalidCiphertext);
  required.required_context = {{"purpose", "x"}};
  EXPECT_EQ(Decrypt(message, required).error().code(), Code::kInvalidCiphertext);
}

// A header whose tag is right but whose commitment is not: only the
// commitment check catches it (the attacker here knows the data key).
TEST_F(EsdkMessageTest, AWrongCommitmentKeyFailsBeforeAnyFrame) {
  const Bytes message = Encrypt(40);
  Header header;
  ASSERT_TRUE(DecryptMessage(materials, {}, message, &header).has_value());
  auto recovered = materials.DecryptMaterials(*header.suite, header.context, header.edks);
  ASSERT_TRUE(recovered.has_value());
  auto keys = DeriveKeys(*header.suite, recovered->data_key.RevealSpan(), header.message_id);
  ASSERT_TRUE(keys.has_value());
  Header forged = header;
  forged.commitment[0] ^= 1;
  forged.body = *SerializeHeaderBody(forged);
  auto cipher = AesGcm::Create(keys->data_key.RevealSpan());
  forged.tag = *HeaderTag(*cipher, forged.body);
  Bytes tampered = forged.body;
  PutBytes(tampered, forged.tag);
  tampered.insert(tampered.end(),
                  message.begin() + static_cast<std::ptrdiff_t>(header.body.size() + kTagBytes),
                  message.end());
  auto result = Decrypt(tampered);
  ASSERT_FALSE(result.has_value());
  EXPECT_NE(result.error().message().find("commitment"), std::string::npos)
      << result.error().message();
}

TEST_F(EsdkMessageTest, HoldsSignedPlaintextUntilTheSignatureVerifies) {
  const Bytes message = Encrypt(100, 16, kCommittingSignedSuite);
  Bytes tampered = message;
  tampered[tampered.size() - 3] ^= 1;  // inside the signature
  for (bool hold : {false, true}) {
    Bytes released;
    DecryptOptions options;
    options.hold_signed_plaintext = hold;
    Decryptor decryptor(materials, options, [&](std::span<const uint8_t> bytes) {
      PutBytes(released, bytes);
      return OkStatus();
    });
    Status status = decryptor.Write(tampered);
    if (status.ok()) status = decryptor.Finish();
    EXPECT_EQ(status.code(), Code::kInvalidCiphertext);
    // Streaming releases authenticated frames before the signature is
    // checked, but never the final one; holding releases nothing.
    EXPECT_EQ(released.size(), hold ? 0u : 96u) << hold;
  }
  DecryptOptions small;
  small.hold_signed_plaintext = true;
  small.max_held_bytes = 50;
  EXPECT_EQ(Decrypt(message, small).error().code(), Code::kInvalidCiphertext);
}

// The context carries the compressed point (SEC 1, 2.3.3), as the SDKs
// expect: 1 + 48 bytes on P-384.
TEST_F(EsdkMessageTest, ASignedMessageCarriesTheCompressedVerificationKey) {
  const Bytes message = Encrypt(10, 16, kCommittingSignedSuite);
  Header header;
  ASSERT_TRUE(DecryptMessage(materials, {}, message, &header).has_value());
  const auto point = Base64Decode(header.context.at(std::string(kPublicKeyContextKey)));
  ASSERT_TRUE(point.has_value());
  EXPECT_EQ(point->size(), 49u);
  EXPECT_TRUE((*point)[0] == 2 || (*point)[0] == 3);
}

TEST_F(EsdkMessageTest, ReadsAHeaderThatArrivesAByteAtATime) {
  const Bytes message = Encrypt(50, 16, kCommittingSignedSuite, {{"a", std::string(3000, 'x')}});
  Bytes out;
  Decryptor decryptor(materials, {}, [&](std::span<const uint8_t> bytes) {
    PutBytes(out, bytes);
    return OkStatus();
  });
  for (uint8_t byte : message) ASSERT_TRUE(decryptor.Write(std::span(&byte, 1)).ok());
  ASSERT_TRUE(decryptor.Finish().ok());
  EXPECT_EQ(out, Pattern(50));
  // A header cut short still fails at Finish, however it arrived.
  Decryptor cut(materials, {}, [](auto) { return OkStatus(); });
  for (size_t i = 0; i < 100; ++i) ASSERT_TRUE(cut.Write(std::span(&message[i], 1)).ok());
  EXPECT_EQ(cut.Finish().code(), Code::kInvalidCiphertext);
}

TEST_F(EsdkMessageTest, AWriteBeyondTheDeclaredSizeFails) {
  auto encryptor = Encryptor::Start(
      materials,
      {.suite_id = kCommittingSuite, .frame_length = 16, .context = {}, .plaintext_bytes = 20},
      [](auto) { return OkStatus(); });
  ASSERT_TRUE(encryptor.has_value());
  EXPECT_TRUE((*encryptor)->Write(Pattern(15)).ok());
  EXPECT_EQ((*encryptor)->Write(Pattern(6)).code(), Code::kInvalidArgument);
  EXPECT_EQ((*encryptor)->Finish().code(), Code::kInvalidArgument);  // it stays failed
}

TEST_F(EsdkMessageTest, RefusesBadEncryptOptions) {
  EncryptOptions options;
  options.suite_id = 0x0178;
  EXPECT_EQ(EncryptMessage(materials, options, Pattern(1)).error().code(), Code::kInvalidArgument);
  options.suite_id = kCommittingSuite;
  options.frame_length = 0;
  EXPECT_EQ(EncryptMessage(materials, options, Pattern(1)).error().code(), Code::kInvalidArgument);
  options.frame_length = 16;
  options.context = {{"aws-crypto-public-key", "x"}};
  EXPECT_EQ(EncryptMessage(materials, options, Pattern(1)).error().code(), Code::kInvalidArgument);
  options.context = {{"aws-crypto-anything", "x"}};
  EXPECT_EQ(EncryptMessage(materials, options, Pattern(1)).error().code(), Code::kInvalidArgument);
  options.context = {{"k", std::string("\xc0", 1)}};
  EXPECT_EQ(EncryptMessage(materials, options, Pattern(1)).error().code(), Code::kInvalidArgument);
}

// The store lists and counts plaintext sizes from a message's header and
// size alone: right for every size around the frame length, and nullopt for
// a size no such message has, a signed message or a non-framed one.
TEST_F(EsdkMessageTest, PlaintextBytesFollowFromTheHeaderAndTheMessageSize) {
  for (uint32_t frame : {1u, 16u, 4096u}) {
    for (size_t size : {size_t{0}, size_t{1}, size_t{frame - 1}, size_t{frame}, size_t{frame + 1},
                        size_t{3 * frame}, size_t{3 * frame + 5}}) {
      const Bytes message = Encrypt(size, frame);
      auto parsed = ParseHeader(message, HeaderLimits{});
      ASSERT_TRUE(parsed.has_value() && parsed->has_value());
      const Header& header = (*parsed)->header;
      const size_t header_bytes = (*parsed)->size;
      EXPECT_EQ(FramedPlaintextBytes(header, header_bytes, message.size()), size)
          << frame << " " << size;
      // Shorter than an empty message: not a message.
      EXPECT_EQ(FramedPlaintextBytes(header, header_bytes, header_bytes + 39), std::nullopt);
    }
  }
  const Bytes plain = Encrypt(100, 16);
  auto parsed = ParseHeader(plain, HeaderLimits{});
  ASSERT_TRUE(parsed.has_value() && parsed->has_value());
  // Four 16-byte frames (48 bytes each) and a final frame's 40 bytes of
  // overhead leave 17 bytes: more than a final frame of 16 can hold.
  EXPECT_EQ(
      FramedPlaintextBytes((*parsed)->header, (*parsed)->size, (*parsed)->size + 4 * 48 + 40 + 17),
      std::nullopt);
  EXPECT_EQ(
      FramedPlaintextBytes((*parsed)->header, (*parsed)->size, (*parsed)->size + 4 * 48 + 40 + 16),
      4u * 16 + 16);
  const Bytes signed_message = Encrypt(100, 16, kCommittingSignedSuite);
  auto signed_header = ParseHeader(signed_message, HeaderLimits{});
  ASSERT_TRUE(signed_header.has_value() && signed_header->has_value());
  EXPECT_EQ(
      FramedPlaintextBytes((*signed_header)->header, (*signed_header)->size, signed_message.size()),
      std::nullopt);
}

}  // namespace
}  // namespace kmsd::esdk
