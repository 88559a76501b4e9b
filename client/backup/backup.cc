#include "client/backup/backup.h"

#include <errno.h>
#include <unistd.h>

#include <cstring>
#include <ctime>

#include "client/backup/decrypting_source.h"
#include "client/store/tenant_store.h"

namespace kmsd::backup {

Result<Manifest> ReadBackup(esdk::MaterialsManager& materials, int fd, const EntryVisitor& visitor,
                            const ProgressFn& progress, esdk::Bytes* message_id) {
  DecryptingSource source(materials, fd);
  ASSIGN_OR_RETURN(Manifest manifest,
                   ReadArchive([&] { return source.Next(); }, visitor, progress));
  const esdk::Header* header = source.header();
  if (header == nullptr) return Error(Code::kInternal, "the backup's header was not read");
  const auto tenant = header->context.find(std::string(kContextTenant));
  if (tenant == header->context.end() || tenant->second != manifest.tenant) {
    return Error(Code::kInvalidCiphertext, "the manifest's tenant is not the backup's");
  }
  if (message_id != nullptr) *message_id = header->message_id;
  return manifest;
}

std::string Rfc3339(int64_t seconds) {
  const time_t when = static_cast<time_t>(seconds);
  struct tm utc {};
  gmtime_r(&when, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

std::optional<int64_t> ParseRfc3339(std::string_view text) {
  struct tm utc {};
  const std::string copy(text);
  const char* end = strptime(copy.c_str(), "%Y-%m-%dT%H:%M:%SZ", &utc);
  if (end == nullptr || *end != '\0') return std::nullopt;
  return static_cast<int64_t>(timegm(&utc));
}

Result<WriteSummary> CreateBackup(esdk::MaterialsManager& materials, const std::string& tenant,
                                  const std::string& created,
                                  const std::vector<TreeSource>& sources, const esdk::Sink& out,
                                  const ProgressFn& progress) {
  const esdk::EncryptOptions options{
      .suite_id = esdk::kCommittingSuite,
      .frame_length = kBackupFrameLength,
      .context = {{std::string(kContextTenant), tenant}, {std::string(kContextCreated), created}},
      .plaintext_bytes = std::nullopt};
  ASSIGN_OR_RETURN(auto encryptor, esdk::Encryptor::Start(materials, options, out));
  ASSIGN_OR_RETURN(
      WriteSummary summary,
      WriteArchive(
          sources, tenant, created,
          [&](std::span<const uint8_t> bytes) { return encryptor->Write(bytes); }, progress));
  RETURN_IF_ERROR(encryptor->Finish());
  return summary;
}

Result<BackupLabel> ReadLabel(int fd) {
  std::optional<esdk::ParsedHeader> parsed = store::ReadHeader(fd);
  if (!parsed) return Error(Code::kInvalidCiphertext, "not an encrypted backup");
  const auto& context = parsed->header.context;
  const auto tenant = context.find(std::string(kContextTenant));
  const auto created = context.find(std::string(kContextCreated));
  if (tenant == context.end() || created == context.end()) {
    return Error(Code::kInvalidCiphertext, "a message, but not a kmsd backup");
  }
  return BackupLabel{tenant->second, created->second};
}

Result<Manifest> VerifyBackup(esdk::MaterialsManager& materials, int fd,
                              const ProgressFn& progress) {
  return ReadBackup(materials, fd, EntryVisitor{}, progress, nullptr);
}

}  // namespace kmsd::backup
