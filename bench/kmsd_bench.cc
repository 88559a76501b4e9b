// kmsd_bench: how close kmsd gets to the transport it runs on.
//
// Starts a real kmsd (--dev, private SoftHSM2 token in a temp dir), creates a
// tenant, then measures for 1 and N concurrent clients, each with its own
// REQ socket: encrypt and decrypt of a 256-byte plaintext through kmsd, and a
// bare nng REQ/REP round trip carrying frames of the same sizes to an echo
// server built like kmsd's (one nng context per worker thread). Prints ops/s,
// p50 and p99 per case and the kmsd/bare ratio of throughput.
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "client/connection.h"
#include "tests/support/daemon_process.h"
#include "tests/support/temp_dir.h"

namespace kmsd::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Figures {
  double ops_per_second = 0;
  double p50_us = 0;
  double p99_us = 0;
};

// Runs `clients` threads, each calling its worker in a loop for `seconds`,
// and returns throughput and latency percentiles.
struct Samples {
  std::vector<double> latencies_us;
  double elapsed_seconds = 0;
};

void RunRound(const std::vector<std::function<bool()>>& workers, double seconds, Samples& out) {
  const size_t clients = workers.size();
  std::vector<std::vector<double>> latencies(clients);
  std::atomic<bool> go{false}, failed{false};
  std::vector<std::thread> threads;
  const auto duration = std::chrono::duration<double>(seconds);
  for (size_t i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      while (!go.load()) std::this_thread::yield();
      const auto end = Clock::now() + duration;
      for (auto now = Clock::now(); now < end;) {
        if (!workers[i]()) {
          failed = true;
          return;
        }
        const auto after = Clock::now();
        latencies[i].push_back(std::chrono::duration<double, std::micro>(after - now).count());
        now = after;
      }
    });
  }
  const auto start = Clock::now();
  go = true;
  for (auto& t : threads) t.join();
  out.elapsed_seconds += std::chrono::duration<double>(Clock::now() - start).count();
  if (failed) {
    std::fprintf(stderr, "kmsd_bench: an operation failed\n");
    std::exit(1);
  }
  for (auto& l : latencies) out.latencies_us.insert(out.latencies_us.end(), l.begin(), l.end());
}

Figures Summarize(Samples& samples) {
  auto& all = samples.latencies_us;
  std::sort(all.begin(), all.end());
  Figures f;
  f.ops_per_second = all.size() / samples.elapsed_seconds;
  f.p50_us = all[all.size() / 2];
  f.p99_us = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  return f;
}

// An echo server shaped like kmsd's: `workers` threads, one nng context each,
// answering every request with `reply_size` bytes.
class EchoServer {
 public:
  EchoServer(const std::string& url, size_t workers, size_t reply_size) : reply_size_(reply_size) {
    nng_rep0_open(&socket_);
    nng_listen(socket_, url.c_str(), nullptr, 0);
    for (size_t i = 0; i < workers; ++i) threads_.emplace_back([this] { Serve(); });
  }
  ~EchoServer() {
    nng_close(socket_);
    for (auto& t : threads_) t.join();
  }

 private:
  void Serve() {
    nng_ctx ctx;
    nng_aio* aio;
    nng_ctx_open(&ctx, socket_);
    nng_aio_alloc(&aio, nullptr, nullptr);
    std::vector<uint8_t> reply_bytes(reply_size_, 0x5a);
    for (;;) {
      nng_ctx_recv(ctx, aio);
      nng_aio_wait(aio);
      if (nng_aio_result(aio) == NNG_ECLOSED) break;
      if (nng_aio_result(aio) != 0) continue;
      nng_msg_free(nng_aio_get_msg(aio));
      nng_msg* reply;
      nng_msg_alloc(&reply, reply_size_);
      std::memcpy(nng_msg_body(reply), reply_bytes.data(), reply_size_);
      nng_aio_set_msg(aio, reply);
      nng_ctx_send(ctx, aio);
      nng_aio_wait(aio);
      if (nng_aio_result(aio) != 0) nng_msg_free(reply);
    }
    nng_aio_free(aio);
    nng_ctx_close(ctx);
  }
  nng_socket socket_;
  size_t reply_size_;
  std::vector<std::thread> threads_;
};

// A bare REQ client sending `request_size` bytes per round trip.
std::function<bool()> BareClient(const std::string& url, size_t request_size) {
  auto socket = std::make_shared<nng_socket>();
  nng_req0_open(socket.get());
  nng_socket_set_ms(*socket, NNG_OPT_RECVTIMEO, 10000);
  nng_dial(*socket, url.c_str(), nullptr, 0);
  auto payload = std::make_shared<std::vector<uint8_t>>(request_size, 0xa5);
  return [socket, payload]() {
    if (nng_send(*socket, payload->data(), payload->size(), 0) != 0) return false;
    void* buf;
    size_t size;
    if (nng_recv(*socket, &buf, &size, NNG_FLAG_ALLOC) != 0) return false;
    nng_free(buf, size);
    return true;
  };
}

Value::Map EncryptArgs(const Bytes& plaintext) {
  Value::Map args;
  args.emplace_back("key", "alias/data");
  args.emplace_back("plaintext", plaintext);
  Value::Map context;
  context.emplace_back("app", "bench");
  args.emplace_back("context", std::move(context));
  return args;
}

