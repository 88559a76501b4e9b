// End-to-end: malformed frames, oversized frames and broken envelopes sent
// through the real socket (DESIGN.md invariant 5, docs/PROTOCOL.md "Frames").
// Every one gets its exact error, changes nothing, and the daemon keeps serving.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>

#include "tests/e2e/hostile_support.h"

namespace kmsd::testing {
namespace {

using ::testing::HasSubstr;

class HostileFrameTest : public HostileDaemonTest {};

TEST_F(HostileFrameTest, EmptyFrameIsInvalidArgumentWithNilId) {
  ExpectRawRejected({}, Code::kInvalidArgument, "request frame is empty", std::nullopt);
}

TEST_F(HostileFrameTest, GarbageBytesAreInvalidArgumentWithNilId) {
  // 0xc1 is the one byte msgpack never uses.
  ExpectRawRejected(Bytes{0xc1}, Code::kInvalidArgument, "not valid msgpack", std::nullopt);
  ExpectRawRejected(Bytes{0xc1, 0xde, 0xad, 0xbe, 0xef}, Code::kInvalidArgument,
                    "not valid msgpack", std::nullopt);
  // Text from another protocol starts with a positive fixint: one value, then junk.
  ExpectRawRejected(Bin("GET / HTTP/1.1\r\nHost: kmsd\r\n\r\n"), Code::kInvalidArgument,
                    "bytes after its msgpack value", std::nullopt);
  ExpectRawRejected(Bytes(64, 0xff), Code::kInvalidArgument, "bytes after its msgpack value",
                    std::nullopt);
  // ext types are refused by the unpacker's limits.
  ExpectRawRejected(Bytes{0xd4, 0x01, 0x00}, Code::kInvalidArgument, "not valid msgpack",
                    std::nullopt);
}

TEST_F(HostileFrameTest, EveryTruncationOfAValidRequestIsInvalidArgument) {
  const Bytes request =
      Encode(Envelope(41, "encrypt", "acme",
                      MapOf("key", "alias/data", "plaintext", Bin("truncated plaintext"), "context",
                            MapOf("app", "billing"))));
  ASSERT_TRUE(connection_->CallRaw(request)->status.ok()) << "the untruncated request must work";
  for (size_t n = 1; n < request.size(); ++n) {
    SCOPED_TRACE(::testing::Message() << "length " << n);
    ExpectRawRejected(std::span(request).first(n), Code::kInvalidArgument, "not valid msgpack",
                      std::nullopt);
  }
}

TEST_F(HostileFrameTest, ValidRequestFollowedByTrailingBytesIsInvalidArgument) {
  Bytes request = Encode(Envelope(42, "key.create", "acme", MapOf("name", "smuggled")));
  for (const Bytes& tail : {Bytes{0x00}, Bytes{0xc0}, Encode(Envelope(43, "tenant.list"))}) {
    Bytes frame = request;
    frame.insert(frame.end(), tail.begin(), tail.end());
    ExpectRawRejected(frame, Code::kInvalidArgument, "bytes after its msgpack value", std::nullopt);
  }
}

TEST_F(HostileFrameTest, NonMapTopLevelIsInvalidArgument) {
  Value::Array array;
  array.emplace_back(1);
  array.emplace_back("encrypt");
  std::vector<Bytes> frames;
  frames.push_back(Encode(std::move(array)));
  frames.push_back(Encode("encrypt"));
  frames.push_back(Encode(7));
  frames.push_back(Encode(-7));
  frames.push_back(Encode(nullptr));
  frames.push_back(Encode(true));
  frames.push_back(Encode(Bin("\x84\xa2id\x01")));  // a map's bytes, wrapped as binary
  for (const Bytes& frame : frames) {
    ExpectRawRejected(frame, Code::kInvalidArgument, "request must be a map", std::nullopt);
  }
}

TEST_F(HostileFrameTest, MapWithANonStringKeyIsInvalidArgument) {
  Value::Map envelope = Envelope(44, "status");
  // {1: "x", ...}: msgpack-level map keys that are not strings.
  Bytes frame = Encode(std::move(envelope));
  frame[0] = static_cast<uint8_t>(frame[0] + 1);  // one more entry in the fixmap...
  frame.push_back(0x01);                          // ...whose key is the integer 1
  frame.push_back(0xa1);
  frame.push_back('x');
  ExpectRawRejected(frame, Code::kInvalidArgument, "key that is not a string", std::nullopt);
}

TEST_F(HostileFrameTest, NestingBeyondTheDepthLimitIsInvalidArgument) {
  // Arrays nested 9, 100 and 100000 deep, as the whole frame.
  for (size_t depth : {9u, 100u, 100000u}) {
    SCOPED_TRACE(::testing::Message() << "depth " << depth);
    Bytes frame(depth, 0x91);  // fixarray of one element
    frame.push_back(0xc0);
    ExpectRawRejected(frame, Code::kInvalidArgument, "not valid msgpack", std::nullopt);
  }
  // The same inside a request's args, where the value is otherwise legal.
  Bytes request = Encode(Envelope(45, "encrypt", "acme"));
  // args is the last entry of the envelope; it ends with an empty fixmap.
  ASSERT_EQ(request.back(), 0x80);
  request.back() = 0x81;  // args: {"plaintext": [[[[...]]]]}
  request.push_back(0xa9);
  const std::string_view field = "plaintext";
  request.insert(request.end(), field.begin(), field.end());
  request.insert(request.end(), 20, 0x91);
  request.push_back(0xc0);
  ExpectRawRejected(request, Code::kInvalidArgument, "not valid msgpack", std::nullopt);
}

TEST_F(HostileFrameTest, HugeDeclaredCountsAreRefusedBeforeAllocation) {
  // array32, map32, str32 and bin32 headers claiming 4 Gi entries or bytes.
  for (uint8_t type : {0xdd, 0xdf, 0xdb, 0xc6}) {
    SCOPED_TRACE(::testing::Message() << "type 0x" << std::hex << int{type});
    ExpectRawRejected(Bytes{type, 0xff, 0xff, 0xff, 0xff}, Code::kInvalidArgument,
                      "not valid msgpack", std::nullopt);
  }
}

TEST_F(HostileFrameTest, UnknownOperationIsUnknownOperationEchoingTheId) {
  ExpectRawRejected(Encode(Envelope(50, "key.explode", "acme")), Code::kUnknownOperation,
                    "unknown operation 'key.explode'", 50);
  ExpectRawRejected(Encode(Envelope(51, "ENCRYPT", "acme")), Code::kUnknownOperation,
                    "unknown operation 'ENCRYPT'", 51);
  ExpectRawRejected(Encode(Envelope(52, "")), Code::kUnknownOperation, "unknown operation ''", 52);
  // A huge op name is not echoed whole.
  auto reply = connection_->CallRaw(Encode(Envelope(53, std::string(100000, 'x'))));
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status.code(), Code::kUnknownOperation);
  EXPECT_LT(reply->status.message().size(), 200u) << reply->status;
  ExpectUnchanged();
}

TEST_F(HostileFrameTest, OtherProtocolVersionsAreUnsupportedVersion) {
  for (uint64_t version : {0ull, 2ull, 0xffffffffffffffffull}) {
    Value::Map envelope = Envelope(60, "key.create", "acme", MapOf("name", "from-the-future"));
    envelope[0].second = Value(version);
    ExpectRawRejected(Encode(std::move(envelope)), Code::kUnsupportedVersion,
                      "protocol version " + std::to_string(version) + " is not supported", 60);
  }
}

TEST_F(HostileFrameTest, MissingEnvelopeFieldsAreInvalidArgument) {
  // Without an id there is nothing to echo.
  Value::Map no_id = MapOf("version", 1, "op", "tenant.list");
  ExpectRawRejected(Encode(std::move(no_id)), Code::kInvalidArgument, "'id' is required",
                    std::nullopt);
  Value::Map no_op = MapOf("version", 1, "id", 61);
  ExpectRawRejected(Encode(std::move(no_op)), Code::kInvalidArgument, "'op' is required", 61);
  Value::Map no_version = MapOf("id", 62, "op", "tenant.list");
  ExpectRawRejected(Encode(std::move(no_version)), Code::kInvalidArgument, "'version' is required",
                    62);
  ExpectRawRejected(Encode(Value::Map{}), Code::kInvalidArgument, "'id' is required", std::nullopt);
}

TEST_F(HostileFrameTest, WrongEnvelopeFieldTypesAreInvalidArgument) {
  ExpectRawRejected(Encode(MapOf("version", 1, "id", -1, "op", "status")), Code::kInvalidArgument,
                    "'id' must be a non-negative integer", std::nullopt);
  ExpectRawRejected(Encode(MapOf("version", 1, "id", "63", "op", "status")), Code::kInvalidArgument,
                    "'id' must be a non-negative integer", std::nullopt);
  ExpectRawRejected(Encode(MapOf("version", "1", "id", 64, "op", "status")), Code::kInvalidArgument,
                    "'version' must be a non-negative integer", 64);
  ExpectRawRejected(Encode(MapOf("version", 1, "id", 65, "op", 7)), Code::kInvalidArgument,
                    "'op' must be a string", 65);
  ExpectRawRejected(Encode(MapOf("version", 1, "id", 66, "op", Bin("status"))),
                    Code::kInvalidArgument, "'op' must be a string", 66);
  ExpectRawRejected(Encode(MapOf("version", 1, "id", 67, "op", "key.list", "tenant", 5)),
                    Code::kInvalidArgument, "'tenant' must be a string", 67);
  ExpectRawRejected(
      Encode(MapOf("version", 1, "id", 68, "op", "key.list", "tenant", "acme", "args", "x")),
      Code::kInvalidArgument, "'args' must be a map", 68);
  Value::Array array_args;
  array_args.emplace_back("name");
  ExpectRawRejected(Encode(MapOf("version", 1, "id", 69, "op", "key.create", "tenant", "acme",
                                 "args", std::move(array_args))),
                    Code::kInvalidArgument, "'args' must be a map", 69);
}

TEST_F(HostileFrameTest, UnknownEnvelopeFieldIsInvalidArgumentNamingIt) {
  Value::Map envelope = Envelope(70, "key.create", "acme", MapOf("name", "typo"));
  envelope.emplace_back("tenantt", "globex");
  ExpectRawRejected(Encode(std::move(envelope)), Code::kInvalidArgument, "unknown field 'tenantt'",
                    70);
  Value::Map with_flag = Envelope(71, "tenant.list");
  with_flag.emplace_back("admin", true);
  ExpectRawRejected(Encode(std::move(with_flag)), Code::kInvalidArgument, "unknown field 'admin'",
                    71);
}

TEST_F(HostileFrameTest, UnknownArgumentIsInvalidArgumentNamingIt) {
  ExpectRejected("encrypt", "acme", MapOf("key", "alias/data", "plaintxt", Bin("x")),
                 Code::kInvalidArgument, "unknown field 'plaintxt'");
  ExpectRejected("key.create", "acme", MapOf("name", "extra", "enabled", false),
                 Code::kInvalidArgument, "unknown field 'enabled'");
  ExpectRejected("tenant.create", "initech", MapOf("quota", 5), Code::kInvalidArgument,
                 "unknown field 'quota'");
  ExpectRejected("health", {}, MapOf("verbose", true), Code::kInvalidArgument,
                 "unknown field 'verbose'");
  ExpectRejected("batch-encrypt", "acme",
                 MapOf("key", "alias/data", "items", Value::Array{}, "parallel", true),
                 Code::kInvalidArgument, "unknown field 'parallel'");
}

TEST_F(HostileFrameTest, DuplicateMapKeysAreInvalidArgument) {
  // Envelope: which op would run is ambiguous; refused before the id is read.
  Value::Map envelope = Envelope(80, "tenant.list");
  envelope.emplace_back("op", "key.create");
  ExpectRawRejected(Encode(std::move(envelope)), Code::kInvalidArgument, "repeats the key 'op'",
                    std::nullopt);
  Value::Map two_ids = Envelope(81, "tenant.list");
  two_ids.emplace_back("id", 82);
  ExpectRawRejected(Encode(std::move(two_ids)), Code::kInvalidArgument, "repeats the key 'id'",
                    std::nullopt);
  // Arguments and nested maps.
  ExpectRejected("key.create", "acme", MapOf("name", "first", "name", "second"),
                 Code::kInvalidArgument, "repeats the key 'name'");
  ExpectRejected(
      "encrypt", "acme",
      MapOf("key", "alias/data", "plaintext", Bin("x"), "context", MapOf("app", "a", "app", "b")),
      Code::kInvalidArgument, "encryption context repeats a key");
}

// Over limits.max_frame_bytes: FRAME_TOO_LARGE, undecoded. Over the
// transport's hard cap (2x + 64 KiB): the connection is dropped, the daemon
// lives on.
class HostileFrameSizeTest : public ::testing::Test {
 protected:
  static constexpr size_t kLimit = 4096;

