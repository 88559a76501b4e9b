// envelope_bench: the client library's envelope encryption (AWS Encryption
// SDK messages, client/esdk/) beside its peers, in one run on the same data.
//
//   streaming encrypt and decrypt in memory, 1 MiB frames and the default
//     4 KiB frames (raw AES keyring: the data key is local either way), the
//     latter also on one thread (whole frames of a write are otherwise
//     sealed and opened on every core, client/esdk/parallel.h);
//   kmsctl envelope encrypt of the file to /dev/null, as a command;
//   `openssl speed -evp aes-256-gcm` at 16 KiB: the floor AES-GCM itself sets
//     on one core (the best of as many runs as the streaming cases get);
//   Debian's age encrypting the same file to /dev/null;
//   the JavaScript SDK (npm @aws-crypto/client-node) encrypting and
//     decrypting the same file, 1 MiB frames;
//   256-byte messages through a real kmsd (kmsd keyring) without and with
//     the data-key cache.
//
// Goals (issue 12): streaming at least 0.8 of the openssl floor, faster than
// age and the JavaScript SDK; with the cache, 256-byte messages at least 50x
// faster than without.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "client/esdk/cache.h"
#include "client/esdk/kmsd_keyring.h"
#include "client/esdk/message.h"
#include "client/esdk/raw_aes_keyring.h"
#include "tests/support/daemon_process.h"
#include "tests/support/esdk_js.h"
#include "tests/support/temp_dir.h"

