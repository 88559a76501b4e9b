// Test helpers for audit logs on disk (docs/AUDIT.md's format), written from
// the document rather than from daemon/audit/, so that they also check that
// the format can be implemented from it: read a log's lines, write them
// back, and rewrite a whole log as a forger would (every chain hash
// recomputed, every seal made again with a key that is not the token's).
#pragma once

#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace kmsd::testing {

// File name -> its lines without their LF (a torn last line is kept as is).
using AuditLines = std::map<std::string, std::vector<std::string>>;

inline AuditLines ReadAuditLines(const std::filesystem::path& dir) {
  AuditLines out;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with("audit-") || !name.ends_with(".log")) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::string line;
    auto& lines = out[name];
    while (std::getline(in, line)) lines.push_back(line);
  }
  return out;
}

inline void WriteAuditLines(const std::filesystem::path& dir, const AuditLines& files) {
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with("audit-") && !files.contains(name)) std::filesystem::remove(entry);
  }
  for (const auto& [name, lines] : files) {
    std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
    for (const std::string& line : lines) out << line << '\n';
  }
}

inline std::string AuditHex(const unsigned char* bytes, size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < size; ++i) {
    out.push_back(kDigits[bytes[i] >> 4]);
    out.push_back(kDigits[bytes[i] & 0xf]);
  }
  return out;
}

inline std::array<unsigned char, 32> AuditUnhex(const std::string& hex) {
  std::array<unsigned char, 32> out{};
  for (size_t i = 0; i < out.size() && 2 * i + 1 < hex.size(); ++i) {
    out[i] = static_cast<unsigned char>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
  }
  return out;
}

// The entry (the bytes before the last tab) of a line.
inline std::string AuditEntryOf(const std::string& line) {
  return line.substr(0, line.rfind('\t'));
}

inline nlohmann::json AuditJsonOf(const std::string& line) {
  return nlohmann::json::parse(AuditEntryOf(line));
}

// Rewrites every line after an edit: the chain hashes from the start, open
// entries' previous_head, and seals' head and mac, the MAC with `hmac_key`
// (a forger's, not the token's).
inline void ForgeAuditChain(AuditLines& files, const std::string& hmac_key) {
  std::array<unsigned char, 32> head{};
  std::map<uint64_t, std::array<unsigned char, 32>> hashes;
  for (auto& [name, lines] : files) {
    for (std::string& line : lines) {
      nlohmann::json entry = AuditJsonOf(line);
      if (entry["type"] == "open") entry["previous_head"] = AuditHex(head.data(), head.size());
      if (entry["type"] == "seal") {
        const auto covered = hashes[entry["covers"].get<uint64_t>()];
        entry["head"] = AuditHex(covered.data(), covered.size());
        std::string input = "kmsd audit seal v1";
        input.push_back('\0');
        const uint64_t covers = entry["covers"].get<uint64_t>();
        for (int shift = 56; shift >= 0; shift -= 8)
          input.push_back(static_cast<char>(covers >> shift));
        input.append(reinterpret_cast<const char*>(covered.data()), covered.size());
        unsigned char mac[32];
        unsigned int mac_len = sizeof mac;
        HMAC(EVP_sha256(), hmac_key.data(), static_cast<int>(hmac_key.size()),
             reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &mac_len);
        entry["mac"] = AuditHex(mac, mac_len);
      }
      // An entry whose fields stay keeps its bytes; one rewritten has seq
      // first, as kmsd writes it, and the rest in any order.
      const uint64_t seq = entry["seq"].get<uint64_t>();
      std::string body = AuditEntryOf(line);
      if (entry["type"] == "open" || entry["type"] == "seal") {
        entry.erase("seq");
        body = "{\"seq\":" + std::to_string(seq) + "," + entry.dump().substr(1);
      }
      unsigned char digest[32];
      SHA256(reinterpret_cast<const unsigned char*>(body.data()), body.size(), digest);
      unsigned char both[64];
      std::copy(head.begin(), head.end(), both);
      std::copy(digest, digest + 32, both + 32);
      SHA256(both, sizeof both, head.data());
      hashes[seq] = head;
      line = body + "\t" + AuditHex(head.data(), head.size());
    }
  }
}

}  // namespace kmsd::testing
