#include "client/backup/manifest.h"

#include <nlohmann/json.hpp>
#include <set>

#include "client/store/beneath.h"
#include "protocol/hex.h"

namespace kmsd::backup {
namespace {

using Json = nlohmann::ordered_json;

constexpr size_t kMaxPathBytes = store::kMaxTreeNameBytes;

Status Forged(const std::string& why) {
  return Status(Code::kInvalidCiphertext, "the backup's manifest " + why);
}

std::optional<EntryType> TypeNamed(const std::string& name) {
  if (name == "file") return EntryType::kFile;
  if (name == "dir") return EntryType::kDirectory;
  if (name == "symlink") return EntryType::kSymlink;
  return std::nullopt;
}

// Members of `object` outside `allowed` are refused.
bool OnlyMembers(const Json& object, std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : object.items()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) return false;
  }
  return true;
}

Result<Entry> ParseEntry(const Json& item) {
  if (!item.is_object() || !item.contains("path") || !item["path"].is_string() ||
      !item.contains("type") || !item["type"].is_string() || !item.contains("mode") ||
      !item["mode"].is_number_unsigned() || !item.contains("mtime_ns") ||
      !item["mtime_ns"].is_number_integer()) {
    return Error(Forged("has an entry without path, type, mode and mtime_ns"));
  }
  Entry entry;
  entry.path = item["path"].get<std::string>();
  if (Status status = CheckEntryPath(entry.path); !status.ok()) {
    return Error(Forged("lists a path that leaves the tree: " + status.message()));
  }
  const auto type = TypeNamed(item["type"].get<std::string>());
  if (!type) return Error(Forged("has an entry of an unknown type"));
  entry.type = *type;
  const uint64_t mode = item["mode"].get<uint64_t>();
  if (mode > 07777) return Error(Forged("has a mode over 07777"));
  entry.mode = static_cast<uint32_t>(mode);
  entry.mtime_ns = item["mtime_ns"].get<int64_t>();
  switch (entry.type) {
    case EntryType::kFile: {
      if (!OnlyMembers(item, {"path", "type", "mode", "mtime_ns", "size", "sha256"}) ||
          !item.contains("size") || !item["size"].is_number_unsigned() ||
          !item.contains("sha256") || !item["sha256"].is_string()) {
        return Error(Forged("has a file entry without size and sha256, or with more"));
      }
      entry.size = item["size"].get<uint64_t>();
      if (!FromHex(item["sha256"].get<std::string>(), entry.sha256)) {
        return Error(Forged("has a sha256 that is not 64 lowercase hex digits"));
      }
      break;
    }
    case EntryType::kDirectory:
      if (!OnlyMembers(item, {"path", "type", "mode", "mtime_ns"})) {
        return Error(Forged("has a directory entry with more than path, type, mode, mtime_ns"));
      }
      break;
    case EntryType::kSymlink:
      if (!OnlyMembers(item, {"path", "type", "mode", "mtime_ns", "target"}) ||
          !item.contains("target") || !item["target"].is_string()) {
        return Error(Forged("has a symlink entry without a target, or with more"));
      }
      entry.target = item["target"].get<std::string>();
      if (Status status = CheckLinkTarget(entry.path, entry.target); !status.ok()) {
        return Error(Forged("lists a link out of the tree: " + status.message()));
      }
      break;
  }
  return entry;
}

}  // namespace

std::string_view TypeName(EntryType type) {
  switch (type) {
    case EntryType::kFile:
      return "file";
    case EntryType::kDirectory:
      return "dir";
    case EntryType::kSymlink:
      return "symlink";
  }
  return "file";
}

Status CheckEntryPath(std::string_view path) {
  return store::CheckRelativeName(path, kMaxPathBytes);
}

Status CheckLinkTarget(std::string_view path, std::string_view target) {
  const auto refuse = [&](const std::string& why) {
    return Status(Code::kInvalidArgument,
                  "the link '" + std::string(path) + "' -> '" + std::string(target) + "' " + why);
  };
  if (target.empty() || target.size() > kMaxPathBytes) return refuse("has no usable target");
  if (target.find('\0') != std::string_view::npos) return refuse("holds a NUL byte");
  if (target.front() == '/') return refuse("points to an absolute path");
  // '..' only as a leading run, no deeper than the link's own directory:
  // after any other component the walk may be inside a link (a component
  // can itself be a link, to "." say), where '..' could climb anywhere.
  // Each link then resolves inside the tree, and so does every chain of them.
  int depth = static_cast<int>(store::SplitName(path).size()) - 1;
  bool descended = false;
  for (std::string_view part : store::SplitName(target)) {
    if (part.empty() || part == ".") continue;
    if (part != "..") {
      descended = true;
      continue;
    }
    if (descended) return refuse("has '..' after another component");
    if (--depth < 0) return refuse("points out of the tree");
  }
  return OkStatus();
}

std::string ManifestJson(const Manifest& manifest) {
  Json entries = Json::array();
  for (const Entry& entry : manifest.entries) {
    Json item = {{"path", entry.path},
                 {"type", TypeName(entry.type)},
                 {"mode", entry.mode},
                 {"mtime_ns", entry.mtime_ns}};
    if (entry.type == EntryType::kFile) {
      item["size"] = entry.size;
      item["sha256"] = Hex(entry.sha256);
    }
    if (entry.type == EntryType::kSymlink) item["target"] = entry.target;
    entries.push_back(std::move(item));
  }
  const Json document = {{"format", kManifestFormat},
                         {"tenant", manifest.tenant},
                         {"created", manifest.created},
                         {"entries", std::move(entries)}};
  return document.dump();
}

Result<Manifest> ParseManifest(std::string_view text) {
  if (text.size() > kMaxManifestBytes) return Error(Forged("is too large"));
  const Json document = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded() || !document.is_object() ||
      !OnlyMembers(document, {"format", "tenant", "created", "entries"})) {
    return Error(Forged("is not a JSON object of format, tenant, created and entries"));
  }
  if (!document.contains("format") || document["format"] != kManifestFormat) {
    return Error(Forged("is not of format " + std::string(kManifestFormat)));
  }
  if (!document.contains("tenant") || !document["tenant"].is_string() ||
      !document.contains("created") || !document["created"].is_string() ||
      !document.contains("entries") || !document["entries"].is_array()) {
    return Error(Forged("lacks its tenant, creation time or entries"));
  }
  Manifest manifest;
  manifest.tenant = document["tenant"].get<std::string>();
  manifest.created = document["created"].get<std::string>();
  std::set<std::string> seen;
  for (const Json& item : document["entries"]) {
    ASSIGN_OR_RETURN(Entry entry, ParseEntry(item));
    if (!seen.insert(entry.path).second) {
      return Error(Forged("lists '" + entry.path + "' twice"));
    }
    manifest.entries.push_back(std::move(entry));
  }
  return manifest;
}

}  // namespace kmsd::backup
