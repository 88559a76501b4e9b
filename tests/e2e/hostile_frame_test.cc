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
  // The frame is valid msgpack and its 'id' readable, so the refusal echoes it.
  ExpectRawRejected(frame, Code::kInvalidArgument, "key that is not a string", 44);
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

// Over limits.max_frame_bytes: the transport drops the frame from its
// declared length, before buffering it, and closes that connection; the
// daemon lives on. The client library refuses such a frame itself when it
// knows the limit (FRAME_TOO_LARGE, nothing sent).
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

TEST_F(HostileFrameSizeTest, ClientRefusesFramesOverItsLimitWithoutSending) {
  auto client = Connection::Dial(host_.socket_path(), std::chrono::milliseconds(5000), kLimit);
  ASSERT_TRUE(client) << client.error();
  EXPECT_TRUE((*client)->CallRaw(EncryptFrameOfSize(kLimit))->status.ok());
  for (size_t size : {kLimit + 1, kLimit * 3 / 2, 2 * kLimit + 60000}) {
    SCOPED_TRACE(::testing::Message() << "frame of " << size << " bytes");
    const Bytes frame = EncryptFrameOfSize(size);
    ASSERT_EQ(frame.size(), size);
    auto reply = (*client)->CallRaw(frame);
    ASSERT_FALSE(reply) << "sent";
    EXPECT_EQ(reply.error().code(), Code::kFrameTooLarge) << reply.error();
    EXPECT_THAT(reply.error().message(), HasSubstr("request frame of " + std::to_string(size) +
                                                   " bytes is over the limit of 4096"));
    ExpectUnchanged(**client);
  }
  // Call() too, for a request its arguments make too large.
  auto call = (*client)->Call("encrypt", "acme",
                              MapOf("key", "alias/data", "plaintext", Bytes(kLimit, 'p')));
  ASSERT_FALSE(call);
  EXPECT_EQ(call.error().code(), Code::kFrameTooLarge) << call.error();
  EXPECT_THAT(call.error().message(), HasSubstr("is over the limit of 4096"));
}

TEST_F(HostileFrameSizeTest, FramesOverTheLimitCloseTheConnectionUnanswered) {
  // This client allows itself 1 MiB, so the daemon's transport refuses them.
  for (size_t size : {kLimit + 1, kLimit * 3 / 2, 2 * kLimit + 65537, 8 * kLimit + 65536}) {
    SCOPED_TRACE(::testing::Message() << "frame of " << size << " bytes");
    const auto begin = std::chrono::steady_clock::now();
    auto reply = connection_->CallRaw(Bytes(size, 0xc1));
    const auto waited = std::chrono::steady_clock::now() - begin;
    ASSERT_FALSE(reply) << "answered: " << reply->status;
    // One close, then a redial that stays open: not a refusal of the peer.
    EXPECT_EQ(reply.error().code(), Code::kUnavailable) << reply.error();
    EXPECT_THAT(reply.error().message(), HasSubstr("no reply from kmsd: Connection reset"));
    EXPECT_LT(waited, std::chrono::seconds(3));
    // The same connection goes on being served.
    ExpectUnchanged(*connection_);
  }
  auto fresh = Connection::Dial(host_.socket_path(), std::chrono::milliseconds(5000));
  ASSERT_TRUE(fresh);
  ExpectUnchanged(**fresh);
}

TEST_F(HostileFrameSizeTest, FrameHeaderOverTheLimitClosesOnlyThatConnection) {
  // The limit plus the REQ header's 4 bytes is what the transport accepts.
  RawClient at_limit(host_.socket_path());
  ASSERT_TRUE(at_limit.Handshake());
  RawClient attacker(host_.socket_path());
  ASSERT_TRUE(attacker.Handshake());
  // The transport refuses the frame from its length alone, before the body.
  ASSERT_TRUE(attacker.SendFrame(kLimit + 4 + 1, {}));
  EXPECT_TRUE(attacker.ClosedByPeer(std::chrono::seconds(5))) << strerror(errno);
  // A frame of exactly the limit is still being waited for, not refused.
  ASSERT_TRUE(at_limit.SendFrame(kLimit + 4, {}));
  EXPECT_FALSE(at_limit.ClosedByPeer(std::chrono::milliseconds(300)));
  ExpectUnchanged(*connection_);
  auto fresh = Connection::Dial(host_.socket_path(), std::chrono::milliseconds(5000));
  ASSERT_TRUE(fresh);
  ExpectUnchanged(**fresh);
}

}  // namespace
}  // namespace kmsd::testing
