// SoftHSM2's file object store rewrites a token's `token.object` in place
// (opened with O_TRUNC, then written) on every C_Login, successful or not. A
// process killed between the two, or a machine that loses power, leaves it
// empty: the token loses its label, flags and PIN-wrapped token key, and with
// them every key it holds. So, for SoftHSM2 with its file backend only:
// - after each login, kmsd keeps a copy of its token's `token.object` beside it
//   (`token.object.kmsd-copy`, same mode, written to a temporary file, synced
//   and renamed into place), found by the token's serial number;
// - before C_Initialize reads the tokens, an empty `token.object` (what a kill
//   leaves: SoftHSM2 writes it in one write(2)) is restored from the copy the
//   same way. A shorter one is left alone: it may be a token initialized again.
// Neither takes SoftHSM2's lock (it truncates before it locks): another
// process rewriting the file at that moment could be copied empty (not kept:
// the serial is not in it) or lose its rewrite to the copy (the same PINs).
// The copy holds nothing token.object does not (the token key is wrapped under
// the PIN); SoftHSM2 reads only files named *.object, so it ignores it.
// Other modules and SoftHSM2's database backend are left alone.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/status.h"

namespace kmsd::pkcs11 {

inline constexpr std::string_view kTokenObjectCopyName = "token.object.kmsd-copy";

// The token directory of SoftHSM2's file backend when `module_path` is
// SoftHSM2: from the file SOFTHSM2_CONF names, else ~/.config/softhsm2/ or
// /etc/softhsm/ softhsm2.conf, as SoftHSM2 looks.
// nullopt for another module, the database backend, or no readable file.
std::optional<std::filesystem::path> SoftHsmTokenDir(std::string_view module_path);

// Restores every empty `<token dir>/token.object` under `token_root` that has
// a kmsd copy; returns the files restored.
Result<std::vector<std::string>> RestoreTokenObjects(const std::filesystem::path& token_root);

// Copies the `token.object` that holds the serial number `serial` (exactly
// one must) to its kmsd copy, unless the copy is the same already.
Status KeepTokenObjectCopy(const std::filesystem::path& token_root, std::string_view serial);

}  // namespace kmsd::pkcs11
