// Kill during the start-up migration to hardened KEKs (issue 8; DESIGN.md
// invariants 1 and 4; keystore/kek_migration.cc): a crash at any point of the
// migration loses nothing and leaves nothing behind.
//
// kmsd_migration_crash_test writes a legacy dev dir with kmsd_legacy_keystore
// (--tenants tenants, a third of them on a schema-2 tenant root, the others
// with an unhardened KEK per key, up to --versions versions per key and one
// recorded ciphertext per version), then:
// 1. calibrates on a copy of that dir: times a start that migrates and one
//    that does not, and reads the migrating start's phases from its log
//    (loading, moving keys, destroying the old objects);
// 2. --kills times: starts the real kmsd --dev on the legacy dir without
//    waiting for it and SIGKILLs it: every other kill at the next of moments
//    drawn uniformly over the calibrated migrating start (aimed from where the
//    state at rest says the migration got to), the others a few ms after a
//    tenant's transaction or an old object's destruction shows in the log
//    (the short steps uniform moments seldom hit). After each kill a raw
//    PKCS#11 client holding the PIN (tests/support/pin_holder.h) checks the
//    state at rest: every version the keystore names unwraps under exactly one
//    token object of its label, every recorded ciphertext decrypts offline
//    with it, and every tenant object in the token is named, queued, or the
//    next KEK of a key still to move. It stops early once nothing is left to
//    migrate or destroy;
// 3. starts kmsd and waits until it is ready: every recorded ciphertext
//    decrypts to its plaintext through the socket and every tenant still
//    encrypts; after a clean stop, every token key is hardened, every key's
//    KEK is its second label (`<KekLabel>/2`: moved exactly once), the token
//    holds exactly the three global keys and one KEK per key (no tenant root,
//    old KEK or leftover of an interrupted attempt), and the destroy queue is
//    empty.
//
//   kmsd_migration_crash_test [--kills N] [--seed S] [--tenants N] [--versions V]
//
// Prints the seed first (the kill moments follow from it and the calibration;
// the migration's pace, and so where each kill lands, does not). Exit 0 with a summary line; 1
// after printing every problem and keeping the files (KeepForPostMortem); 2 for bad usage.
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "client/connection.h"
#include "pkcs11/softhsm_files.h"
#include "tests/crash/crash_support.h"
#include "tests/support/daemon_process.h"
#include "tests/support/pin_holder.h"
#include "tests/support/temp_dir.h"
#include "tests/support/value_builders.h"

namespace kmsd::testing {
namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

constexpr char kTokenLabel[] = "kmsd-dev";  // daemon/dev_mode.h
constexpr char kPlatformMasterKey[] = "global/platform-master-key";
constexpr char kAuditLogKey[] = "global/audit-log-key";
constexpr char kApiKeyHmacKey[] = "global/api-key-hmac-key";
constexpr auto kCallTimeout = std::chrono::milliseconds(30000);
// How long after a logged step a kill may come (SleepUntilEvent): about one
// old object's destruction on a loaded machine.
constexpr double kEventJitter = 0.05;

struct Options {
  int kills = 10;
  uint64_t seed = 0;
  int tenants = 30;
  int versions = 4;
};

double Seconds(SteadyClock::duration d) { return std::chrono::duration<double>(d).count(); }

// One ciphertext kmsd_legacy_keystore sealed before the migration.
struct Sealed {
  std::string tenant;
  std::string key;
  uint64_t version = 0;
  std::string plaintext;
  Bytes ciphertext;
  std::string Name() const { return tenant + "/" + key + " v" + std::to_string(version); }
};

Bytes FromHex(const std::string& hex) {
  Bytes out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

std::vector<Sealed> ReadSealed(const std::string& path) {
  std::ifstream in(path);
  std::vector<Sealed> out;
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> fields;
    for (size_t start = 0;;) {
      const size_t tab = line.find('\t', start);
      fields.push_back(line.substr(start, tab - start));
      if (tab == std::string::npos) break;
      start = tab + 1;
    }
    if (fields.size() != 5) throw std::runtime_error("bad line in " + path + ": " + line);
    out.push_back({fields[0], fields[1], std::stoull(fields[2]), fields[3], FromHex(fields[4])});
  }
  return out;
}

std::string ReadPin(const std::string& dir) {
  std::ifstream in(dir + "/user-pin");
  std::string pin;
  std::getline(in, pin);
  return pin;
}

// The token and the keystore while no kmsd runs, as a PIN holder sees them.
struct AtRest {
  size_t keys = 0;                    // in the keystore
  size_t keys_to_move = 0;            // whose versions an unhardened object wraps
  size_t unhardened = 0;              // token keys not hardened (old KEKs, roots, master key)
  size_t queued = 0;                  // labels queued for destruction
  size_t decrypted = 0;               // recorded ciphertexts that decrypt offline
  std::vector<std::string> problems;  // anything lost, or (when finished) left behind

