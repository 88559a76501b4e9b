#include "tests/support/secret_forms.h"

#include "protocol/base64.h"

namespace kmsd::testing {

std::string Hex(std::string_view bytes, bool upper) {
  const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 0xf];
  }
  return out;
}

std::vector<std::string> SecretForms(std::string_view secret) {
  const std::string b64 =
      Base64Encode({reinterpret_cast<const uint8_t*>(secret.data()), secret.size()});
  std::string b64url = b64;
  for (char& c : b64url) c = c == '+' ? '-' : c == '/' ? '_' : c;
  while (!b64url.empty() && b64url.back() == '=') b64url.pop_back();
  return {std::string(secret), Hex(secret, false), Hex(secret, true), b64, b64url};
}

}  // namespace kmsd::testing
