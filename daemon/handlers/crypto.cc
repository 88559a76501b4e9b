// Cryptographic handlers: encrypt, decrypt, re-encrypt, their batch forms,
// generate-data-key(-without-plaintext). Each notes the key versions it used
// in the request's context. The table checks the key of encrypt and data-key
// requests; the others check each key here: a ciphertext's (by its id, with
// the request's context), each batch item's, re-encrypt's destination.
#include <optional>

#include "daemon/handlers/handler.h"
#include "daemon/tenant_rules.h"
#include "protocol/limits.h"
#include "protocol/names.h"

namespace kmsd {
namespace {

template <typename Out>
Out& NoteKey(Call& call, Out& out, const KeyId& id, std::string key_name, uint32_t version,
             std::string_view role = {}) {
  out.key_id = KeyIdToHex(id);
  out.key_name = std::move(key_name);
  out.version = version;
  call.Touched(out.key_id, out.key_name, out.version, role);
  return out;
}

// The authorize stage's word on the key `ciphertext` names; a ciphertext too
// broken to name one is refused as decrypting it would be.
Status AuthorizeCiphertextKey(Call& call, Permission permission,
                              std::span<const uint8_t> ciphertext,
                              const EncryptionContext& context) {
  ASSIGN_OR_RETURN(ParsedCiphertext parsed, ParseCiphertext(ciphertext));
  return call.AuthorizeKeyId(permission, parsed.key_id, &context);
}

Result<ops::EncryptReply> EncryptOne(Call& call, std::string_view key,
                                     std::span<const uint8_t> plaintext,
                                     const EncryptionContext& context, std::string_view role = {}) {
  ASSIGN_OR_RETURN(EncryptOutput out,
                   call.hierarchy().Encrypt(call.tenant(), key, plaintext, context));
  ops::EncryptReply reply;
  reply.ciphertext = std::move(out.ciphertext);
  return std::move(NoteKey(call, reply, out.key_id, std::move(out.key_name), out.version, role));
}

Result<ops::DecryptReply> DecryptOne(Call& call, std::span<const uint8_t> ciphertext,
                                     const EncryptionContext& context,
                                     std::optional<std::string_view> expected_key,
                                     std::string_view role = {}) {
  ASSIGN_OR_RETURN(DecryptOutput out,
                   call.hierarchy().Decrypt(call.tenant(), ciphertext, context, expected_key));
  ops::DecryptReply reply;
  reply.plaintext = std::move(out.plaintext);
  return std::move(NoteKey(call, reply, out.key_id, std::move(out.key_name), out.version, role));
}

// Decrypts `ciphertext` and encrypts its plaintext under the newest version of
// `destination` (by default the ciphertext's own key).
Result<ops::ReEncryptReply> ReEncryptOne(Call& call, std::span<const uint8_t> ciphertext,
                                         const EncryptionContext& context,
                                         std::optional<std::string_view> destination,
                                         const EncryptionContext& destination_context) {
  if (destination) RETURN_IF_ERROR(ValidateKeyReference(*destination));
  RETURN_IF_ERROR(AuthorizeCiphertextKey(call, Permission::kReEncryptFrom, ciphertext, context));
  ASSIGN_OR_RETURN(ops::DecryptReply source,
                   DecryptOne(call, ciphertext, context, std::nullopt, "source"));
  const std::string target = destination ? std::string(*destination) : source.key_name;
  RETURN_IF_ERROR(call.AuthorizeKey(Permission::kReEncryptTo, target, &destination_context));
  ASSIGN_OR_RETURN(
      ops::EncryptReply encrypted,
      EncryptOne(call, target, source.plaintext.RevealSpan(), destination_context, "destination"));
  ops::ReEncryptReply reply;
  reply.ciphertext = std::move(encrypted.ciphertext);
  static_cast<ops::KeyUsed&>(reply) = std::move(static_cast<ops::KeyUsed&>(encrypted));
  reply.source_key_id = std::move(source.key_id);
  reply.source_version = source.version;
  return reply;
}

Result<ops::EncryptReply> Encrypt(Call& call, const ops::EncryptRequest& request) {
  return EncryptOne(call, request.key, request.plaintext, request.context);
}

Result<ops::DecryptReply> Decrypt(Call& call, const ops::DecryptRequest& request) {
  RETURN_IF_ERROR(
      AuthorizeCiphertextKey(call, Permission::kDecrypt, request.ciphertext, request.context));
  return DecryptOne(call, request.ciphertext, request.context, request.key);
}

Result<ops::ReEncryptReply> ReEncrypt(Call& call, const ops::ReEncryptRequest& request) {
  return ReEncryptOne(call, request.ciphertext, request.context, request.destination_key,
                      request.destination_context.value_or(request.context));
}

// Runs `one` on every item of a batch (1 to kMaxBatchItems); a failed item
// becomes an error entry, the others go on. `check` runs once the count is
// known to be right: what it refuses (an unknown tenant or key) fails the
// whole call rather than every item alike.
template <typename Item, typename Result, typename Check, typename One>
::kmsd::Result<ops::BatchReply<Result>> ForEachItem(Call& call, const BatchItems<Item>& items,
                                                    Check&& check, One&& one) {
  if (items.size() == 0 || items.size() > kMaxBatchItems) {
    return Error(Code::kInvalidArgument,
                 "items must hold 1 to " + std::to_string(kMaxBatchItems) + " entries");
  }
  RETURN_IF_ERROR(check());
  ops::BatchReply<Result> reply;
  reply.results.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    call.BeginItem(static_cast<uint32_t>(i));
    reply.results.push_back([&]() -> ::kmsd::Result<Result> {
      ASSIGN_OR_RETURN(Item item, DecodeItem(items, i));
      return one(item);
    }());
    call.ItemDone(reply.results.back() ? Code::kOk : reply.results.back().error().code());
  }
  return reply;
}

Result<ops::BatchReply<ops::BatchEncryptResult>> BatchEncrypt(
    Call& call, const ops::BatchEncryptRequest& request) {
  auto check = [&] { return StatusOf(call.hierarchy().DescribeKey(call.tenant(), request.key)); };
  return ForEachItem<ops::PlaintextItem, ops::BatchEncryptResult>(
      call, request.items, check,
      [&](const ops::PlaintextItem& item) -> Result<ops::BatchEncryptResult> {
        RETURN_IF_ERROR(call.AuthorizeKey(Permission::kEncrypt, request.key, &item.context));
        ASSIGN_OR_RETURN(ops::EncryptReply out,
                         EncryptOne(call, request.key, item.plaintext, item.context));
        return ops::BatchEncryptResult{.ciphertext = std::move(out.ciphertext),
                                       .version = out.version};
      });
}

Result<ops::BatchReply<ops::DecryptReply>> BatchDecrypt(Call& call,
                                                        const ops::BatchDecryptRequest& request) {
  auto check = [&] { return StatusOf(call.hierarchy().DescribeTenant(call.tenant())); };
  return ForEachItem<ops::CiphertextItem, ops::DecryptReply>(
      call, request.items, check,
      [&](const ops::CiphertextItem& item) -> Result<ops::DecryptReply> {
        RETURN_IF_ERROR(
            AuthorizeCiphertextKey(call, Permission::kDecrypt, item.ciphertext, item.context));
        return DecryptOne(call, item.ciphertext, item.context, std::nullopt);
      });
}

Result<ops::BatchReply<ops::ReEncryptReply>> BatchReEncrypt(
    Call& call, const ops::BatchReEncryptRequest& request) {
  const auto& destination = request.destination_key;
  auto check = [&] {
    return destination ? StatusOf(call.hierarchy().DescribeKey(call.tenant(), *destination))
                       : StatusOf(call.hierarchy().DescribeTenant(call.tenant()));
  };
  return ForEachItem<ops::CiphertextItem, ops::ReEncryptReply>(
      call, request.items, check,
      [&](const ops::CiphertextItem& item) -> Result<ops::ReEncryptReply> {
        return ReEncryptOne(call, item.ciphertext, item.context, destination, item.context);
      });
}

// Size of a data key: key_spec AES_256 (default) or AES_128, or number_of_bytes.
Result<size_t> DataKeySize(const ops::DataKeyRequest& request) {
  if (request.key_spec && request.number_of_bytes) {
    return Error(Code::kInvalidArgument, "give key_spec or number_of_bytes, not both");
  }
  if (const auto bytes = request.number_of_bytes) {
    RETURN_IF_ERROR(CheckNumberOfBytes(*bytes));
    return static_cast<size_t>(*bytes);
  }
  if (!request.key_spec || *request.key_spec == "AES_256") return size_t{32};
  if (*request.key_spec == "AES_128") return size_t{16};
  return Error(Code::kInvalidArgument, "key_spec must be AES_256 or AES_128");
}

template <bool kWithPlaintext>
Result<ops::DataKeyReply> GenerateDataKey(Call& call, const ops::DataKeyRequest& request) {
  ASSIGN_OR_RETURN(size_t size, DataKeySize(request));
  // Taken before the key is made (two requests cannot both have the last
  // one), given back when it is not made.
  TenantRules* rules = call.deps().rules;
  if (rules != nullptr) RETURN_IF_ERROR(rules->TakeDataKeys(call.tenant(), 1));
  SecretBuffer data_key(size);
  auto make = [&]() -> Result<ops::EncryptReply> {
    RETURN_IF_ERROR(call.token().GenerateRandom({data_key.RevealMutableData(), data_key.size()}));
    return EncryptOne(call, request.key, data_key.RevealSpan(), request.context);
  };
  Result<ops::EncryptReply> made = make();
  if (!made) {
    if (rules != nullptr) rules->GiveDataKeys(call.tenant(), 1);
    return Error(std::move(made).error());
  }
  ops::EncryptReply encrypted = std::move(*made);
  ops::DataKeyReply reply;
  reply.ciphertext = std::move(encrypted.ciphertext);
  static_cast<ops::KeyUsed&>(reply) = std::move(static_cast<ops::KeyUsed&>(encrypted));
  if (kWithPlaintext) reply.plaintext = std::move(data_key);
  return reply;
}

}  // namespace

void AddCryptoHandlers(HandlerTable& table) {
  constexpr auto kHere = ResourceCheck::kHandlerChecks;
  table.Add<ops::Encrypt, Encrypt>();
  table.Add<ops::Decrypt, Decrypt, kHere>();
  table.Add<ops::ReEncrypt, ReEncrypt, kHere>();
  table.Add<ops::BatchEncrypt, BatchEncrypt, kHere>();
  table.Add<ops::BatchDecrypt, BatchDecrypt, kHere>();
  table.Add<ops::BatchReEncrypt, BatchReEncrypt, kHere>();
  table.Add<ops::GenerateDataKey, GenerateDataKey<true>>();
  table.Add<ops::GenerateDataKeyWithoutPlaintext, GenerateDataKey<false>>();
}

}  // namespace kmsd