  // Nonzero while the migration has something left to do.
  size_t work() const { return keys_to_move + unhardened + queued; }
};

using TokenKeys = std::map<std::string, std::vector<TokenKey>>;  // by label

// Every version the keystore names must unwrap under the one token key of its
// label, and every recorded ciphertext must decrypt with it; once `finished`,
// under the key's second KEK.
void CheckVersions(PinHolder& holder, const KeystoreCopy& keystore, const TokenKeys& token,
                   const std::vector<Sealed>& sealed, bool finished, AtRest& at) {
  std::map<std::string, std::vector<const Sealed*>> by_version;
  for (const Sealed& s : sealed) by_version[s.Name()].push_back(&s);
  std::set<std::string> keys, keys_to_move;
  for (const StoredVersion& v : keystore.versions) {
    keys.insert(v.key_id);
    const std::string name = v.tenant + "/" + v.key_name + " v" + std::to_string(v.version);
    const std::vector<const Sealed*> recorded = std::move(by_version[name]);
    by_version.erase(name);
    auto wrapping = token.find(v.wrapping_label);
    const size_t copies = wrapping == token.end() ? 0 : wrapping->second.size();
    if (copies != 1) {
      at.problems.push_back(name + ": its wrapping key " + v.wrapping_label + " is in the token " +
                            std::to_string(copies) + " times");
      continue;
    }
    const TokenKey& kek = wrapping->second.front();
    if (!holder.Weaknesses(kek).empty()) keys_to_move.insert(v.key_id);
    if (finished && !v.wrapping_label.ends_with("/2")) {
      at.problems.push_back(name + " is wrapped under " + v.wrapping_label +
                            ", not the key's second KEK");
    }
    CK_OBJECT_HANDLE unwrapped = CK_INVALID_HANDLE;
    if (CK_RV rv = holder.UnwrapUsable(kek.handle, v.wrapped, &unwrapped); rv != CKR_OK) {
      at.problems.push_back(name + ": does not unwrap under " + v.wrapping_label + ": " +
                            RvName(rv));
      continue;
    }
    for (const Sealed* s : recorded) {
      std::string plaintext;
      const CK_RV rv = holder.DecryptCiphertext(unwrapped, s->tenant, s->ciphertext, &plaintext);
      if (rv == CKR_OK && plaintext == s->plaintext) {
        ++at.decrypted;
      } else {
        at.problems.push_back(name + ": its recorded ciphertext does not decrypt: " + RvName(rv));
      }
    }
  }
  for (const auto& [name, recorded] : by_version) {
    if (!recorded.empty()) at.problems.push_back(name + " is no longer in the keystore");
  }
  at.keys = keys.size();
  at.keys_to_move = keys_to_move.size();
}

// Once the migration is over: nothing queued, and the token holds exactly the
// global keys and one hardened KEK per key.
void CheckNothingLeft(PinHolder& holder, const KeystoreCopy& keystore, const TokenKeys& token,
                      AtRest& at) {
  for (const std::string& label : keystore.queued_for_destruction) {
    at.problems.push_back("still queued for destruction: " + label);
  }
  std::set<std::string> expected = keystore.token_labels;
  expected.insert(kPlatformMasterKey);
  expected.insert(kAuditLogKey);
  expected.insert(kApiKeyHmacKey);
  size_t keks = 0;
  for (const auto& [label, objects] : token) {
    if (label.starts_with("tenants/")) keks += objects.size();
    if (!expected.contains(label)) at.problems.push_back("left in the token: " + label);
    if (objects.size() > 1) at.problems.push_back("in the token twice: " + label);
    for (const TokenKey& key : objects) {
      for (const std::string& weakness : holder.Weaknesses(key)) {
        at.problems.push_back(label + " is not hardened: " + weakness);
      }
    }
  }
  for (const std::string& label : expected) {
    if (!token.contains(label)) at.problems.push_back("missing from the token: " + label);
  }
  if (keks != at.keys) {
    at.problems.push_back(std::to_string(keks) + " tenant objects in the token for " +
                          std::to_string(at.keys) + " keys");
  }
}

// At any point: every tenant object in the token is named by the keystore,
// queued for destruction, or the next KEK of a key still to move (an
// interrupted attempt's, destroyed when the key is moved again). Anything
// else would never be destroyed: an old KEK left so would let a PIN holder
// with an old keystore copy unwrap into exportable keys.
void CheckNoOrphans(const KeystoreCopy& keystore, const TokenKeys& token, AtRest& at) {
  std::set<std::string> known = keystore.token_labels;
  known.insert(keystore.queued_for_destruction.begin(), keystore.queued_for_destruction.end());
  for (const StoredVersion& v : keystore.versions) {
    // A legacy key's next KEK, whether it was on a root or a KEK of its own.
    const std::string next = "tenants/" + v.tenant + "/keys/" + v.key_id + "/2";
    if (v.wrapping_label != next) known.insert(next);
  }
  for (const auto& [label, objects] : token) {
    if (label.starts_with("tenants/") && !known.contains(label)) {
      at.problems.push_back(label + " is in the token, but neither named nor queued");
    }
  }
}

// The state at rest (kmsd must not run), checked as above.
AtRest Inspect(const std::string& dir, const std::vector<Sealed>& sealed, bool finished) {
  AtRest at;
  const KeystoreCopy keystore = ReadKeystore(dir + "/keystore.db");
  // What kmsd's next start does first: a token.object that the kill cut short
  // (SoftHSM2 rewrites it in place at every login) comes back from kmsd's copy.
  if (auto restored = pkcs11::RestoreTokenObjects(dir + "/tokens"); !restored) {
    at.problems.push_back("cannot restore token.object: " + restored.error().ToString());
  } else {
    for (const std::string& file : *restored) {
      std::printf("note: %s was emptied by the kill and restored from kmsd's copy\n", file.c_str());
    }
  }
  auto holder = PinHolder::Login(SOFTHSM_MODULE, kTokenLabel, ReadPin(dir));
  TokenKeys token;
  for (TokenKey& key : holder->SecretKeys()) {
    if (!holder->Weaknesses(key).empty()) ++at.unhardened;
    token[key.label].push_back(std::move(key));
  }
  at.queued = keystore.queued_for_destruction.size();
  CheckVersions(*holder, keystore, token, sealed, finished, at);
  CheckNoOrphans(keystore, token, at);
  if (finished) CheckNothingLeft(*holder, keystore, token, at);
  return at;
}

// What one run of kmsd wrote to its log before the kill.
struct RunLog {
  size_t tenants_moved = 0;  // migration transactions committed
  size_t leftovers = 0;      // objects of an interrupted attempt destroyed
  size_t destroyed = 0;      // queued objects destroyed
  bool ready = false;        // kmsd finished starting (the kill came late)
};

RunLog ReadRunLog(const std::string& log, std::streamoff from) {
  std::ifstream in(log);
  in.seekg(from);
  RunLog run;
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("] tenant ") != std::string::npos &&
        line.find("moved to hardened KEKs") != std::string::npos) {
      ++run.tenants_moved;
    }
    if (line.find("left by an interrupted migration") != std::string::npos) ++run.leftovers;
    if (line.find("] token object ") != std::string::npos && line.ends_with(" destroyed")) {
      ++run.destroyed;
    }
    if (line.find(" ready: token") != std::string::npos) run.ready = true;
  }
  return run;
}

