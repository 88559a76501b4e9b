// backup_bench: kmsctl backup create and restore beside Debian's restic and
// `tar | age`, in one run on the same generated tree: by default 20,000
// files of mixed sizes (most under 4 KiB, some up to 1 MiB) and one 1 GiB
// file, all incompressible. Every command is timed with a `sync` after it
// (each tool's result on disk, as a backup must be), the best of --rounds.
// kmsctl talks to a real kmsd (dev mode, its own SoftHSM2 token).
//
// Goals (issue 13): kmsctl faster than restic, and within 1.5x of tar | age.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "tests/support/daemon_process.h"
#include "tests/support/temp_dir.h"

namespace kmsd::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Incompressible bytes, fast (xorshift64*).
void FillRandom(std::vector<char>& buffer, uint64_t& state) {
  auto* words = reinterpret_cast<uint64_t*>(buffer.data());
  for (size_t i = 0; i < buffer.size() / 8; ++i) {
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    words[i] = state * 2685821657736338717ULL;
  }
}

// The tree; its total bytes.
uint64_t MakeTree(const std::string& root, size_t files, size_t big_mib) {
  std::mt19937_64 sizes(7);
  uint64_t state = 88172645463325252ULL, total = 0;
  std::vector<char> buffer(1 << 20);
  for (size_t i = 0; i < files; ++i) {
    const std::string directory =
        root + "/d" + std::to_string(i % 100) + "/e" + std::to_string(i % 7);
    fs::create_directories(directory);
    const uint64_t pick = sizes() % 100;
    const size_t size = pick < 70   ? sizes() % 4096
                        : pick < 98 ? 4096 + sizes() % (60 << 10)
                                    : (64 << 10) + sizes() % (960 << 10);
    FillRandom(buffer, state);
    std::ofstream(directory + "/f" + std::to_string(i), std::ios::binary)
        .write(buffer.data(), static_cast<std::streamsize>(size));
    total += size;
  }
  std::ofstream big(root + "/big.bin", std::ios::binary);
  for (size_t mib = 0; mib < big_mib; ++mib) {
    FillRandom(buffer, state);
    big.write(buffer.data(), static_cast<std::streamsize>(buffer.size()));
  }
  return total + (static_cast<uint64_t>(big_mib) << 20);
}

// Seconds for `command` (run by /bin/sh) and a sync; `before` runs untimed.
double Timed(const std::string& command, const std::string& before = "") {
  if (!before.empty()) testing::RunCommand({"/bin/sh", "-c", before});
  testing::RunCommand({"/bin/sync"});
  const auto start = Clock::now();
  const testing::CommandResult result =
      testing::RunCommand({"/bin/sh", "-c", command + " && sync"});
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (result.exit_code != 0) {
    std::fprintf(stderr, "failed (%d): %s\n%s\n", result.exit_code, command.c_str(),
                 result.err.c_str());
    return 0;
  }
  return seconds;
}

int Main(int argc, char** argv) {
  CLI::App app("backup_bench: kmsctl backup beside restic and tar | age");
  size_t files = 20000, big_mib = 1024;
  int rounds = 2;
  app.add_option("--files", files, "Small files in the tree")->check(CLI::Range(1, 1000000));
  app.add_option("--big-mib", big_mib, "Size of the one large file (MiB)")
      ->check(CLI::Range(0, 65536));
  app.add_option("--rounds", rounds, "Runs per case (the best counts)")->check(CLI::Range(1, 10));
  CLI11_PARSE(app, argc, argv);

  testing::TempDir dir;
  const std::string src = dir / "src";
  const uint64_t bytes = MakeTree(src, files, big_mib);
  auto daemon = testing::DaemonProcess::StartDev(dir / "kmsd");
  if (!daemon->Connect()->Call("tenant.create", "bench").has_value()) return 1;
  const std::string kmsctl =
      std::string(KMSCTL_BINARY) + " --socket " + daemon->socket_path() + " ";
  const std::string restic = "RESTIC_PASSWORD=bench /usr/bin/restic --quiet --no-cache ";
  testing::RunCommand({"/usr/bin/age-keygen", "-o", dir / "age.key"});
  const std::string age_recipient = "$(/usr/bin/age-keygen -y " + (dir / "age.key") + ")";

  const std::string archive = dir / "b.kmsdbak", repo = dir / "restic", aged = dir / "b.tar.age";
  const std::string out = dir / "out";
  const auto clean = [&](const std::string& path) { return "rm -rf " + path; };
  // The tools take turns within each round, so that none always runs on a
  // file system the others just churned: ext4 passes over inodes freed in
  // the last minute when it allocates (ialloc.c, recently_deleted), and
  // creating 20,000 files right after deleting as many cost seconds more.
  double kmsctl_create = 1e9, kmsctl_restore = 1e9, restic_create = 1e9, restic_restore = 1e9,
         age_create = 1e9, age_restore = 1e9;
  const auto best = [](double& slot, double seconds) {
    if (seconds > 0) slot = std::min(slot, seconds);
  };
  for (int round = 0; round < rounds; ++round) {
    best(kmsctl_create,
         Timed(kmsctl + "backup create --tenant bench --out " + archive + " " + src + " >/dev/null",
               clean(archive)));
    best(restic_create,
         Timed(restic + "backup --repo " + repo + " " + src + " >/dev/null",
               clean(repo) + " && " + restic + "init --repo " + repo + " >/dev/null"));
    best(age_create, Timed("tar -cf - -C " + dir.path().string() + " src | /usr/bin/age -r " +
                               age_recipient + " -o " + aged,
                           clean(aged)));
    best(kmsctl_restore,
         Timed(kmsctl + "backup restore " + archive + " --to " + out + " >/dev/null", clean(out)));
    best(restic_restore,
         Timed(restic + "restore latest --repo " + repo + " --target " + out + " >/dev/null",
               clean(out)));
    best(age_restore,
         Timed("/usr/bin/age -d -i " + (dir / "age.key") + " " + aged + " | tar -xf - -C " + out,
               clean(out) + " && mkdir " + out));
  }
  daemon->Stop();

  const auto row = [&](const char* name, double create, double restore) {
    std::printf("%-28s %9.2f %9.2f %9.0f %9.0f\n", name, create, restore, bytes / create / 1e6,
                bytes / restore / 1e6);
  };
  std::printf("backup_bench: %zu files + one %zu MiB file, %.2f GB, best of %d, 2-core VM\n\n",
              files, big_mib, bytes / 1e9, rounds);
  std::printf("%-28s %9s %9s %9s %9s\n", "", "create s", "restore s", "MB/s", "MB/s");
  row("kmsctl backup", kmsctl_create, kmsctl_restore);
  row("restic 0.14 (Debian)", restic_create, restic_restore);
  row("tar | age", age_create, age_restore);
  std::printf(
      "\nkmsctl / restic: create %.2f, restore %.2f (goal: below 1)\n"
      "kmsctl / (tar | age): create %.2f, restore %.2f (goal: at most 1.5)\n",
      kmsctl_create / restic_create, kmsctl_restore / restic_restore, kmsctl_create / age_create,
      kmsctl_restore / age_restore);
  return 0;
}

}  // namespace
}  // namespace kmsd::bench

int main(int argc, char** argv) { return kmsd::bench::Main(argc, argv); }
