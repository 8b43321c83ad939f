#include <gtest/gtest.h>

#include "review/review_support.hpp"
#include "review/sessions.hpp"

namespace pa::review {
namespace {

namespace json = boost::json;
using test::entry;

std::string execute(std::uint64_t seq, const std::string& prompt, const std::string& ts,
                    bool follow_up = false) {
  json::object data{{"prompt", prompt}};
  if (follow_up) data["mode"] = "queue";
  return entry(seq, "client", {{"type", "execute"}, {"data", data}}, ts);
}
std::string init(std::uint64_t seq, const std::string& session, const std::string& ts) {
  return entry(seq, "claude", {{"type", "system"}, {"subtype", "init"}, {"session_id", session}},
               ts);
}
std::string result(std::uint64_t seq, const std::string& session, double cost,
                   const std::string& ts) {
  return entry(seq, "claude",
               {{"type", "result"}, {"session_id", session}, {"total_cost_usd", cost}}, ts);
}

TEST(SessionList, GroupsRunsBySessionWithCostsNewestFirst) {
  SessionList list;
  const std::string a = "11111111-1111-4111-8111-111111111111";
  const std::string b = "22222222-2222-4222-8222-222222222222";
  list.add_entry(execute(1, "first prompt", "2026-01-01T10:00:00.000Z"));
  list.add_entry(init(2, a, "2026-01-01T10:00:01.000Z"));
  list.add_entry(result(3, a, 0.25, "2026-01-01T10:00:05.000Z"));
  // A follow-up in the same process: its result carries the process's cumulative cost.
  list.add_entry(execute(4, "and then", "2026-01-01T10:00:06.000Z", true));
  list.add_entry(result(5, a, 0.5, "2026-01-01T10:00:09.000Z"));
  // A second run resuming the same session.
  list.add_entry(execute(6, "again", "2026-01-01T11:00:00.000Z"));
  list.add_entry(init(7, a, "2026-01-01T11:00:01.000Z"));
  list.add_entry(result(8, a, 0.125, "2026-01-01T11:00:02.000Z"));
  // A new session.
  list.add_entry(execute(9, std::string(300, 'p'), "2026-01-02T09:00:00.000Z"));
  list.add_entry(init(10, b, "2026-01-02T09:00:01.000Z"));

  const auto out = list.to_json(b);
  const auto& sessions = out.at("sessions").as_array();
  ASSERT_EQ(sessions.size(), 2u);
  EXPECT_EQ(out.at("truncated"), false);
  const auto& newest = sessions[0].as_object();
  EXPECT_EQ(newest.at("session_id").as_string(), b);
  EXPECT_EQ(newest.at("current"), true);
  EXPECT_EQ(newest.at("first_prompt").as_string().size(), kMaxPromptChars);
  EXPECT_EQ(newest.at("first_prompt_truncated"), true);
  EXPECT_EQ(newest.at("runs").as_uint64(), 1u);
  EXPECT_EQ(newest.at("cost_usd").as_double(), 0.0);
  const auto& older = sessions[1].as_object();
  EXPECT_EQ(older.at("session_id").as_string(), a);
  EXPECT_EQ(older.at("current"), false);
  EXPECT_EQ(older.at("first_prompt"), "first prompt");
  EXPECT_EQ(older.at("started"), "2026-01-01T10:00:00.000Z");
  EXPECT_EQ(older.at("ended"), "2026-01-01T11:00:02.000Z");
  EXPECT_EQ(older.at("runs").as_uint64(), 2u);
  EXPECT_DOUBLE_EQ(older.at("cost_usd").as_double(), 0.625);
  EXPECT_EQ(older.at("first_seq").as_uint64(), 1u);
  EXPECT_EQ(older.at("last_seq").as_uint64(), 8u);
}

TEST(SessionList, ARunWithoutCliOutputHasNoSession) {
  SessionList list;
  list.add_entry(execute(1, "never started", "2026-01-01T10:00:00.000Z"));
  list.add_entry("garbage");
  EXPECT_TRUE(list.to_json(std::nullopt).at("sessions").as_array().empty());
}

TEST(SessionList, FirstCharsCountsCharactersNotBytes) {
  bool cut = false;
  EXPECT_EQ(first_chars("h\xc3\xa9llo", 2, cut), "h\xc3\xa9");
  EXPECT_TRUE(cut);
  EXPECT_EQ(first_chars("abc", 3, cut), "abc");
  EXPECT_FALSE(cut);
}

}  // namespace
}  // namespace pa::review
