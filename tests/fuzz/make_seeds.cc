// make_seeds DIR: writes the generated seed corpora into DIR (tests/fuzz/corpus):
//   operation/<op>      byte 0 the operation's index in kOperationTable, then
//                       the msgpack of a valid `args` for it (operation_fuzzer)
//   pipeline/<op>[.app] a request frame for the operation, on tenant "acme"
//                       where it takes one, as admin and (".app") with the
//                       placeholder API key of principal "app" (pipeline_fuzzer)
//   tenant_policy/...   the seeds' policy documents and kmsd's own fields
// Every operation's request is filled generically from its type
// (protocol/all_operations.h): each field gets a plausible value by its type
// and name, optional ones included, so new operations get seeds with no
// change here. scripts/fuzz --seeds runs it; its output is committed.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>

#include "protocol/all_operations.h"
#include "protocol/codec.h"
#include "protocol/message.h"
#include "tests/fuzz/fuzz_frames.h"
#include "tests/support/seed_policies.h"

namespace {

using namespace kmsd;

// Plausible text for a string field, by its wire name.
std::string_view TextFor(std::string_view name) {
  if (name == "key" || name == "destination_key") return "alias/data";
  if (name == "alias") return "alias/fuzz";
  if (name == "name" || name == "principal") return fuzz::kPrincipal;
  if (name == "description") return "made by make_seeds";
  if (name == "key_spec") return "AES_256";
  if (name == "document") return fuzz::kTenantPolicy;
  if (name == "id") return "0123456789abcdef";
  if (name == "permissions") return "crypto:encrypt";
  if (name == "roles") return "user";
  if (name == "code" || name == "totp") return "123456";
  return "fuzz";
}

template <typename T>
void Fill(T& message);

template <typename M>
void FillMember(std::string_view name, M& member) {
  if constexpr (codec_internal::IsOptional<M>::value) {
    member.emplace();
    FillMember(name, *member);
  } else if constexpr (std::is_same_v<M, std::string_view> || std::is_same_v<M, std::string>) {
    member = M(TextFor(name));
  } else if constexpr (std::is_same_v<M, std::span<const uint8_t>>) {
    static constexpr uint8_t kBytes[] = {'h', 'e', 'l', 'l', 'o'};
    member = kBytes;
  } else if constexpr (std::is_same_v<M, EncryptionContext>) {
    member = {{"purpose", "fuzz"}};
  } else if constexpr (std::is_same_v<M, uint64_t> || std::is_same_v<M, uint32_t> ||
                       std::is_same_v<M, int64_t>) {
    member = 32;
  } else if constexpr (std::is_same_v<M, bool>) {
    member = true;
  } else if constexpr (std::is_same_v<M, std::vector<std::string>>) {
    member = {std::string(TextFor(name))};
  } else if constexpr (std::is_same_v<M, std::vector<uint64_t>>) {
    member = {1000};
  } else if constexpr (codec_internal::IsVector<M>::value) {
    member.resize(1);
    FillMember(name, member.front());
  } else if constexpr (codec_internal::IsBatch<M>::value) {
    member.items.resize(2);
    for (auto& item : member.items) Fill(item);
  } else {
    Fill(member);
  }
}

template <typename T>
void Fill(T& message) {
  std::apply([&](const auto&... field) { (FillMember(field.name, message.*field.member), ...); },
             T::kFields);
}

void Write(const std::filesystem::path& path, std::span<const uint8_t> bytes) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
}

void Write(const std::filesystem::path& path, std::string_view text) {
  Write(path, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds DIR (tests/fuzz/corpus)\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  uint64_t id = 1;
  int failed = 0;
  for (size_t i = 0; i < kOperationCount; ++i) {
    const OperationInfo& op = kOperationTable[i];
    VisitOperation(op.id, [&]<typename Op>() {
      typename Op::Request request{};
      Fill(request);
      const WipingBuffer args = EncodeValue(Value(Encode(typename Op::Request(request))));
      // A seed that does not decode would be a poor seed: say so.
      auto frame = Frame::Decode(args.span());
      auto fields =
          frame ? Fields::Of(frame->root(), "args") : Result<Fields>(Error(frame.error()));
      auto decoded = fields ? Decode<typename Op::Request>(*fields)
                            : Result<typename Op::Request>(Error(fields.error()));
      if (!decoded) {
        std::fprintf(stderr, "make_seeds: %s: %s\n", std::string(op.name).c_str(),
                     decoded.error().ToString().c_str());
        ++failed;
      }
      std::vector<uint8_t> body = {static_cast<uint8_t>(i)};
      body.insert(body.end(), args.data(), args.data() + args.size());
      Write(dir / "operation" / std::string(op.name), body);
      const std::string_view tenant = op.needs_tenant ? fuzz::kTenant : std::string_view();
      const WipingBuffer admin =
          EncodeValue(BuildRequest(id++, op.name, tenant, Encode(typename Op::Request(request))));
      Write(dir / "pipeline" / std::string(op.name), admin.span());
      const WipingBuffer app = EncodeValue(BuildRequest(
          id++, op.name, tenant, Encode(typename Op::Request(request)), fuzz::kApiKeyPlaceholder));
      Write(dir / "pipeline" / (std::string(op.name) + ".app"), app.span());
    });
  }
  Write(dir / "tenant_policy" / "seed-security", kmsd::testing::kSecuritySeed);
  Write(dir / "tenant_policy" / "seed-quota", kmsd::testing::kQuotaSeed);
  Write(dir / "tenant_policy" / "seed-both",
        std::string(kmsd::testing::kSecuritySeed) + std::string(kmsd::testing::kQuotaSeed));
  Write(dir / "tenant_policy" / "kmsd-fields", R"(security_policies:
  tenant_id: "acme-manufacturing"
  access_control:
    allowed_peers:
      uids: [1000, 1001]
      gids: [100]
    time_windows:
      - days: [mon, tue, wed, thu, fri]
        from: "08:00"
        until: "18:30"
        utc_offset: "+01:00"
      - days: [sat]
        from: "22:00"
        until: "06:00"
  rate_limiting:
    requests_per_minute: 60
    burst_size: 10
resource_quotas:
  keys:
    max_keys: 100
    max_data_keys_per_day: 100000
)");
  std::printf("seeds written under %s\n", dir.c_str());
  return failed == 0 ? 0 : 1;
}
