// The words of each notification: titles and bodies name the project and what happened, links
// open the right console view, tags let a later notification replace (or withdraw) an earlier.
#include "server/notify_events.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

namespace pa::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

projects::ProjectInfo shop() {
  projects::ProjectInfo p;
  p.id = "0f8fad5b-d9cb-469f-a165-70867728950e";
  p.path = "/home/me/code/shop";
  return p;
}

TEST(NotifyEvents, APermissionRequestNamesTheToolItsCommandAndLinksToItsCard) {
  const auto announced = boost::json::parse(R"({"permission_id":"p-1","tool_name":"Bash",
      "display_name":"Bash","input":{"command":"npm test","description":"run tests"}})")
                             .as_object();
  const auto e = permission_event(shop(), announced, "");
  EXPECT_EQ(e.event, "permission_request");
  EXPECT_EQ(e.title, "Claude needs you in shop");
  EXPECT_EQ(e.body, "Allow Bash?\nnpm test");
  EXPECT_EQ(e.url, "/#/p/0f8fad5b-d9cb-469f-a165-70867728950e/permission/p-1");
  EXPECT_EQ(e.tag, "permission:p-1");
  EXPECT_EQ(e.project_path, "/home/me/code/shop");
  EXPECT_TRUE(e.urgent);
  EXPECT_FALSE(e.at.empty());
}

TEST(NotifyEvents, LinksStartWithTheConsoleUrlWhenOneIsSet) {
  const auto e = permission_event(shop(), boost::json::object{{"permission_id", "p"}},
                                  "https://pocket.lan:8443");
  EXPECT_EQ(e.url, "https://pocket.lan:8443/#/p/0f8fad5b-d9cb-469f-a165-70867728950e/permission/p");
  EXPECT_EQ(e.body, "Allow ?");  // no tool named: the body does not invent one
}

TEST(NotifyEvents, ALongCommandIsCutNotSentWhole) {
  const std::string command(5000, 'x');
  const auto announced = boost::json::object{{"permission_id", "p"},
                                             {"tool_name", "Bash"},
                                             {"input", boost::json::object{{"command", command}}}};
  const auto e = permission_event(shop(), announced, "");
  EXPECT_LT(e.body.size(), 200u);
  EXPECT_THAT(e.body, HasSubstr("\u2026"));
}

TEST(NotifyEvents, ASuccessSaysHowLongItTookWhatItCostAndWhatItSaid) {
  RunSummary summary;
  summary.cost_usd = 0.2472;
  summary.duration_ms = 8722;
  summary.num_turns = 2;
  summary.result_text = "Here are the files.";
  const auto e = run_end_event(shop(), "completed", summary, std::chrono::milliseconds(9000), "");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->event, "run_succeeded");
  EXPECT_EQ(e->title, "Done in shop");
  EXPECT_EQ(e->body, "Finished in 8.7 s \u00b7 $0.2472 \u00b7 2 turns\nHere are the files.");
  EXPECT_EQ(e->tag, "run:0f8fad5b-d9cb-469f-a165-70867728950e");
  EXPECT_EQ(e->url, "/#/p/0f8fad5b-d9cb-469f-a165-70867728950e");
  EXPECT_FALSE(e->urgent);
}

TEST(NotifyEvents, WithoutAResultTheWallTimeIsTheDuration) {
  const auto e = run_end_event(shop(), "completed", {}, std::chrono::milliseconds(125'000), "");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->body, "Finished in 2 min 5 s");
}

TEST(NotifyEvents, FailuresTimeoutsAndLostRunsSayWhat) {
  RunSummary failed;
  failed.error = "The Claude CLI ended without a result (exit code 1)";
  auto e = run_end_event(shop(), "failed", failed, {}, "");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->event, "run_failed");
  EXPECT_EQ(e->body, failed.error);

  RunSummary timeout;
  timeout.error = "The run exceeded timeouts.execution (300s) and was stopped";
  e = run_end_event(shop(), "timeout", timeout, {}, "");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->event, "run_timeout");
  EXPECT_THAT(e->body, HasSubstr("timeouts.execution"));

  e = run_end_event(shop(), "lost", {}, {}, "");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->event, "run_lost");
}

TEST(NotifyEvents, EndingsSomeoneCausedRaiseNothing) {
  for (const char* reason : {"killed", "interrupted", "shutdown"}) {
    EXPECT_FALSE(run_end_event(shop(), reason, {}, {}, "")) << reason;
  }
}

TEST(NotifyEvents, ADrainedQueueCountsItsPrompts) {
  auto e = queue_drained_event(shop(), 3, false, "");
  EXPECT_EQ(e.event, "queue_drained");
  EXPECT_EQ(e.body, "3 queued prompts ran");
  EXPECT_EQ(e.tag, "queue:0f8fad5b-d9cb-469f-a165-70867728950e");
  e = queue_drained_event(shop(), 1, true, "");
  EXPECT_EQ(e.body, "1 queued prompt ran; the last one ended with an error");
}

TEST(NotifyEvents, AStorageProblemSaysWhatCannotBeWrittenNotWhere) {
  ops::StorageProblem problem;
  problem.what = "history";
  problem.path = "/srv/data/projects/x/history.jsonl";
  problem.error = "No space left on device";
  const auto e = server_problem_event(problem, "");
  EXPECT_EQ(e.event, "server_problem");
  EXPECT_EQ(e.title, "Pocket Agent cannot write its history");
  EXPECT_THAT(e.body, HasSubstr("No space left on device"));
  EXPECT_THAT(e.body, Not(HasSubstr("/srv/data")));
  EXPECT_EQ(e.tag, "server");
  EXPECT_EQ(e.url, "/");
}

}  // namespace
}  // namespace pa::server
