// The spend ledger (projects/spend.hpp): cumulative costs within a CLI process, per-turn usage,
// counting a result once, the UTC day and its rollover (the clock is passed in), sessions, and
// what project.json keeps.
#include "projects/spend.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "projects/project_store.hpp"
#include "protocol/clock.hpp"
#include "support/server_process.hpp"

namespace pa::spend {
namespace {

SystemTime at(const char* rfc3339) {
  return *protocol::parse_rfc3339(rfc3339);
}

ResultUsage usage(double cumulative_cost, std::uint64_t in, std::uint64_t out,
                  std::uint64_t cache_read = 0, std::uint64_t cache_creation = 0) {
  return ResultUsage{cumulative_cost, in, out, cache_read, cache_creation};
}

// Two turns of one process (stub-model transcript 03d): the cost is cumulative, the usage is
// each turn's. Then a second run that resumes the session starts again from its own cost.
TEST(SpendLedger, CostIsCumulativeWithinARunAndUsageIsPerTurn) {
  Ledger l;
  const auto now = at("2026-12-07T10:00:00Z");
  EXPECT_TRUE(record_result(l, "run-a", 100, "s1", usage(0.00137, 24, 50, 3, 4), now));
  EXPECT_TRUE(record_result(l, "run-a", 200, "s1", usage(0.002055, 12, 25), now));
  EXPECT_DOUBLE_EQ(l.totals.cost_usd, 0.002055);
  EXPECT_EQ(l.totals.input_tokens, 36u);
  EXPECT_EQ(l.totals.output_tokens, 75u);
  EXPECT_EQ(l.totals.cache_read_tokens, 3u);
  EXPECT_EQ(l.totals.cache_creation_tokens, 4u);
  EXPECT_EQ(l.totals.runs, 1u);
  EXPECT_EQ(l.run_totals, l.totals);

  EXPECT_TRUE(record_result(l, "run-b", 50, "s1", usage(0.000685, 12, 25), now));
  EXPECT_DOUBLE_EQ(l.totals.cost_usd, 0.002055 + 0.000685);
  EXPECT_EQ(l.totals.runs, 2u);
  EXPECT_DOUBLE_EQ(l.run_totals.cost_usd, 0.000685);
  EXPECT_EQ(l.run_totals.runs, 1u);
  ASSERT_NE(session_totals(l, "s1"), nullptr);
  EXPECT_EQ(*session_totals(l, "s1"), l.totals);
  EXPECT_EQ(today(l, now), l.totals);
}

// A restarted server may apply a result line again: it is counted once.
TEST(SpendLedger, AResultIsCountedOnce) {
  Ledger l;
  const auto now = at("2026-12-07T10:00:00Z");
  ASSERT_TRUE(record_result(l, "run-a", 100, "s1", usage(1.5, 10, 20), now));
  const Ledger before = l;
  EXPECT_FALSE(record_result(l, "run-a", 100, "s1", usage(1.5, 10, 20), now));
  EXPECT_FALSE(record_result(l, "run-a", 40, "s1", usage(0.5, 1, 2), now));
  EXPECT_EQ(l.totals, before.totals);
  EXPECT_EQ(l.day_totals, before.day_totals);
  EXPECT_EQ(*session_totals(l, "s1"), *session_totals(before, "s1"));
  // A lower cumulative figure never takes spend back.
  EXPECT_TRUE(record_result(l, "run-a", 300, "s1", usage(1.0, 1, 1), now));
  EXPECT_DOUBLE_EQ(l.totals.cost_usd, 1.5);
}

// The day is the UTC day of the clock given: a new day starts from zero, the totals go on.
TEST(SpendLedger, TodayRollsOverAtUtcMidnight) {
  Ledger l;
  ASSERT_TRUE(record_result(l, "run-a", 1, "", usage(2.0, 10, 10), at("2026-12-07T23:59:59Z")));
  EXPECT_DOUBLE_EQ(today(l, at("2026-12-07T23:59:59.999Z")).cost_usd, 2.0);
  EXPECT_EQ(today(l, at("2026-12-08T00:00:00Z")), Totals{});  // nothing yet on the new day
  EXPECT_EQ(l.totals.runs, 1u);

  ASSERT_TRUE(record_result(l, "run-b", 1, "", usage(0.25, 1, 2), at("2026-12-08T00:00:01Z")));
  const Totals day2 = today(l, at("2026-12-08T12:00:00Z"));
  EXPECT_DOUBLE_EQ(day2.cost_usd, 0.25);
  EXPECT_EQ(day2.input_tokens, 1u);
  EXPECT_EQ(day2.runs, 1u);
  EXPECT_EQ(l.day, "2026-12-08");
  EXPECT_DOUBLE_EQ(l.totals.cost_usd, 2.25);
  EXPECT_EQ(l.totals.runs, 2u);

  // A run that goes on past midnight: its later turns count on the new day, from where it was.
  Ledger r;
  ASSERT_TRUE(record_result(r, "run-c", 1, "", usage(1.0, 1, 1), at("2026-12-08T23:59:00Z")));
  ASSERT_TRUE(record_result(r, "run-c", 2, "", usage(1.75, 1, 1), at("2026-12-09T00:01:00Z")));
  const Totals new_day = today(r, at("2026-12-09T00:02:00Z"));
  EXPECT_DOUBLE_EQ(new_day.cost_usd, 0.75);
  EXPECT_EQ(new_day.runs, 0u);  // the run was counted on the day it first reported
  EXPECT_DOUBLE_EQ(r.totals.cost_usd, 1.75);
}

TEST(SpendLedger, UtcDayAndNextMidnight) {
  EXPECT_EQ(utc_day(at("2026-12-07T23:59:59.999Z")), "2026-12-07");
  EXPECT_EQ(utc_day(at("2026-12-07T23:30:00-01:00")), "2026-12-08");
  EXPECT_EQ(next_utc_midnight(at("2026-12-07T10:11:12.5Z")), "2026-12-08T00:00:00Z");
  EXPECT_EQ(next_utc_midnight(at("2026-12-31T00:00:00Z")), "2027-01-01T00:00:00Z");
  EXPECT_EQ(next_utc_midnight(at("2028-02-28T13:00:00Z")), "2028-02-29T00:00:00Z");
}

TEST(SpendLedger, SessionsKeepTheMostRecentlyUsed) {
  Ledger l;
  const auto now = at("2026-12-07T10:00:00Z");
  for (std::size_t i = 0; i < Ledger::kSessionsKept + 5; ++i) {
    ASSERT_TRUE(record_result(l, "run-" + std::to_string(i), 1, "s" + std::to_string(i),
                              usage(0.01, 1, 1), now));
  }
  EXPECT_EQ(l.sessions.size(), Ledger::kSessionsKept);
  EXPECT_EQ(session_totals(l, "s0"), nullptr);
  ASSERT_NE(session_totals(l, "s104"), nullptr);
  EXPECT_EQ(session_totals(l, "s104")->runs, 1u);
}

TEST(SpendLedger, StoredFormRoundTripsAndBadFormsReadAsNothing) {
  Ledger l;
  const auto now = at("2026-12-07T10:00:00Z");
  ASSERT_TRUE(record_result(l, "run-a", 100, "s1", usage(0.1, 10, 20, 30, 40), now));
  const boost::json::value stored = to_stored_json(l);
  const Ledger back = ledger_from_json(&stored);
  EXPECT_EQ(back.totals, l.totals);
  EXPECT_EQ(back.day, l.day);
  EXPECT_EQ(back.day_totals, l.day_totals);
  EXPECT_EQ(back.run_id, "run-a");
  EXPECT_EQ(back.run_offset, 100u);
  EXPECT_EQ(back.run_totals, l.run_totals);
  ASSERT_EQ(back.sessions.size(), 1u);
  EXPECT_EQ(back.sessions[0].totals, l.sessions[0].totals);
  // After a reload, the same result is still counted once.
  Ledger reloaded = back;
  EXPECT_FALSE(record_result(reloaded, "run-a", 100, "s1", usage(0.1, 10, 20), now));

  for (const char* bad : {"null", "5", "[]", R"({"totals":"x","run":7,"sessions":{}})",
                          R"({"totals":{"cost_usd":-3,"runs":-1,"input_tokens":"9"}})"}) {
    const auto v = boost::json::parse(bad);
    const Ledger read = ledger_from_json(&v);
    EXPECT_EQ(read.totals, Totals{}) << bad;
    EXPECT_TRUE(read.sessions.empty()) << bad;
  }
  EXPECT_EQ(ledger_from_json(nullptr).totals, Totals{});
}

TEST(SpendLedger, JsonHasTheProtocolFields) {
  Totals t;
  t.cost_usd = 0.5;
  t.input_tokens = 1;
  t.output_tokens = 2;
  t.cache_read_tokens = 3;
  t.cache_creation_tokens = 4;
  t.runs = 5;
  EXPECT_EQ(to_json(t), boost::json::parse(R"({"cost_usd":0.5,"input_tokens":1,"output_tokens":2,)"
                                           R"("cache_read_tokens":3,"cache_creation_tokens":4,)"
                                           R"("runs":5})"));
}

// project.json keeps the ledger (and a project_state shows totals, today and session_totals).
TEST(SpendLedger, ProjectJsonKeepsIt) {
  test::TempDir dir("pa-spend-store");
  projects::ProjectStore store(dir.path());
  projects::ProjectInfo info;
  info.id = projects::random_uuid();
  info.path = "/some/where";
  info.session_id = "s1";
  info.created_at = info.last_active = "2024-01-01T00:00:00.000Z";
  ASSERT_TRUE(record_result(info.spend, "run-a", 7, "s1", usage(0.5, 1, 2, 3, 4),
                            std::chrono::system_clock::now()));
  ASSERT_FALSE(store.save(info));
  std::vector<std::string> warnings;
  const auto loaded = store.load_all(warnings);
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_EQ(loaded[0].spend.totals, info.spend.totals);
  EXPECT_EQ(loaded[0].spend.run_offset, 7u);
  const auto shown = projects::to_json(loaded[0]);
  EXPECT_EQ(shown.at("totals"), to_json(info.spend.totals));
  EXPECT_EQ(shown.at("today"), to_json(info.spend.totals));
  EXPECT_EQ(shown.at("session_totals"), to_json(info.spend.totals));
  info.session_id = "s2";
  EXPECT_TRUE(projects::to_json(info).at("session_totals").is_null());
}

}  // namespace
}  // namespace pa::spend