std::streamoff FileSize(const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  return ec ? 0 : static_cast<std::streamoff>(size);
}

// Seconds from spawn to `health` answering, on `dir`.
double TimeStart(const std::string& dir) {
  const auto started = SteadyClock::now();
  auto daemon = DaemonProcess::StartDev(dir);
  const double seconds = Seconds(SteadyClock::now() - started);
  if (daemon->Stop() != 0) throw std::runtime_error("kmsd did not stop cleanly on " + dir);
  return seconds;
}

// When a kmsd log line was written ("[2024-01-31 12:34:56.789] ..."), in
// seconds since midnight; negative if the line has no timestamp.
double LogSeconds(const std::string& line) {
  int hours = 0, minutes = 0;
  double seconds = 0;
  if (line.size() < 25 || line[0] != '[' ||
      std::sscanf(line.c_str() + 12, "%d:%d:%lf", &hours, &minutes, &seconds) != 3) {
    return -1;
  }
  return hours * 3600 + minutes * 60 + seconds;
}

// The timeline of a start that migrates everything, and a plain start's time.
struct Calibration {
  double plain_s = 0;       // spawn to ready, nothing to migrate
  double migrating_s = 0;   // spawn to ready, everything to migrate; of which:
  double before_s = 0;      //   until the keystore is loaded (global keys replaced)
  double moving_s = 0;      //   moving keys, until the last tenant's transaction
  double destroying_s = 0;  //   destroying the old objects, until ready
};

