#include <gtest/gtest.h>

#include "review/history_changes.hpp"
#include "review/review_support.hpp"

namespace pa::review {
namespace {

namespace json = boost::json;
using test::entry;
using test::tool_result;
using test::tool_use;

const std::string kProject = "/work/project";

TEST(HistoryChanges, CollectsEditWriteMultiEditAndNotebookEditInsideTheProject) {
  HistoryChanges collector(kProject, std::nullopt);
  collector.add_entry(entry(1, "client", {{"type", "execute"}, {"data", {{"prompt", "go"}}}}));
  collector.add_entry(entry(
      2, "claude",
      tool_use("t1", "Write", {{"file_path", kProject + "/src/new.py"}, {"content", "a\nb\n"}})));
  collector.add_entry(entry(3, "claude", tool_result("t1", false)));
  collector.add_entry(entry(4, "claude",
                            tool_use("t2", "Edit",
                                     {{"file_path", kProject + "/src/new.py"},
                                      {"old_string", "a\n"},
                                      {"new_string", "A\nA2\n"}})));
  collector.add_entry(
      entry(5, "claude",
            tool_use("t3", "MultiEdit",
                     {{"file_path", kProject + "/README.md"},
                      {"edits", json::array{{{"old_string", "x"}, {"new_string", "y"}},
                                            {{"old_string", "p\nq"}, {"new_string", "r"}}}}})));
  collector.add_entry(
      entry(6, "claude",
            tool_use("t4", "NotebookEdit",
                     {{"notebook_path", kProject + "/nb.ipynb"}, {"new_source", "print(1)"}})));
  // Outside the project, relative escapes, and other tools are not changes of the project.
  collector.add_entry(entry(
      7, "claude", tool_use("t5", "Write", {{"file_path", "/etc/passwd"}, {"content", "x"}})));
  collector.add_entry(
      entry(8, "claude",
            tool_use("t6", "Write", {{"file_path", kProject + "/../other/x"}, {"content", "x"}})));
  collector.add_entry(entry(9, "claude", tool_use("t7", "Read", {{"file_path", kProject + "/a"}})));
  collector.add_entry(entry(10, "claude", tool_use("t8", "Bash", {{"command", "rm -rf ."}})));

  const auto changes = collector.changes();
  EXPECT_EQ(changes.source, "history");
  ASSERT_EQ(changes.files.size(), 3u);
  EXPECT_EQ(changes.files[0].path, "src/new.py");
  EXPECT_EQ(changes.files[0].status, "written");
  EXPECT_EQ(changes.files[0].seqs, (std::vector<std::uint64_t>{2, 4}));
  EXPECT_EQ(changes.files[0].tools, (std::vector<std::string>{"Write", "Edit"}));
  EXPECT_EQ(changes.files[0].added, 4u);
  EXPECT_EQ(changes.files[0].deleted, 1u);
  EXPECT_EQ(changes.files[1].path, "README.md");
  EXPECT_EQ(changes.files[1].status, "edited");
  EXPECT_EQ(changes.files[1].added, 2u);
  EXPECT_EQ(changes.files[1].deleted, 3u);
  EXPECT_EQ(changes.files[2].path, "nb.ipynb");
  EXPECT_EQ(changes.files[2].tools, (std::vector<std::string>{"NotebookEdit"}));

  const auto json = to_json(changes);
  EXPECT_EQ(json.at("source"), "history");
  EXPECT_EQ(json.at("files").as_array()[0].at("seqs").as_array().size(), 2u);
}

TEST(HistoryChanges, ADeniedOrFailedCallChangedNothing) {
  HistoryChanges collector(kProject, std::nullopt);
  collector.add_entry(
      entry(1, "claude",
            tool_use("t1", "Write", {{"file_path", kProject + "/a.txt"}, {"content", "x"}})));
  collector.add_entry(entry(2, "claude", tool_result("t1", true)));
  EXPECT_TRUE(collector.changes().files.empty());
}

TEST(HistoryChanges, SinceSeqKeepsOnlyLaterCalls) {
  HistoryChanges collector(kProject, 2);
  collector.add_entry(
      entry(1, "claude",
            tool_use("t1", "Write", {{"file_path", kProject + "/old.txt"}, {"content", "x"}})));
  collector.add_entry(entry(
      3, "claude", tool_use("t2", "Write", {{"file_path", "relative.txt"}, {"content", "y"}})));
  const auto changes = collector.changes();
  ASSERT_EQ(changes.files.size(), 1u);
  EXPECT_EQ(changes.files[0].path, "relative.txt");
}

TEST(HistoryChanges, DiffShowsEachRecordedCall) {
  HistoryChanges collector(kProject, std::nullopt);
  collector.add_entry(entry(
      4, "claude",
      tool_use("t1", "Write", {{"file_path", kProject + "/a.txt"}, {"content", "one\ntwo\n"}})));
  collector.add_entry(entry(
      7, "claude",
      tool_use(
          "t2", "Edit",
          {{"file_path", kProject + "/a.txt"}, {"old_string", "two"}, {"new_string", "TWO"}})));
  collector.add_entry(
      entry(9, "claude",
            tool_use("t3", "Write", {{"file_path", kProject + "/b/c.txt"}, {"content", "c"}})));
  const auto diff = collector.diff("");
  EXPECT_EQ(diff.source, "history");
  EXPECT_EQ(diff.text,
            "diff --history a/a.txt b/a.txt\n--- a/a.txt\n+++ b/a.txt\n"
            "@@ seq 4 Write @@\n+one\n+two\n"
            "@@ seq 7 Edit @@\n-two\n+TWO\n"
            "diff --history a/b/c.txt b/b/c.txt\n--- a/b/c.txt\n+++ b/b/c.txt\n"
            "@@ seq 9 Write @@\n+c\n");
  EXPECT_EQ(collector.diff("b").text.find("a.txt"), std::string::npos);
  EXPECT_NE(collector.diff("b").text.find("c.txt"), std::string::npos);
  const auto capped = collector.diff("", 40);
  EXPECT_TRUE(capped.truncated);
  EXPECT_LE(capped.text.size(), 40u);
}

TEST(HistoryChanges, IgnoresMalformedEntries) {
  HistoryChanges collector(kProject, std::nullopt);
  collector.add_entry("not json");
  collector.add_entry(
      R"({"seq":1,"direction":"claude","message":{"type":"assistant","message":{"content":"text"}}})");
  collector.add_entry(
      R"({"seq":2,"direction":"claude","message":{"type":"assistant","message":{"content":[{"type":"tool_use","id":"x","name":"Write","input":"nope"}]}}})");
  collector.add_entry(
      R"({"seq":3,"direction":"claude","message":{"type":"assistant","message":{"content":[{"type":"tool_use","id":"y","name":"Write","input":{"file_path":5}}]}}})");
  EXPECT_TRUE(collector.changes().files.empty());
}

}  // namespace
}  // namespace pa::review
