// The client library's envelope encryption against a real kmsd: the kmsd
// keyring (tenant isolation, context binding, rotation), the data-key cache
// (one kmsd call for a burst of threads), and kmsctl envelope with an
// escrow copy that the JavaScript SDK decrypts without kmsd.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

#include "client/esdk/cache.h"
#include "client/esdk/kmsd_keyring.h"
#include "client/esdk/message.h"
#include "client/esdk/multi_keyring.h"
#include "client/esdk/raw_aes_keyring.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/support/esdk_js.h"
#include "tests/support/files.h"

namespace kmsd::testing {
namespace {

namespace fs = std::filesystem;
using esdk::Bytes;

Bytes EnvelopePattern(size_t size) {
  Bytes out(size);
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<uint8_t>(i * 7 + 3);
  return out;
}

class EnvelopeTest : public KmsdTest {
 protected:
  void SetUp() override {
    KmsdTest::SetUp();
    MustCall("tenant.create", "acme");
    MustCall("tenant.create", "globex");
  }

  Result<Bytes> Seal(const std::string& tenant, const Bytes& plaintext,
                     EncryptionContext context = {{"purpose", "orders"}}) {
    esdk::KmsdKeyring keyring(*connection_, tenant, "alias/data");
    esdk::KeyringMaterials materials(keyring);
    return esdk::EncryptMessage(materials,
                                {.suite_id = esdk::kCommittingSuite,
                                 .frame_length = 4096,
                                 .context = std::move(context),
                                 .plaintext_bytes = std::nullopt},
                                plaintext);
  }
  Result<Bytes> Open(const std::string& tenant, const Bytes& message,
                     esdk::DecryptOptions options = {}, esdk::Header* header = nullptr) {
    esdk::KmsdKeyring keyring(*connection_, tenant, "alias/data");
    esdk::KeyringMaterials materials(keyring);
    return esdk::DecryptMessage(materials, options, message, header);
  }
  // The requests of `op` in kmsd's audit log.
  int AuditedRequests(std::string_view op) {
    int count = 0;
    for (const auto& file : fs::directory_iterator(fs::path(dir_ / "kmsd") / "audit")) {
      std::ifstream in(file.path());
      for (std::string line; std::getline(in, line);) {
        if (line.find("\"op\":\"" + std::string(op) + "\"") != std::string::npos) ++count;
      }
    }
    return count;
  }
};

TEST_F(EnvelopeTest, TheKmsdKeyringRoundTripsAndNamesTenantAndKey) {
  for (size_t size : {0, 1, 4096, 3 << 20}) {
    auto message = Seal("acme", EnvelopePattern(size));
    ASSERT_TRUE(message.has_value()) << message.error();
    esdk::Header header;
    auto plaintext = Open("acme", *message, {}, &header);
    ASSERT_TRUE(plaintext.has_value()) << plaintext.error();
    EXPECT_EQ(*plaintext, EnvelopePattern(size));
    ASSERT_EQ(header.edks.size(), 1u);
    EXPECT_EQ(header.edks[0].provider_id, "kmsd");
    const std::string info(header.edks[0].provider_info.begin(),
                           header.edks[0].provider_info.end());
    EXPECT_TRUE(info.starts_with("acme/")) << info;
    EXPECT_EQ(info.size(), 5u + 32u) << info;  // acme/ and the key id in hex
  }
}

// As a child of a multi-keyring (the data key made elsewhere), the kmsd
// keyring has kmsd encrypt the data key; either keyring alone decrypts.
TEST_F(EnvelopeTest, TheKmsdKeyringAsAChildEncryptsAnotherKeyringsDataKey) {
  std::vector<std::unique_ptr<esdk::Keyring>> children;
  children.push_back(std::make_unique<esdk::KmsdKeyring>(*connection_, "acme", "alias/data"));
  esdk::MultiKeyring multi(
      std::move(*esdk::RawAesKeyring::Create("local", "k", SecretBuffer::CopyOf(Bytes(32, 9)))),
      std::move(children));
  esdk::KeyringMaterials materials(multi);
  const int encrypts_before = AuditedRequests("encrypt");
  auto message = esdk::EncryptMessage(materials, {}, EnvelopePattern(1000));
  ASSERT_TRUE(message.has_value()) << message.error();
  EXPECT_EQ(*Open("acme", *message), EnvelopePattern(1000));
  EXPECT_TRUE(Eventually([&] { return AuditedRequests("encrypt") == encrypts_before + 1; }));
}

TEST_F(EnvelopeTest, AnotherTenantCannotDecrypt) {
  auto message = Seal("acme", EnvelopePattern(100));
  ASSERT_TRUE(message.has_value());
  auto stolen = Open("globex", *message);
  ASSERT_FALSE(stolen.has_value());
  EXPECT_EQ(stolen.error().code(), Code::kInvalidCiphertext);
  // An EDK relabelled for globex reaches kmsd, which refuses acme's ciphertext.
  esdk::Header header;
  ASSERT_TRUE(Open("acme", *message, {}, &header).has_value());
  esdk::Header forged = header;
  const std::string info(forged.edks[0].provider_info.begin(), forged.edks[0].provider_info.end());
  const std::string relabelled = "globex/" + info.substr(5);
  forged.edks[0].provider_info.assign(relabelled.begin(), relabelled.end());
  Bytes tampered = *esdk::SerializeHeaderBody(forged);
  esdk::PutBytes(tampered, forged.tag);
  tampered.insert(tampered.end(),
                  message->begin() + static_cast<std::ptrdiff_t>(header.body.size() + 16),
                  message->end());
  auto relabelled_result = Open("globex", tampered);
  ASSERT_FALSE(relabelled_result.has_value());
  EXPECT_EQ(relabelled_result.error().code(), Code::kInvalidCiphertext);
  EXPECT_NE(relabelled_result.error().message().find("kmsd:globex"), std::string::npos)
      << relabelled_result.error();
}

TEST_F(EnvelopeTest, TheContextIsBoundByKmsdAndChecked) {
  auto message = Seal("acme", EnvelopePattern(100), {{"purpose", "orders"}, {"region", "eu"}});
  ASSERT_TRUE(message.has_value());
  esdk::DecryptOptions options;
  options.required_context = {{"purpose", "orders"}};
  EXPECT_TRUE(Open("acme", *message, options).has_value());
  options.required_context = {{"purpose", "payroll"}};
  EXPECT_EQ(CodeOf(Open("acme", *message, options)), Code::kInvalidCiphertext);
  // The EDK under another context: kmsd refuses to decrypt it.
  esdk::Header header;
  ASSERT_TRUE(Open("acme", *message, {}, &header).has_value());
  esdk::KmsdKeyring keyring(*connection_, "acme", "alias/data");
  esdk::DecryptionMaterials materials{
      .suite = header.suite, .context = {{"purpose", "payroll"}, {"region", "eu"}}, .data_key = {}};
  const Status refused = keyring.OnDecrypt(materials, header.edks);
  EXPECT_EQ(refused.code(), Code::kInvalidCiphertext) << refused;
  EXPECT_TRUE(materials.data_key.empty());
}

TEST_F(EnvelopeTest, MessagesSurviveARotationBetweenEncryptAndDecrypt) {
  auto before = Seal("acme", EnvelopePattern(5000));
  ASSERT_TRUE(before.has_value());
  Value::Map args;
  args.emplace_back("key", "alias/data");
  MustCall("key.rotate", "acme", std::move(args));
  auto after = Seal("acme", EnvelopePattern(5000));
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(*Open("acme", *before), EnvelopePattern(5000));
  EXPECT_EQ(*Open("acme", *after), EnvelopePattern(5000));
  // The EDKs are kmsd ciphertexts of versions 1 and 2 (bytes 18-21).
  esdk::Header first, second;
  ASSERT_TRUE(Open("acme", *before, {}, &first).has_value());
  ASSERT_TRUE(Open("acme", *after, {}, &second).has_value());
  EXPECT_EQ(esdk::LoadU32(&first.edks[0].ciphertext[18]), 1u);
  EXPECT_EQ(esdk::LoadU32(&second.edks[0].ciphertext[18]), 2u);
}

TEST_F(EnvelopeTest, KmsdsRefusalsComeBackAsTheyAre) {
  auto viewer = Principal("acme", "looker", {"viewer"});
  ASSERT_NE(viewer, nullptr);
  esdk::KmsdKeyring keyring(*viewer, "acme", "alias/data");
  esdk::KeyringMaterials materials(keyring);
  auto refused = esdk::EncryptMessage(materials, {}, EnvelopePattern(10));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), Code::kAccessDenied) << refused.error();
  esdk::KmsdKeyring missing(*connection_, "acme", "alias/nothing");
  esdk::KeyringMaterials missing_materials(missing);
  EXPECT_EQ(CodeOf(esdk::EncryptMessage(missing_materials, {}, EnvelopePattern(10))),
            Code::kNotFound);
}

