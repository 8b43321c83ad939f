// What of a history entry is searchable.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "search/entry_text.hpp"
#include "search/searcher.hpp"

namespace pa::search {
namespace {

std::string text(std::string_view direction, std::string_view message) {
  return searchable_text(direction, boost::json::parse(message).as_object());
}

TEST(EntryText, PromptOfAnExecute) {
  EXPECT_EQ(text("client", R"({"type":"execute","data":{"prompt":"fix the login"}})"),
            "fix the login");
}

TEST(EntryText, AssistantTextAndToolInput) {
  const auto t = text("claude", R"({"type":"assistant","message":{"content":[
      {"type":"text","text":"Running it."},
      {"type":"thinking","thinking":"secret"},
      {"type":"tool_use","name":"Bash","input":{"command":"grep -r login","nested":[{"x":"deep"}],"n":5}}]}})");
  EXPECT_EQ(t, "Running it.\nBash\ngrep -r login\ndeep");
}

TEST(EntryText, ToolResultsAsStringOrBlocks) {
  EXPECT_EQ(text("claude", R"({"type":"user","message":{"content":[
      {"type":"tool_result","content":"file1"},
      {"type":"tool_result","content":[{"type":"text","text":"file2"},{"type":"image"}]}]}})"),
            "file1\nfile2");
  EXPECT_EQ(text("claude", R"({"type":"user","message":{"content":"a replayed prompt"}})"), "");
}

TEST(EntryText, OtherEntriesHaveNone) {
  EXPECT_EQ(text("server", R"({"type":"project_state","data":{"state":"IDLE"}})"), "");
  EXPECT_EQ(text("claude", R"({"type":"result","result":"done"})"), "");
  EXPECT_EQ(text("claude", R"({"type":"assistant"})"), "");
  EXPECT_EQ(text("client", R"({"type":"execute","data":{"prompt":5}})"), "");
}

TEST(EntryText, CutAtTheCapOnACodePointAndMarkersReplaced) {
  std::string big(kMaxEntryTextBytes - 1, 'a');
  big += "é";
  const auto t = text("client", R"({"type":"execute","data":{"prompt":")" + big + "\"}}");
  EXPECT_EQ(t.size(), kMaxEntryTextBytes - 1);  // é would pass the cap: cut before it
  const auto m = text("client", R"({"type":"execute","data":{"prompt":"a\u0001b\u0002c"}})");
  EXPECT_EQ(m, "a b c");
}

TEST(Snippet, MarksInUtf16UnitsAndSpaceFolded) {
  const auto s = make_snippet("…fix \x01login\x02\n\n  and \x01Login\x02");
  EXPECT_EQ(s.text, "…fix login and Login");
  ASSERT_EQ(s.marks.size(), 2u);
  EXPECT_EQ(s.marks[0], (std::pair<std::size_t, std::size_t>{5, 10}));  // "…" is one unit
  EXPECT_EQ(s.marks[1], (std::pair<std::size_t, std::size_t>{15, 20}));
  const auto emoji = make_snippet("😀 \x01x\x02");  // outside the BMP: two units
  EXPECT_EQ(emoji.marks[0], (std::pair<std::size_t, std::size_t>{3, 4}));
}

}  // namespace
}  // namespace pa::search
