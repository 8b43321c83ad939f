// Runs outlive the server (issue 14): a SIGKILLed, crashed or restarted server leaves each run
// with its supervisor; the next start takes it over from the last spool offset in history, and
// a run whose supervisor is gone is reported lost, never shown as running.
#include <signal.h>

#include <fstream>
#include <map>
#include <set>

#include "integration/fixture.hpp"

namespace pa::test {
namespace {

namespace fs = std::filesystem;

class RunSurvivalTest : public AgentServerTest {
 protected:
  RunSurvivalTest() { answers_permissions_ = true; }
  void SetUp() override {}

  // Starts (or restarts, on the same data dir) the server with the fake CLI's recording.
  void start(std::vector<std::string> args = {}, const fs::path& data_dir = {},
             const std::string& server_binary = {}) {
    args_ = args;
    ServerOptions options;
    options.args = std::move(args);
    options.data_dir = data_dir;
    options.server_binary = server_binary;
    options.args.insert(
        options.args.end(),
        {"--claude-env", "FAKE_CLAUDE_RECORD=" + record_file().string() +
                             ",FAKE_CLAUDE_STATE_DIR=" + (state_.path() / "sessions").string()});
    start_server(options);
  }
  // SIGKILL the server (its data dir stays with the old object until the test ends).
  fs::path kill_server() {
    const fs::path dir = server_->data_dir();
    server_->kill_hard();
    killed_.push_back(std::move(server_));
    return dir;
  }
  void restart(const fs::path& dir, std::vector<std::string> args = {}) {
    start(args.empty() ? args_ : std::move(args), dir);
  }

  static pid_t read_pid(const fs::path& file) {
    pid_t pid = 0;
    std::ifstream(file) >> pid;
    return pid;
  }
  static std::string spool_of_only_run(const fs::path& data_dir) {
    for (const auto& entry : fs::directory_iterator(data_dir / "runs")) {
      if (entry.is_directory()) return (entry.path() / "spool").string();
    }
    return {};
  }
  // True once the run's spool holds its exit record (the CLI ended while no server watched).
  static bool spool_has_exit(const std::string& spool) {
    std::ifstream in(spool);
    std::string line, last;
    while (std::getline(in, line)) last = line;
    return !last.empty() && last.front() == 'x';
  }
  // True once the spool holds a line of the CLI containing `text`.
  static bool spool_has_line(const std::string& spool, const std::string& text) {
    std::ifstream in(spool);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line.front() == 'o' && line.find(text) != std::string::npos) return true;
    }
    return false;
  }

  // Every seq of `history` is 1, 2, 3, ... with no gap and no repeat.
  static void expect_contiguous(const std::vector<Json>& history) {
    for (std::size_t i = 0; i < history.size(); ++i) {
      ASSERT_EQ(history[i].at("seq").as_int64(), static_cast<std::int64_t>(i + 1));
    }
  }

  // The texts of the assistant lines in `messages` (agent_message data or history entries).
  static std::vector<std::string> assistant_texts(const std::vector<Json>& messages) {
    std::vector<std::string> out;
    for (const auto& m : messages) {
      // A history entry holds the CLI's line itself; a live message wraps it in agent_message.
      const bool entry = m.contains("message");
      if (entry && str(m, "direction") != "claude") continue;
      if (!entry && str(m, "type") != "agent_message") continue;
      const Json& line = entry ? m.at("message").as_object() : data(m);
      if (str(line, "type") != "assistant") continue;
      for (const auto& block : line.at("message").at("content").as_array()) {
        if (str(block.as_object(), "type") == "text") out.push_back(str(block.as_object(), "text"));
      }
    }
    return out;
  }

  // The CLI lines of `cli_type` in history entries.
  static std::size_t cli_entries_of_type(const std::vector<Json>& history,
                                         std::string_view cli_type) {
    std::size_t n = 0;
    for (const auto& e : history) {
      if (str(e, "direction") == "claude" && str(e.at("message").as_object(), "type") == cli_type)
        ++n;
    }
    return n;
  }

