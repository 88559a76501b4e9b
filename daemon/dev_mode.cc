#include "daemon/dev_mode.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "pkcs11/module.h"
#include "protocol/ciphertext.h"
#include "protocol/secret_buffer.h"

namespace kmsd {
namespace {

namespace fs = std::filesystem;

Status Fail(const std::string& what) { return Status(Code::kInternal, "dev mode: " + what); }

// 24 random bytes as hex, in locked memory.
Result<SecretBuffer> RandomPin() {
  SecretBuffer raw(24);
  if (RAND_bytes(raw.RevealMutableData(), static_cast<int>(raw.size())) != 1) {
    return Error(Fail("no randomness for a PIN"));
  }
  SecretBuffer pin(raw.size() * 2);
  HexEncode(raw.RevealSpan(), reinterpret_cast<char*>(pin.RevealMutableData()));
  return pin;
}

Status WritePrivateFile(const std::string& path, const SecretBuffer& content) {
  const std::string temp = path + ".tmp";
  int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Fail("cannot create " + temp);
  bool ok =
      write(fd, content.RevealData(), content.size()) == static_cast<ssize_t>(content.size()) &&
      write(fd, "\n", 1) == 1 && fsync(fd) == 0;
  close(fd);
  if (!ok || rename(temp.c_str(), path.c_str()) != 0) return Fail("cannot write " + path);
  return OkStatus();
}

}  // namespace

Result<Config> PrepareDevDirectory(const std::string& dir_arg) {
  std::error_code ec;
  fs::create_directories(dir_arg, ec);
  if (ec) return Error(Fail("cannot create " + dir_arg + ": " + ec.message()));
  const fs::path dir = fs::absolute(dir_arg);
  if (chmod(dir.c_str(), 0700) != 0) return Error(Fail("cannot chmod 0700 " + dir.string()));

  const fs::path tokens = dir / "tokens";
  const fs::path conf = dir / "softhsm2.conf";
  const fs::path user_pin_file = dir / "user-pin";
  const fs::path so_pin_file = dir / "so-pin";
  {
    std::ofstream out(conf, std::ios::trunc);
    out << "# Written by kmsd --dev: a private SoftHSM2 token for this directory.\n"
        << "directories.tokendir = " << tokens.string() << "\n"
        << "objectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n";
    if (!out) return Error(Fail("cannot write " + conf.string()));
  }
  setenv("SOFTHSM2_CONF", conf.c_str(), 1);

  Config config;
  config.token_label = std::string(kDevTokenLabel);
  config.pin_file = user_pin_file.string();
  config.socket_path = (dir / "kmsd.sock").string();
  config.socket_mode = 0600;
  config.keystore_path = (dir / "keystore.db").string();
  // Created (0700) at start, like any backup directory. Canonical, so that
  // a DIR such as ../dev gives a path without "..".
  const fs::path real_dir = fs::canonical(dir, ec);
  if (ec) return Error(Fail("cannot resolve " + dir.string() + ": " + ec.message()));
  config.backup_dir = (real_dir / "backups").string();
  config.audit_dir = (real_dir / "audit").string();
  config.admin_uids = {getuid()};

  if (fs::exists(user_pin_file)) return config;

  // First start (or one that died before the PIN file landed): a clean token
  // directory, then the token, then the PIN files as the commit point.
  fs::remove_all(tokens, ec);
  fs::create_directories(tokens, ec);
  if (ec) return Error(Fail("cannot create " + tokens.string()));
  chmod(tokens.c_str(), 0700);
  ASSIGN_OR_RETURN(SecretBuffer so_pin, RandomPin());
  ASSIGN_OR_RETURN(SecretBuffer user_pin, RandomPin());
  {
    ASSIGN_OR_RETURN(auto module, pkcs11::Module::Load(config.module_path));
    RETURN_IF_ERROR(module->InitializeFreeToken(kDevTokenLabel, so_pin, user_pin));
  }
  RETURN_IF_ERROR(WritePrivateFile(so_pin_file.string(), so_pin));
  RETURN_IF_ERROR(WritePrivateFile(user_pin_file.string(), user_pin));
  return config;
}

}  // namespace kmsd
