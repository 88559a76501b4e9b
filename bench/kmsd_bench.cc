// kmsd_bench: how close kmsd gets to the transport it runs on.
//
// Starts a real kmsd (--dev, private SoftHSM2 token in a temp dir), creates a
// tenant, then measures for 1 and N concurrent clients, each with its own
// REQ socket: encrypt and decrypt of a 256-byte plaintext through kmsd, and a
// bare nng REQ/REP round trip carrying frames of the same sizes to an echo
// server (one nng context per worker thread). Prints ops/s, p50 and p99 per
// case, the kmsd/bare ratio of throughput, and kmsd's CPU time per operation
// (with the part spent in nng's own threads, named "nng:...") and context
// switches per operation (from /proc; 0 for the bare rows). With --baseline-kmsd, a
// second kmsd (an older build, say) runs beside the first in the same alternating rounds, so that
// "before and after" are measured under the same noise; its rows are marked "(base)" and a last
// column gives this kmsd's throughput over the baseline's. The encrypt cases
// also run this build with --audit-discard (entries made, written to
// /dev/null) and print the audit log's cost beside it.
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>
#include <vector>

#include "client/typed_call.h"
#include "protocol/access_types.h"
#include "protocol/policy_types.h"
#include "tests/support/daemon_process.h"
#include "tests/support/temp_dir.h"

namespace kmsd::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Figures {
  double ops_per_second = 0;
  double p50_us = 0;
  double p99_us = 0;
  double server_cpu_us = 0;      // kmsd's CPU time per operation
  double server_nng_cpu_us = 0;  // of which in nng's threads
  double server_switches = 0;    // kmsd's context switches per operation
};

// Runs `clients` threads, each calling its worker in a loop for `seconds`,
// and returns throughput and latency percentiles.
struct Samples {
  std::vector<double> latencies_us;
  double elapsed_seconds = 0;
  double server_cpu_seconds = 0;  // of the kmsd measured, when there is one
  double server_nng_cpu_seconds = 0;
  double server_switches = 0;  // its threads' context switches
};

// User plus system CPU ticks in a /proc stat file's text. Fields after the
// command name (which may hold spaces) start after ')': state is field 3;
// utime and stime are fields 14 and 15.
double StatTicks(const std::string& text) {
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string field;
  double ticks = 0;
  for (int number = 3; number <= 15 && fields >> field; ++number) {
    if (number >= 14) ticks += std::stod(field);
  }
  return ticks;
}

std::string ReadAll(const std::filesystem::path& path) {
  std::ifstream in(path);
  return {(std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()};
}

// What `pid` has used so far: CPU time in all, and in nng's own threads
// (named "nng:..."; the transport's share beside kmsd's threads), and its
// live threads' context switches, voluntary or not.
struct ProcessUsage {
  double cpu_seconds = 0;
  double nng_cpu_seconds = 0;
  double switches = 0;
};

ProcessUsage UsageOf(pid_t pid) {
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  const std::filesystem::path proc = "/proc/" + std::to_string(pid);
  ProcessUsage usage;
  usage.cpu_seconds = StatTicks(ReadAll(proc / "stat")) / tick;
  std::error_code error;
  for (const auto& task : std::filesystem::directory_iterator(proc / "task", error)) {
    const std::string stat = ReadAll(task.path() / "stat");
    if (stat.find("(nng:") != std::string::npos) usage.nng_cpu_seconds += StatTicks(stat) / tick;
    std::ifstream status(task.path() / "status");
    for (std::string line; std::getline(status, line);) {
      if (line.find("ctxt_switches:") != std::string::npos) {
        usage.switches += std::stod(line.substr(line.find(':') + 1));
      }
    }
  }
  return usage;
}

// This build's kmsds but the one measured are stopped (SIGSTOP) for a round:
// an idle kmsd still runs threads now and then (its watchdog's probe, nng's),
// and that time would fall on whichever side is measured meanwhile. A
// baseline keeps running: an older kmsd may read a pause as a listener that
// stopped accepting and close its connections (so its idle time counts
// against this build, never for it).
class OthersPaused {
 public:
  OthersPaused(const std::vector<pid_t>& kmsds, pid_t measured) {
    for (pid_t pid : kmsds) {
      if (pid != measured && kill(pid, SIGSTOP) == 0) paused_.push_back(pid);
    }
  }
  ~OthersPaused() {
    for (pid_t pid : paused_) kill(pid, SIGCONT);
  }
  OthersPaused(const OthersPaused&) = delete;
  OthersPaused& operator=(const OthersPaused&) = delete;

 private:
  std::vector<pid_t> paused_;
};

// A side's calls before it is measured, once its kmsd has been resumed.
constexpr double kWarmUpSeconds = 0.1;

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
  f.server_cpu_us = samples.server_cpu_seconds * 1e6 / static_cast<double>(all.size());
  f.server_nng_cpu_us = samples.server_nng_cpu_seconds * 1e6 / static_cast<double>(all.size());
  f.server_switches = samples.server_switches / static_cast<double>(all.size());
  return f;
}

