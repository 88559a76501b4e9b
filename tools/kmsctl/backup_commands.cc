// kmsctl backup create | verify | restore | prune: encrypted backups of
// directory trees (client/backup/backup.h, docs/CLI.md).
//
// create writes --out through a temporary file renamed only when the whole
// backup is written (a failure or a signal leaves nothing); verify and
// restore read with kmsd (the tenant named in the backup) or, given
// --escrow-private-key, with that key alone (no kmsd at all); prune removes
// the backups of a directory that its rules do not keep.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>

#include "client/backup/backup.h"
#include "client/backup/escrow.h"
#include "client/backup/retention.h"
#include "client/esdk/kmsd_keyring.h"
#include "client/esdk/multi_keyring.h"
#include "client/store/beneath.h"
#include "tools/kmsctl/cli.h"
#include "tools/kmsctl/io.h"
#include "tools/kmsctl/progress.h"

namespace kmsd::kmsctl {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxPemBytes = 64 * 1024;

struct BackupArgs {
  std::string tenant;
  std::string key = "alias/data";
  std::string out;
  std::vector<std::string> escrow_public_keys;
  std::string escrow_private_key;
  std::string to;
  std::vector<std::string> paths;  // DIR... (create), ARCHIVE (verify, restore), DIR (prune)
  std::optional<uint64_t> keep_last;
  std::string keep_within;
  bool dry_run = false;
};

Status Usage(const std::string& message) { return Status(Code::kInvalidArgument, message); }

std::string_view TextOf(const SecretBuffer& buffer) {
  return {reinterpret_cast<const char*>(buffer.RevealData()), buffer.size()};
}

// The sources' top-level names: each directory's last component, unique.
Result<std::vector<backup::TreeSource>> SourcesOf(const std::vector<std::string>& directories) {
  std::vector<backup::TreeSource> sources;
  for (const std::string& directory : directories) {
    const std::string name = fs::path(directory).lexically_normal().filename().string();
    const std::string last =
        name.empty() ? fs::path(directory).lexically_normal().parent_path().filename().string()
                     : name;
    if (last.empty() || last == "." || last == "..") {
      return Error(Usage("'" + directory + "' has no name to store it under: give its path"));
    }
    for (const backup::TreeSource& other : sources) {
      if (other.name == last) {
        return Error(Usage("'" + directory + "' and '" + other.directory + "' would both be '" +
                           last + "' in the backup"));
      }
    }
    sources.push_back({directory, last});
  }
  return sources;
}

bool ShowProgress(const Invocation& invocation) { return !invocation.output().json(); }

// The bytes of the regular files under `directories` (links not followed),
// for the progress line's "time left"; a quick walk of metadata only.
uint64_t TreeBytes(const std::vector<std::string>& directories) {
  uint64_t total = 0;
  for (const std::string& directory : directories) {
    std::error_code error;
    for (fs::recursive_directory_iterator it(directory, error), end; !error && it != end;
         it.increment(error)) {
      if (it->is_regular_file(error) && !it->is_symlink(error)) total += it->file_size(error);
    }
  }
  return total;
}

// Adapts the library's running totals to Progress's increments.
backup::ProgressFn Feed(Progress& progress) {
  return [&progress, bytes = uint64_t{0}, files = uint64_t{0}](uint64_t now_bytes,
                                                               uint64_t now_files) mutable {
    progress.Add(now_bytes - bytes, now_files - files);
    bytes = now_bytes;
    files = now_files;
  };
}

Status BackupCreate(Invocation& invocation, const BackupArgs& a) {
  if (a.out.empty()) return invocation.AsUsage(Usage("--out ARCHIVE is required"));
  if (a.paths.empty()) return invocation.AsUsage(Usage("give at least one DIR to back up"));
  RETURN_IF_ERROR(invocation.AsUsage(CheckOutputPath(a.out)));
  ASSIGN_OR_RETURN(const auto sources, invocation.AsUsage(SourcesOf(a.paths)));
  std::vector<std::unique_ptr<esdk::Keyring>> escrows;
  for (const std::string& path : a.escrow_public_keys) {
    ASSIGN_OR_RETURN(SecretBuffer pem, invocation.AsUsage(ReadKeyFile("escrow public key", path,
                                                                      kMaxPemBytes, false)));
    ASSIGN_OR_RETURN(auto escrow, invocation.AsUsage(backup::EscrowKeyring(TextOf(pem))));
    escrows.push_back(std::move(escrow));
  }
  ASSIGN_OR_RETURN(Connection * connection, invocation.Connect());
  std::unique_ptr<esdk::Keyring> keyring =
      std::make_unique<esdk::KmsdKeyring>(*connection, a.tenant, a.key);
  if (!escrows.empty()) {
    keyring = std::make_unique<esdk::MultiKeyring>(std::move(keyring), std::move(escrows));
  }
  esdk::KeyringMaterials materials(*keyring);
  ASSIGN_OR_RETURN(OutputStream out, OutputStream::Open(a.out));
  const std::string created = backup::Rfc3339(::time(nullptr));
  Progress progress(ShowProgress(invocation) && !IsStdio(a.out), "backing up", TreeBytes(a.paths));
  uint64_t archive_bytes = 0;
  ASSIGN_OR_RETURN(const backup::WriteSummary summary, backup::CreateBackup(
                                                           materials, a.tenant, created, sources,
                                                           [&](std::span<const uint8_t> bytes) {
                                                             archive_bytes += bytes.size();
                                                             return out.Write(bytes);
                                                           },
                                                           Feed(progress)));
  progress.Finish();
  RETURN_IF_ERROR(out.Commit());
  if (IsStdio(a.out)) return OkStatus();
  return invocation.output().Object({{"archive", a.out},
                                     {"tenant", a.tenant},
                                     {"created", created},
                                     {"files", summary.files},
                                     {"directories", summary.directories},
                                     {"symlinks", summary.symlinks},
                                     {"bytes", summary.bytes},
                                     {"archive_bytes", archive_bytes},
                                     {"skipped", summary.skipped},
                                     {"changed", summary.changed}});
}

// The backup named on the command line, open, with the keyring to read it.
struct Opened {
  store::Fd fd;
  backup::BackupLabel label;
  std::unique_ptr<esdk::Keyring> keyring;
};

Result<Opened> OpenBackup(Invocation& invocation, const BackupArgs& a) {
  if (a.paths.size() != 1) return Error(invocation.AsUsage(Usage("give one ARCHIVE")));
  const int fd = ::open(a.paths[0].c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Error(
        invocation.AsUsage(Usage("cannot read '" + a.paths[0] + "': " + std::strerror(errno))));
  }
  Opened opened{store::Fd(fd), {}, nullptr};
  ASSIGN_OR_RETURN(opened.label, backup::ReadLabel(fd));
  if (!a.escrow_private_key.empty()) {
    ASSIGN_OR_RETURN(SecretBuffer pem,
                     invocation.AsUsage(ReadKeyFile("escrow private key", a.escrow_private_key,
                                                    kMaxPemBytes, /*must_be_private=*/true)));
    ASSIGN_OR_RETURN(opened.keyring, invocation.AsUsage(backup::EscrowKeyring(TextOf(pem))));
    return opened;
  }
  ASSIGN_OR_RETURN(Connection * connection, invocation.Connect());
  opened.keyring = std::make_unique<esdk::KmsdKeyring>(*connection, opened.label.tenant, "");
  return opened;
}

Json Counted(const backup::Manifest& manifest) {
  uint64_t files = 0, bytes = 0;
  for (const backup::Entry& entry : manifest.entries) {
    if (entry.type != backup::EntryType::kFile) continue;
    ++files;
    bytes += entry.size;
  }
  return {{"entries", manifest.entries.size()}, {"files", files}, {"bytes", bytes}};
}

Status BackupVerify(Invocation& invocation, const BackupArgs& a) {
  ASSIGN_OR_RETURN(Opened opened, OpenBackup(invocation, a));
  esdk::KeyringMaterials materials(*opened.keyring);
  Progress progress(ShowProgress(invocation), "verifying", std::nullopt);
  ASSIGN_OR_RETURN(const backup::Manifest manifest,
                   backup::VerifyBackup(materials, opened.fd.get(), Feed(progress)));
  progress.Finish();
  Json report = {{"archive", a.paths[0]},
                 {"tenant", manifest.tenant},
                 {"created", manifest.created},
                 {"verified", true}};
  report.update(Counted(manifest));
  return invocation.output().Object(std::move(report));
}

Status BackupRestore(Invocation& invocation, const BackupArgs& a) {
  if (a.to.empty()) return invocation.AsUsage(Usage("--to DIR is required"));
  ASSIGN_OR_RETURN(Opened opened, OpenBackup(invocation, a));
  esdk::KeyringMaterials materials(*opened.keyring);
  Progress verifying(ShowProgress(invocation), "verifying", std::nullopt);
  std::optional<Progress> restoring;
  const backup::RestoreProgress phases{
      .verifying = Feed(verifying), .restoring = [&](const backup::Manifest& manifest) {
        verifying.Finish();
        restoring.emplace(ShowProgress(invocation), "restoring", backup::FileBytes(manifest));
        return Feed(*restoring);
      }};
  ASSIGN_OR_RETURN(const backup::RestoreSummary summary,
                   backup::RestoreBackup(materials, opened.fd.get(), a.to, phases));
  if (restoring) restoring->Finish();
  return invocation.output().Object({{"to", a.to},
                                     {"tenant", opened.label.tenant},
                                     {"created", opened.label.created},
                                     {"files", summary.files},
                                     {"directories", summary.directories},
                                     {"symlinks", summary.symlinks},
                                     {"bytes", summary.bytes}});
}

Status BackupPrune(Invocation& invocation, const BackupArgs& a) {
  if (a.paths.size() != 1) return invocation.AsUsage(Usage("give one DIR of backups"));
  backup::RetentionRules rules{.keep_last = a.keep_last, .keep_within_seconds = std::nullopt};
  if (!a.keep_within.empty()) {
    ASSIGN_OR_RETURN(rules.keep_within_seconds, invocation.AsUsage(ParseDuration(a.keep_within)));
  }
  if (!rules.keep_last && !rules.keep_within_seconds) {
    return invocation.AsUsage(Usage("give --keep-last N, --keep-within DURATION or both"));
  }
  std::vector<backup::BackupFile> backups;
  std::error_code error;
  for (const auto& item : fs::directory_iterator(a.paths[0], error)) {
    if (!item.is_regular_file(error) || item.is_symlink(error)) continue;
    const int fd = ::open(item.path().c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) continue;
    const store::Fd closer(fd);
    // A header is read here without kmsd, unauthenticated: only the
    // caller's own files count, so that files others planted in a shared
    // (sticky) directory cannot push real backups out.
    struct stat owner {};
    if (::fstat(fd, &owner) != 0 || owner.st_uid != ::geteuid()) continue;
    auto label = backup::ReadLabel(fd);
    if (!label.has_value()) continue;  // not a backup
    const auto created = backup::ParseRfc3339(label->created);
    if (!created) continue;
    backups.push_back({item.path().string(), label->tenant, *created});
  }
  if (error)
    return invocation.AsUsage(Usage("cannot list '" + a.paths[0] + "': " + error.message()));
  const std::vector<size_t> removed = backup::SelectForRemoval(backups, rules, ::time(nullptr));
  Json kept = Json::array(), gone = Json::array();
  for (size_t i = 0; i < backups.size(); ++i) {
    const bool remove = std::binary_search(removed.begin(), removed.end(), i);
    if (remove && !a.dry_run && ::unlink(backups[i].path.c_str()) != 0) {
      return Status(Code::kInternal,
                    "cannot remove '" + backups[i].path + "': " + std::strerror(errno));
    }
    (remove ? gone : kept).push_back(backups[i].path);
  }
  return invocation.output().Object(
      {{"kept", std::move(kept)}, {"removed", std::move(gone)}, {"dry_run", a.dry_run}});
}

}  // namespace

