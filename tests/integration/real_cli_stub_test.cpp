// End-to-end runs through the server, the REAL Claude CLI (tools/claude-cli, installed by `make
// deps`) and a scripted model API (tests/fixtures/model_api_stub.mjs under node). The CLI runs
// real turns against the stub: tools really run, sessions are really resumed, interrupts and
// signals hit the real process. The stub's script is chosen by a `[[stub:…]]` marker in the
// prompt; the stub reports every request it receives, so tests can assert on what the CLI sent.
//
// Skipped (with the reason) only when node or the CLI binary is missing.
#include <signal.h>
#include <unistd.h>

#include <boost/json/serialize.hpp>
#include <fstream>
#include <regex>
#include <thread>

#include "integration/real_cli_fixture.hpp"

namespace pa::test {
namespace {

// A tool call runs for real in the project directory; two subscribers see every CLI line in the
// same order; the run ends IDLE with the CLI's session id, kept under claude.home.
TEST_F(RealCliStubTest, ToolCallRunsInTheProjectAndBothSubscribersSeeEveryLine) {
  start();
  auto a = connect();
  auto b = connect();
  const auto dir = make_dir("tool");
  const auto id = str(create_project(*a, dir), "project_id");
  ASSERT_EQ(str(b->request(Json{{"type", "project_join"}, {"data", {{"project_id", id}}}}), "type"),
            "project_joined");

  execute_ok(*a, id, R"([[stub:tool command="touch made-by-tool.txt && pwd"]] make a file)",
             Json{{"allowed_tools", json::array{"Bash"}}});
  const auto seen_a = until_idle(*a, 120s);
  const auto seen_b = until_idle(*b, 30s);
  const auto lines_a = cli_lines(seen_a);
  const auto lines_b = cli_lines(seen_b);

  // Every line, in the same order, to both.
  ASSERT_EQ(lines_a.size(), lines_b.size());
  for (std::size_t i = 0; i < lines_a.size(); ++i) {
    EXPECT_EQ(json::serialize(lines_a[i]), json::serialize(lines_b[i])) << "line " << i;
  }
  // init, text, tool_use, tool_result, text, result (a real 2.1.197 one-tool turn).
  std::vector<std::string> types;
  for (const auto& l : lines_a) types.push_back(str(l, "type"));
  ASSERT_EQ(types, (std::vector<std::string>{"system", "assistant", "assistant", "user",
                                             "assistant", "result"}))
      << json::serialize(json::value_from(types));
  EXPECT_EQ(str(lines_a[0], "subtype"), "init");
  EXPECT_EQ(str(lines_a[0], "cwd"), dir.string());
  EXPECT_EQ(block_text(lines_a[2], "type"), "tool_use");
  const auto& tool_result =
      lines_a[3].at("message").as_object().at("content").as_array()[0].as_object();
  EXPECT_EQ(str(tool_result, "type"), "tool_result");
  EXPECT_FALSE(tool_result.at("is_error").as_bool()) << json::serialize(tool_result);
  EXPECT_EQ(str(tool_result, "content"), dir.string());  // pwd ran in the project directory
  EXPECT_EQ(block_text(lines_a[4]), "Tool output: " + dir.string());
  const auto& result = lines_a[5];
  EXPECT_EQ(str(result, "subtype"), "success");
  EXPECT_FALSE(result.at("is_error").as_bool());

  // The tool really ran, in the project directory.
  EXPECT_TRUE(fs::exists(dir / "made-by-tool.txt"));

  // IDLE carries the session id the CLI reported (init and result agree).
  const std::string session = str(result, "session_id");
  ASSERT_FALSE(session.empty());
  EXPECT_EQ(str(lines_a[0], "session_id"), session);
  EXPECT_EQ(str(data(seen_a.back()), "session_id"), session);
  EXPECT_EQ(str(data(seen_b.back()), "session_id"), session);

  // claude.home: the CLI kept the session under the configured HOME.
  bool transcript_found = false;
  for (const auto& e : fs::recursive_directory_iterator(home_.path() / ".claude" / "projects")) {
    if (e.path().filename() == session + ".jsonl") transcript_found = true;
  }
  EXPECT_TRUE(transcript_found);

  // claude.env reached the CLI: the stub got the dummy key; one request per model step, the
  // second carrying the tool_result.
  const auto requests = stub_->message_requests();
  ASSERT_EQ(requests.size(), 2U);
  EXPECT_EQ(str(requests[0].at("headers").as_object(), "x-api-key"), "stub-key-not-secret");
  EXPECT_EQ(str(requests[0], "script"), "tool");
  EXPECT_EQ(str(requests[1], "script"), "after_tool");
}

// A second execute resumes the conversation: the stub sees the first turn in the second request.
TEST_F(RealCliStubTest, SecondExecuteResumesTheSession) {
  start();
  auto client = connect();
  const auto id = new_project(*client, "resume");
  execute_ok(*client, id, R"([[stub:text text="The first answer."]] What is the first question?)");
  const auto first = cli_lines(until_idle(*client, 120s));
  const auto first_result = find_line(first, "result");
  ASSERT_TRUE(first_result);
  EXPECT_FALSE(first_result->at("is_error").as_bool()) << json::serialize(*first_result);
  const std::string session = str(*first_result, "session_id");

  execute_ok(*client, id, R"([[stub:text text="The second answer."]] And the second one?)");
  const auto seen = until_idle(*client, 120s);
  const auto second = cli_lines(seen);
  const auto second_result = find_line(second, "result");
  ASSERT_TRUE(second_result);
  EXPECT_FALSE(second_result->at("is_error").as_bool()) << json::serialize(*second_result);
  EXPECT_EQ(str(*second_result, "result"), "The second answer.");
  EXPECT_EQ(str(*second_result, "session_id"), session);  // 2.1.197 keeps the id on --resume
  EXPECT_EQ(str(data(seen.back()), "session_id"), session);

  const auto requests = stub_->message_requests();
  ASSERT_EQ(requests.size(), 2U);
  const std::string messages = json::serialize(requests[1].at("body").as_object().at("messages"));
  EXPECT_NE(messages.find("What is the first question?"), std::string::npos) << messages;
  EXPECT_NE(messages.find("The first answer."), std::string::npos) << messages;
  EXPECT_NE(messages.find("And the second one?"), std::string::npos) << messages;
}

// agent_kill while the model streams: the CLI's interrupt ends the run (no signal needed), the
// interrupted lines are in the history, and the conversation resumes afterwards.
TEST_F(RealCliStubTest, AgentKillMidStreamInterruptsAndTheSessionResumes) {
  start();
  auto client = connect();
  const auto id = new_project(*client, "kill");
  execute_ok(*client, id, "[[stub:slow chunks=3000 interval_ms=50]] write a long essay");
  // Mid-stream: the stub is sending words and the CLI printed the first, complete block.
  ASSERT_TRUE(stub_->wait_for(
      [](const Json& e) { return str(e, "event") == "stream_start" && str(e, "script") == "slow"; },
      120s));
  std::vector<Json> seen;
  ASSERT_TRUE(client->read_until(
      [&](const Json& m) {
        seen.push_back(m);
        return str(m, "type") == "agent_message" && str(data(m), "type") == "assistant";
      },
      60s));
  const std::string session = str(data(seen.back()), "session_id");

  const std::size_t skipped_before = client->skipped().size();
  const auto killed = client->request(Json{{"type", "agent_kill"}, {"project_id", id}}, 60s);
  EXPECT_TRUE(is_state(killed, "IDLE")) << json::serialize(killed);
  const auto& skipped = client->skipped();
  seen.insert(seen.end(), skipped.begin() + static_cast<std::ptrdiff_t>(skipped_before),
              skipped.end());
  for (const auto& m : seen) EXPECT_NE(str(m, "type"), "error") << json::serialize(m);

  // The interrupt path: the CLI answered and ended the turn itself; no signal was needed.
  const auto lines = cli_lines(seen);
  const auto interrupted = std::find_if(lines.begin(), lines.end(), [](const Json& l) {
    return str(l, "type") == "user" &&
           json::serialize(l).find("[Request interrupted by user]") != std::string::npos;
  });
  EXPECT_NE(interrupted, lines.end());
  const auto result = find_line(lines, "result");
  ASSERT_TRUE(result);
  EXPECT_EQ(str(*result, "subtype"), "error_during_execution");
  EXPECT_TRUE(result->at("is_error").as_bool());
  EXPECT_EQ(str(*result, "terminal_reason"), "aborted_streaming");
  for (const auto& l : server_->log_lines()) {
    EXPECT_EQ(l.find("sending SIGTERM"), std::string::npos) << l;
  }
  // The CLI dropped the model's stream.
  EXPECT_TRUE(
      stub_->wait_for([](const Json& e) { return str(e, "event") == "client_closed"; }, 10s));

  // History has the interrupted lines.
  const auto history = client->request(
      Json{{"type", "get_messages"}, {"project_id", id}, {"data", {{"limit", 1000}}}});
  const std::string history_text = json::serialize(data(history).at("messages"));
  EXPECT_NE(history_text.find("[Request interrupted by user]"), std::string::npos);
  EXPECT_NE(history_text.find("error_during_execution"), std::string::npos);

  // The session still resumes.
  execute_ok(*client, id, R"([[stub:text text="Resumed after the kill."]] go on)");
  const auto after = cli_lines(until_idle(*client, 120s));
  const auto after_result = find_line(after, "result");
  ASSERT_TRUE(after_result);
  EXPECT_FALSE(after_result->at("is_error").as_bool()) << json::serialize(*after_result);
  EXPECT_EQ(str(*after_result, "session_id"), session);
  const auto requests = stub_->message_requests();
  ASSERT_EQ(requests.size(), 2U);
  const std::string messages = json::serialize(requests[1].at("body").as_object().at("messages"));
  EXPECT_NE(messages.find("write a long essay"), std::string::npos);
  EXPECT_NE(messages.find("[Request interrupted by user]"), std::string::npos);
}

// A CLI that does not answer the interrupt (here: stopped with SIGSTOP while its Bash tool
// runs; the real CLI answers an interrupt even when the model API never finishes a stream, so a
// hanging stub alone cannot wedge it) is ended by the escalation: SIGTERM after
// timeouts.kill_grace, SIGKILL to the whole tree after timeouts.term_grace. Nothing survives,
// neither in the CLI's process group nor the tool in its own session.
TEST_F(RealCliStubTest, ACliThatIgnoresTheInterruptIsTerminatedAndNothingSurvives) {
  start({"--timeouts-kill-grace", "1s", "--timeouts-term-grace", "1s"});
  auto client = connect();
  const auto dir = make_dir("sigterm");
  const auto id = str(create_project(*client, dir), "project_id");
  execute_ok(*client, id,
             R"([[stub:tool command="sleep 600 & echo $! > tool.pid; wait"]] start a server)",
             Json{{"allowed_tools", json::array{"Bash"}}});
  // The tool runs once its pid file has a pid in it.
  pid_t tool = -1;
  ASSERT_TRUE(eventually(
      [&] {
        std::ifstream in(dir / "tool.pid");
        return static_cast<bool>(in >> tool) && tool > 0;
      },
      120s));
  ASSERT_TRUE(alive(tool));
  const pid_t cli = cli_pid();
  ASSERT_GT(cli, 0);
  ASSERT_TRUE(alive(cli));
  ASSERT_EQ(proc_stat(cli)->pgid, cli);   // the server made the CLI a group leader
  ASSERT_NE(proc_stat(tool)->pgid, cli);  // the tool left the group (its own session)

  // Wedge the CLI: it can no longer read the interrupt, and SIGTERM stays pending.
  ASSERT_EQ(::kill(cli, SIGSTOP), 0);
  const auto killed = client->request(Json{{"type", "agent_kill"}, {"project_id", id}}, 60s);
  EXPECT_TRUE(is_state(killed, "IDLE")) << json::serialize(killed);

  const auto logged = [&](const std::string& text) {
    return server_->wait_for_log(
        [&](const std::string& l) { return l.find(text) != std::string::npos; }, 10s);
  };
  EXPECT_TRUE(logged("CLI still running after interrupt; sending SIGTERM"));
  EXPECT_TRUE(logged("CLI ignored SIGTERM; killing its process tree"));
  EXPECT_TRUE(eventually([&] { return !alive(cli) && !alive(tool); }, 10s))
      << "cli alive: " << alive(cli) << ", tool alive: " << alive(tool);
  EXPECT_TRUE(group_members(cli).empty());

  // The project is usable again.
  execute_ok(*client, id, R"([[stub:text text="Still here."]] hello)");
  const auto after = cli_lines(until_idle(*client, 120s));
  const auto result = find_line(after, "result");
  ASSERT_TRUE(result);
  EXPECT_EQ(str(*result, "result"), "Still here.");
}

// API errors from the model surface as the CLI reports them (a synthetic assistant line and an
// is_error result with api_error_status), and the project is IDLE afterwards.
TEST_F(RealCliStubTest, ApiErrorsSurfaceAsTheCliReportsThemAndTheProjectIsIdle) {
  start();
  auto client = connect();
  const auto id = new_project(*client, "errors");
  struct Case {
    int status;
    std::string prompt, expected_text;
  };
  const std::vector<Case> cases = {
      {500, R"([[stub:error status=500 message="Stub overloaded"]] hi)",
       "API Error: 500 Stub overloaded"},
      {401, R"([[stub:error status=401 message="invalid x-api-key"]] hi)", "Invalid API key"},
  };
  std::size_t requests_before = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.status);
    execute_ok(*client, id, c.prompt);
    const auto seen = until_idle(*client, 120s);
    EXPECT_EQ(str(data(seen.back()), "state"), "IDLE");
    const auto lines = cli_lines(seen);
    const auto assistant = find_line(lines, "assistant");
    ASSERT_TRUE(assistant);
    EXPECT_EQ(str(assistant->at("message").as_object(), "model"), "<synthetic>");
    EXPECT_NE(block_text(*assistant).find(c.expected_text), std::string::npos)
        << block_text(*assistant);
    const auto result = find_line(lines, "result");
    ASSERT_TRUE(result);
    EXPECT_TRUE(result->at("is_error").as_bool());
    EXPECT_EQ(result->at("api_error_status").to_number<int>(), c.status);
    EXPECT_NE(str(*result, "result").find(c.expected_text), std::string::npos);
    // x-should-retry: false, so exactly one request for the turn.
    const auto requests = stub_->message_requests();
    EXPECT_EQ(requests.size(), requests_before + 1);
    requests_before = requests.size();
    const auto health = client->request(Json{{"type", "project_list"}});
    for (const auto& p : data(health).at("projects").as_array()) {
      EXPECT_EQ(str(p.as_object(), "state"), "IDLE");
    }
  }
}

}  // namespace
}  // namespace pa::test