// The bare reference: an echo server on nng's REP socket (`workers` threads,
// one nng context each, as kmsd's server was until it spoke SP itself),
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

const EncryptionContext kContext = {{"app", "bench"}};

// One kmsd under test, with a tenant "bench", and what a client sends it.
struct Target {
  std::unique_ptr<testing::DaemonProcess> daemon;
  // An API key of a principal of "bench" with role user; empty for a kmsd
  // without principals (a baseline from before them).
  std::string api_key;
  Bytes ciphertext;  // of the plaintext, under alias/data
  size_t encrypt_request = 0, encrypt_reply = 0;
  size_t decrypt_request = 0, decrypt_reply = 0;
};

// One call of `Op` made to measure its frames: the request's and the
// reply's sizes on the wire, and the reply. An error names `name` and the op.
template <typename Op>
Result<typename Op::Reply> Probe(Connection& connection, const std::string& name,
                                 const typename Op::Request& request, size_t& request_bytes,
                                 size_t& reply_bytes) {
  // Value is move-only: the request is encoded once to measure and once to send.
  request_bytes =
      EncodeValue(BuildRequest(1, Op::Name(), "bench", Encode(typename Op::Request(request))))
          .size();
  auto reply = connection.Call(Op::Name(), "bench", Encode(typename Op::Request(request)));
  if (!reply) {
    return Error(reply.error().code(), name + " does not serve " + std::string(Op::Name()) + ": " +
                                           reply.error().message());
  }
  reply_bytes = reply->raw().size();
  auto decoded = Decode<typename Op::Reply>(reply->result(), Strictness::kLenient);
  if (!decoded) return Error(MalformedReply(decoded.error()));
  return decoded;
}

// Starts `binary` (empty: this build's kmsd) in DIR/NAME and measures its
// frames. nullopt, with the reason on stderr, if any step fails.
std::optional<Target> StartTarget(const testing::TempDir& dir, const std::string& name,
                                  const std::string& binary, const Bytes& plaintext,
                                  std::vector<std::string> extra_args = {}) {
  testing::SpawnOptions spawn;
  spawn.binary = binary;
  spawn.extra_args = std::move(extra_args);
  Target target;
  target.daemon = testing::DaemonProcess::StartDev(dir / name, spawn);
  auto connection = target.daemon->Connect();
  auto run = [&]() -> Status {
    RETURN_IF_ERROR(CallOp<ops::TenantCreate>(*connection, "bench", {}));
    ASSIGN_OR_RETURN(
        ops::EncryptReply encrypted,
        Probe<ops::Encrypt>(*connection, name,
                            {.key = "alias/data", .plaintext = plaintext, .context = kContext},
                            target.encrypt_request, target.encrypt_reply));
    target.ciphertext = std::move(encrypted.ciphertext);
    return StatusOf(Probe<ops::Decrypt>(
        *connection, name, {.ciphertext = target.ciphertext, .context = kContext, .key = {}},
        target.decrypt_request, target.decrypt_reply));
  };
  auto make_api_key = [&]() -> Status {
    RETURN_IF_ERROR(StatusOf(CallOp<ops::PrincipalCreate>(
        *connection, "bench", {.name = "app", .roles = {"user"}, .uids = {}, .gids = {}})));
    ASSIGN_OR_RETURN(ops::ApiKeyCreateReply key,
                     CallOp<ops::ApiKeyCreate>(*connection, "bench",
                                               {.principal = "app", .expires_in_seconds = {}}));
    const auto secret = key.secret.RevealSpan();
    target.api_key.assign(secret.begin(), secret.end());
    return OkStatus();
  };
  if (Status status = run(); !status.ok()) {
    std::fprintf(stderr, "kmsd_bench: %s\n", status.ToString().c_str());
    return std::nullopt;
  }
  if (Status status = make_api_key(); !status.ok() && status.code() != Code::kUnknownOperation) {
    std::fprintf(stderr, "kmsd_bench: %s: no API key: %s\n", name.c_str(),
                 status.ToString().c_str());
    return std::nullopt;
  }
  return target;
}

