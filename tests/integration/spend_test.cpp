// Issue 19, spend: the totals kept from the CLI's result lines (per run, session, project and UTC
// day) through the real server and the fake CLI's `spend` mode; they survive restarts and a run
// taken over after one is counted once. Budgets: an execute over a daily budget is refused with
// BUDGET_EXCEEDED, a run that crosses one is stopped, and options.max_budget_usd reaches the CLI.
#include <cmath>
#include <fstream>

#include "integration/fixture.hpp"
#include "projects/spend.hpp"

namespace pa::test {
namespace {

namespace fs = std::filesystem;

// The figures of one run, from its result lines as the clients saw them: the cost is the last
// (cumulative within a CLI process), the tokens add up (each result's usage is its turn's).
struct Figures {
  double cost_usd = 0;
  std::int64_t input = 0, output = 0, cache_read = 0, cache_creation = 0, runs = 0;
};

Figures figures_of_run(const std::vector<Json>& results) {
  Figures f;
  for (const auto& r : results) {
    f.cost_usd = r.at("total_cost_usd").to_number<double>();
    const auto& u = r.at("usage").as_object();
    f.input += u.at("input_tokens").to_number<std::int64_t>();
    f.output += u.at("output_tokens").to_number<std::int64_t>();
    f.cache_read += u.at("cache_read_input_tokens").to_number<std::int64_t>();
    f.cache_creation += u.at("cache_creation_input_tokens").to_number<std::int64_t>();
  }
  f.runs = results.empty() ? 0 : 1;
  return f;
}

Figures operator+(Figures a, const Figures& b) {
  a.cost_usd += b.cost_usd;
  a.input += b.input;
  a.output += b.output;
  a.cache_read += b.cache_read;
  a.cache_creation += b.cache_creation;
  a.runs += b.runs;
  return a;
}

void expect_totals(const json::value& totals, const Figures& f, const std::string& what) {
  SCOPED_TRACE(what + ": " + json::serialize(totals));
  ASSERT_TRUE(totals.is_object());
  const auto& t = totals.as_object();
  EXPECT_NEAR(t.at("cost_usd").to_number<double>(), f.cost_usd, 1e-9);
  EXPECT_EQ(t.at("input_tokens").to_number<std::int64_t>(), f.input);
  EXPECT_EQ(t.at("output_tokens").to_number<std::int64_t>(), f.output);
  EXPECT_EQ(t.at("cache_read_tokens").to_number<std::int64_t>(), f.cache_read);
  EXPECT_EQ(t.at("cache_creation_tokens").to_number<std::int64_t>(), f.cache_creation);
  EXPECT_EQ(t.at("runs").to_number<std::int64_t>(), f.runs);
}

class SpendTest : public AgentServerTest {
 protected:
  void SetUp() override {}

  void start(std::vector<std::string> args = {}, const fs::path& data_dir = {}) {
    args_ = args;
    start_agent_server(std::move(args), {}, data_dir);
  }
  // SIGKILL the server; its data dir stays with the old object until the test ends.
  fs::path kill_server() {
    const fs::path dir = server_->data_dir();
    server_->kill_hard();
    gone_.push_back(std::move(server_));
    return dir;
  }
  fs::path stop_server() {
    const fs::path dir = server_->data_dir();
    server_->stop();
    gone_.push_back(std::move(server_));
    return dir;
  }