// Times both kinds of start on a copy of the legacy dir and reads the phases
// of the migrating one from its log; then removes the copy.
Calibration Calibrate(const std::string& dir, const std::string& copy) {
  fs::copy(dir, copy, fs::copy_options::recursive);
  Calibration c;
  c.migrating_s = TimeStart(copy);
  std::ifstream log(copy + ".log");
  double loaded = -1, moved = -1, ready = -1;
  for (std::string line; std::getline(log, line);) {
    const double at = LogSeconds(line);
    if (line.find("] keystore loaded") != std::string::npos) loaded = at;
    if (line.find("] tenant ") != std::string::npos &&
        line.find("moved to hardened KEKs") != std::string::npos) {
      moved = at;
    }
    if (line.find(" ready: token") != std::string::npos) ready = at;
  }
  if (loaded < 0 || moved < 0 || ready < 0) throw std::runtime_error("calibration: bad log");
  if (moved < loaded) moved += 86400;  // past midnight
  if (ready < moved) ready += 86400;
  c.moving_s = moved - loaded;
  c.destroying_s = ready - moved;
  c.before_s = std::max(0.0, c.migrating_s - c.moving_s - c.destroying_s);
  c.plain_s = TimeStart(copy);
  fs::remove_all(copy);
  fs::remove(copy + ".log");
  return c;
}