// Says why an operation failed (the round then stops the run).
template <typename Reply>
bool Succeeded(const Result<Reply>& reply) {
  if (!reply.has_value()) {
    std::fprintf(stderr, "kmsd_bench: %s\n", reply.error().ToString().c_str());
  }
  return reply.has_value();
}

// A client of `target` on its own connection, encrypting or decrypting, as
// an admin or (`with_api_key`) as the target's principal.
std::function<bool()> KmsdClient(const Target& target, bool encrypt, const Bytes& plaintext,
                                 bool with_api_key) {
  std::shared_ptr<Connection> connection =
      with_api_key ? std::move(*Connection::Dial(
                         target.daemon->socket_path(), std::chrono::milliseconds(30000),
                         kDefaultMaxRequestBytes, SecretBuffer::CopyOf(target.api_key)))
                   : target.daemon->Connect();
  return [connection, encrypt, &target, &plaintext]() {
    if (encrypt) {
      return Succeeded(
          CallOp<ops::Encrypt>(*connection, "bench",
                               {.key = "alias/data", .plaintext = plaintext, .context = kContext}));
    }
    return Succeeded(CallOp<ops::Decrypt>(
        *connection, "bench", {.ciphertext = target.ciphertext, .context = kContext, .key = {}}));
  };
}

// The fairness case: tenant B ("steady") calls at a steady pace, under its
// policy's limit, alone and then while tenant A ("flood") floods far past
// its own from `flooders` connections. Each tenant has a principal with an
// API key and a policy; A's refused requests are THROTTLED at intake.
struct FloodTenants {
  std::string flood_key, steady_key;
};

std::optional<FloodTenants> SetUpFlood(Connection& admin) {
  FloodTenants out;
  auto make = [&](const std::string& tenant, const std::string& policy,
                  std::string& secret) -> Status {
    RETURN_IF_ERROR(CallOp<ops::TenantCreate>(admin, tenant, {}));
    RETURN_IF_ERROR(CallOp<ops::TenantPutPolicy>(admin, tenant, {.document = policy}));
    RETURN_IF_ERROR(StatusOf(CallOp<ops::PrincipalCreate>(
        admin, tenant, {.name = "app", .roles = {"user"}, .uids = {}, .gids = {}})));
    ASSIGN_OR_RETURN(
        ops::ApiKeyCreateReply key,
        CallOp<ops::ApiKeyCreate>(admin, tenant, {.principal = "app", .expires_in_seconds = {}}));
    const auto bytes = key.secret.RevealSpan();
    secret.assign(bytes.begin(), bytes.end());
    return OkStatus();
  };
  Status status = make("flood",
                       "security_policies:\n  rate_limiting:\n    requests_per_minute: 6000\n"
                       "    burst_size: 100\n",
                       out.flood_key);
  if (status.ok()) {
    status = make("steady",
                  "security_policies:\n  rate_limiting:\n    requests_per_minute: 60000\n"
                  "    burst_size: 1000\n",
                  out.steady_key);
  }
  if (!status.ok()) {
    std::fprintf(stderr, "kmsd_bench: flood case: %s\n", status.ToString().c_str());
    return std::nullopt;
  }
  return out;
}

std::unique_ptr<Connection> DialWithKey(const Target& target, const std::string& key) {
  return std::move(*Connection::Dial(target.daemon->socket_path(), std::chrono::milliseconds(30000),
                                     kDefaultMaxRequestBytes, SecretBuffer::CopyOf(key)));
}

