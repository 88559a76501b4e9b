// Keyrings named on kmsctl's command line (docs/CLI.md, "envelope"):
//
//   kmsd:TENANT/KEY                 kmsd's generate-data-key / decrypt (KEY: an
//                                   id, a name or alias/NAME)
//   raw-aes:NAMESPACE/NAME:KEYFILE  a file of 16, 24 or 32 raw bytes
//   raw-rsa:NAMESPACE/NAME:PEMFILE  a public key (encrypt) or private key
//                                   (decrypt), padding from --rsa-padding
//
// Several specs make a multi-keyring: the first generates the data key, the
// others add their EDKs of it; on decrypt they are tried in order. A spec
// that cannot be read is INVALID_ARGUMENT (a usage error).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "client/esdk/keyring.h"
#include "client/esdk/raw_rsa_keyring.h"
#include "tools/kmsctl/cli.h"

namespace kmsd::kmsctl {

Result<std::unique_ptr<esdk::Keyring>> KeyringFromSpecs(Invocation& invocation,
                                                        const std::vector<std::string>& specs,
                                                        esdk::RsaPadding rsa_padding);

}  // namespace kmsd::kmsctl
