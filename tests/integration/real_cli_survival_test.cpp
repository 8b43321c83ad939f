// Runs outlive the server with the REAL Claude CLI (tools/claude-cli) against the scripted model
// API (tests/fixtures/model_api_stub.mjs): a SIGKILLed server leaves the run with its
// supervisor, the next start on the same data dir re-attaches it and the run ends there, every
// line once and nothing left running. And (issue 21) a run that ends, normally or by
// agent_interrupt, leaves no process behind.
//
// The RealCli* tests are skipped (with the reason) where RealCliStubTest is: no node or no CLI.
#include <signal.h>
#include <unistd.h>

#include <boost/json/serialize.hpp>
#include <fstream>

#include "integration/real_cli_fixture.hpp"

namespace pa::test {
namespace {

// Helpers shared by both fixtures (history entries hold the CLI's line itself in "message").
pid_t read_pid(const fs::path& file) {
  pid_t pid = 0;
  std::ifstream(file) >> pid;
  return pid;
}

std::string spool_of_only_run(const fs::path& data_dir) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(data_dir / "runs", ec)) {
    if (entry.is_directory()) return (entry.path() / "spool").string();
  }
  return {};
}

// True once the run's spool holds its exit record, or the run (and its spool) is gone.
bool run_ended(const std::string& spool) {
  std::ifstream in(spool);
  if (!in) return true;
  std::string line, last;
  while (std::getline(in, line)) last = line;
  return !last.empty() && last.front() == 'x';
}

void expect_contiguous(const std::vector<Json>& history) {
  for (std::size_t i = 0; i < history.size(); ++i) {
    ASSERT_EQ(history[i].at("seq").as_int64(), static_cast<std::int64_t>(i + 1))
        << "history seq has a gap or a repeat at entry " << i;
  }
}

// The CLI lines (history entries from the CLI) of `cli_type`.
std::vector<Json> cli_entries(const std::vector<Json>& history, std::string_view cli_type) {
  std::vector<Json> out;
  for (const auto& e : history) {
    if (str(e, "direction") != "claude") continue;
    const auto& line = e.at("message").as_object();
    if (str(line, "type") == cli_type) out.push_back(line);
  }
  return out;
}

// The text blocks of the CLI's assistant lines in history.
std::vector<std::string> assistant_texts(const std::vector<Json>& history) {
  std::vector<std::string> out;
  for (const auto& line : cli_entries(history, "assistant")) {
    const auto& content = line.at("message").at("content");
    if (!content.is_array()) continue;
    for (const auto& block : content.as_array()) {
      if (str(block.as_object(), "type") == "text") out.push_back(str(block.as_object(), "text"));
    }
  }
  return out;
}

// The tool_result blocks of the CLI's user lines in history.
std::vector<Json> tool_results(const std::vector<Json>& history) {
  std::vector<Json> out;
  for (const auto& line : cli_entries(history, "user")) {
    const auto& content = line.at("message").at("content");
    if (!content.is_array()) continue;
    for (const auto& block : content.as_array()) {
      if (block.is_object() && str(block.as_object(), "type") == "tool_result")
        out.push_back(block.as_object());
    }
  }
  return out;
}

std::string text_of(const Json& tool_result) {
  const auto& c = tool_result.at("content");
  if (c.is_string()) return std::string(c.get_string());
  std::string out;
  if (c.is_array()) {
    for (const auto& b : c.as_array()) out += str(b.as_object(), "text");
  }
  return out;
}

std::size_t count(const std::vector<std::string>& v, const std::string& s) {
  return static_cast<std::size_t>(std::count(v.begin(), v.end(), s));
}

// "pid=… ppid=… pgid=… sid=… state=… cmd=…" of a live pid, for failure messages.
std::string describe(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  if (text.empty() || close == std::string::npos) return "pid " + std::to_string(pid) + " gone";
  std::istringstream rest(text.substr(close + 2));
  char state = '?';
  pid_t ppid = 0, pgid = 0, sid = 0;
  rest >> state >> ppid >> pgid >> sid;
  const auto cmd = [](pid_t p) {
    std::ifstream c("/proc/" + std::to_string(p) + "/cmdline");
    std::string s((std::istreambuf_iterator<char>(c)), std::istreambuf_iterator<char>());
    std::replace(s.begin(), s.end(), '\0', ' ');
    return s.substr(0, 120);
  };
  std::ostringstream out;
  out << "pid=" << pid << " ppid=" << ppid << " pgid=" << pgid << " sid=" << sid
      << " state=" << state << " cmd=[" << cmd(pid) << "] parent cmd=[" << cmd(ppid) << "]";
  return out.str();
}