// B's latencies over `seconds`, one encrypt every `interval`; with
// `flooders` > 0, A's connections flood for the same time. Counts A's
// admitted and throttled requests.
void SteadyRound(const Target& target, const FloodTenants& tenants, Connection& steady,
                 size_t flooders, double seconds, const Bytes& plaintext, Samples& out,
                 uint64_t& flood_admitted, uint64_t& flood_throttled) {
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> admitted{0}, throttled{0};
  std::vector<std::thread> threads;
  for (size_t i = 0; i < flooders; ++i) {
    threads.emplace_back([&] {
      auto connection = DialWithKey(target, tenants.flood_key);
      while (!stop.load()) {
        auto reply = CallOp<ops::Encrypt>(
            *connection, "flood", {.key = "alias/data", .plaintext = plaintext, .context = {}});
        ++(reply ? admitted : throttled);
      }
    });
  }
  const auto interval = std::chrono::microseconds(2000);
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration<double>(seconds);
  for (auto next = start; next < end; next += interval) {
    std::this_thread::sleep_until(next);
    const auto before = Clock::now();
    auto reply = CallOp<ops::Encrypt>(steady, "steady",
                                      {.key = "alias/data", .plaintext = plaintext, .context = {}});
    if (!Succeeded(reply)) std::exit(1);  // B is never refused
    out.latencies_us.push_back(
        std::chrono::duration<double, std::micro>(Clock::now() - before).count());
  }
  out.elapsed_seconds += std::chrono::duration<double>(Clock::now() - start).count();
  stop = true;
  for (auto& thread : threads) thread.join();
  flood_admitted += admitted.load();
  flood_throttled += throttled.load();
}

struct Options {
  double seconds = 3;
  size_t plaintext_size = 256;
  size_t max_clients = 8;
  int rounds = 6;
  std::string kmsd;           // empty: this build's
  std::string baseline_kmsd;  // empty: none
  bool many_only = false;     // skip the 1-client cases and the fairness case
  bool one_only = false;      // skip the --clients cases and the fairness case
};

void PrintRow(const std::string& name, size_t clients, const Figures& f, const Figures& bare,
              const Figures* over = nullptr) {
  std::printf("%-15s %7zu %12.0f %9.1f %9.1f %13.2f %11.1f %7.1f %10.1f", name.c_str(), clients,
              f.ops_per_second, f.p50_us, f.p99_us, f.ops_per_second / bare.ops_per_second,
              f.server_cpu_us, f.server_nng_cpu_us, f.server_switches);
  if (over != nullptr) std::printf(" %17.3f", f.ops_per_second / over->ops_per_second);
  std::printf("\n");
}

// One measured side of a case: a kmsd (or the echo server) and its clients.
struct Side {
  std::string name;
  pid_t pid = 0;  // 0: not a kmsd
  std::vector<std::function<bool()>> workers;
  Samples samples;
};

// The kmsd sides of a case: this build's, the baseline's, this build's
// again with its clients calling as an API key's principal, and (encrypt
// only) this build's with its audit entries written to /dev/null.
std::vector<Side> KmsdSides(const std::vector<Target>& targets, const Target* audit_off,
                            size_t clients, bool encrypt, const Bytes& plaintext) {
  const std::string op = encrypt ? "encrypt" : "decrypt";
  std::vector<Side> sides;
  auto add = [&](const std::string& name, const Target& target, bool with_api_key) {
    Side side{.name = name, .pid = target.daemon->pid(), .workers = {}, .samples = {}};
    for (size_t i = 0; i < clients; ++i) {
      side.workers.push_back(KmsdClient(target, encrypt, plaintext, with_api_key));
    }
    sides.push_back(std::move(side));
  };
  add(op, targets[0], false);
  if (targets.size() > 1) add(op + "(base)", targets[1], false);
  if (!targets[0].api_key.empty()) add(op + "(apikey)", targets[0], true);
  if (encrypt && audit_off != nullptr) add(op + "(no audit)", *audit_off, false);
  return sides;
}