  static Json next(WsClient& client, std::string_view type,
                   std::chrono::milliseconds deadline = 30s) {
    auto m = client.read_until([&](const Json& x) { return str(x, "type") == type; }, deadline);
    EXPECT_TRUE(m) << "no " << type << " arrived";
    return m ? *m : Json{};
  }
  Json queue(WsClient& client, const std::string& id, const std::string& prompt) {
    return client.request(Json{{"type", "execute"},
                               {"project_id", id},
                               {"data", {{"prompt", prompt}, {"mode", "queue"}}}});
  }
  // A drip turn that stops after its first line until `hold` exists.
  static std::string held(const fs::path& hold) {
    return "[[fake:drip lines=2 interval_ms=1 hold_after=1 hold_file=" + hold.string() + "]]";
  }
  // Waits for the next first line of a held drip turn.
  static void wait_for_drip_line(WsClient& client) {
    ASSERT_TRUE(client.read_until(
        [](const Json& m) {
          return str(m, "type") == "agent_message" && str(data(m), "type") == "assistant" &&
                 json::serialize(data(m)).find("Line 1 of 2") != std::string::npos;
        },
        30s));
  }
  // Runs `prompt` until IDLE; returns {its figures, the final project_state data}.
  std::pair<Figures, Json> run(WsClient& client, const std::string& id, const std::string& prompt,
                               Json options = {}) {
    const auto reply = execute(client, id, prompt, std::move(options));
    EXPECT_TRUE(is_state(reply, "EXECUTING")) << json::serialize(reply);
    const auto seen = until_idle(client);
    return {figures_of_run(cli_lines_of_type(seen, "result")),
            seen.empty() ? Json{} : data(seen.back())};
  }