// No supervisor of `data_dir` and none of `pids` is left (dead and reaped: no zombie either).
void expect_nothing_left(const fs::path& data_dir, const std::vector<pid_t>& pids) {
  EXPECT_TRUE(eventually([&] { return supervisors_of(data_dir).empty(); }, 20s))
      << "a supervisor outlived its run";
  for (const pid_t pid : pids) {
    if (pid <= 0) continue;
    const bool ended = eventually([&] { return gone(pid); }, 20s);
    EXPECT_TRUE(ended) << "a process of the run outlived it: " << describe(pid);
    if (!ended && alive(pid)) ::kill(pid, SIGKILL);  // the test leaves nothing behind itself
  }
}

class RealCliSurvivalTest : public RealCliStubTest {
 protected:
  // SIGKILL the server; its data dir stays (with the old object) until the test ends.
  fs::path kill_server() {
    const fs::path dir = server_->data_dir();
    server_->kill_hard();
    killed_.push_back(std::move(server_));
    return dir;
  }
  void restart(const fs::path& dir) { start({}, dir); }

  // After a restart: the project is EXECUTING again, unless the run already ended (its exit is
  // in the spool: then a quick server may have finished it before this look).
  void expect_reattached(WsClient& client, const std::string& id, const std::string& spool) {
    const auto listed = project_listed(client, id);
    if (!run_ended(spool)) {
      EXPECT_EQ(str(listed, "state"), "EXECUTING") << "the restarted server did not take the run";
    }
  }

  // Polls until the project is IDLE (a subscriber might miss an end that came before it joined).
  void wait_idle(WsClient& client, const std::string& id) {
    ASSERT_TRUE(
        eventually([&] { return str(project_listed(client, id), "state") == "IDLE"; }, 180s))
        << "the run did not end after the restart";
  }

  // SIGKILL mid-run: the CLI and the run's supervisor must live on. Returns the run's spool.
  struct Killed {
    fs::path dir;
    std::string spool;
  };
  Killed kill_mid_run(pid_t cli) {
    Killed k{kill_server(), {}};
    EXPECT_TRUE(alive(cli)) << "the CLI died with the server";
    EXPECT_EQ(supervisors_of(k.dir).size(), 1u) << "the run lost its supervisor with the server";
    k.spool = spool_of_only_run(k.dir);
    EXPECT_FALSE(k.spool.empty());
    return k;
  }

  // Restarts on the killed server's data dir, sees the run taken over and waits for its end.
  // Returns the project's whole history, checked contiguous and ending IDLE.
  std::vector<Json> restart_until_idle(const Killed& k, std::unique_ptr<WsClient>& client,
                                       const std::string& id) {
    restart(k.dir);
    client = connect();
    expect_reattached(*client, id, k.spool);
    wait_idle(*client, id);
    auto history = all_history(*client, id);
    expect_contiguous(history);
    EXPECT_FALSE(history.empty());
    if (!history.empty()) {
      EXPECT_TRUE(is_state(history.back().at("message").as_object(), "IDLE"))
          << json::serialize(history.back());
    }
    return history;
  }

  std::vector<std::unique_ptr<ServerProcess>> killed_;
};