// One case: `clients` clients doing one operation on every side, beside the
// bare round trip, in alternating short rounds so that noise from the rest
// of the machine falls on every side alike.
void RunCase(const Options& options, const testing::TempDir& dir,
             const std::vector<Target>& targets, const Target* audit_off, size_t clients,
             bool encrypt, const Bytes& plaintext) {
  const Target& first = targets.front();
  const size_t request = encrypt ? first.encrypt_request : first.decrypt_request;
  const size_t reply = encrypt ? first.encrypt_reply : first.decrypt_reply;
  const std::string url = "ipc://" + (dir / ("bare-" + std::to_string(clients) + ".sock"));
  EchoServer echo(url, 8, reply);
  Side bare_side{.name = "bare", .pid = 0, .workers = {}, .samples = {}};
  for (size_t i = 0; i < clients; ++i) bare_side.workers.push_back(BareClient(url, request));
  std::vector<Side> sides = KmsdSides(targets, audit_off, clients, encrypt, plaintext);
  std::vector<pid_t> kmsds = {first.daemon->pid()};
  if (audit_off != nullptr) kmsds.push_back(audit_off->daemon->pid());
  for (int round = 0; round < options.rounds; ++round) {
    const double slice = options.seconds / options.rounds;
    {
      OthersPaused paused(kmsds, 0);
      RunRound(bare_side.workers, slice, bare_side.samples);
    }
    for (Side& side : sides) {
      OthersPaused paused(kmsds, side.pid);
      // Unmeasured: a kmsd just resumed runs what it overslept (its
      // watchdog's probe) first.
      Samples warm_up;
      RunRound(side.workers, kWarmUpSeconds, warm_up);
      const ProcessUsage before = UsageOf(side.pid);
      RunRound(side.workers, slice, side.samples);
      const ProcessUsage after = UsageOf(side.pid);
      side.samples.server_cpu_seconds += after.cpu_seconds - before.cpu_seconds;
      side.samples.server_nng_cpu_seconds += after.nng_cpu_seconds - before.nng_cpu_seconds;
      side.samples.server_switches += after.switches - before.switches;
    }
  }
  const Figures bare = Summarize(bare_side.samples);
  PrintRow(std::string("bare(") + (encrypt ? "enc" : "dec") + ")", clients, bare, bare);
  const bool with_base = targets.size() > 1;
  std::vector<Figures> figures;
  for (Side& side : sides) figures.push_back(Summarize(side.samples));
  for (size_t i = 0; i < sides.size(); ++i) {
    // This build's row is compared with the baseline's (sides[1]).
    const Figures* over = with_base && i == 0 ? &figures[1] : nullptr;
    PrintRow(sides[i].name, clients, figures[i], bare, over);
  }
  if (encrypt && audit_off != nullptr) {
    // The audit log's cost: the same kmsd, its entries to disk or to /dev/null.
    const Figures& audited = figures.front();
    const Figures& discarded = figures.back();
    std::printf(
        "audit cost, %zu client%s: %.1f%% of throughput (%.0f vs %.0f ops/s), %+.1f us per "
        "request at p50, %+.1f us of kmsd cpu\n",
        clients, clients == 1 ? "" : "s",
        100.0 * (1.0 - audited.ops_per_second / discarded.ops_per_second), audited.ops_per_second,
        discarded.ops_per_second, audited.p50_us - discarded.p50_us,
        audited.server_cpu_us - discarded.server_cpu_us);
  }
}