  void SetUp() override {
    ConfigOptions options;
    options.admin_uids = "[" + std::to_string(getuid()) + "]";
    options.max_frame_bytes = kLimit;
    daemon_ = host_.Start(options);
    connection_ = daemon_->Connect();
    ASSERT_TRUE(connection_->Call("tenant.create", "acme"));
    baseline_ = Snapshot(*connection_).value();
  }

  // An encrypt request of exactly `size` bytes (the plaintext pads it).
  static Bytes EncryptFrameOfSize(size_t size) {
    size_t plaintext = size > 100 ? size - 100 : 0;
    for (int i = 0; i < 8; ++i) {
      Bytes frame = Encode(Envelope(
          90, "encrypt", "acme", MapOf("key", "alias/data", "plaintext", Bytes(plaintext, 'p'))));
      if (frame.size() == size) return frame;
      plaintext = plaintext + size - frame.size();
    }
    ADD_FAILURE() << "cannot build a frame of " << size << " bytes";
    return {};
  }

  void ExpectUnchanged(Connection& connection) {
    EXPECT_TRUE(connection.Call("health"));
    auto snapshot = Snapshot(connection);
    ASSERT_TRUE(snapshot) << snapshot.error();
    EXPECT_EQ(*snapshot, baseline_);
  }