// 1. SIGKILL while the model streams its answer slowly: the run goes on without a server, the
// restart re-attaches it, and the answer and result are in history once each.
TEST_F(RealCliSurvivalTest, SigkillDuringASlowAnswerThenRestartTheAnswerArrivesOnce) {
  start();
  auto client = connect();
  const auto id = new_project(*client, "slow");
  execute_ok(*client, id, "[[stub:slow chunks=100 interval_ms=100]] write slowly");
  ASSERT_TRUE(stub_->wait_for(
      [](const Json& e) { return str(e, "event") == "stream_start" && str(e, "script") == "slow"; },
      120s));
  // The first, complete block is out: the run is certainly mid-answer.
  std::string session;
  ASSERT_TRUE(client->read_until(
      [&](const Json& m) {
        if (str(m, "type") != "agent_message") return false;
        if (str(data(m), "subtype") == "init") session = str(data(m), "session_id");
        return str(data(m), "type") == "assistant";
      },
      60s));
  ASSERT_FALSE(session.empty());
  const pid_t cli = cli_pid();
  ASSERT_GT(cli, 0);
  client.reset();
  const auto stream_ended = [&] {
    for (const auto& e : stub_->events()) {
      if (str(e, "event") == "stream_end") return true;
    }
    return false;
  };
  const auto killed = kill_mid_run(cli);
  ASSERT_FALSE(HasFailure());
  ASSERT_FALSE(stream_ended()) << "the answer ended before the SIGKILL (machine too slow?)";

  const auto history = restart_until_idle(killed, client, id);
  ASSERT_FALSE(HasFailure());
  EXPECT_TRUE(stream_ended());
  std::string answer;
  for (int i = 0; i < 100; ++i) answer += "word" + std::to_string(i) + " ";
  const auto texts = assistant_texts(history);
  EXPECT_EQ(count(texts, "Starting a long answer."), 1u)
      << json::serialize(json::value_from(texts));
  std::size_t full_answers = 0;
  for (const auto& t : texts) {
    if (t.find("word99") != std::string::npos) {
      ++full_answers;
      EXPECT_EQ(t.rfind("word0 word1 ", 0), 0u) << t.substr(0, 80);
    }
  }
  EXPECT_EQ(full_answers, 1u) << "the slow answer is in history once";
  const auto results = cli_entries(history, "result");
  ASSERT_EQ(results.size(), 1u) << "the result is in history once";
  EXPECT_EQ(str(results[0], "subtype"), "success") << json::serialize(results[0]);
  EXPECT_FALSE(results[0].at("is_error").as_bool());
  EXPECT_NE(str(results[0], "result").find("word99"), std::string::npos);
  EXPECT_EQ(str(results[0], "session_id"), session);
  // The CLI asked the model once: nothing was retried or run again.
  EXPECT_EQ(stub_->message_requests().size(), 1u);

  const auto listed = project_listed(*client, id);
  EXPECT_EQ(str(listed, "state"), "IDLE");
  EXPECT_EQ(str(listed, "session_id"), session);
  expect_nothing_left(killed.dir, {cli});
}

// 2. SIGKILL while the CLI's Bash tool runs `sleep`: the tool finishes without a server, and
// after the restart its result and the final answer are in history once each.
TEST_F(RealCliSurvivalTest, SigkillDuringABashSleepThenRestartTheToolResultArrivesOnce) {
  start();
  auto client = connect();
  const auto dir_project = make_dir("sleep");
  const auto id = str(create_project(*client, dir_project), "project_id");
  execute_ok(*client, id,
             R"([[stub:tool command="echo $$ > tool.pid; sleep 5; echo slept"]] sleep a while)",
             Json{{"allowed_tools", json::array{"Bash"}}});
  // The tool_use line is out (init came before it); then the tool runs once its pid file is there.
  std::string session;
  ASSERT_TRUE(client->read_until(
      [&](const Json& m) {
        if (str(m, "type") != "agent_message") return false;
        if (str(data(m), "subtype") == "init") session = str(data(m), "session_id");
        return str(data(m), "type") == "assistant" &&
               json::serialize(data(m)).find("\"tool_use\"") != std::string::npos;
      },
      120s))
      << "no tool_use";
  ASSERT_FALSE(session.empty());
  pid_t tool = 0;
  ASSERT_TRUE(eventually(
      [&] {
        tool = read_pid(dir_project / "tool.pid");
        return tool > 0;
      },
      120s))
      << "the tool did not start";
  const pid_t cli = cli_pid();
  ASSERT_GT(cli, 0);
  client.reset();
  const auto killed = kill_mid_run(cli);
  ASSERT_TRUE(alive(tool)) << "the tool died with the server";
  ASSERT_FALSE(HasFailure());

  const auto history = restart_until_idle(killed, client, id);
  ASSERT_FALSE(HasFailure());
  const auto results_of_tool = tool_results(history);
  ASSERT_EQ(results_of_tool.size(), 1u) << "the tool's result is in history once";
  EXPECT_EQ(text_of(results_of_tool[0]), "slept") << json::serialize(results_of_tool[0]);
  EXPECT_FALSE(results_of_tool[0].contains("is_error") &&
               results_of_tool[0].at("is_error").as_bool());
  const auto texts = assistant_texts(history);
  EXPECT_EQ(count(texts, "Tool output: slept"), 1u) << json::serialize(json::value_from(texts));
  const auto results = cli_entries(history, "result");
  ASSERT_EQ(results.size(), 1u) << "the result is in history once";
  EXPECT_EQ(str(results[0], "subtype"), "success") << json::serialize(results[0]);
  EXPECT_EQ(str(results[0], "result"), "Tool output: slept");
  // One tool step and one answer step: the tool was not run again.
  const auto requests = stub_->message_requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(str(requests[0], "script"), "tool");
  EXPECT_EQ(str(requests[1], "script"), "after_tool");

  const auto listed = project_listed(*client, id);
  EXPECT_EQ(str(listed, "state"), "IDLE");
  EXPECT_EQ(str(listed, "session_id"), session);
  expect_nothing_left(killed.dir, {cli, tool});
}