// Through the socket: every recorded ciphertext decrypts to its plaintext, and
// each tenant's alias/data still encrypts and decrypts.
std::vector<std::string> CheckThroughSocket(const DaemonProcess& daemon,
                                            const std::vector<Sealed>& sealed) {
  std::vector<std::string> problems;
  auto connection = Connection::Dial(daemon.socket_path(), kCallTimeout);
  if (!connection) return {"cannot connect: " + connection.error().ToString()};
  auto decrypt = [&](const std::string& tenant, const Bytes& ciphertext) -> Result<std::string> {
    ASSIGN_OR_RETURN(Reply reply,
                     (*connection)->Call("decrypt", tenant, MapOf("ciphertext", ciphertext)));
    ASSIGN_OR_RETURN(auto plaintext, reply.result().Binary("plaintext"));
    return std::string(plaintext.begin(), plaintext.end());
  };
  std::set<std::string> tenants;
  for (const Sealed& s : sealed) {
    tenants.insert(s.tenant);
    auto plaintext = decrypt(s.tenant, s.ciphertext);
    if (!plaintext || *plaintext != s.plaintext) {
      problems.push_back(s.Name() + ": kmsd does not decrypt its recorded ciphertext: " +
                         (plaintext ? "wrong plaintext" : plaintext.error().ToString()));
    }
  }
  for (const std::string& tenant : tenants) {
    const std::string text = "after the migration";
    auto reply =
        (*connection)
            ->Call("encrypt", tenant,
                   MapOf("key", "alias/data", "plaintext", Bytes(text.begin(), text.end())));
    auto ciphertext = reply ? reply->result().Binary("ciphertext") : Error(reply.error());
    auto plaintext = ciphertext ? decrypt(tenant, Bytes(ciphertext->begin(), ciphertext->end()))
                                : Error(ciphertext.error());
    if (!plaintext || *plaintext != text) {
      problems.push_back(tenant + ": alias/data does not round-trip: " +
                         (plaintext ? "wrong plaintext" : plaintext.error().ToString()));
    }
  }
  return problems;
}

void Usage() {
  std::fprintf(stderr,
               "usage: kmsd_migration_crash_test [--kills N] [--seed S] [--tenants N] "
               "[--versions V]\n");
}

bool ParseArgs(int argc, char** argv, Options* options) {
  std::random_device device;
  options->seed = (static_cast<uint64_t>(device()) << 32 | device()) % 1000000000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string arg = argv[i], value = argv[i + 1];
    char* end = nullptr;
    errno = 0;
    const unsigned long long n = std::strtoull(value.c_str(), &end, 10);
    if (value.empty() || *end != '\0' || errno != 0 || value[0] == '-') return false;
    if (arg == "--seed") {
      options->seed = n;
    } else if (arg == "--kills" && n >= 1 && n <= 10000) {
      options->kills = static_cast<int>(n);
    } else if (arg == "--tenants" && n >= 1 && n <= 1000) {
      options->tenants = static_cast<int>(n);
    } else if (arg == "--versions" && n >= 1 && n <= 100) {
      options->versions = static_cast<int>(n);
    } else {
      return false;
    }
  }
  return argc % 2 == 1;
}

// One run of the test: the legacy dir, the kills, the last start and checks.
// Each step returns the problems it found; the first that finds any ends it.
class MigrationCrashTest {
 public:
  explicit MigrationCrashTest(Options options) : options_(options) {}

  int Run() {
    std::vector<std::string> problems;
    try {
      problems = MakeLegacyDir();
      if (problems.empty()) problems = KillDuringMigration();
      if (problems.empty()) problems = FinishAndCheck();
    } catch (const std::exception& e) {
      problems.push_back(e.what());  // reported, with the files kept, like the rest
    }
    if (problems.empty()) return 0;
    for (const std::string& problem : problems) {
      std::fprintf(stderr, "FAILURE: %s\n", problem.c_str());
    }
    std::fprintf(stderr, "end of kmsd's log:\n%s\n", LogTail(log_).c_str());
    std::fprintf(stderr, "migration crash test FAILED %s (seed %llu)\n", step_.c_str(),
                 static_cast<unsigned long long>(options_.seed));
    KeepForPostMortem(temp_.path(), "kmsd-migration-crash", options_.seed);
    return 1;
  }