namespace kmsd::bench {
namespace {

using Clock = std::chrono::steady_clock;
using esdk::Bytes;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double MegabytesPerSecond(uint64_t bytes, double seconds) { return bytes / seconds / 1e6; }

std::unique_ptr<esdk::Keyring> AesKeyring() {
  return std::move(*esdk::RawAesKeyring::Create("bench", "k", SecretBuffer::CopyOf(Bytes(32, 5))));
}

// The best of `rounds` runs of `run` (which returns seconds).
template <typename Run>
double Best(int rounds, Run run) {
  double best = 1e9;
  for (int i = 0; i < rounds; ++i) best = std::min(best, run());
  return best;
}

struct Streaming {
  double encrypt_mb_s, decrypt_mb_s;
};

// Encrypts `data` fed in 1 MiB pieces to a sink that drops it, then
// decrypts the message the same way; with `parallel`, whole frames are
// sealed and opened on every core (client/esdk/parallel.h).
Streaming MeasureStreaming(const Bytes& data, uint32_t frame, int rounds, bool parallel = true) {
  auto keyring = AesKeyring();
  esdk::KeyringMaterials materials(*keyring);
  constexpr size_t kPiece = 1 << 20;
  // The message to decrypt, made once; the timed runs drop their output.
  Bytes message = *esdk::EncryptMessage(materials,
                                        {.suite_id = esdk::kCommittingSuite,
                                         .frame_length = frame,
                                         .context = {},
                                         .plaintext_bytes = std::nullopt},
                                        data);
  const double encrypt = Best(rounds, [&] {
    uint64_t written = 0;
    const auto start = Clock::now();
    auto encryptor = esdk::Encryptor::Start(materials,
                                            {.suite_id = esdk::kCommittingSuite,
                                             .frame_length = frame,
                                             .context = {},
                                             .plaintext_bytes = std::nullopt,
                                             .parallel = parallel},
                                            [&](std::span<const uint8_t> bytes) {
                                              written += bytes.size();
                                              return OkStatus();
                                            });
    for (size_t at = 0; at < data.size(); at += kPiece) {
      (void)(*encryptor)->Write(std::span(data).subspan(at, std::min(kPiece, data.size() - at)));
    }
    (void)(*encryptor)->Finish();
    if (written < data.size()) std::fprintf(stderr, "encrypt wrote %lu bytes\n", written);
    return SecondsSince(start);
  });
  uint64_t released = 0;
  const double decrypt = Best(rounds, [&] {
    released = 0;
    const auto start = Clock::now();
    esdk::DecryptOptions options;
    options.parallel = parallel;
    esdk::Decryptor decryptor(materials, options, [&](std::span<const uint8_t> bytes) {
      released += bytes.size();
      return OkStatus();
    });
    for (size_t at = 0; at < message.size(); at += kPiece) {
      (void)decryptor.Write(std::span(message).subspan(at, std::min(kPiece, message.size() - at)));
    }
    if (!decryptor.Finish().ok()) std::fprintf(stderr, "decrypt failed\n");
    return SecondsSince(start);
  });
  if (released != data.size()) std::fprintf(stderr, "decrypt released %lu bytes\n", released);
  return {MegabytesPerSecond(data.size(), encrypt), MegabytesPerSecond(data.size(), decrypt)};
}

// `openssl speed -evp aes-256-gcm -bytes 16384`: bytes per second.
double OpensslFloor(int seconds) {
  const testing::CommandResult speed =
      testing::RunCommand({"/usr/bin/openssl", "speed", "-evp", "aes-256-gcm", "-bytes", "16384",
                           "-seconds", std::to_string(seconds)});
  // "AES-256-GCM   123456.78k" (thousands of bytes per second)
  std::smatch match;
  const std::regex row(R"(aes-256-gcm\s+([0-9.]+)k)", std::regex::icase);
  if (!std::regex_search(speed.out, match, row)) return 0;
  return std::stod(match[1]) * 1000;
}

double TimeCommand(const std::vector<std::string>& argv, int rounds) {
  return Best(rounds, [&] {
    const auto start = Clock::now();
    const testing::CommandResult result = testing::RunCommand(argv);
    if (result.exit_code != 0)
      std::fprintf(stderr, "%s failed: %s\n", argv[0].c_str(), result.err.c_str());
    return SecondsSince(start);
  });
}

double JsMegabytesPerSecond(const std::vector<std::string>& args) {
  const testing::CommandResult js = testing::RunEsdkJs(args, "");
  std::smatch match;
  const std::regex field(R"("mb_per_s":([0-9.]+))");
  if (js.exit_code != 0 || !std::regex_search(js.out, match, field)) {
    std::fprintf(stderr, "JavaScript SDK bench failed: %s\n", js.err.c_str());
    return 0;
  }
  return std::stod(match[1]);
}

// 256-byte messages per second through kmsd, for `seconds`.
double SmallMessages(esdk::MaterialsManager& materials, double seconds) {
  const Bytes plaintext(256, 0x42);
  uint64_t messages = 0;
  const auto start = Clock::now();
  while (SecondsSince(start) < seconds) {
    auto message = esdk::EncryptMessage(materials, {}, plaintext);
    if (!message.has_value()) {
      std::fprintf(stderr, "encrypt failed: %s\n", message.error().message().c_str());
      return 0;
    }
    ++messages;
  }
  return messages / SecondsSince(start);
}

// The same file through kmsctl, age and the JavaScript SDK (MB/s).
struct Peers {
  double kmsctl_encrypt, age_encrypt, js_encrypt, js_decrypt;
};

Peers MeasurePeers(const testing::TempDir& dir, const std::string& file, uint64_t bytes,
                   int rounds) {
  const std::string kmsctl = KMSCTL_BINARY;
  const double kmsctl_seconds =
      TimeCommand({"/bin/sh", "-c",
                   kmsctl + " envelope encrypt --keyring raw-aes:bench/k:" + (dir / "key") +
                       " --frame-size 1048576 --in " + file + " > /dev/null"},
                  rounds);
  const testing::CommandResult keygen =
      testing::RunCommand({"/usr/bin/age-keygen", "-o", dir / "age.key"});
  std::smatch recipient;
  const std::regex public_key(R"(age1[0-9a-z]+)");
  std::regex_search(keygen.err, recipient, public_key);
  const double age_seconds =
      TimeCommand({"/usr/bin/age", "-r", recipient.str(), "-o", "/dev/null", file}, rounds);
  const std::string aes = "--aes=bench/k:" + (dir / "key");
  return {MegabytesPerSecond(bytes, kmsctl_seconds), MegabytesPerSecond(bytes, age_seconds),
          JsMegabytesPerSecond({"bench", "--in=" + file, "--frame=1048576", "--suite=0478", aes}),
          JsMegabytesPerSecond(
              {"bench", "--decrypt", "--in=" + file, "--frame=1048576", "--suite=0478", aes})};
}

void PrintStreaming(double floor, const Streaming& big, const Streaming& small,
                    const Streaming& serial, const Peers& peers) {
  const auto row = [&](const char* name, double mb_s) {
    std::printf("%-44s %10.0f %10.2f\n", name, mb_s, floor > 0 ? mb_s / floor : 0);
  };
  std::printf("%-44s %10s %10s\n", "streaming (MB/s, 1 MB = 10^6 bytes)", "MB/s", "/ floor");
  row("openssl speed aes-256-gcm, 16 KiB (floor)", floor);
  row("kmsd client encrypt, 1 MiB frames", big.encrypt_mb_s);
  row("kmsd client decrypt, 1 MiB frames", big.decrypt_mb_s);
  row("kmsd client encrypt, 4 KiB frames", small.encrypt_mb_s);
  row("kmsd client decrypt, 4 KiB frames", small.decrypt_mb_s);
  row("kmsd client encrypt, 4 KiB frames, 1 thread", serial.encrypt_mb_s);
  row("kmsd client decrypt, 4 KiB frames, 1 thread", serial.decrypt_mb_s);
  row("kmsctl envelope encrypt file > /dev/null", peers.kmsctl_encrypt);
  row("age -r X25519 file > /dev/null", peers.age_encrypt);
  row("JavaScript SDK encrypt, 1 MiB frames", peers.js_encrypt);
  row("JavaScript SDK decrypt, 1 MiB frames", peers.js_decrypt);
  std::printf(
      "goals: streaming >= 0.8 of the floor (1 MiB frames: %.2f / %.2f, 4 KiB frames: %.2f / "
      "%.2f), faster than age (%s) and the JavaScript SDK (%s)\n",
      floor > 0 ? big.encrypt_mb_s / floor : 0, floor > 0 ? big.decrypt_mb_s / floor : 0,
      floor > 0 ? small.encrypt_mb_s / floor : 0, floor > 0 ? small.decrypt_mb_s / floor : 0,
      big.encrypt_mb_s > peers.age_encrypt ? "yes" : "no",
      big.encrypt_mb_s > peers.js_encrypt && big.decrypt_mb_s > peers.js_decrypt ? "yes" : "no");
}

// 256-byte messages through a real kmsd, without and with the cache.
int CacheCase(const testing::TempDir& dir, double seconds) {
  auto daemon = testing::DaemonProcess::StartDev(dir / "kmsd");
  auto connection = daemon->Connect();
  if (!connection->Call("tenant.create", "bench").has_value()) return 1;
  esdk::KmsdKeyring keyring(*connection, "bench", "alias/data");
  esdk::KeyringMaterials direct(keyring);
  esdk::DataKeyCache cache({});
  esdk::CachingMaterials cached(direct, cache, "kmsd:bench/alias/data");
  const double uncached_rate = SmallMessages(direct, seconds);
  const double cached_rate = SmallMessages(cached, seconds);
  std::printf("\n%-44s %10s\n", "256-byte messages through kmsd", "msgs/s");
  std::printf("%-44s %10.0f\n", "without the data-key cache", uncached_rate);
  std::printf("%-44s %10.0f\n", "with the data-key cache", cached_rate);
  std::printf("cache speed-up: %.0fx (goal: at least 50x)\n",
              uncached_rate > 0 ? cached_rate / uncached_rate : 0);
  daemon->Stop();
  return 0;
}

int Main(int argc, char** argv) {
  CLI::App app("envelope_bench: envelope encryption beside openssl, age and the JavaScript SDK");
  size_t megabytes = 256;
  int rounds = 3;
  double seconds = 3;
  app.add_option("--megabytes", megabytes, "Size of the data (MiB)")->check(CLI::Range(1, 4096));
  app.add_option("--rounds", rounds, "Runs per streaming case (the best counts)")
      ->check(CLI::Range(1, 20));
  app.add_option("--seconds", seconds, "Duration of the openssl and small-message cases");
  bool cache_only = false;
  app.add_flag("--cache-only", cache_only, "Only the 256-byte messages without and with the cache");
  CLI11_PARSE(app, argc, argv);

  testing::TempDir dir;
  if (cache_only) return CacheCase(dir, seconds);
  Bytes data(megabytes << 20);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>((i * 2654435761u) >> 13);
  const std::string file = dir / "data";
  std::ofstream(file, std::ios::binary)
      .write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  std::ofstream(dir / "key", std::ios::binary) << std::string(32, '\5');
  std::filesystem::permissions(
      dir / "key", std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);

  std::printf("envelope_bench: %zu MiB of data, best of %d runs, 2-core VM\n\n", megabytes, rounds);
  // Best of the rounds too: a single run of openssl speed swung by half here.
  double floor = 0;
  for (int round = 0; round < rounds; ++round) {
    floor = std::max(floor, OpensslFloor(static_cast<int>(seconds)) / 1e6);
  }
  const Streaming big = MeasureStreaming(data, 1 << 20, rounds);
  const Streaming small = MeasureStreaming(data, esdk::kDefaultFrameLength, rounds);
  const Streaming serial = MeasureStreaming(data, esdk::kDefaultFrameLength, rounds, false);
  PrintStreaming(floor, big, small, serial, MeasurePeers(dir, file, data.size(), rounds));
  return CacheCase(dir, seconds);
}

}  // namespace
}  // namespace kmsd::bench

int main(int argc, char** argv) { return kmsd::bench::Main(argc, argv); }