// 3. (issue 21) A run that ends normally leaves nothing behind: a background process its Bash
// tool started (and that outlived the tool while the run went on) is gone after IDLE.
TEST_F(RealCliSurvivalTest, RunEndingNormallyTakesABackgroundProcessOfItsTool) {
  start();
  auto client = connect();
  const auto dir_project = make_dir("background");
  const auto id = str(create_project(*client, dir_project), "project_id");
  // The step after the tool answers 3 s late: the run is still going when the tool returned.
  execute_ok(
      *client, id,
      R"([[stub:tool command="sleep 600 >/dev/null 2>&1 & echo $! > bg.pid; echo started" after_delay_ms=3000]] start it)",
      Json{{"allowed_tools", json::array{"Bash"}}});
  ASSERT_TRUE(client->read_until(
      [](const Json& m) {
        return str(m, "type") == "agent_message" &&
               !tool_result_blocks(std::vector<Json>{m}).empty();
      },
      120s))
      << "no tool_result";
  const pid_t bg = read_pid(dir_project / "bg.pid");
  ASSERT_GT(bg, 0);
  EXPECT_TRUE(alive(bg)) << "the background process did not outlive its tool";
  const std::string bg_while_running = describe(bg);
  const pid_t cli = cli_pid();
  ASSERT_GT(cli, 0);

  const auto seen = until_idle(*client, 120s);
  const auto lines = cli_lines(seen);
  const auto result = find_line(lines, "result");
  ASSERT_TRUE(result);
  EXPECT_FALSE(result->at("is_error").as_bool()) << json::serialize(*result);
  EXPECT_EQ(str(*result, "result"), "Tool output: started");
  EXPECT_FALSE(str(data(seen.back()), "session_id").empty());
  expect_nothing_left(server_->data_dir(), {cli, bg});
  if (HasFailure()) {
    std::cerr << "background process while the run went on: " << bg_while_running << "\n";
    if (alive(bg)) ::kill(bg, SIGKILL);  // leave nothing behind ourselves
  }
}

// 4. (issue 21) agent_interrupt with the fake CLI: the turn ends by the interrupt, the CLI
// exits on its own, and the tool it left running (in its own session) is gone afterwards.
class RunLeftoversTest : public AgentServerTest {};

TEST_F(RunLeftoversTest, AgentInterruptTakesAToolTheCliLeftBehind) {
  auto client = connect();
  const auto id = new_project(*client);
  const auto pidfile = state_.path() / "grandchild.pid";
  execute(*client, id, "[[fake:grandchild keep_tool=1 pidfile=" + pidfile.string() + "]]");
  // The fake writes the pid file before its first line.
  ASSERT_TRUE(client->read_until([](const Json& m) { return str(m, "type") == "agent_message"; }));
  const pid_t grandchild = read_pid(pidfile);
  ASSERT_GT(grandchild, 0);
  ASSERT_TRUE(alive(grandchild));
  ASSERT_EQ(supervisors_of(server_->data_dir()).size(), 1u);

  const auto idle = client->request(Json{{"type", "agent_interrupt"}, {"project_id", id}}, 30s);
  ASSERT_TRUE(is_state(idle, "IDLE")) << json::serialize(idle);
  EXPECT_FALSE(str(data(idle), "session_id").empty());
  bool aborted_tools = false;
  for (const auto& m : client->skipped()) {
    EXPECT_NE(str(m, "type"), "error") << json::serialize(m);
    if (str(m, "type") == "agent_message" && str(data(m), "type") == "result")
      aborted_tools = str(data(m), "terminal_reason") == "aborted_tools";
  }
  EXPECT_TRUE(aborted_tools) << "the turn did not end as an interrupted tool turn";

  // The interrupt, no signal: the CLI exited by itself after its stdin closed.
  const auto rec = records();
  ASSERT_EQ(rec.size(), 1u);
  EXPECT_NE(json::serialize(rec[0].at("stdin")).find("interrupt"), std::string::npos);
  EXPECT_FALSE(rec[0].contains("signal")) << json::serialize(rec[0]);
  ASSERT_TRUE(rec[0].at("exit_code").is_int64()) << json::serialize(rec[0]);
  EXPECT_NE(rec[0].at("exit_code").as_int64(), 143) << "ended by SIGTERM, not the interrupt";
  const auto cli = static_cast<pid_t>(rec[0].at("pid").as_int64());

  expect_nothing_left(server_->data_dir(), {cli, grandchild});
  EXPECT_EQ(str(project_listed(*client, id), "state"), "IDLE");
}

}  // namespace
}  // namespace pa::test