 private:
  std::vector<std::string> MakeLegacyDir() {
    step_ = "at set-up";
    const CommandResult made = RunCommand({KMSD_LEGACY_KEYSTORE, dir_, temp_ / "sealed",
                                           "--tenants", std::to_string(options_.tenants),
                                           "--versions", std::to_string(options_.versions)});
    if (made.exit_code != 0) return {"kmsd_legacy_keystore: " + made.err};
    setenv("SOFTHSM2_CONF", (dir_ + "/softhsm2.conf").c_str(), 1);  // for the PIN holder
    sealed_ = ReadSealed(temp_ / "sealed");
    at_ = Inspect(dir_, sealed_, /*finished=*/false);
    if (at_.keys_to_move != at_.keys) at_.problems.push_back("the legacy dir has hardened KEKs");
    initial_unhardened_ = at_.unhardened;
    std::printf(
        "legacy dir: %d tenants, %zu keys, %zu ciphertexts, %zu unhardened token keys (%.1f s)\n",
        options_.tenants, at_.keys, sealed_.size(), at_.unhardened,
        Seconds(SteadyClock::now() - started_));
    if (!at_.problems.empty()) return at_.problems;

    step_ = "in the calibration";
    calibration_ = Calibrate(dir_, temp_ / "calibration");
    std::printf(
        "calibration: a start that migrates takes %.2f s (%.2f s to load, %.2f s moving keys, "
        "%.2f s destroying old objects), one that does not %.2f s\n",
        calibration_.migrating_s, calibration_.before_s, calibration_.moving_s,
        calibration_.destroying_s, calibration_.plain_s);
    std::fflush(stdout);
    return {};
  }

  // Where the state at rest is on the calibrated timeline: the keys moved and
  // the old objects destroyed so far, each at its phase's pace.
  double Position() const {
    const double moved = static_cast<double>(at_.keys - at_.keys_to_move) / at_.keys;
    const double destroyed = static_cast<double>(initial_unhardened_ - at_.unhardened) /
                             static_cast<double>(initial_unhardened_);
    return calibration_.before_s + moved * calibration_.moving_s +
           destroyed * calibration_.destroying_s;
  }

  // Half the kills (the even ones) aim at moments drawn uniformly over the
  // calibrated timeline, taken in order. The first run is killed at the
  // first; a later one gets a plain start's time to come back to where the
  // last one stopped, then the rest of the way to its moment. A moment already
  // passed (a run got further than aimed) becomes a kill at random within the
  // start-up instead.
  std::string SleepUntilMoment(double moment) {
    const double position = kills_ == 0 ? 0 : Position();
    double delay = moment;
    if (kills_ > 0) {
      delay = moment > position
                  ? calibration_.plain_s + moment - position
                  : std::uniform_real_distribution<double>(0, calibration_.plain_s)(rng_);
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(delay));
    char out[128];
    std::snprintf(out, sizeof out, "aimed at %.0f ms of the migration from %.0f, %.0f ms in",
                  moment * 1000, position * 1000, delay * 1000);
    return out;
  }

  // The other half aim at the short steps around each transaction and each
  // destruction, which uniform moments seldom hit: up to kEventJitter after
  // this run's 1st to 3rd "tenant moved" (while keys are left to move) or
  // "token object destroyed" line (or once kmsd is ready, or at the end of a
  // migrating start's time, if none comes).
  std::string SleepUntilEvent(DaemonProcess& daemon, std::streamoff from) {
    const bool coin = std::bernoulli_distribution(0.5)(rng_);  // drawn always: same stream
    const bool moves = coin && at_.keys_to_move > 0;
    const size_t count = std::uniform_int_distribution<size_t>(1, 3)(rng_);
    const double jitter = std::uniform_real_distribution<double>(0, kEventJitter)(rng_);
    const auto started = SteadyClock::now();
    const auto deadline = started + std::chrono::duration<double>(calibration_.migrating_s);
    while (SteadyClock::now() < deadline && !Exited(daemon.pid())) {
      const RunLog run = ReadRunLog(log_, from);
      if ((moves ? run.tenants_moved : run.destroyed) >= count || run.ready) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(jitter));
    char out[128];
    std::snprintf(out, sizeof out, "%.1f ms after %s %zu, %.0f ms in", jitter * 1000,
                  moves ? "tenant moved" : "object destroyed", count,
                  Seconds(SteadyClock::now() - started) * 1000);
    return out;
  }