  std::vector<std::string> args_;
  std::vector<std::unique_ptr<ServerProcess>> gone_;
  TempDir holds_{"pa-spend-holds"};
};

// Three runs of one project (two of them resuming its session, one with cache tokens): the
// totals, today and the session's totals are the sum of their result lines, in project_state,
// project_list, health, server_stats and /metrics; each run's end names its own figures.
TEST_F(SpendTest, TotalsAfterThreeRunsAreTheSumOfTheirResultLines) {
  start({"--stats-interval", "1s"});
  auto client = connect();
  const std::string id = new_project(*client);

  const auto [first, end1] = run(
      *client, id, "[[fake:spend cost=0.25 input=100 output=50 cache_read=7 cache_creation=3]]");
  EXPECT_NEAR(first.cost_usd, 0.25, 1e-12);
  expect_totals(end1.at("run_totals"), first, "the first run's end");
  expect_totals(end1.at("totals"), first, "project_state after one run");

  const auto [second, end2] = run(*client, id, "[[fake:spend cost=0.5 input=10 output=5]]");
  expect_totals(end2.at("run_totals"), second, "the second run's end");
  const auto [third, end3] = run(*client, id, "hi");  // a real 2.1.197 turn, replayed
  EXPECT_GT(third.cost_usd, 0);
  expect_totals(end3.at("run_totals"), third, "the third run's end");

  const Figures all = first + second + third;
  expect_totals(end3.at("totals"), all, "project_state totals");
  expect_totals(end3.at("today"), all, "project_state today");
  expect_totals(end3.at("session_totals"), all, "the session's totals");
  const Json listed = project_listed(*client, id);
  expect_totals(listed.at("totals"), all, "project_list totals");
  expect_totals(listed.at("today"), all, "project_list today");

  const auto health = client->request(Json{{"type", "health"}});
  expect_totals(data(health).at("today"), all, "health today");
  // The next server_stats that counts the last run (one computed just before may still come).
  const auto stats = client->read_until(
      [&](const Json& m) {
        return str(m, "type") == "server_stats" &&
               std::abs(data(m).at("today").at("cost_usd").to_number<double>() - all.cost_usd) <
                   1e-9;
      },
      10s);
  ASSERT_TRUE(stats) << "no server_stats with today's spend";
  expect_totals(data(*stats).at("today"), all, "server_stats today");

  const std::string text = metrics();
  EXPECT_NEAR(metric_sample(text, "pocket_agent_cost_usd_total{project_id=\"" + id + "\"}"),
              all.cost_usd, 1e-9)
      << text;
  EXPECT_EQ(metric_sample(
                text, "pocket_agent_tokens_total{project_id=\"" + id + "\",kind=\"cache_read\"}"),
            7);
  EXPECT_EQ(
      metric_sample(text, "pocket_agent_tokens_total{project_id=\"" + id + "\",kind=\"input\"}"),
      static_cast<double>(all.input));
}

// Follow-ups run in the same CLI process, whose total_cost_usd is cumulative over its turns:
// the run costs its last figure, not the sum of them.
TEST_F(SpendTest, TurnsOfOneProcessAreNotCountedTwice) {
  start();
  auto client = connect();
  const std::string id = new_project(*client);
  const fs::path hold = holds_.path() / "go";
  ASSERT_TRUE(is_state(execute(*client, id, held(hold)), "EXECUTING"));
  wait_for_drip_line(*client);
  ASSERT_EQ(str(queue(*client, id, "[[fake:spend cost=0.5 input=1 output=2]]"), "type"),
            "prompt_queued");
  std::ofstream(hold) << "go";
  const auto seen = until_idle(*client);
  const auto results = cli_lines_of_type(seen, "result");
  ASSERT_EQ(results.size(), 2u);
  const double turn1 = results[0].at("total_cost_usd").to_number<double>();
  EXPECT_NEAR(results[1].at("total_cost_usd").to_number<double>(), turn1 + 0.5, 1e-12);
  const Figures f = figures_of_run(results);
  expect_totals(data(seen.back()).at("totals"), f, "after a two-turn run");
  EXPECT_NEAR(data(seen.back()).at("totals").at("cost_usd").to_number<double>(), turn1 + 0.5,
              1e-12);
}

// The totals are in project.json: a restart keeps them. A run the server was killed during is
// taken over by the next server and counted once, the results before the kill included.
TEST_F(SpendTest, TotalsSurviveRestartsAndATakenOverRunIsCountedOnce) {
  start();
  auto client = connect();
  const std::string id = new_project(*client);
  const auto [before, end] = run(*client, id, "[[fake:spend cost=0.125 input=3 output=4]]");

  const fs::path hold1 = holds_.path() / "one", hold2 = holds_.path() / "two";
  ASSERT_TRUE(is_state(execute(*client, id, held(hold1)), "EXECUTING"));
  wait_for_drip_line(*client);
  ASSERT_EQ(str(queue(*client, id, "[[fake:spend cost=0.5 input=10 output=20]]"), "type"),
            "prompt_queued");
  ASSERT_EQ(str(queue(*client, id, held(hold2)), "type"), "prompt_queued");
  std::ofstream(hold1) << "go";
  // The third turn has begun (so the spend turn's result was applied), and is held: kill now.
  wait_for_drip_line(*client);
  client.reset();
  const fs::path dir = kill_server();

  start({}, dir);
  client = connect();
  client->request(Json{{"type", "project_join"}, {"project_id", id}});
  std::ofstream(hold2) << "go";
  until_idle(*client, 60s);
  // Every result line of the taken-over run, as history has them (it holds each line once).
  std::vector<Json> results;
  bool in_second_run = false;
  for (const auto& e : all_history(*client, id)) {
    const auto& m = e.at("message").as_object();
    if (str(m, "type") == "execute" && !in_second_run) {
      in_second_run = json::serialize(m).find("hold_after") != std::string::npos;
    }
    if (in_second_run && str(m, "type") == "result") results.push_back(m);
  }
  ASSERT_EQ(results.size(), 3u);
  const Figures all = before + figures_of_run(results);
  expect_totals(project_listed(*client, id).at("totals"), all, "after the taken-over run");

  client.reset();
  const fs::path again = stop_server();
  start({}, again);
  client = connect();
  expect_totals(project_listed(*client, id).at("totals"), all, "after a clean restart");
  expect_totals(project_listed(*client, id).at("today"), all, "today after a clean restart");
}

// The project's daily budget: the run that reaches it is stopped at its result, the next execute
// is refused before anything starts, other projects go on.
TEST_F(SpendTest, BudgetExceededBeforeStart) {
  start({"--budgets-project-daily-usd", "1"});
  auto client = connect();
  const std::string id = new_project(*client, "spender");
  const auto [spent, end] = run(*client, id, "[[fake:spend cost=1.5]]");
  EXPECT_EQ(str(end.at("ended").as_object(), "reason"), "budget_exceeded");
  EXPECT_EQ(str(end.at("ended").at("by").as_object(), "budget"), "budgets.project_daily_usd");

  const auto before = std::chrono::system_clock::now();
  const auto refused = execute(*client, id, "hi");
  const auto after = std::chrono::system_clock::now();
  ASSERT_EQ(error_code(refused), "BUDGET_EXCEEDED") << json::serialize(refused);
  const auto& details = data(refused).at("details").as_object();
  EXPECT_EQ(str(details, "budget"), "budgets.project_daily_usd");
  EXPECT_EQ(details.at("budget_usd").to_number<double>(), 1.0);
  EXPECT_NEAR(details.at("spent_usd").to_number<double>(), 1.5, 1e-12);
  const std::string resets_at = str(details, "resets_at");
  EXPECT_TRUE(resets_at == spend::next_utc_midnight(before) ||
              resets_at == spend::next_utc_midnight(after))
      << resets_at;
  EXPECT_NE(str(data(refused), "message").find("budgets.project_daily_usd"), std::string::npos);
  // Refused before anything started: one CLI run only, and no execute in history for it.
  EXPECT_EQ(records().size(), 1u);
  std::size_t executes = 0;
  for (const auto& e : all_history(*client, id))
    executes += str(e.at("message").as_object(), "type") == "execute" ? 1 : 0;
  EXPECT_EQ(executes, 1u);
  // A follow-up is refused the same way, and the connection goes on.
  EXPECT_EQ(error_code(queue(*client, id, "more")), "BUDGET_EXCEEDED");

  const std::string other = new_project(*client, "frugal");
  const auto [fine, other_end] = run(*client, other, "hi");
  EXPECT_EQ(str(other_end.at("ended").as_object(), "reason"), "completed");
}

// The server's daily budget counts every project, and a deleted project's spend of the day too.
TEST_F(SpendTest, ServerBudgetCountsAllProjectsAndDeletedOnes) {
  start({"--budgets-server-daily-usd", "1"});
  auto client = connect();
  const std::string a = new_project(*client, "a");
  const std::string b = new_project(*client, "b");
  const auto [spent_a, end_a] = run(*client, a, "[[fake:spend cost=0.6]]");
  EXPECT_EQ(str(end_a.at("ended").as_object(), "reason"), "completed");
  const auto [spent_b, end_b] = run(*client, b, "[[fake:spend cost=0.6]]");
  EXPECT_EQ(str(end_b.at("ended").as_object(), "reason"), "budget_exceeded");

  const auto del = client->request(Json{{"type", "project_delete"}, {"project_id", b}});
  ASSERT_EQ(str(del, "type"), "project_deleted") << json::serialize(del);
  const auto refused = execute(*client, a, "hi");
  ASSERT_EQ(error_code(refused), "BUDGET_EXCEEDED") << json::serialize(refused);
  const auto& details = data(refused).at("details").as_object();
  EXPECT_EQ(str(details, "budget"), "budgets.server_daily_usd");
  EXPECT_NEAR(details.at("spent_usd").to_number<double>(), 1.2, 1e-12);
  EXPECT_NEAR(data(client->request(Json{{"type", "health"}}))
                  .at("today")
                  .at("cost_usd")
                  .to_number<double>(),
              1.2, 1e-12);

  // Kept in spend.json: still counted after a restart.
  client.reset();
  const fs::path dir = stop_server();
  start({"--budgets-server-daily-usd", "1"}, dir);
  client = connect();
  EXPECT_EQ(error_code(execute(*client, a, "hi")), "BUDGET_EXCEEDED");
}

// A run whose turn result takes the project over its budget is stopped there: budget_exceeded is
// broadcast and kept in history, the queued prompt is not sent, the end says why.
TEST_F(SpendTest, AStreamingRunIsInterruptedWhenItCrossesTheBudget) {
  start({"--budgets-project-daily-usd", "1"});
  auto client = connect();
  const std::string id = new_project(*client);
  const fs::path hold = holds_.path() / "go";
  ASSERT_TRUE(is_state(execute(*client, id, held(hold)), "EXECUTING"));
  wait_for_drip_line(*client);
  ASSERT_EQ(str(queue(*client, id, "[[fake:spend cost=1.25]]"), "type"), "prompt_queued");
  ASSERT_EQ(str(queue(*client, id, "[[fake:text text=never]]"), "type"), "prompt_queued");
  std::ofstream(hold) << "go";

  const auto seen = until_idle(*client);
  const auto exceeded = of_type(seen, "budget_exceeded");
  ASSERT_EQ(exceeded.size(), 1u);
  const Json& d = data(exceeded[0]);
  EXPECT_EQ(str(d, "budget"), "budgets.project_daily_usd");
  EXPECT_EQ(d.at("budget_usd").to_number<double>(), 1.0);
  EXPECT_GE(d.at("spent_usd").to_number<double>(), 1.25);
  EXPECT_FALSE(str(d, "resets_at").empty());
  EXPECT_FALSE(str(d, "message").empty());
  const auto dequeued = of_type(seen, "prompt_dequeued");
  ASSERT_FALSE(dequeued.empty());
  const Json& cancelled = data(dequeued.back());
  EXPECT_EQ(str(cancelled, "reason"), "cancelled");
  EXPECT_NE(str(cancelled, "message").find("budget"), std::string::npos);
  const Json& ended = data(seen.back()).at("ended").as_object();
  EXPECT_EQ(str(ended, "reason"), "budget_exceeded");
  EXPECT_EQ(str(ended.at("by").as_object(), "type"), "budget");

  // The CLI got two prompts, never the third, and exited when its stdin closed.
  const auto rec = records();
  ASSERT_EQ(rec.size(), 1u);
  const std::string stdin_text = json::serialize(rec[0].at("stdin"));
  EXPECT_EQ(stdin_text.find("never"), std::string::npos) << stdin_text;
  EXPECT_EQ(rec[0].at("exit_code").as_int64(), 0);

  bool in_history = false;
  for (const auto& e : all_history(*client, id))
    in_history = in_history || str(e.at("message").as_object(), "type") == "budget_exceeded";
  EXPECT_TRUE(in_history);
}

// options.max_budget_usd reaches the CLI as --max-budget-usd; the CLI ends the turn that reaches
// it (error_max_budget_usd), and what it spent is counted all the same.
TEST_F(SpendTest, MaxBudgetUsdIsInTheCliArgv) {
  start();
  auto client = connect();
  const std::string id = new_project(*client);
  const auto reply = execute(*client, id, "[[fake:spend cost=0.75]]", {{"max_budget_usd", 0.5}});
  ASSERT_TRUE(is_state(reply, "EXECUTING")) << json::serialize(reply);
  const auto seen = until_idle(*client);
  const auto results = cli_lines_of_type(seen, "result");
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(str(results[0], "subtype"), "error_max_budget_usd");
  expect_totals(data(seen.back()).at("totals"), figures_of_run(results), "a capped run");
  const auto rec = records();
  ASSERT_EQ(rec.size(), 1u);
  const std::string argv = json::serialize(rec[0].at("argv"));
  EXPECT_NE(argv.find("\"--max-budget-usd=0.5\""), std::string::npos) << argv;

  for (const Json& bad : {Json{{"max_budget_usd", 0}}, Json{{"max_budget_usd", -2}},
                          Json{{"max_budget_usd", "1"}}, Json{{"max_budget_usd", 1e9}}}) {
    const auto refused = execute(*client, id, "hi", bad);
    EXPECT_EQ(error_code(refused), "INVALID_MESSAGE") << json::serialize(refused);
    EXPECT_EQ(str(data(refused).at("details").as_object(), "field"), "data.options.max_budget_usd");
  }
  EXPECT_EQ(records().size(), 1u);
}

}  // namespace
}  // namespace pa::test