Value::Map DecryptArgs(const Bytes& ciphertext) {
  Value::Map args;
  args.emplace_back("ciphertext", ciphertext);
  Value::Map context;
  context.emplace_back("app", "bench");
  args.emplace_back("context", std::move(context));
  return args;
}

void PrintRow(const char* name, size_t clients, const Figures& f, const Figures& bare) {
  std::printf("%-12s %7zu %12.0f %9.1f %9.1f %13.2f\n", name, clients, f.ops_per_second, f.p50_us,
              f.p99_us, f.ops_per_second / bare.ops_per_second);
}

int Main(int argc, char** argv) {
  CLI::App app{"kmsd_bench: kmsd encrypt/decrypt beside a bare nng REQ/REP round trip"};
  double seconds = 3;
  size_t plaintext_size = 256;
  size_t max_clients = 8;
  int rounds = 6;
  app.add_option("--seconds", seconds, "duration of each case")->check(CLI::PositiveNumber);
  app.add_option("--size", plaintext_size, "plaintext bytes")->check(CLI::Range(1, 65536));
  app.add_option("--clients", max_clients, "concurrent clients of the second round")
      ->check(CLI::Range(2, 64));
  app.add_option("--rounds", rounds, "alternating bare/kmsd rounds per case")
      ->check(CLI::Range(1, 100));
  testing::SpawnOptions spawn;
  app.add_option("--kmsd", spawn.binary, "kmsd binary to measure (default: this build's)")
      ->check(CLI::ExistingFile);
  CLI11_PARSE(app, argc, argv);

  testing::TempDir dir;
  auto daemon = testing::DaemonProcess::StartDev(dir / "kmsd", spawn);
  {
    auto admin = daemon->Connect();
    if (!admin->Call("tenant.create", "bench")) return 1;
  }
  const Bytes plaintext(plaintext_size, 0x42);

  // Frame sizes of the real operations, so the bare round trip carries the same bytes.
  auto probe = daemon->Connect();
  const size_t encrypt_request =
      EncodeValue(BuildRequest(1, "encrypt", "bench", EncryptArgs(plaintext))).size();
  auto encrypted = probe->Call("encrypt", "bench", EncryptArgs(plaintext));
  if (!encrypted) return 1;
  const size_t encrypt_reply = encrypted->raw().size();
  const Bytes ciphertext(encrypted->result().Binary("ciphertext")->begin(),
                         encrypted->result().Binary("ciphertext")->end());
  const size_t decrypt_request =
      EncodeValue(BuildRequest(1, "decrypt", "bench", DecryptArgs(ciphertext))).size();
  auto decrypted = probe->Call("decrypt", "bench", DecryptArgs(ciphertext));
  if (!decrypted) return 1;
  const size_t decrypt_reply = decrypted->raw().size();

  std::printf(
      "kmsd_bench: %zu-byte plaintext, %.1f s per side per case in %d alternating rounds, "
      "SoftHSM2 token, %u cores\n",
      plaintext_size, seconds, rounds, std::thread::hardware_concurrency());
  std::printf("%-12s %7s %12s %9s %9s %13s\n", "case", "clients", "ops/s", "p50 us", "p99 us",
              "ratio to bare");
  for (size_t clients : {size_t{1}, max_clients}) {
    auto kmsd_worker = [&](bool encrypt) {
      return [&, encrypt](size_t) -> std::function<bool()> {
        std::shared_ptr<Connection> connection = daemon->Connect();
        return [connection, encrypt, &plaintext, &ciphertext]() {
          auto reply = encrypt ? connection->Call("encrypt", "bench", EncryptArgs(plaintext))
                               : connection->Call("decrypt", "bench", DecryptArgs(ciphertext));
          return reply.has_value();
        };
      };
    };
    for (bool encrypt : {true, false}) {
      const size_t request = encrypt ? encrypt_request : decrypt_request;
      const size_t reply = encrypt ? encrypt_reply : decrypt_reply;
      const std::string url = "ipc://" + (dir / ("bare-" + std::to_string(clients) + ".sock"));
      EchoServer echo(url, 8, reply);
      std::vector<std::function<bool()>> bare_workers, kmsd_workers;
      for (size_t i = 0; i < clients; ++i) {
        bare_workers.push_back(BareClient(url, request));
        kmsd_workers.push_back(kmsd_worker(encrypt)(i));
      }
      // Short alternating rounds, so that noise from the rest of the machine
      // falls on both sides alike.
      Samples bare_samples, kmsd_samples;
      for (int round = 0; round < rounds; ++round) {
        RunRound(bare_workers, seconds / rounds, bare_samples);
        RunRound(kmsd_workers, seconds / rounds, kmsd_samples);
      }
      const Figures bare = Summarize(bare_samples);
      const Figures real = Summarize(kmsd_samples);
      PrintRow(encrypt ? "bare(enc)" : "bare(dec)", clients, bare, bare);
      PrintRow(encrypt ? "encrypt" : "decrypt", clients, real, bare);
    }
  }
  daemon->Stop();
  return 0;
}

// Every nng object (connections, echo servers) is gone before nng_fini.
int MainThenFini(int argc, char** argv) {
  const int rc = Main(argc, argv);
  nng_fini();
  return rc;
}

}  // namespace
}  // namespace kmsd::bench

int main(int argc, char** argv) { return kmsd::bench::MainThenFini(argc, argv); }