  std::vector<std::string> KillDuringMigration() {
    std::uniform_real_distribution<double> timeline(0, calibration_.migrating_s);
    std::vector<double> moments((options_.kills + 1) / 2);
    for (double& moment : moments) moment = timeline(rng_);
    std::sort(moments.begin(), moments.end());
    for (; kills_ < options_.kills && at_.work() > 0; ++kills_) {
      step_ = "in kill " + std::to_string(kills_ + 1);
      const std::streamoff from = FileSize(log_);
      auto daemon = DaemonProcess::StartDev(
          dir_, {.binary = "", .wait_until_ready = false, .extra_args = {}});
      const std::string aim =
          kills_ % 2 == 0 ? SleepUntilMoment(moments[kills_ / 2]) : SleepUntilEvent(*daemon, from);
      if (int status = 0; daemon->Exited(&status)) {
        return {"kmsd exited on its own with " + std::to_string(status)};
      }
      daemon->Kill();
      const RunLog run = ReadRunLog(log_, from);
      late_kills_ += run.ready;
      at_ = Inspect(dir_, sealed_, /*finished=*/false);
      std::printf(
          "kill %d (%s): %zu tenants moved, %zu leftovers and %zu queued objects destroyed%s; "
          "left: %zu keys to move, %zu unhardened objects, %zu queued; %zu of %zu ciphertexts "
          "decrypt offline\n",
          kills_ + 1, aim.c_str(), run.tenants_moved, run.leftovers, run.destroyed,
          run.ready ? " (kmsd was ready)" : "", at_.keys_to_move, at_.unhardened, at_.queued,
          at_.decrypted, sealed_.size());
      std::fflush(stdout);
      if (!at_.problems.empty()) return at_.problems;
    }
    return {};
  }

  std::vector<std::string> FinishAndCheck() {
    step_ = "at the last start";
    std::unique_ptr<DaemonProcess> daemon;
    try {
      daemon = DaemonProcess::StartDev(dir_);
    } catch (const std::exception& e) {
      return {e.what()};
    }
    std::vector<std::string> problems = CheckThroughSocket(*daemon, sealed_);
    if (const int status = daemon->Stop(); status != 0) {
      problems.push_back("kmsd exited with " + std::to_string(status) + " on SIGTERM");
    }
    if (!problems.empty()) return problems;
    step_ = "at the end";
    at_ = Inspect(dir_, sealed_, /*finished=*/true);
    if (!at_.problems.empty()) return at_.problems;
    std::printf(
        "migration crash test: %d kills (%d after kmsd was ready), then %zu ciphertexts decrypt "
        "through kmsd and offline, %zu keys on hardened KEKs, nothing left behind; %.1f s (seed "
        "%llu)\n",
        kills_, late_kills_, sealed_.size(), at_.keys, Seconds(SteadyClock::now() - started_),
        static_cast<unsigned long long>(options_.seed));
    return {};
  }

  const Options options_;
  const SteadyClock::time_point started_ = SteadyClock::now();
  TempDir temp_;
  const std::string dir_ = temp_ / "kmsd";
  const std::string log_ = temp_ / "kmsd.log";  // DaemonProcess::StartDev's
  std::vector<Sealed> sealed_;
  Calibration calibration_;
  AtRest at_;
  size_t initial_unhardened_ = 0;
  std::mt19937_64 rng_{options_.seed};
  int kills_ = 0;
  int late_kills_ = 0;
  std::string step_;
};

}  // namespace
}  // namespace kmsd::testing

int main(int argc, char** argv) {
  kmsd::testing::Options options;
  if (!kmsd::testing::ParseArgs(argc, argv, &options)) {
    kmsd::testing::Usage();
    return 2;
  }
  std::printf("migration crash test: seed %llu, up to %d kills (rerun with --seed %llu)\n",
              static_cast<unsigned long long>(options.seed), options.kills,
              static_cast<unsigned long long>(options.seed));
  std::fflush(stdout);
  try {
    return kmsd::testing::MigrationCrashTest(options).Run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "FAILURE: %s (seed %llu)\n", e.what(),
                 static_cast<unsigned long long>(options.seed));
    return 1;
  }
}