  void expect_nothing_left(const fs::path& data_dir, pid_t cli) {
    EXPECT_TRUE(eventually([&] { return supervisors_of(data_dir).empty(); }, 20s))
        << "a supervisor outlived its run";
    if (cli > 0) {
      EXPECT_TRUE(eventually([&] { return !alive(cli); }, 20s)) << "the CLI lives on";
    }
    EXPECT_TRUE(eventually(
        [&] {
          std::error_code ec;
          return fs::is_empty(data_dir / "runs", ec);
        },
        20s))
        << "the run's directory was not removed: " << [&] {
             std::string out;
             std::error_code ec;
             for (const auto& e : fs::recursive_directory_iterator(data_dir / "runs", ec))
               out += e.path().string() + " ";
             return out;
           }();
  }

  std::vector<std::string> args_;
  std::vector<std::unique_ptr<ServerProcess>> killed_;
};

// The issue's first "must show": SIGKILL during a 20,000-line flood, restart, and the run goes
// on with every line exactly once and a contiguous seq.
TEST_F(RunSurvivalTest, SigkillMidFloodThenRestartLosesAndRepeatsNothing) {
  // The catch-up after the restart is a burst: a queue that holds it keeps this test about the
  // run, not about slow clients (a client closed with 1013 would page from history instead).
  start({"--websocket-message-buffer", "100000"});
  auto client = connect();
  const std::string id = new_project(*client);
  const TempDir scratch("pa-pid");
  const auto pidfile = scratch.path() / "cli.pid";
  execute(*client, id,
          "[[fake:flood lines=20000 bytes=200 rate=4000 self_pidfile=" + pidfile.string() + "]]");
  std::int64_t seen = 0;
  ASSERT_TRUE(client->read_until(
      [&](const Json& m) {
        if (m.contains("seq")) seen = m.at("seq").as_int64();
        return seen >= 500;
      },
      30s));
  const pid_t cli = read_pid(pidfile);
  ASSERT_GT(cli, 0);
  client.reset();
  const auto dir = kill_server();
  ASSERT_TRUE(alive(cli)) << "the CLI died with the server";

  restart(dir);
  client = connect();
  EXPECT_EQ(str(project_listed(*client, id), "state"), "EXECUTING");
  EXPECT_TRUE(alive(cli)) << "the CLI was interrupted by the restart";
  // Catch up as a phone does: join (live from now on), then page from the last seq seen.
  client->request(Json{{"type", "project_join"}, {"project_id", id}});
  std::map<std::int64_t, int> delivered;
  std::string final_session;
  ASSERT_TRUE(client->read_until(
      [&](const Json& m) {
        if (m.contains("seq") && str(m, "type") != "project_joined")
          ++delivered[m.at("seq").as_int64()];
        if (is_state(m, "IDLE")) {
          final_session = str(data(m), "session_id");
          return true;
        }
        return false;
      },
      120s))
      << "the run did not end after the restart";
  std::int64_t after = seen;
  for (;;) {
    const auto page = client->request(
        Json{{"type", "get_messages"}, {"project_id", id}, {"data", {{"after_seq", after}}}});
    for (const auto& e : data(page).at("messages").as_array()) {
      after = e.at("seq").as_int64();
      if (!delivered.count(after)) delivered[after] = 1;  // live or paged: either is once
    }
    if (!data(page).at("has_more").as_bool()) break;
  }
  for (const auto& [seq, times] : delivered) EXPECT_EQ(times, 1) << "seq " << seq << " twice live";

  const auto history = all_history(*client, id);
  expect_contiguous(history);
  ASSERT_FALSE(history.empty());
  for (std::int64_t s = seen + 1; s <= history.back().at("seq").as_int64(); ++s) {
    EXPECT_TRUE(delivered.count(s)) << "seq " << s << " never reached the client";
  }
  // Each of the 20,000 lines once, in order.
  const auto texts = assistant_texts(history);
  ASSERT_EQ(texts.size(), 20000u);
  for (std::size_t i = 0; i < texts.size(); ++i) {
    ASSERT_EQ(texts[i].rfind("#" + std::to_string(i) + " ", 0), 0u)
        << "line " << i + 1 << ": " << texts[i].substr(0, 60);
  }
  EXPECT_FALSE(final_session.empty()) << "the final state keeps the session id";
  const auto recs = records();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].at("pid").as_int64(), cli);
  EXPECT_EQ(recs[0].at("exit_code").as_int64(), 0) << "the CLI ended normally";
  expect_nothing_left(dir, cli);
}

