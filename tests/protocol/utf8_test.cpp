#include "protocol/utf8.hpp"

#include <gtest/gtest.h>

namespace pa::protocol {
namespace {

TEST(ShortenUtf8, ShortTextIsUnchanged) {
  EXPECT_EQ(shorten_utf8("npm test", 8), "npm test");
  EXPECT_EQ(shorten_utf8("", 0), "");
}

TEST(ShortenUtf8, ALongTextIsCutWithAnEllipsisWithinTheLimit) {
  const std::string cut = shorten_utf8("abcdefghij", 6);
  EXPECT_EQ(cut, "abc\u2026");
  EXPECT_LE(cut.size(), 6u);
}

// Never half a character: the cut backs up to the start of a code point.
TEST(ShortenUtf8, TheCutNeverSplitsACodePoint) {
  const std::string text = "\u00e9\u00e9\u00e9\u00e9\U0001F600\U0001F600";  // 2-byte and 4-byte
  for (std::size_t max = 3; max < text.size(); ++max) {
    const std::string cut = shorten_utf8(text, max);
    EXPECT_LE(cut.size(), max) << max;
    EXPECT_TRUE(is_valid_utf8(cut)) << max;
  }
  EXPECT_EQ(shorten_utf8(text, 2), "");  // no room even for the ellipsis
}

}  // namespace
}  // namespace pa::protocol