  ConfiguredHost host_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<Connection> connection_;
  std::string baseline_;
};

TEST_F(HostileFrameSizeTest, FrameAtTheLimitIsServed) {
  const Bytes frame = EncryptFrameOfSize(kLimit);
  ASSERT_EQ(frame.size(), kLimit);
  auto reply = connection_->CallRaw(frame);
  ASSERT_TRUE(reply);
  EXPECT_TRUE(reply->status.ok()) << reply->status;
  EXPECT_EQ(reply->id, 90u);
}

TEST_F(HostileFrameSizeTest, FramesOverTheLimitAreFrameTooLarge) {
  for (size_t size : {kLimit + 1, kLimit * 3 / 2, 2 * kLimit + 60000}) {
    SCOPED_TRACE(::testing::Message() << "frame of " << size << " bytes");
    const Bytes frame = EncryptFrameOfSize(size);
    ASSERT_EQ(frame.size(), size);
    auto reply = connection_->CallRaw(frame);
    ASSERT_TRUE(reply) << reply.error();
    EXPECT_EQ(reply->status.code(), Code::kFrameTooLarge) << reply->status;
    EXPECT_THAT(reply->status.message(),
                HasSubstr(std::to_string(size) + " bytes is over the limit of 4096"));
    EXPECT_EQ(reply->id, std::nullopt) << "the frame must not be decoded";
    ExpectUnchanged(*connection_);
  }
  // Garbage over the limit is refused for its size, not parsed.
  auto reply = connection_->CallRaw(Bytes(kLimit + 1, 0xc1));
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status.code(), Code::kFrameTooLarge) << reply->status;
}