// The server stays down while the run goes on writing to the end of its turn: the spool holds
// every line, and the next start applies it (and ends the run: the CLI waits for the server's
// word on stdin after a turn).
TEST_F(RunSurvivalTest, RunWritesWhileServerIsDownAndIsAppliedAtStart) {
  start();
  auto client = connect();
  const std::string id = new_project(*client);
  execute(*client, id, "[[fake:drip lines=300 interval_ms=5]]");
  ASSERT_TRUE(client->read_until(
      [](const Json& m) { return m.contains("seq") && m.at("seq").as_int64() >= 20; }, 30s));
  client.reset();
  const auto dir = kill_server();
  const std::string spool = spool_of_only_run(dir);
  ASSERT_FALSE(spool.empty());
  ASSERT_TRUE(eventually([&] { return spool_has_line(spool, "\"type\":\"result\""); }, 60s))
      << "the run did not go on without a server";

  restart(dir);
  client = connect();  // not subscribed: the catch-up is a burst, read from history below
  ASSERT_TRUE(eventually([&] { return str(project_listed(*client, id), "state") == "IDLE"; }, 30s));
  const auto history = all_history(*client, id);
  expect_contiguous(history);
  const auto texts = assistant_texts(history);
  ASSERT_EQ(texts.size(), 300u);
  for (std::size_t i = 0; i < texts.size(); ++i)
    EXPECT_EQ(texts[i].rfind("Line " + std::to_string(i + 1) + " of 300", 0), 0u);
  EXPECT_EQ(cli_entries_of_type(history, "result"), 1u);
  EXPECT_FALSE(str(project_listed(*client, id), "session_id").empty());
  expect_nothing_left(dir, 0);
}

// Supervisor and CLI killed while the server is down: the run is lost, said so once, and the
// session is kept so the next execute resumes it.
TEST_F(RunSurvivalTest, LostRunIsReportedAndTheNextExecuteResumes) {
  start();
  auto client = connect();
  const std::string id = new_project(*client);
  const TempDir scratch("pa-pid");
  const auto pidfile = scratch.path() / "cli.pid";
  execute(*client, id,
          "[[fake:drip lines=10 interval_ms=1 hold_after=3 hold_file=" +
              (scratch.path() / "never").string() + " self_pidfile=" + pidfile.string() + "]]");
  std::string session;
  ASSERT_TRUE(client->read_until(
      [&](const Json& m) {
        if (str(m, "type") == "agent_message" && str(data(m), "subtype") == "init")
          session = str(data(m), "session_id");
        return str(m, "type") == "agent_message" && str(data(m), "type") == "assistant";
      },
      30s));
  ASSERT_FALSE(session.empty());
  const pid_t cli = read_pid(pidfile);
  client.reset();
  const auto dir = kill_server();
  const auto supervisors = supervisors_of(dir);
  ASSERT_EQ(supervisors.size(), 1u);
  ::kill(supervisors[0], SIGKILL);
  ASSERT_TRUE(eventually([&] { return !alive(cli); }, 10s)) << "the CLI outlived its supervisor";

  restart(dir);
  client = connect();
  const auto listed = project_listed(*client, id);
  EXPECT_EQ(str(listed, "state"), "IDLE") << "a lost run is never shown as running";
  EXPECT_EQ(str(listed, "session_id"), session);
  const auto history = all_history(*client, id);
  expect_contiguous(history);
  int lost = 0;
  for (const auto& e : history) {
    const auto& m = e.at("message").as_object();
    if (error_code(m) == "EXECUTION_FAILED" &&
        str(data(m).at("details").as_object(), "reason") == "lost")
      ++lost;
  }
  EXPECT_EQ(lost, 1);
  ASSERT_FALSE(history.empty());
  EXPECT_TRUE(is_state(history.back().at("message").as_object(), "IDLE"));

  client->request(Json{{"type", "project_join"}, {"project_id", id}});
  EXPECT_TRUE(is_state(execute(*client, id, "again"), "EXECUTING"));
  until_idle(*client);
  const auto recs = records();
  ASSERT_FALSE(recs.empty());
  EXPECT_NE(json::serialize(recs.back().at("argv")).find("--resume=" + session), std::string::npos)
      << "the next execute resumes the session";
  expect_nothing_left(dir, cli);
}

