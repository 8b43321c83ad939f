// User text never reaches FTS5 as syntax: every word is a quoted string.
#include <gtest/gtest.h>

#include "search/fts_query.hpp"

namespace pa::search {
namespace {

TEST(FtsQuery, WordsAreQuotedAndAnded) {
  EXPECT_EQ(build_fts_query("login bug").expression, R"q(body : ("login" AND "bug"))q");
  EXPECT_EQ(build_fts_query("  login\t\nbug  ").expression, R"q(body : ("login" AND "bug"))q");
}

TEST(FtsQuery, SyntaxIsSearchedForNotInterpreted) {
  EXPECT_EQ(build_fts_query("a OR b").expression, R"q(body : ("a" AND "OR" AND "b"))q");
  EXPECT_EQ(build_fts_query("NEAR(x y)").expression, R"q(body : ("NEAR(x" AND "y)"))q");
  EXPECT_EQ(build_fts_query("say\"hi\"").expression, R"q(body : ("say""hi"""))q");
  EXPECT_EQ(build_fts_query("project:p1 ^x").expression, R"q(body : ("project:p1" AND "^x"))q");
}

TEST(FtsQuery, PrefixTerms) {
  EXPECT_EQ(build_fts_query("auth*").expression, R"q(body : ("auth"*))q");
  EXPECT_EQ(build_fts_query("abc**").expression, R"q(body : ("abc"*))q");
  EXPECT_NE(build_fts_query("ab*").error, "");
  EXPECT_NE(build_fts_query("*").error, "");  // nothing but punctuation
}

TEST(FtsQuery, PunctuationOnlyWordsAreDroppedAndAloneRefused) {
  EXPECT_EQ(build_fts_query("fix -- it").expression, R"q(body : ("fix" AND "it"))q");
  EXPECT_NE(build_fts_query("-- && ()").error, "");
  EXPECT_NE(build_fts_query("   ").error, "");
  EXPECT_EQ(build_fts_query("größe").expression, "body : (\"größe\")");
}

TEST(FtsQuery, ControlCharactersSeparateWords) {
  EXPECT_EQ(build_fts_query(std::string("a\0b\x01"
                                        "c\x7f",
                                        6))
                .expression,
            R"q(body : ("a" AND "b" AND "c"))q");
}

TEST(FtsQuery, TooManyWords) {
  std::string text;
  for (std::size_t i = 0; i <= kMaxQueryTerms; ++i) text += "w" + std::to_string(i) + " ";
  EXPECT_NE(build_fts_query(text).error, "");
}

TEST(FtsQuery, ProjectFilter) {
  EXPECT_EQ(build_fts_query("bug", "p7").expression, R"q(project : p7 AND body : ("bug"))q");
}

}  // namespace
}  // namespace pa::search