// Sixteen threads miss the cache at once: kmsd sees one generate-data-key.
TEST_F(EnvelopeTest, ABurstOfThreadsMakesOneKmsdCallPerCacheEntry) {
  esdk::KmsdKeyring keyring(*connection_, "acme", "alias/data");
  esdk::KeyringMaterials direct(keyring);
  esdk::DataKeyCache cache({});
  esdk::CachingMaterials cached(direct, cache, "kmsd:acme/alias/data");
  const int before = AuditedRequests("generate-data-key");
  std::vector<Bytes> messages(16);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < messages.size(); ++i) {
    threads.emplace_back([&, i] {
      auto message = esdk::EncryptMessage(cached, {}, EnvelopePattern(256));
      if (message.has_value()) messages[i] = std::move(*message);
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(keyring.calls(), 1u);
  for (const Bytes& message : messages) EXPECT_EQ(*Open("acme", message), EnvelopePattern(256));
  EXPECT_TRUE(Eventually([&] { return AuditedRequests("generate-data-key") == before + 1; }))
      << AuditedRequests("generate-data-key") - before;
}

// kmsctl with kmsd and an escrow RSA key: the JavaScript SDK reads the
// escrow copy with the private key alone (break-glass without kmsd).
TEST_F(EnvelopeTest, KmsctlWritesMessagesAnEscrowKeyAloneCanRead) {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048});
  FILE* out = std::fopen((dir_ / "escrow.pub").c_str(), "w");
  PEM_write_PUBKEY(out, key);
  std::fclose(out);
  out = std::fopen((dir_ / "escrow.key").c_str(), "w");
  PEM_write_PrivateKey(out, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(out);
  EVP_PKEY_free(key);
  const Bytes data = EnvelopePattern(200000);
  std::ofstream(dir_ / "data", std::ios::binary)
      .write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  const std::string socket = daemon_->socket_path();
  const CommandResult sealed =
      RunKmsctl(socket, {"envelope", "encrypt", "--keyring", "kmsd:acme/alias/data", "--keyring",
                         "raw-rsa:escrow/offline:" + (dir_ / "escrow.pub"), "--context",
                         "file=data", "--suite", "committing-signed", "--in", dir_ / "data",
                         "--out", dir_ / "data.esdk", "--json"});
  ASSERT_EQ(sealed.exit_code, 0) << sealed.err << sealed.out;
  EXPECT_NE(sealed.out.find("\"encrypted_data_keys\":2"), std::string::npos) << sealed.out;
  const std::string message = ReadFileBytes(dir_ / "data.esdk");
  const CommandResult js =
      RunEsdkJs({"decrypt", "--rsa", "escrow/offline:" + (dir_ / "escrow.key") + ":oaep-sha256",
                 "--context", "file=data"},
                message);
  ASSERT_EQ(js.exit_code, 0) << js.err;
  EXPECT_TRUE(js.out == std::string(data.begin(), data.end()));
  // kmsctl reads it back through kmsd, and refuses it for another tenant,
  // another context or a damaged copy, leaving --out unwritten.
  const CommandResult opened =
      RunKmsctl(socket, {"envelope", "decrypt", "--keyring", "kmsd:acme/alias/data", "--context",
                         "file=data", "--in", dir_ / "data.esdk", "--out", dir_ / "data.out"});
  ASSERT_EQ(opened.exit_code, 0) << opened.err;
  EXPECT_EQ(ReadFileBytes(dir_ / "data.out"), std::string(data.begin(), data.end()));
  std::string damaged = message;
  damaged[damaged.size() / 2] ^= 0x20;
  std::ofstream(dir_ / "damaged.esdk", std::ios::binary) << damaged;
  const std::vector<std::vector<std::string>> refused = {
      {"--keyring", "kmsd:globex/alias/data", "--in", dir_ / "data.esdk"},
      {"--keyring", "kmsd:acme/alias/data", "--context", "file=other", "--in", dir_ / "data.esdk"},
      {"--keyring", "kmsd:acme/alias/data", "--in", dir_ / "damaged.esdk"},
      {"--keyring", "kmsd:acme/alias/data", "--max-encrypted-data-keys", "1", "--in",
       dir_ / "data.esdk"}};
  for (const auto& args : refused) {
    std::vector<std::string> argv = {"envelope", "decrypt", "--out", dir_ / "refused.out"};
    argv.insert(argv.end(), args.begin(), args.end());
    const CommandResult result = RunKmsctl(socket, argv);
    EXPECT_EQ(result.exit_code, 5) << args[1] << " " << result.err;
    EXPECT_NE(result.err.find("INVALID_CIPHERTEXT"), std::string::npos) << result.err;
    EXPECT_FALSE(fs::exists(dir_ / "refused.out")) << args[1];
  }
  // A keyring spec that does not parse is a usage error.
  EXPECT_EQ(RunKmsctl(socket, {"envelope", "encrypt", "--keyring", "kmsd:acme", "--in",
                               dir_ / "data", "--out", dir_ / "x"})
                .exit_code,
            2);
}

// Progress shows on a terminal (a pseudo-terminal from script(1)), and
// not with --json or when stderr is a file.
TEST_F(EnvelopeTest, KmsctlShowsProgressOnlyOnATerminal) {
  std::ofstream(dir_ / "key", std::ios::binary) << std::string(32, 'k');
  fs::permissions(dir_ / "key", fs::perms::owner_read | fs::perms::owner_write);
  const Bytes data = EnvelopePattern(4 << 20);
  std::ofstream(dir_ / "data", std::ios::binary)
      .write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  const std::string command = std::string(KMSCTL_BINARY) +
                              " envelope encrypt --keyring raw-aes:ns/k:" + (dir_ / "key") +
                              " --in " + (dir_ / "data") + " --out " + (dir_ / "data.esdk");
  const CommandResult on_terminal = RunCommand({"/usr/bin/script", "-qec", command, "/dev/null"});
  ASSERT_EQ(on_terminal.exit_code, 0) << on_terminal.out << on_terminal.err;
  EXPECT_NE(on_terminal.out.find("encrypting: "), std::string::npos) << on_terminal.out;
  EXPECT_NE(on_terminal.out.find(" of 4.0 MiB"), std::string::npos) << on_terminal.out;
  const CommandResult json =
      RunCommand({"/usr/bin/script", "-qec", command + " --json", "/dev/null"});
  ASSERT_EQ(json.exit_code, 0) << json.out;
  EXPECT_EQ(json.out.find("encrypting: "), std::string::npos) << json.out;
  const CommandResult to_file = RunCommand({"/bin/sh", "-c", command + " 2>" + (dir_ / "err")});
  ASSERT_EQ(to_file.exit_code, 0);
  EXPECT_EQ(ReadFileBytes(dir_ / "err"), "");
}

// kmsctl killed mid-decrypt (SIGTERM, SIGINT) leaves no temporary file
// holding part of the plaintext beside --out.
TEST_F(EnvelopeTest, KmsctlKilledMidWayLeavesNoTemporaryFile) {
  std::ofstream(dir_ / "key", std::ios::binary) << std::string(32, 'k');
  fs::permissions(dir_ / "key", fs::perms::owner_read | fs::perms::owner_write);
  const std::string out_dir = dir_ / "out";
  fs::create_directory(out_dir);
  for (int signal : {SIGTERM, SIGINT}) {
    const std::string fifo = dir_ / ("in-" + std::to_string(signal));
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    const std::string kmsctl = KMSCTL_BINARY;
    const std::vector<std::string> args = {
        kmsctl, "envelope", "encrypt", "--keyring",           "raw-aes:ns/k:" + (dir_ / "key"),
        "--in", fifo,       "--out",   out_dir + "/data.esdk"};
    std::vector<char*> argv;
    for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    pid_t pid = 0;
    ASSERT_EQ(::posix_spawn(&pid, kmsctl.c_str(), nullptr, nullptr, argv.data(), environ), 0);
    const int writer = ::open(fifo.c_str(), O_WRONLY);  // waits for kmsctl to open it
    ASSERT_GE(writer, 0);
    const std::string some(100000, 'x');
    ASSERT_EQ(::write(writer, some.data(), some.size()), static_cast<ssize_t>(some.size()));
    const auto temporaries = [&] {
      int count = 0;
      for (const auto& entry : fs::directory_iterator(out_dir)) {
        if (entry.path().filename().string().find(".kmsctl-") != std::string::npos) ++count;
      }
      return count;
    };
    ASSERT_TRUE(Eventually([&] { return temporaries() == 1; })) << "no temporary file appeared";
    ::kill(pid, signal);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ::close(writer);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == signal) << status;
    EXPECT_EQ(temporaries(), 0) << signal;
    EXPECT_FALSE(fs::exists(out_dir + "/data.esdk"));
  }
}