// timeouts.execution is the supervisor's: it ends a run while no server is there.
TEST_F(RunSurvivalTest, ExecutionTimeoutEndsARunWhileTheServerIsDown) {
  start({"--timeouts-execution", "2", "--timeouts-kill-grace", "1", "--timeouts-term-grace", "1"});
  auto client = connect();
  const std::string id = new_project(*client);
  execute(*client, id, "[[fake:hang]]");
  ASSERT_TRUE(
      client->read_until([](const Json& m) { return str(m, "type") == "agent_message"; }, 30s));
  client.reset();
  const auto dir = kill_server();
  const std::string spool = spool_of_only_run(dir);
  ASSERT_TRUE(eventually([&] { return spool_has_exit(spool); }, 30s))
      << "the run outlived timeouts.execution without a server";

  restart(dir);
  client = connect();
  ASSERT_TRUE(eventually([&] { return str(project_listed(*client, id), "state") == "IDLE"; }, 30s));
  const auto history = all_history(*client, id);
  expect_contiguous(history);
  int timeouts = 0;
  for (const auto& e : history) {
    if (error_code(e.at("message").as_object()) == "EXECUTION_TIMEOUT") ++timeouts;
  }
  EXPECT_EQ(timeouts, 1);
  expect_nothing_left(dir, 0);
}

// shutdown.runs: detach, then a different server binary starts on the same data dir: the run
// goes on and ends normally under the new server.
TEST_F(RunSurvivalTest, DetachThenAnotherBuildTakesTheRunOver) {
  start({"--shutdown-runs", "detach"});
  auto client = connect();
  const std::string id = new_project(*client);
  const TempDir scratch("pa-next");
  const auto hold = scratch.path() / "go";
  const auto pidfile = scratch.path() / "cli.pid";
  execute(*client, id,
          "[[fake:drip lines=50 interval_ms=1 hold_after=10 hold_file=" + hold.string() +
              " self_pidfile=" + pidfile.string() + "]]");
  std::int64_t seen = 0;
  ASSERT_TRUE(client->read_until(
      [&](const Json& m) {
        if (m.contains("seq")) seen = m.at("seq").as_int64();
        return str(m, "type") == "agent_message" && str(data(m), "type") == "assistant" &&
               str(data(m).at("message").at("content").as_array()[0].as_object(), "text")
                       .rfind("Line 10 ", 0) == 0;
      },
      30s));
  const pid_t cli = read_pid(pidfile);
  // SIGTERM with detach: clients get 1001, the server exits 0, the run stays.
  const fs::path dir = server_->data_dir();
  server_->send_signal(SIGTERM);
  EXPECT_EQ(server_->wait_exit(30s), 0);
  killed_.push_back(std::move(server_));
  client.reset();
  ASSERT_TRUE(alive(cli));

  // Another build: the binary copied elsewhere (another file, another /proc/self/exe).
  const auto next = scratch.path() / "pocket-agent-server-next";
  fs::copy_file(PA_SERVER_BINARY, next);
  fs::permissions(next, fs::perms::owner_all);
  start({}, dir, next.string());
  client = connect();
  EXPECT_EQ(str(project_listed(*client, id), "state"), "EXECUTING");
  client->request(Json{{"type", "project_join"}, {"project_id", id}});
  std::ofstream(hold) << "go";
  until_idle(*client, 60s);
  const auto history = all_history(*client, id);
  expect_contiguous(history);
  EXPECT_EQ(assistant_texts(history).size(), 50u);
  const auto recs = records();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].at("exit_code").as_int64(), 0);
  expect_nothing_left(dir, cli);
}