void AddBackupCommands(CLI::App& app, Invocation& invocation) {
  CLI::App* group = app.add_subcommand("backup", "Encrypted backups of directory trees");
  group->require_subcommand(1);
  const auto select = [&invocation](CLI::App* command,
                                    Status (*handler)(Invocation&, const BackupArgs&),
                                    const std::shared_ptr<BackupArgs>& args) {
    command->callback([&invocation, handler, args] {
      invocation.Select([&invocation, handler, args] { return handler(invocation, *args); });
    });
  };
  auto create_args = std::make_shared<BackupArgs>();
  CLI::App* create =
      AddTenantCommand(group, invocation, "create", "Back up DIR... into one encrypted archive",
                       BackupCreate, create_args);
  create->add_option("--key", create_args->key, "The tenant's key (default alias/data)");
  create->add_option("--out", create_args->out, "The archive to write")->required();
  create->add_option("--escrow-public-key", create_args->escrow_public_keys,
                     "An RSA public key (PEM) whose private key alone can restore (repeatable)");
  create->add_option("dirs", create_args->paths, "Directories to back up")->required();

  auto verify_args = std::make_shared<BackupArgs>();
  CLI::App* verify = group->add_subcommand("verify", "Check every frame, entry and digest");
  verify->add_option("archive", verify_args->paths, "The archive")->required();
  verify->add_option("--escrow-private-key", verify_args->escrow_private_key,
                     "Read with this RSA private key (PEM, chmod 600) instead of kmsd");
  select(verify, BackupVerify, verify_args);

  auto restore_args = std::make_shared<BackupArgs>();
  CLI::App* restore = group->add_subcommand("restore", "Verify, then restore into --to DIR");
  restore->add_option("archive", restore_args->paths, "The archive")->required();
  restore->add_option("--to", restore_args->to, "A new or empty directory")->required();
  restore->add_option("--escrow-private-key", restore_args->escrow_private_key,
                      "Read with this RSA private key (PEM, chmod 600) instead of kmsd");
  select(restore, BackupRestore, restore_args);

  auto prune_args = std::make_shared<BackupArgs>();
  CLI::App* prune =
      group->add_subcommand("prune", "Remove the backups in DIR the rules do not keep");
  prune->add_option("dir", prune_args->paths, "The directory of backups")->required();
  prune->add_option("--keep-last", prune_args->keep_last, "Keep each tenant's N newest")
      ->check(UnsignedInteger());
  prune->add_option("--keep-within", prune_args->keep_within,
                    "Keep those made within DURATION (90d, 12h, 15m, 30s)");
  prune->add_flag("--dry-run", prune_args->dry_run, "Say what would go; remove nothing");
  select(prune, BackupPrune, prune_args);
}

}  // namespace kmsd::kmsctl