// Wrapping keys and private keys must be private files; stdin is the data.
TEST_F(EnvelopeTest, KmsctlRefusesKeyFilesOthersCanRead) {
  std::ofstream(dir_ / "key", std::ios::binary) << std::string(32, 'k');
  fs::permissions(dir_ / "key", fs::perms::owner_read | fs::perms::owner_write |
                                    fs::perms::group_read | fs::perms::others_read);
  std::ofstream(dir_ / "data") << "data";
  const std::string socket = daemon_->socket_path();
  const CommandResult readable =
      RunKmsctl(socket, {"envelope", "encrypt", "--keyring", "raw-aes:ns/k:" + (dir_ / "key"),
                         "--in", dir_ / "data", "--out", dir_ / "data.esdk"});
  EXPECT_EQ(readable.exit_code, 2) << readable.err;
  EXPECT_NE(readable.err.find("chmod 600"), std::string::npos) << readable.err;
  EXPECT_FALSE(fs::exists(dir_ / "data.esdk"));
  const CommandResult from_stdin = RunKmsctl(
      socket, {"envelope", "encrypt", "--keyring", "raw-aes:ns/k:-", "--out", dir_ / "data.esdk"},
      std::string(32, 'k'));
  EXPECT_EQ(from_stdin.exit_code, 2) << from_stdin.err;
  fs::permissions(dir_ / "key", fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(RunKmsctl(socket, {"envelope", "encrypt", "--keyring", "raw-aes:ns/k:" + (dir_ / "key"),
                               "--in", dir_ / "data", "--out", dir_ / "data.esdk"})
                .exit_code,
            0);
}

// kmsctl's --commitment-policy and --rsa-padding, on messages the
// JavaScript SDK wrote: version 1 (read only under allow-v1) and PKCS#1 v1.5.
TEST_F(EnvelopeTest, KmsctlReadsOldMessagesOnlyWhenAsked) {
  std::ofstream(dir_ / "key", std::ios::binary) << std::string(32, 'k');
  fs::permissions(dir_ / "key", fs::perms::owner_read | fs::perms::owner_write);
  EVP_PKEY* rsa = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048});
  FILE* out = std::fopen((dir_ / "rsa.key").c_str(), "w");
  PEM_write_PrivateKey(out, rsa, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(out);
  EVP_PKEY_free(rsa);
  fs::permissions(dir_ / "rsa.key", fs::perms::owner_read | fs::perms::owner_write);
  const std::string plaintext(5000, 'p');
  const std::string socket = daemon_->socket_path();
  const auto decrypt = [&](const std::string& message, std::vector<std::string> args) {
    std::ofstream(dir_ / "old.esdk", std::ios::binary) << message;
    args.insert(args.begin(), {"envelope", "decrypt", "--in", dir_ / "old.esdk"});
    return RunKmsctl(socket, args);
  };
  const CommandResult v1 = RunEsdkJs(
      {"encrypt", "--policy=forbid-allow", "--suite=0378", "--aes=ns/k:" + (dir_ / "key")},
      plaintext);
  ASSERT_EQ(v1.exit_code, 0) << v1.err;
  const std::string aes = "raw-aes:ns/k:" + (dir_ / "key");
  const CommandResult refused = decrypt(v1.out, {"--keyring", aes});
  EXPECT_EQ(refused.exit_code, 5) << refused.err;
  EXPECT_NE(refused.err.find("commitment policy"), std::string::npos) << refused.err;
  const CommandResult allowed =
      decrypt(v1.out, {"--keyring", aes, "--commitment-policy", "allow-v1"});
  EXPECT_EQ(allowed.exit_code, 0) << allowed.err;
  EXPECT_TRUE(allowed.out == plaintext);
  EXPECT_EQ(decrypt(v1.out, {"--keyring", aes, "--commitment-policy", "sometimes"}).exit_code, 2);

  const CommandResult pkcs1 =
      RunEsdkJs({"encrypt", "--rsa=ns/rsa:" + (dir_ / "rsa.key") + ":pkcs1"}, plaintext);
  ASSERT_EQ(pkcs1.exit_code, 0) << pkcs1.err;
  const std::string rsa_spec = "raw-rsa:ns/rsa:" + (dir_ / "rsa.key");
  EXPECT_EQ(decrypt(pkcs1.out, {"--keyring", rsa_spec}).exit_code, 5);  // OAEP-SHA256 by default
  const CommandResult read = decrypt(pkcs1.out, {"--keyring", rsa_spec, "--rsa-padding", "pkcs1"});
  EXPECT_EQ(read.exit_code, 0) << read.err;
  EXPECT_TRUE(read.out == plaintext);
  EXPECT_EQ(decrypt(pkcs1.out, {"--keyring", rsa_spec, "--rsa-padding", "oaep-md5"}).exit_code, 2);
}

}  // namespace
}  // namespace kmsd::testing