// A permission request pending at the SIGKILL keeps its id, is listed after the restart, and an
// answer given then reaches the CLI (once): the tool runs.
TEST_F(RunSurvivalTest, PendingPermissionIsAnsweredAfterRestart) {
  start({"--claude-permission-prompt", "client"});
  auto client = connect();
  const std::string id = new_project(*client);
  execute(*client, id, "[[fake:permission]]");
  const auto asked =
      client->read_until([](const Json& m) { return str(m, "type") == "permission_request"; }, 30s);
  ASSERT_TRUE(asked);
  const std::string permission_id = str(data(*asked), "permission_id");
  client.reset();
  const auto dir = kill_server();

  restart(dir);
  client = connect();
  const auto joined = client->request(Json{{"type", "project_join"}, {"project_id", id}});
  const auto& pending = data(joined).at("pending_permissions").as_array();
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(str(pending[0].as_object(), "permission_id"), permission_id);
  EXPECT_EQ(str(pending[0].as_object(), "expires_at"), str(data(*asked), "expires_at"));
  client->request(Json{{"type", "permission_response"},
                       {"project_id", id},
                       {"data", {{"permission_id", permission_id}, {"decision", "allow"}}}});
  const auto seen = until_idle(*client);
  const auto results = tool_result_blocks(seen);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].contains("is_error") && results[0].at("is_error").as_bool());
  const auto recs = records();
  ASSERT_EQ(recs.size(), 1u);
  int answers = 0;
  for (const auto& line : recs[0].at("stdin").as_array()) {
    if (std::string(line.as_string()).find("control_response") != std::string::npos) ++answers;
  }
  EXPECT_EQ(answers, 1) << "the answer reached the CLI exactly once";
  expect_nothing_left(dir, 0);
}

// One left unanswered is denied at its original deadline, not one counted from the restart.
TEST_F(RunSurvivalTest, UnansweredPermissionIsDeniedAtItsOriginalDeadline) {
  start({"--claude-permission-prompt", "client", "--claude-permission-timeout", "3"});
  auto client = connect();
  const std::string id = new_project(*client);
  execute(*client, id, "[[fake:permission]]");
  const auto asked =
      client->read_until([](const Json& m) { return str(m, "type") == "permission_request"; }, 30s);
  ASSERT_TRUE(asked);
  const std::string expires_at = str(data(*asked), "expires_at");
  client.reset();
  const auto dir = kill_server();
  restart(dir);
  client = connect();
  client->request(Json{{"type", "project_join"}, {"project_id", id}});
  const auto seen = until_idle(*client);
  std::optional<Json> resolved;
  for (const auto& m : seen) {
    if (str(m, "type") == "permission_resolved") resolved = data(m);
  }
  ASSERT_TRUE(resolved);
  EXPECT_EQ(str(*resolved, "decision"), "deny");
  EXPECT_EQ(str(*resolved, "reason"), "timeout");
  // RFC 3339 UTC strings of one format compare as times.
  EXPECT_GE(str(*resolved, "at"), expires_at);
  expect_nothing_left(dir, 0);
}

