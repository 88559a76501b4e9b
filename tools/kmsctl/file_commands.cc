// kmsctl file put | get | list | delete | rewrap: a tenant's encrypted files
// under --store ROOT (client/store/tenant_store.h, docs/CLI.md).
//
// put encrypts --in (default stdin) with a data key from kmsd under --key
// (default alias/data) and stores it as NAME, within the quotas kmsd serves
// in tenant describe; get decrypts NAME to --out (default stdout; a file is
// written only when the whole message authenticated); list shows names and
// plaintext sizes; delete removes NAME; rewrap moves files' data keys to
// their key's newest version. Names and the store are checked before
// anything is read or sent.
#include <openssl/crypto.h>
#include <unistd.h>

#include <ctime>

#include "client/esdk/kmsd_keyring.h"
#include "client/store/rewrap.h"
#include "client/store/tenant_store.h"
#include "tools/kmsctl/cli.h"
#include "tools/kmsctl/io.h"
#include "tools/kmsctl/progress.h"

namespace kmsd::kmsctl {
namespace {

struct FileArgs {
  std::string tenant;
  std::string store;
  std::string key = "alias/data";
  std::vector<std::string> names;
  std::string in;
  std::string out;
};

Result<store::TenantStore> OpenStore(Invocation& invocation, const FileArgs& a, bool create) {
  if (a.store.empty()) {
    return Error(invocation.AsUsage(Status(Code::kInvalidArgument, "--store ROOT is required")));
  }
  auto opened = store::TenantStore::Open(a.store, a.tenant, create);
  if (!opened.has_value() && opened.error().code() != Code::kNotFound) {
    return Error(invocation.AsUsage(opened.error()));
  }
  return opened;
}

Result<std::string> OneName(Invocation& invocation, const FileArgs& a) {
  if (a.names.size() != 1) {
    return Error(invocation.AsUsage(Status(Code::kInvalidArgument, "give one NAME")));
  }
  RETURN_IF_ERROR(invocation.AsUsage(store::CheckName(a.names[0])));
  return a.names[0];
}

bool ShowProgress(const Invocation& invocation, const std::string& out) {
  return !invocation.output().json() && !(IsStdio(out) && ::isatty(STDOUT_FILENO) == 1);
}

Result<store::Quota> QuotaOf(Invocation& invocation, const std::string& tenant) {
  ASSIGN_OR_RETURN(Connection * connection, invocation.Connect());
  ASSIGN_OR_RETURN(ops::TenantDescription description,
                   CallOp<ops::TenantDescribe>(*connection, tenant, {}));
  return store::Quota{.max_file_size = description.max_file_size,
                      .max_file_count = description.max_file_count,
                      .max_data_size = description.max_data_size};
}

Status FilePut(Invocation& invocation, const FileArgs& a) {
  ASSIGN_OR_RETURN(const std::string name, OneName(invocation, a));
  ASSIGN_OR_RETURN(InputStream input, invocation.AsUsage(InputStream::Open(a.in)));
  if (a.store.empty() || !store::Beneath::Open(a.store).has_value()) {
    return invocation.AsUsage(
        Status(Code::kInvalidArgument, "--store must name an existing directory"));
  }
  ASSIGN_OR_RETURN(const store::Quota quota, QuotaOf(invocation, a.tenant));
  ASSIGN_OR_RETURN(store::TenantStore files, OpenStore(invocation, a, /*create=*/true));
  ASSIGN_OR_RETURN(Connection * connection, invocation.Connect());
  esdk::KmsdKeyring keyring(*connection, a.tenant, a.key);
  esdk::KeyringMaterials materials(keyring);
  Progress progress(ShowProgress(invocation, ""), "storing", input.size());
  const store::Reader read = [&](std::span<uint8_t> buffer) -> Result<size_t> {
    ASSIGN_OR_RETURN(const size_t n, input.Read(buffer));
    progress.Add(n);
    return n;
  };
  ASSIGN_OR_RETURN(const store::PutResult put,
                   files.Put(materials, name, read, input.size(), quota));
  progress.Finish();
  return invocation.output().Object({{"name", name},
                                     {"bytes", put.bytes},
                                     {"stored_bytes", put.stored_bytes},
                                     {"replaced", put.replaced}});
}

Status FileGet(Invocation& invocation, const FileArgs& a) {
  ASSIGN_OR_RETURN(const std::string name, OneName(invocation, a));
  if (invocation.output().json() && IsStdio(a.out)) {
    return invocation.AsUsage(
        Status(Code::kInvalidArgument, "--json prints a summary: give the data an --out file"));
  }
  RETURN_IF_ERROR(invocation.AsUsage(CheckOutputPath(a.out)));
  ASSIGN_OR_RETURN(store::TenantStore files, OpenStore(invocation, a, /*create=*/false));
  ASSIGN_OR_RETURN(Connection * connection, invocation.Connect());
  // Any of the tenant's keys: the file's EDK names the one that made it.
  esdk::KmsdKeyring keyring(*connection, a.tenant, "");
  esdk::KeyringMaterials materials(keyring);
  ASSIGN_OR_RETURN(OutputStream out, OutputStream::Open(a.out));
  Progress progress(ShowProgress(invocation, a.out), "reading", std::nullopt);
  ASSIGN_OR_RETURN(const uint64_t bytes,
                   files.Get(materials, name, [&](std::span<const uint8_t> plaintext) {
                     progress.Add(plaintext.size());
                     return out.Write(plaintext);
                   }));
  progress.Finish();
  RETURN_IF_ERROR(out.Commit());
  if (IsStdio(a.out)) return OkStatus();
  return invocation.output().Object({{"name", name}, {"bytes", bytes}});
}

std::string TimeText(int64_t ns) {
  const time_t seconds = static_cast<time_t>(ns / 1'000'000'000);
  struct tm utc {};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

Status FileList(Invocation& invocation, const FileArgs& a) {
  if (!a.names.empty()) {
    return invocation.AsUsage(Status(Code::kInvalidArgument, "list takes no NAME"));
  }
  auto files = OpenStore(invocation, a, /*create=*/false);
  Json rows = Json::array();
  if (files.has_value()) {
    ASSIGN_OR_RETURN(const std::vector<store::StoredFile> listed, files->List());
    for (const store::StoredFile& file : listed) {
      rows.push_back({{"name", file.name},
                      {"bytes", file.bytes ? Json(*file.bytes) : Json(nullptr)},
                      {"stored_bytes", file.stored_bytes},
                      {"modified", TimeText(file.modified_ns)}});
    }
  } else if (files.error().code() != Code::kNotFound) {
    return files.error();
  }
  static constexpr Column kColumns[] = {
      {"NAME", "name"}, {"BYTES", "bytes"}, {"STORED", "stored_bytes"}, {"MODIFIED", "modified"}};
  return invocation.output().Table({{"files", std::move(rows)}}, "files", kColumns);
}

Status FileDelete(Invocation& invocation, const FileArgs& a) {
  ASSIGN_OR_RETURN(const std::string name, OneName(invocation, a));
  ASSIGN_OR_RETURN(store::TenantStore files, OpenStore(invocation, a, /*create=*/false));
  RETURN_IF_ERROR(files.Delete(name));
  return invocation.output().Object({{"name", name}, {"deleted", true}});
}

Status FileRewrap(Invocation& invocation, const FileArgs& a) {
  for (const std::string& name : a.names)
    RETURN_IF_ERROR(invocation.AsUsage(store::CheckName(name)));
  ASSIGN_OR_RETURN(store::TenantStore files, OpenStore(invocation, a, /*create=*/false));
  std::vector<std::string> names = a.names;
  if (names.empty()) {
    ASSIGN_OR_RETURN(const std::vector<store::StoredFile> listed, files.List());
    for (const store::StoredFile& file : listed) names.push_back(file.name);
  }
  ASSIGN_OR_RETURN(Connection * connection, invocation.Connect());
  ASSIGN_OR_RETURN(const store::RewrapSummary summary,
                   store::Rewrap(files, *connection, names, store::RewrapOptions{}));
  Json failed = Json::array();
  for (const auto& [name, status] : summary.failed) {
    failed.push_back({{"name", name},
                      {"code", std::string(CodeName(status.code()))},
                      {"message", status.message()}});
  }
  Json report = {{"rewrapped", summary.rewrapped},
                 {"current", summary.current},
                 {"failed", std::move(failed)}};
  if (summary.failed.empty()) return invocation.output().Object(std::move(report));
  RETURN_IF_ERROR(invocation.output().Object(std::move(report)));
  return invocation.AlreadyReported(summary.failed.front().second);
}

}  // namespace

void AddFileCommands(CLI::App& app, Invocation& invocation) {
  CLI::App* group = app.add_subcommand("file", "A tenant's encrypted files in a local store");
  group->require_subcommand(1);
  const auto add = [&](const char* name, const char* description,
                       Status (*handler)(Invocation&, const FileArgs&), const char* names_help) {
    auto args = std::make_shared<FileArgs>();
    CLI::App* command = AddTenantCommand(group, invocation, name, description, handler, args);
    command->add_option("--store", args->store, "The store's root directory")->required();
    command->add_option("names", args->names, names_help);
    return std::pair(command, args);
  };
  auto [put, put_args] = add("put", "Encrypt --in and store it as NAME", FilePut, "NAME");
  put->add_option("--key", put_args->key, "The tenant's key (default alias/data)");
  put->add_option("--in", put_args->in, "Input file (default: stdin)");
  auto [get, get_args] = add("get", "Decrypt the file NAME", FileGet, "NAME");
  get->add_option("--out", get_args->out, "Output file, written only on success (default: stdout)");
  add("list", "List the tenant's files", FileList, "");
  add("delete", "Delete the file NAME", FileDelete, "NAME");
  add("rewrap", "Move files' data keys to their key's newest version (all files without NAME)",
      FileRewrap, "NAME...");
}

}  // namespace kmsd::kmsctl
