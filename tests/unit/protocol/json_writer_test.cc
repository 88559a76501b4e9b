#include "protocol/json_writer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

namespace kmsd {
namespace {

std::string Quoted(std::string_view text) {
  std::string out;
  AppendJsonString(out, text);
  return out;
}

TEST(JsonWriterTest, NestsAndSeparatesMembers) {
  std::string out;
  JsonWriter json(out);
  json.BeginObject().Key("a").Int(-3).Key("b").BeginArray();
  json.Uint(18446744073709551615u).Bool(true).Null().BeginObject().EndObject();
  json.BeginArray().EndArray().String("x").EndArray().Key("c").Bool(false).EndObject();
  EXPECT_EQ(out, R"({"a":-3,"b":[18446744073709551615,true,null,{},[],"x"],"c":false})");
}

TEST(JsonWriterTest, NestsToItsMaximumDepthWithEachLevelsCommas) {
  std::string out;
  JsonWriter json(out);
  nlohmann::json expected = nlohmann::json::array();
  for (int depth = 0; depth < JsonWriter::kMaxDepth; ++depth) json.BeginArray().Int(depth);
  for (int depth = JsonWriter::kMaxDepth - 1; depth >= 0; --depth) {
    json.Uint(static_cast<uint64_t>(depth)).EndArray();
    expected = depth == JsonWriter::kMaxDepth - 1 ? nlohmann::json{depth, depth}
                                                  : nlohmann::json{depth, expected, depth};
  }
  EXPECT_EQ(nlohmann::json::parse(out), expected);
}

TEST(JsonWriterTest, EscapesAsAJsonLibraryDoesForValidText) {
  // Every character below 0x80 and a few multi-byte ones, compared with
  // nlohmann's compact output.
  std::string all;
  for (int c = 1; c < 0x80; ++c) all.push_back(static_cast<char>(c));
  all += std::string("\0", 1) + "é€😀\u07ff\uffff";
  EXPECT_EQ(Quoted(all), nlohmann::json(all).dump());
  EXPECT_EQ(nlohmann::json::parse(Quoted(all)).get<std::string>(), all);
}

TEST(JsonWriterTest, ReplacesBytesThatAreNotUtf8) {
  const struct {
    std::string in, out;
  } cases[] = {
      {"\xff", "\xef\xbf\xbd"},
      {"a\x80z", "a\xef\xbf\xbdz"},
      {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},                                  // overlong '/'
      {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},                  // a surrogate
      {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},  // > U+10FFFF
      {"\xe2\x82", "\xef\xbf\xbd\xef\xbf\xbd"},  // cut short at the end
      {"\xe2\x82"
       "A",
       "\xef\xbf\xbd\xef\xbf\xbd"
       "A"},  // cut short mid-text
  };
  for (const auto& c : cases) {
    EXPECT_EQ(nlohmann::json::parse(Quoted(c.in)).get<std::string>(), c.out) << Quoted(c.in);
  }
}

TEST(JsonWriterTest, RandomBytesAlwaysGiveValidJson) {
  std::mt19937 random(42);
  for (int round = 0; round < 2000; ++round) {
    std::string text(random() % 40, '\0');
    for (char& c : text) c = static_cast<char>(random());
    const std::string quoted = Quoted(text);
    EXPECT_TRUE(nlohmann::json::accept(quoted)) << quoted;
  }
}

}  // namespace
}  // namespace kmsd