// A follow-up queued with mode "queue" before the SIGKILL runs after the restart, once.
TEST_F(RunSurvivalTest, QueuedFollowUpRunsAfterRestart) {
  start();
  auto client = connect();
  const std::string id = new_project(*client);
  const TempDir scratch("pa-hold");
  const auto hold = scratch.path() / "go";
  execute(*client, id,
          "[[fake:drip lines=5 interval_ms=1 hold_after=2 hold_file=" + hold.string() + "]]");
  ASSERT_TRUE(
      client->read_until([](const Json& m) { return str(m, "type") == "agent_message"; }, 30s));
  const auto queued =
      client->request(Json{{"type", "execute"},
                           {"project_id", id},
                           {"data", {{"prompt", "second turn"}, {"mode", "queue"}}}});
  ASSERT_EQ(str(queued, "type"), "prompt_queued");
  client.reset();
  const auto dir = kill_server();

  restart(dir);
  client = connect();
  const auto joined = client->request(Json{{"type", "project_join"}, {"project_id", id}});
  EXPECT_EQ(data(joined).at("queued_prompts").as_array().size(), 1u);
  std::ofstream(hold) << "go";
  until_idle(*client, 60s);
  const auto history = all_history(*client, id);
  expect_contiguous(history);
  EXPECT_EQ(cli_entries_of_type(history, "result"), 2u) << "both turns ran";
  const auto recs = records();
  ASSERT_EQ(recs.size(), 1u);
  int second = 0;
  for (const auto& line : recs[0].at("stdin").as_array()) {
    if (std::string(line.as_string()).find("second turn") != std::string::npos) ++second;
  }
  EXPECT_EQ(second, 1) << "the follow-up was written once";
  expect_nothing_left(dir, 0);
}

// One slot: project A runs (with a follow-up queued) and project B's execute waits (QUEUED).
// After a SIGKILL and a restart, A's follow-up runs, then B's execute, each once.
TEST_F(RunSurvivalTest, QueuedExecuteAndFollowUpRunAfterRestartInOrder) {
  const std::vector<std::string> one_slot = {"--execution-max-concurrent", "1"};
  start(one_slot);
  auto client = connect();
  const std::string a = new_project(*client, "a");
  const std::string b = new_project(*client, "b");
  const TempDir scratch("pa-hold");
  const auto hold = scratch.path() / "go";
  execute(*client, a,
          "[[fake:drip lines=3 interval_ms=1 hold_after=1 hold_file=" + hold.string() + "]]");
  ASSERT_TRUE(
      client->read_until([](const Json& m) { return str(m, "type") == "agent_message"; }, 30s));
  ASSERT_EQ(str(client->request(Json{{"type", "execute"},
                                     {"project_id", a},
                                     {"data", {{"prompt", "a follow-up"}, {"mode", "queue"}}}}),
                "type"),
            "prompt_queued");
  const auto waiting = execute(*client, b, "b waits");
  ASSERT_TRUE(is_state(waiting, "QUEUED")) << json::serialize(waiting);
  client.reset();
  const auto dir = kill_server();

  restart(dir);
  client = connect();
  EXPECT_EQ(str(project_listed(*client, a), "state"), "EXECUTING");
  EXPECT_EQ(str(project_listed(*client, b), "state"), "QUEUED");
  client->request(Json{{"type", "project_join"}, {"project_id", b}});
  std::ofstream(hold) << "go";
  until_idle(*client, 60s);  // b's run, which starts only after a's ended
  EXPECT_EQ(str(project_listed(*client, a), "state"), "IDLE");
  const auto history_a = all_history(*client, a);
  const auto history_b = all_history(*client, b);
  expect_contiguous(history_a);
  expect_contiguous(history_b);
  EXPECT_EQ(cli_entries_of_type(history_a, "result"), 2u) << "a's turn and its follow-up";
  EXPECT_EQ(cli_entries_of_type(history_b, "result"), 1u) << "b's execute, once";
  // In order: a's last result before b's first line.
  std::string a_end, b_start;
  for (const auto& e : history_a) {
    if (str(e, "direction") == "claude") a_end = str(e, "timestamp");
  }
  for (const auto& e : history_b) {
    if (str(e, "direction") == "claude" && b_start.empty()) b_start = str(e, "timestamp");
  }
  EXPECT_LE(a_end, b_start);
  const auto recs = records();
  ASSERT_EQ(recs.size(), 2u) << "one CLI for a (both turns), one for b";
  expect_nothing_left(dir, 0);
}

}  // namespace
}  // namespace pa::test