TEST_F(HostileFrameSizeTest, FrameOverTheHardCapDoesNotHangTheDaemon) {
  const size_t hard_cap = 2 * kLimit + 65536;
  for (size_t size : {hard_cap + 1, hard_cap * 4}) {
    SCOPED_TRACE(::testing::Message() << "frame of " << size << " bytes");
    auto attacker = Connection::Dial(host_.socket_path(), std::chrono::milliseconds(1500));
    ASSERT_TRUE(attacker);
    const auto begin = std::chrono::steady_clock::now();
    auto reply = (*attacker)->CallRaw(Bytes(size, 0xc1));
    const auto waited = std::chrono::steady_clock::now() - begin;
    // Dropped: the client's bounded wait ends it (or a FRAME_TOO_LARGE reply).
    if (reply) {
      EXPECT_EQ(reply->status.code(), Code::kFrameTooLarge) << reply->status;
    } else {
      EXPECT_EQ(reply.error().code(), Code::kUnavailable) << reply.error();
    }
    EXPECT_LT(waited, std::chrono::seconds(10));
    attacker->reset();
    // The attacker's REQ socket reconnects and resends after each refusal;
    // closing it can land in a handshake and trip nng#1518, which the
    // watchdog mends within its bound.
    ASSERT_TRUE(ServedWithin(host_.socket_path(), std::chrono::seconds(5)));
    // A new client is served.
    auto fresh = Connection::Dial(host_.socket_path(), std::chrono::milliseconds(5000));
    ASSERT_TRUE(fresh);
    ExpectUnchanged(**fresh);
  }
  // And the old one too.
  ExpectUnchanged(*connection_);
}

TEST_F(HostileFrameSizeTest, FrameOverTheHardCapClosesOnlyThatConnection) {
  const size_t hard_cap = 2 * kLimit + 65536;
  RawClient attacker(host_.socket_path());
  ASSERT_TRUE(attacker.Handshake());
  // The transport refuses the frame from its length alone, before the body.
  ASSERT_TRUE(attacker.SendFrame(hard_cap + 1, {}));
  EXPECT_TRUE(attacker.ClosedByPeer(std::chrono::seconds(5))) << strerror(errno);
  ExpectUnchanged(*connection_);
  auto fresh = Connection::Dial(host_.socket_path(), std::chrono::milliseconds(5000));
  ASSERT_TRUE(fresh);
  ExpectUnchanged(**fresh);
}

}  // namespace
}  // namespace kmsd::testing