void RunFloodCase(const Options& options, const Target& target, const Bytes& plaintext) {
  auto admin = target.daemon->Connect();
  std::optional<FloodTenants> tenants = SetUpFlood(*admin);
  if (!tenants) std::exit(1);
  auto steady = DialWithKey(target, tenants->steady_key);
  Samples alone, flooded;
  uint64_t unused_admitted = 0, unused_throttled = 0, admitted = 0, throttled = 0;
  const double slice = options.seconds / options.rounds;
  for (int round = 0; round < options.rounds; ++round) {
    SteadyRound(target, *tenants, *steady, 0, slice, plaintext, alone, unused_admitted,
                unused_throttled);
    SteadyRound(target, *tenants, *steady, options.max_clients, slice, plaintext, flooded, admitted,
                throttled);
  }
  const Figures quiet = Summarize(alone), loud = Summarize(flooded);
  std::printf(
      "\nfairness: tenant B encrypts every 2 ms (limit 1000/s); tenant A floods from %zu "
      "connections (limit 100/s, burst 100)\n",
      options.max_clients);
  std::printf("%-24s %9s %9s %9s\n", "case", "B p50 us", "B p99 us", "B calls");
  std::printf("%-24s %9.1f %9.1f %9zu\n", "B alone", quiet.p50_us, quiet.p99_us,
              alone.latencies_us.size());
  std::printf("%-24s %9.1f %9.1f %9zu\n", "B during A's flood", loud.p50_us, loud.p99_us,
              flooded.latencies_us.size());
  std::printf(
      "B p99 flooded / alone: %.2f (goal: at most 2); A: %.0f admitted/s, %.0f "
      "throttled/s\n",
      loud.p99_us / quiet.p99_us, admitted / flooded.elapsed_seconds,
      throttled / flooded.elapsed_seconds);
}

int Main(int argc, char** argv) {
  CLI::App app{"kmsd_bench: kmsd encrypt/decrypt beside a bare nng REQ/REP round trip"};
  Options options;
  app.add_option("--seconds", options.seconds, "duration of each case")->check(CLI::PositiveNumber);
  app.add_option("--size", options.plaintext_size, "plaintext bytes")->check(CLI::Range(1, 65536));
  app.add_option("--clients", options.max_clients, "concurrent clients of the second round")
      ->check(CLI::Range(2, 64));
  app.add_option("--rounds", options.rounds, "alternating rounds per case")
      ->check(CLI::Range(1, 100));
  app.add_option("--kmsd", options.kmsd, "kmsd binary to measure (default: this build's)")
      ->check(CLI::ExistingFile);
  app.add_option("--baseline-kmsd", options.baseline_kmsd,
                 "a second kmsd binary measured beside the first (before and after)")
      ->check(CLI::ExistingFile);
  app.add_flag("--many-only", options.many_only,
               "only the cases with --clients clients (no 1-client or fairness case)");
  app.add_flag("--one-only", options.one_only,
               "only the 1-client cases (no --clients or fairness case)")
      ->excludes("--many-only");
  CLI11_PARSE(app, argc, argv);

  testing::TempDir dir;
  const Bytes plaintext(options.plaintext_size, 0x42);
  std::vector<Target> targets;
  for (const std::string& binary : {options.kmsd, options.baseline_kmsd}) {
    if (!targets.empty() && binary.empty()) break;
    auto target = StartTarget(dir, "kmsd" + std::to_string(targets.size()), binary, plaintext);
    if (!target) return 1;
    targets.push_back(std::move(*target));
  }
  // This build again, its audit entries made but written to /dev/null.
  std::optional<Target> audit_off =
      StartTarget(dir, "kmsd-no-audit", options.kmsd, plaintext, {"--audit-discard"});
  if (!audit_off) return 1;
  std::printf(
      "kmsd_bench: %zu-byte plaintext, %.1f s per side per case in %d alternating rounds, "
      "SoftHSM2 token, %u cores\n",
      options.plaintext_size, options.seconds, options.rounds, std::thread::hardware_concurrency());
  std::printf("%-15s %7s %12s %9s %9s %13s %11s %7s %10s%s\n", "case", "clients", "ops/s", "p50 us",
              "p99 us", "ratio to bare", "kmsd cpu us", "in nng", "switches",
              targets.size() > 1 ? "  ratio to (base)" : "");
  for (size_t clients : {size_t{1}, options.max_clients}) {
    if (options.many_only && clients == 1) continue;
    if (options.one_only && clients != 1) continue;
    for (bool encrypt : {true, false}) {
      RunCase(options, dir, targets, &*audit_off, clients, encrypt, plaintext);
    }
  }
  if (!options.many_only && !options.one_only && !targets[0].api_key.empty()) {
    OthersPaused paused({audit_off->daemon->pid()}, targets[0].daemon->pid());
    RunFloodCase(options, targets[0], plaintext);
  }
  for (Target& target : targets) target.daemon->Stop();
  audit_off->daemon->Stop();
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
