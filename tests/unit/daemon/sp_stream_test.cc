// SpStream: a request frame's backtrace (one hop or several, none, too many),
// and the handshake, requests and replies over a real nng IPC stream with a
// real nng REQ socket at the other end (frames over the limit and of another
// type end the stream's reading with the matching error).
#include "daemon/sp_stream.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nng/protocol/reqrep0/req.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "tests/support/temp_dir.h"

namespace kmsd {
namespace {

using Bytes = std::vector<uint8_t>;

TEST(SpFrameTest, FindsTheBacktraceUpToTheRequestId) {
  SpRequest one = SpRequestOf({0x80, 0, 0, 7, 'h', 'i'});
  ASSERT_FALSE(ParseSpFrame(one));
  EXPECT_EQ(Bytes(one.backtrace().begin(), one.backtrace().end()), (Bytes{0x80, 0, 0, 7}));
  EXPECT_EQ(Bytes(one.body().begin(), one.body().end()), (Bytes{'h', 'i'}));

  SpRequest two_hops = SpRequestOf({0, 0, 0, 1, 0x80, 0, 0, 2});
  ASSERT_FALSE(ParseSpFrame(two_hops));
  EXPECT_EQ(two_hops.backtrace().size(), 8u);
  EXPECT_TRUE(two_hops.body().empty());
}

TEST(SpFrameTest, RefusesAFrameWithoutARequestId) {
  SpRequest empty = SpRequestOf({});
  EXPECT_EQ(ParseSpFrame(empty), SpError::kProtocol);
  SpRequest short_word = SpRequestOf({0x80, 0, 0});
  EXPECT_EQ(ParseSpFrame(short_word), SpError::kProtocol);
  Bytes nine_words(9 * 4, 0);
  nine_words[8 * 4] = 0x80;  // the request id in the ninth word: past kMaxHops
  SpRequest nine_hops = SpRequestOf(nine_words);
  EXPECT_EQ(ParseSpFrame(nine_hops), SpError::kProtocol);
}

// A listener's accepted stream, served by `serve` on a thread, and an nng
// REQ socket dialed to it.
class SpStreamTest : public ::testing::Test {
 public:
  void SetUp() override {
    url_ = "ipc://" + (dir_ / "sp.sock");
    ASSERT_EQ(nng_stream_listener_alloc(&listener_, url_.c_str()), 0);
    ASSERT_EQ(nng_stream_listener_listen(listener_), 0);
    ASSERT_EQ(nng_aio_alloc(&receive_, nullptr, nullptr), 0);
    ASSERT_EQ(nng_aio_alloc(&send_, nullptr, nullptr), 0);
  }
  void TearDown() override {
    if (server_.joinable()) server_.join();
    nng_aio_free(receive_);
    nng_aio_free(send_);
    nng_stream_listener_free(listener_);
  }
  // Accepts one stream and runs `serve` on it (then closes it).
  void Serve(std::function<void(nng_stream*)> serve) {
    server_ = std::thread([this, serve] {
      nng_aio* accepting = nullptr;
      nng_aio_alloc(&accepting, nullptr, nullptr);
      nng_stream_listener_accept(listener_, accepting);
      nng_aio_wait(accepting);
      if (nng_aio_result(accepting) == 0) {
        auto* stream = static_cast<nng_stream*>(nng_aio_get_output(accepting, 0));
        serve(stream);
        nng_stream_free(stream);
      }
      nng_aio_free(accepting);
    });
  }
  // A raw Unix socket connected to the listener.
  int Connect() {
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::string path = dir_ / "sp.sock";
    std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    return fd;
  }

