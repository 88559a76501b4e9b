#include "tools/kmsctl/keyring_spec.h"

#include "client/esdk/kmsd_keyring.h"
#include "client/esdk/multi_keyring.h"
#include "client/esdk/raw_aes_keyring.h"

namespace kmsd::kmsctl {
namespace {

constexpr size_t kMaxPemBytes = 64 * 1024;

Status BadSpec(const std::string& spec, std::string_view why) {
  return Status(Code::kInvalidArgument, "keyring '" + spec + "': " + std::string(why));
}

// "NAMESPACE/NAME:FILE" into its three parts (NAME ends at the first ':').
struct NamedFile {
  std::string key_namespace, name, file;
};
Result<NamedFile> SplitNamedFile(const std::string& spec, std::string_view rest) {
  const size_t slash = rest.find('/');
  const size_t colon = slash == std::string_view::npos ? slash : rest.find(':', slash + 1);
  if (slash == 0 || colon == std::string_view::npos || colon == slash + 1 ||
      colon + 1 == rest.size()) {
    return Error(BadSpec(spec, "expected NAMESPACE/NAME:FILE"));
  }
  // stdin is the data: a key cannot come from there too.
  if (rest.substr(colon + 1) == "-") return Error(BadSpec(spec, "a key file cannot be stdin"));
  return NamedFile{std::string(rest.substr(0, slash)),
                   std::string(rest.substr(slash + 1, colon - slash - 1)),
                   std::string(rest.substr(colon + 1))};
}

Result<std::unique_ptr<esdk::Keyring>> OneKeyring(Invocation& invocation, const std::string& spec,
                                                  esdk::RsaPadding rsa_padding) {
  const size_t colon = spec.find(':');
  const std::string_view kind = std::string_view(spec).substr(0, colon);
  const std::string_view rest =
      colon == std::string::npos ? "" : std::string_view(spec).substr(colon + 1);
  if (kind == "kmsd") {
    const size_t slash = rest.find('/');
    if (slash == 0 || slash == std::string_view::npos || slash + 1 == rest.size()) {
      return Error(BadSpec(spec, "expected kmsd:TENANT/KEY"));
    }
    ASSIGN_OR_RETURN(Connection * connection, invocation.Connect());
    return std::unique_ptr<esdk::Keyring>(std::make_unique<esdk::KmsdKeyring>(
        *connection, std::string(rest.substr(0, slash)), std::string(rest.substr(slash + 1))));
  }
  if (kind == "raw-aes") {
    ASSIGN_OR_RETURN(NamedFile named, SplitNamedFile(spec, rest));
    ASSIGN_OR_RETURN(SecretBuffer key, ReadKeyFile("wrapping key file", named.file, 32, true));
    ASSIGN_OR_RETURN(auto keyring,
                     esdk::RawAesKeyring::Create(named.key_namespace, named.name, std::move(key)));
    return std::unique_ptr<esdk::Keyring>(std::move(keyring));
  }
  if (kind == "raw-rsa") {
    ASSIGN_OR_RETURN(NamedFile named, SplitNamedFile(spec, rest));
    // A private key must be private; a public key may be read by anyone.
    ASSIGN_OR_RETURN(SecretBuffer pem, ReadKeyFile("key file", named.file, kMaxPemBytes, false));
    const std::string_view head(reinterpret_cast<const char*>(pem.RevealData()), pem.size());
    if (head.find("PRIVATE KEY-----") != std::string_view::npos) {
      ASSIGN_OR_RETURN(pem, ReadKeyFile("private key file", named.file, kMaxPemBytes, true));
    }
    const std::string_view text(reinterpret_cast<const char*>(pem.RevealData()), pem.size());
    ASSIGN_OR_RETURN(auto keyring, esdk::RawRsaKeyring::FromPem(named.key_namespace, named.name,
                                                                rsa_padding, text));
    return std::unique_ptr<esdk::Keyring>(std::move(keyring));
  }
  return Error(BadSpec(spec, "expected kmsd:, raw-aes: or raw-rsa:"));
}

}  // namespace

Result<std::unique_ptr<esdk::Keyring>> KeyringFromSpecs(Invocation& invocation,
                                                        const std::vector<std::string>& specs,
                                                        esdk::RsaPadding rsa_padding) {
  if (specs.empty()) return Error(Status(Code::kInvalidArgument, "give at least one --keyring"));
  std::vector<std::unique_ptr<esdk::Keyring>> keyrings;
  for (const std::string& spec : specs) {
    // Reading a spec is a usage error; dialing kmsd for one is not.
    auto keyring = OneKeyring(invocation, spec, rsa_padding);
    if (!keyring.has_value()) {
      return Error(keyring.error().code() == Code::kInvalidArgument
                       ? invocation.AsUsage(keyring.error())
                       : keyring.error());
    }
    keyrings.push_back(std::move(*keyring));
  }
  if (keyrings.size() == 1) return std::move(keyrings.front());
  std::unique_ptr<esdk::Keyring> generator = std::move(keyrings.front());
  keyrings.erase(keyrings.begin());
  return std::unique_ptr<esdk::Keyring>(
      std::make_unique<esdk::MultiKeyring>(std::move(generator), std::move(keyrings)));
}

}  // namespace kmsd::kmsctl
