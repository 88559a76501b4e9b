// The audit log's pure parts: a line and its chain hash, and entry times.
#include "protocol/audit_entry.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <ctime>
#include <limits>
#include <random>
#include <string>

#include "protocol/hex.h"
#include "protocol/sha256.h"

namespace kmsd {
namespace {

TEST(AuditLineTest, ALineIsItsEntryTabItsChainHashAndTheChainFollowsTheDigests) {
  audit::Digest head{};
  const std::string line = audit::MakeLine(12345678901234, "{\"type\":\"request\"}", &head);
  const std::string entry = "{\"seq\":12345678901234,\"type\":\"request\"}";
  // chain(1) = SHA-256(chain(0) || SHA-256(entry)), chain(0) all zero.
  std::string both(32, '\0');
  const auto entry_digest = Sha256Of(entry);
  both.append(reinterpret_cast<const char*>(entry_digest.data()), entry_digest.size());
  EXPECT_EQ(line, entry + "\t" + Hex(Sha256Of(both)) + "\n");
  EXPECT_EQ(Hex(head), Hex(Sha256Of(both)));
  EXPECT_EQ(audit::MakeLine(1, "{}", &head).substr(0, 10), "{\"seq\":1}\t");
}

// What the formatter replaced: gmtime_r and snprintf.
std::string ReferenceTime(int64_t unix_nanos) {
  int64_t seconds = unix_nanos / 1'000'000'000;
  int64_t nanos = unix_nanos % 1'000'000'000;
  if (nanos < 0) {
    nanos += 1'000'000'000;
    --seconds;
  }
  const time_t whole = static_cast<time_t>(seconds);
  struct tm utc;
  gmtime_r(&whole, &utc);
  char out[64];
  std::snprintf(out, sizeof out, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<unsigned>(nanos / 1000));
  return out;
}

TEST(AuditTimeTest, KnownInstantsAndTheEndsOfTheRange) {
  EXPECT_EQ(audit::Rfc3339Micros(0), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(audit::Rfc3339Micros(-1), "1969-12-31T23:59:59.999999Z");
  EXPECT_EQ(audit::Rfc3339Micros(951782400'000'000'000), "2000-02-29T00:00:00.000000Z");
  EXPECT_EQ(audit::Rfc3339Micros(1796323200'123'456'789), "2026-12-03T18:40:00.123456Z");
  const int64_t lowest = std::numeric_limits<int64_t>::min();
  const int64_t highest = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(audit::Rfc3339Micros(lowest), ReferenceTime(lowest));
  EXPECT_EQ(audit::Rfc3339Micros(highest), "2262-04-11T23:47:16.854775Z");
  EXPECT_EQ(audit::Rfc3339MicrosText(highest).view(), audit::Rfc3339Micros(highest));
}

TEST(AuditTimeTest, AgreesWithGmtimeAndRoundTripsEverywhere) {
  std::mt19937_64 random(20261205);
  for (int i = 0; i < 200000; ++i) {
    const auto nanos = static_cast<int64_t>(random());
    ASSERT_EQ(audit::Rfc3339Micros(nanos), ReferenceTime(nanos)) << nanos;
    if (nanos >= 0) {
      // Parsing keeps microseconds: the text's instant, rounded down.
      const int64_t micros = nanos - nanos % 1000;
      ASSERT_EQ(audit::ParseRfc3339Micros(audit::Rfc3339Micros(nanos)), micros) << nanos;
    }
  }
}

}  // namespace
}  // namespace kmsd