  testing::TempDir dir_;
  std::string url_;
  nng_stream_listener* listener_ = nullptr;
  nng_aio* receive_ = nullptr;
  nng_aio* send_ = nullptr;
  std::thread server_;
};

TEST_F(SpStreamTest, AnswersAnNngReqSocketRequestByRequest) {
  Serve([this](nng_stream* stream) {
    ASSERT_TRUE(SendSpHeader(stream, send_, 1000));
    ASSERT_FALSE(ReadSpHeader(stream, receive_));
    for (int i = 0; i < 3; ++i) {
      auto request = ReadSpRequest(stream, receive_, 1024);
      ASSERT_TRUE(request);
      Bytes reply(request->body().begin(), request->body().end());
      reply.push_back(static_cast<uint8_t>('0' + i));
      ASSERT_TRUE(SendSpReply(stream, send_, request->backtrace(), reply, 1000));
    }
    EXPECT_EQ(ReadSpRequest(stream, receive_, 1024).error(), SpError::kClosed);
  });
  nng_socket req;
  ASSERT_EQ(nng_req0_open(&req), 0);
  nng_socket_set_ms(req, NNG_OPT_RECVTIMEO, 5000);
  ASSERT_EQ(nng_dial(req, url_.c_str(), nullptr, 0), 0);
  for (int i = 0; i < 3; ++i) {
    const std::string ask = "ask" + std::to_string(i);
    ASSERT_EQ(nng_send(req, const_cast<char*>(ask.data()), ask.size(), 0), 0);
    char* got = nullptr;
    size_t size = 0;
    ASSERT_EQ(nng_recv(req, &got, &size, NNG_FLAG_ALLOC), 0);
    EXPECT_EQ(std::string(got, size), ask + static_cast<char>('0' + i));
    nng_free(got, size);
  }
  nng_close(req);
}

TEST_F(SpStreamTest, RefusesAPeerThatIsNotAReqSocket) {
  Serve([this](nng_stream* stream) {
    EXPECT_EQ(ReadSpHeader(stream, receive_), SpError::kProtocol);
  });
  const int fd = Connect();
  const uint8_t rep_header[8] = {0, 'S', 'P', 0, 0x00, 0x31, 0, 0};  // a REP, not a REQ
  ASSERT_EQ(send(fd, rep_header, sizeof rep_header, MSG_NOSIGNAL), 8);
  server_.join();
  close(fd);
}

// The header and head of a frame: type, then a declared length.
Bytes FrameHead(uint8_t type, uint64_t length) {
  Bytes wire = {0, 'S', 'P', 0, 0x00, 0x30, 0, 0, type};
  for (int i = 7; i >= 0; --i) wire.push_back(static_cast<uint8_t>(length >> (8 * i)));
  return wire;
}

// Sends the header and `head` of a frame (nothing after it) and expects the
// server's read of the request to fail with `error`.
void ExpectRefused(SpStreamTest& test, const Bytes& head, SpError error) {
  test.Serve([&test, error](nng_stream* stream) {
    ASSERT_FALSE(ReadSpHeader(stream, test.receive_));
    EXPECT_EQ(ReadSpRequest(stream, test.receive_, 1024).error(), error);
  });
  const int fd = test.Connect();
  ASSERT_EQ(send(fd, head.data(), head.size(), MSG_NOSIGNAL), static_cast<ssize_t>(head.size()));
  test.server_.join();
  close(fd);
}

TEST_F(SpStreamTest, AFrameOverTheLimitIsRefusedFromItsDeclaredLength) {
  ExpectRefused(*this, FrameHead(0x01, 1024 + kReqHeaderBytes + 1), SpError::kTooLarge);
}

TEST_F(SpStreamTest, AFrameOfAnotherTypeIsRefused) {
  ExpectRefused(*this, FrameHead(0x02, 4), SpError::kProtocol);
}

TEST_F(SpStreamTest, AStoppedAioEndsAReceiveThatWaits) {
  Serve([this](nng_stream* stream) {
    ASSERT_FALSE(ReadSpHeader(stream, receive_));
    EXPECT_EQ(ReadSpRequest(stream, receive_, 1024).error(), SpError::kClosed);
  });
  const int fd = Connect();
  const Bytes wire = FrameHead(0x01, 8);  // the header and a frame's head only
  ASSERT_EQ(send(fd, wire.data(), wire.size() - 9, MSG_NOSIGNAL), 8);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  nng_aio_stop(receive_);
  server_.join();
  close(fd);
}

}  // namespace
}  // namespace kmsd
