// Agent runs through the real server and the fake CLI: streaming, argv, sessions, kill,
// timeouts, the run queue, failures, huge lines.
#include <signal.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <set>

#include "integration/fixture.hpp"

namespace pa::test {
namespace {

namespace fs = std::filesystem;

class AgentTest : public AgentServerTest {};

TEST_F(AgentTest, FullRunStreamsToTwoSubscribersInTheSameOrder) {
  auto alice = connect();
  auto bob = connect();
  const auto id = new_project(*alice);
  ASSERT_EQ(str(bob->request(Json{{"type", "project_join"}, {"project_id", id}}), "type"),
            "project_joined");

  const auto reply = execute(*alice, id, "list the files [[fake:tool]]");
  ASSERT_TRUE(is_state(reply, "EXECUTING")) << json::serialize(reply);
  EXPECT_EQ(str(reply, "project_id"), id);

  const auto a = until_idle(*alice);
  const auto b = until_idle(*bob);
  // Bob also saw EXECUTING (as a broadcast); Alice got it as her reply.
  ASSERT_FALSE(bob->skipped().empty());
  const auto a_lines = of_type(a, "agent_message");
  const auto b_lines = of_type(b, "agent_message");
  ASSERT_GE(a_lines.size(), 4u);
  ASSERT_EQ(a_lines.size(), b_lines.size());
  for (std::size_t i = 0; i < a_lines.size(); ++i) {
    EXPECT_EQ(json::serialize(a_lines[i]), json::serialize(b_lines[i])) << i;
    if (i > 0) {
      EXPECT_EQ(a_lines[i].at("seq").as_int64(), a_lines[i - 1].at("seq").as_int64() + 1);
    }
  }
  EXPECT_EQ(str(data(a_lines.front()), "type"), "system");
  EXPECT_EQ(str(data(a_lines.front()), "subtype"), "init");
  EXPECT_EQ(str(data(a_lines.front()), "cwd"),
            fs::canonical(projects_root_.path() / "proj").string());
  const auto& result = data(a_lines.back());
  EXPECT_EQ(str(result, "type"), "result");
  const std::string session = str(result, "session_id");
  EXPECT_FALSE(session.empty());
  EXPECT_EQ(str(data(a.back()), "session_id"), session);
  EXPECT_EQ(str(data(b.back()), "session_id"), session);

  // The prompt went on stdin, never in argv.
  const auto rec = records();
  ASSERT_EQ(rec.size(), 1u);
  for (const auto& arg : rec[0].at("argv").as_array()) {
    EXPECT_EQ(std::string(arg.as_string()).find("list the files"), std::string::npos);
  }
  const auto& stdin_lines = rec[0].at("stdin").as_array();
  ASSERT_GE(stdin_lines.size(), 1u);
  EXPECT_NE(json::serialize(stdin_lines[0]).find("list the files"), std::string::npos);
}

TEST_F(AgentTest, ArgvForEveryOption) {
  auto client = connect();
  const auto id = new_project(*client);
  const auto extra = make_dir("extra");
  Json options{{"model", "claude-opus-4"},
               {"fallback_model", "claude-sonnet-4"},
               {"permission_mode", "acceptEdits"},
               {"allowed_tools", json::array{"Read", "Bash(git *)"}},
               {"disallowed_tools", json::array{"WebFetch"}},
               {"mcp_config", Json{{"mcpServers", Json{}}}},
               {"append_system_prompt", "--be brief"},
               {"add_dirs", json::array{extra.string()}},
               {"strict_mcp_config", true}};
  ASSERT_TRUE(is_state(execute(*client, id, "hi", options), "EXECUTING"));
  until_idle(*client);
  const auto rec = records();
  ASSERT_EQ(rec.size(), 1u);
  std::vector<std::string> argv;
  for (const auto& a : rec[0].at("argv").as_array()) argv.emplace_back(a.as_string());
  ASSERT_GE(argv.size(), 1u);
  argv.erase(argv.begin());  // the binary
  std::string mcp_path;
  for (const auto& a : argv) {
    if (a.rfind("--mcp-config=", 0) == 0) mcp_path = a.substr(13);
  }
  ASSERT_FALSE(mcp_path.empty());
  EXPECT_FALSE(fs::exists(mcp_path)) << "the private MCP file is removed after the run";
  const std::vector<std::string> expected = {"-p",
                                             "--input-format=stream-json",
                                             "--output-format=stream-json",
                                             "--verbose",
                                             "--model=claude-opus-4",
                                             "--fallback-model=claude-sonnet-4",
                                             "--permission-mode=acceptEdits",
                                             "--permission-prompt-tool=stdio",
                                             "--allowedTools=Read,Bash(git *)",
                                             "--disallowedTools=WebFetch",
                                             "--mcp-config=" + mcp_path,
                                             "--strict-mcp-config",
                                             "--append-system-prompt=--be brief",
                                             "--add-dir=" + fs::canonical(extra).string()};
  EXPECT_EQ(std::set<std::string>(argv.begin(), argv.end()),
            std::set<std::string>(expected.begin(), expected.end()));
  EXPECT_EQ(argv.size(), expected.size());
  // NO_COLOR is set and the server's token is not passed on.
  const auto& env = rec[0].at("env").as_object();
  EXPECT_EQ(str(env, "NO_COLOR"), "1");
  EXPECT_FALSE(env.contains("PA_AUTH_TOKEN"));
}

// The options only a server started with claude.allow_dangerous accepts.
TEST_F(AgentTest, ArgvForTheDangerousOptions) {
  start_agent_server({"--claude-allow-dangerous"});
  auto client = connect();
  const auto id = new_project(*client);
  ASSERT_TRUE(is_state(execute(*client, id, "hi", Json{{"dangerously_skip_permissions", true}}),
                       "EXECUTING"));
  until_idle(*client);
  ASSERT_TRUE(
      is_state(execute(*client, id, "hi again", Json{{"permission_mode", "bypassPermissions"}}),
               "EXECUTING"));
  until_idle(*client);
  const auto rec = records();
  ASSERT_EQ(rec.size(), 2u);
  const auto argv_of = [](const Json& record) {
    std::vector<std::string> argv;
    for (const auto& a : record.at("argv").as_array()) argv.emplace_back(a.as_string());
    return argv;
  };
  const auto first = argv_of(rec[0]);
  EXPECT_EQ(std::count(first.begin(), first.end(), "--dangerously-skip-permissions"), 1)
      << json::serialize(rec[0].at("argv"));
  const auto second = argv_of(rec[1]);
  EXPECT_EQ(std::count(second.begin(), second.end(), "--permission-mode=bypassPermissions"), 1)
      << json::serialize(rec[1].at("argv"));
  EXPECT_EQ(std::count(second.begin(), second.end(), "--dangerously-skip-permissions"), 0);
  // The CLI accepted them (it exits 1 on an argument it rejects).
  EXPECT_EQ(rec[0].at("exit_code").as_int64(), 0);
  EXPECT_EQ(rec[1].at("exit_code").as_int64(), 0);
}

TEST_F(AgentTest, DefaultsFromConfigAndBadOptions) {
  auto client = connect();
  const auto id = new_project(*client);
  ASSERT_TRUE(is_state(execute(*client, id, "hi"), "EXECUTING"));
  until_idle(*client);
  const auto rec = records();
  ASSERT_EQ(rec.size(), 1u);
  const auto argv = json::serialize(rec[0].at("argv"));
  EXPECT_NE(argv.find("--model=claude-3-5-sonnet-20241022"), std::string::npos) << argv;
  EXPECT_NE(argv.find("--allowedTools=read,write,run"), std::string::npos) << argv;

  auto r = execute(*client, id, "hi", Json{{"model", 42}});
  EXPECT_EQ(error_code(r), "INVALID_MESSAGE");
  EXPECT_EQ(str(data(r).at("details").as_object(), "field"), "data.options.model");
  r = execute(*client, id, "hi", Json{{"frobnicate", true}});
  EXPECT_EQ(error_code(r), "INVALID_MESSAGE");
  r = execute(*client, id, "hi", Json{{"dangerously_skip_permissions", true}});
  EXPECT_EQ(error_code(r), "FORBIDDEN");
  r = execute(*client, id, "hi", Json{{"permission_mode", "bypassPermissions"}});
  EXPECT_EQ(error_code(r), "FORBIDDEN");
  r = execute(*client, id, "   ");
  EXPECT_EQ(error_code(r), "INVALID_MESSAGE");
  EXPECT_EQ(records().size(), 1u) << "no process started for rejected requests";
}

TEST_F(AgentTest, ResumesTheStoredSessionAndNewSessionClearsIt) {
  auto client = connect();
  const auto id = new_project(*client);
  execute(*client, id, "one");
  const auto first = until_idle(*client);
  const std::string session = str(data(first.back()), "session_id");
  ASSERT_FALSE(session.empty());

  execute(*client, id, "two");
  const auto second = until_idle(*client);
  EXPECT_EQ(str(data(second.back()), "session_id"), session);
  auto rec = records();
  ASSERT_EQ(rec.size(), 2u);
  EXPECT_NE(json::serialize(rec[1].at("argv")).find("--resume=" + session), std::string::npos);
  EXPECT_EQ(json::serialize(rec[0].at("argv")).find("--resume"), std::string::npos);

  const auto reset = client->request(Json{{"type", "agent_new_session"}, {"project_id", id}});
  ASSERT_EQ(str(reset, "type"), "session_reset") << json::serialize(reset);
  EXPECT_EQ(str(data(reset), "previous_session_id"), session);
  const auto list = client->request(Json{{"type", "project_list"}});
  EXPECT_TRUE(data(list).at("projects").as_array()[0].at("session_id").is_null());

  execute(*client, id, "three");
  const auto third = until_idle(*client);
  rec = records();
  ASSERT_EQ(rec.size(), 3u);
  EXPECT_EQ(json::serialize(rec[2].at("argv")).find("--resume"), std::string::npos);
  EXPECT_NE(str(data(third.back()), "session_id"), session);
}

// The session id is never assumed stable: a CLI that continues a resumed conversation under a
// new id (as older CLIs did) gets that new id stored, and the next run resumes the new one.
TEST_F(AgentTest, ANewSessionIdFromTheCliIsStoredAndResumedNext) {
  start_agent_server({}, "FAKE_CLAUDE_RESUME_NEW_ID=1");
  auto client = connect();
  const auto id = new_project(*client);
  execute(*client, id, "one");
  const std::string first = str(data(until_idle(*client).back()), "session_id");
  ASSERT_FALSE(first.empty());

  execute(*client, id, "two");
  const auto second_run = until_idle(*client);
  const std::string second = str(data(second_run.back()), "session_id");
  EXPECT_FALSE(second.empty());
  EXPECT_NE(second, first) << "the fake minted a new id on --resume";
  const auto init = cli_lines_of_type(second_run, "system");
  ASSERT_FALSE(init.empty());
  EXPECT_EQ(str(init.front(), "session_id"), second) << "the id the CLI printed is the one kept";
  const auto list = client->request(Json{{"type", "project_list"}});
  EXPECT_EQ(str(data(list).at("projects").as_array()[0].as_object(), "session_id"), second);

  execute(*client, id, "three");
  const auto third = str(data(until_idle(*client).back()), "session_id");
  EXPECT_NE(third, second);
  const auto rec = records();
  ASSERT_EQ(rec.size(), 3u);
  EXPECT_NE(json::serialize(rec[1].at("argv")).find("--resume=" + first), std::string::npos);
  EXPECT_NE(json::serialize(rec[2].at("argv")).find("--resume=" + second), std::string::npos)
      << json::serialize(rec[2].at("argv"));
}

// A stale resume is recognised in every shape CLI-BEHAVIOUR.md section 1 documents: the
// "No conversation found" text and the not-a-UUID text, in a result's errors[] or on stderr
// only; the id reported is the one that was resumed, and it is cleared.
class StaleResumeTest : public AgentServerTest {
 protected:
  void SetUp() override {}

  // Runs once so the project has a session, then `spoil` makes that session unusable, then
  // checks that the next run reports it and the one after starts fresh.
  void expect_recognised(
      const std::function<std::string(const std::string& id, const std::string& session)>& spoil) {
    auto client = connect();
    const auto id = new_project(*client);
    execute(*client, id, "one");
    const std::string session = str(data(until_idle(*client).back()), "session_id");
    ASSERT_FALSE(session.empty());
    const std::string stale = spoil(id, session);
    client = connect();

    execute(*client, id, "two");
    const auto seen = until_idle(*client);
    const auto errors = of_type(seen, "error");
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(error_code(errors[0]), "EXECUTION_FAILED");
    const auto& details = data(errors[0]).at("details").as_object();
    EXPECT_EQ(str(details, "reason"), "session_not_found") << json::serialize(details);
    EXPECT_EQ(str(details, "session_id"), stale);
    EXPECT_TRUE(data(seen.back()).at("session_id").is_null());
    const auto list = client->request(Json{{"type", "project_list"}});
    EXPECT_TRUE(data(list).at("projects").as_array()[0].at("session_id").is_null());

    execute(*client, id, "three");
    const auto fresh = until_idle(*client);
    EXPECT_TRUE(of_type(fresh, "error").empty());
    EXPECT_FALSE(str(data(fresh.back()), "session_id").empty());
    const auto rec = records();
    ASSERT_GE(rec.size(), 2u);
    EXPECT_NE(json::serialize(rec[rec.size() - 2].at("argv")).find("--resume=" + stale),
              std::string::npos);
    EXPECT_EQ(json::serialize(rec.back().at("argv")).find("--resume"), std::string::npos);
  }

  // Stops the server, stores `session` as the project's session id in its metadata (as an
  // edited file, or a CLI that named sessions otherwise, would) and starts it again.
  std::string store_session_and_restart(const std::string& id, const std::string& session,
                                        const std::string& env) {
    const auto data_dir = server_->data_dir();
    stopped_ = std::move(server_);  // owns the data directory
    stopped_->stop();
    const auto meta_path = data_dir / "projects" / id / "project.json";
    std::ifstream in(meta_path);
    auto meta = json::parse(std::string(std::istreambuf_iterator<char>(in), {})).as_object();
    meta["session_id"] = session;
    std::ofstream(meta_path, std::ios::trunc) << json::serialize(meta) << "\n";
    start_agent_server({}, env, data_dir);
    return session;
  }

  std::unique_ptr<ServerProcess> stopped_;
};

TEST_F(StaleResumeTest, UnknownIdInTheResultAndOnStderr) {
  start_agent_server({});
  expect_recognised([&](const std::string&, const std::string& session) {
    fs::remove_all(state_.path() / "sessions");  // the CLI forgot its sessions
    return session;
  });
}

TEST_F(StaleResumeTest, UnknownIdOnStderrOnly) {
  start_agent_server({}, "FAKE_CLAUDE_RESUME_ERROR_RESULT=0");
  expect_recognised([&](const std::string&, const std::string& session) {
    fs::remove_all(state_.path() / "sessions");
    return session;
  });
}

TEST_F(StaleResumeTest, NotAUuidInTheResultAndOnStderr) {
  start_agent_server({});
  expect_recognised([&](const std::string& id, const std::string&) {
    return store_session_and_restart(id, "bogus-id", {});
  });
}

TEST_F(StaleResumeTest, NotAUuidOnStderrOnly) {
  const std::string env = "FAKE_CLAUDE_RESUME_ERROR_RESULT=0";
  start_agent_server({}, env);
  expect_recognised([&](const std::string& id, const std::string&) {
    return store_session_and_restart(id, "bogus-id", env);
  });
}

TEST_F(AgentTest, ExecuteWhileExecutingIsProcessActive) {
  auto client = connect();
  const auto id = new_project(*client);
  ASSERT_TRUE(is_state(execute(*client, id, "[[fake:hang]]"), "EXECUTING"));
  EXPECT_EQ(error_code(execute(*client, id, "again")), "PROCESS_ACTIVE");
  EXPECT_EQ(error_code(client->request(Json{{"type", "agent_new_session"}, {"project_id", id}})),
            "PROCESS_ACTIVE");
  const auto refused_delete = client->request(Json{{"type", "project_delete"}, {"project_id", id}});
  EXPECT_EQ(error_code(refused_delete), "PROCESS_ACTIVE");
  EXPECT_EQ(str(data(refused_delete).at("details").as_object(), "state"), "EXECUTING");
  const auto killed = client->request(Json{{"type", "agent_kill"}, {"project_id", id}}, 30s);
  EXPECT_TRUE(is_state(killed, "IDLE")) << json::serialize(killed);
}

TEST_F(AgentTest, KillThroughInterrupt) {
  auto client = connect();
  const auto id = new_project(*client);
  execute(*client, id, "[[fake:hang]]");
  ASSERT_TRUE(client->read_until([](const Json& m) { return str(m, "type") == "agent_message"; }));
  const auto killed = client->request(Json{{"type", "agent_kill"}, {"project_id", id}}, 30s);
  ASSERT_TRUE(is_state(killed, "IDLE")) << json::serialize(killed);
  // The CLI answered the interrupt with its own lines and a result; no error was reported.
  bool interrupted_result = false;
  for (const auto& m : client->skipped()) {
    EXPECT_NE(str(m, "type"), "error") << json::serialize(m);
    if (str(m, "type") == "agent_message" && str(data(m), "type") == "result") {
      interrupted_result = str(data(m), "subtype") == "error_during_execution";
    }
  }
  EXPECT_TRUE(interrupted_result);
  // The stdin record shows the interrupt control request; the CLI then exited on its own (the
  // closed stdin), not by SIGTERM (143) or SIGKILL (no record), and was reaped by the server.
  const auto rec = records();
  ASSERT_EQ(rec.size(), 1u);
  EXPECT_NE(json::serialize(rec[0].at("stdin")).find("interrupt"), std::string::npos);
  ASSERT_TRUE(rec[0].at("exit_code").is_int64()) << json::serialize(rec[0]);
  EXPECT_NE(rec[0].at("exit_code").as_int64(), 143);
  const auto cli = static_cast<pid_t>(rec[0].at("pid").as_int64());
  EXPECT_TRUE(eventually([&] { return gone(cli); }, 10s)) << "the CLI was not reaped";
  // Killing an idle project answers IDLE at once.
  EXPECT_TRUE(is_state(client->request(Json{{"type", "agent_kill"}, {"project_id", id}}), "IDLE"));
}

TEST_F(AgentTest, KillEscalatesToSigkillAndTakesTheGrandchild) {
  start_agent_server({"--timeouts-kill-grace", "1s", "--timeouts-term-grace", "1s"});
  auto client = connect();
  const auto id = new_project(*client);
  const auto pidfile = state_.path() / "grandchild.pid";
  const auto self_pidfile = state_.path() / "cli.pid";
  execute(*client, id,
          "[[fake:grandchild pidfile=" + pidfile.string() +
              " self_pidfile=" + self_pidfile.string() + " ignore-interrupt=1 ignore-sigterm=1]]");
  // The fake writes the pid files before its first line.
  ASSERT_TRUE(client->read_until([](const Json& m) { return str(m, "type") == "agent_message"; }));
  pid_t grandchild = 0;
  std::ifstream(pidfile) >> grandchild;
  pid_t cli = 0;
  std::ifstream(self_pidfile) >> cli;
  ASSERT_GT(grandchild, 0);
  ASSERT_GT(cli, 0);
  ASSERT_TRUE(alive(grandchild)) << "grandchild alive before the kill";
  ASSERT_TRUE(alive(cli));
  const auto killed = client->request(Json{{"type", "agent_kill"}, {"project_id", id}}, 30s);
  ASSERT_TRUE(is_state(killed, "IDLE")) << json::serialize(killed);
  // Killed with the tree; the server (a subreaper) reaps both right after: wait until they have
  // left /proc, so a zombie fails the test.
  EXPECT_TRUE(eventually([&] { return gone(grandchild); }, 10s))
      << "grandchild survived or was not reaped";
  EXPECT_TRUE(eventually([&] { return gone(cli); }, 10s)) << "the CLI survived or was not reaped";
  // The fake records every exit but SIGKILL: no record means it was SIGKILLed.
  const auto rec = records();
  EXPECT_TRUE(rec.empty()) << json::serialize(rec.front());
}

// The interrupt path: the CLI ends its turn and exits on its own, but a tool it started (in its
// own session) is still running; the server kills and reaps it after the run.
TEST_F(AgentTest, KillThroughInterruptTakesAToolTheCliLeftBehind) {
  auto client = connect();
  const auto id = new_project(*client);
  const auto pidfile = state_.path() / "grandchild.pid";
  execute(*client, id, "[[fake:grandchild keep_tool=1 pidfile=" + pidfile.string() + "]]");
  ASSERT_TRUE(client->read_until([](const Json& m) { return str(m, "type") == "agent_message"; }));
  pid_t grandchild = 0;
  std::ifstream(pidfile) >> grandchild;
  ASSERT_GT(grandchild, 0);
  ASSERT_TRUE(alive(grandchild));
  const auto killed = client->request(Json{{"type", "agent_kill"}, {"project_id", id}}, 30s);
  ASSERT_TRUE(is_state(killed, "IDLE")) << json::serialize(killed);
  EXPECT_TRUE(eventually([&] { return gone(grandchild); }, 10s))
      << "the tool survived or was not reaped";
  const auto rec = records();
  ASSERT_EQ(rec.size(), 1u);
  EXPECT_NE(json::serialize(rec[0].at("stdin")).find("interrupt"), std::string::npos);
  ASSERT_TRUE(rec[0].at("exit_code").is_int64()) << json::serialize(rec[0]);
  EXPECT_NE(rec[0].at("exit_code").as_int64(), 143) << "ended by the interrupt, not SIGTERM";
  const auto cli = static_cast<pid_t>(rec[0].at("pid").as_int64());
  EXPECT_TRUE(eventually([&] { return gone(cli); }, 10s)) << "the CLI was not reaped";
  // The interrupted turn's result was shown; no error.
  bool aborted_tools = false;
  for (const auto& m : client->skipped()) {
    EXPECT_NE(str(m, "type"), "error") << json::serialize(m);
    if (str(m, "type") == "agent_message" && str(data(m), "type") == "result")
      aborted_tools = str(data(m), "terminal_reason") == "aborted_tools";
  }
  EXPECT_TRUE(aborted_tools);
}

TEST_F(AgentTest, WallClockTimeout) {
  start_agent_server({"--execution-timeout", "1s", "--timeouts-kill-grace", "1s"});
  auto client = connect();
  const auto id = new_project(*client);
  execute(*client, id, "[[fake:hang]]");
  const auto seen = until_idle(*client);
  const auto errors = of_type(seen, "error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(error_code(errors[0]), "EXECUTION_TIMEOUT");
  EXPECT_EQ(str(data(errors[0]).at("details").as_object(), "limit"), "timeouts.execution");
}

TEST_F(AgentTest, IdleTimeout) {
  start_agent_server({"--timeouts-execution-idle", "1s", "--timeouts-kill-grace", "1s"});
  auto client = connect();
  const auto id = new_project(*client);
  execute(*client, id, "[[fake:hang]]");
  const auto errors = of_type(until_idle(*client), "error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(error_code(errors[0]), "EXECUTION_TIMEOUT");
  EXPECT_EQ(str(data(errors[0]).at("details").as_object(), "limit"), "timeouts.execution_idle");
}

TEST_F(AgentTest, QueueOrderAndResourceLimit) {
  start_agent_server({"--execution-max-concurrent", "1", "--execution-queue-size", "2"});
  auto client = connect();
  const auto a = new_project(*client, "a");
  const auto b = new_project(*client, "b");
  const auto c = new_project(*client, "c");
  const auto d = new_project(*client, "d");
  ASSERT_TRUE(is_state(execute(*client, a, "[[fake:hang]]"), "EXECUTING"));
  auto qb = execute(*client, b, "b");
  ASSERT_TRUE(is_state(qb, "QUEUED")) << json::serialize(qb);
  EXPECT_EQ(data(qb).at("queue_position").as_int64(), 1);
  auto qc = execute(*client, c, "c");
  ASSERT_TRUE(is_state(qc, "QUEUED"));
  EXPECT_EQ(data(qc).at("queue_position").as_int64(), 2);
  EXPECT_EQ(error_code(execute(*client, d, "d")), "RESOURCE_LIMIT");
  // The refused execute left nothing in d's history (no client entry without an outcome): only
  // the state recorded when the project was created.
  const auto d_history =
      client->request(Json{{"type", "get_messages"}, {"project_id", d}, {"data", Json{}}});
  ASSERT_EQ(str(d_history, "type"), "messages_response") << json::serialize(d_history);
  const auto& d_entries = data(d_history).at("messages").as_array();
  ASSERT_EQ(d_entries.size(), 1u) << json::serialize(d_entries);
  EXPECT_EQ(str(d_entries[0].as_object(), "direction"), "server");
  EXPECT_EQ(str(d_entries[0].at("message").as_object(), "type"), "project_state");
  // The queued one was recorded, before its QUEUED state.
  const auto c_history =
      client->request(Json{{"type", "get_messages"}, {"project_id", c}, {"data", Json{}}});
  const auto& c_entries = data(c_history).at("messages").as_array();
  ASSERT_EQ(c_entries.size(), 3u) << json::serialize(c_entries);
  EXPECT_EQ(str(c_entries[1].as_object(), "direction"), "client");
  EXPECT_EQ(str(c_entries[1].at("message").as_object(), "type"), "execute");
  EXPECT_EQ(str(c_entries[2].at("message").at("data").as_object(), "state"), "QUEUED");
  EXPECT_EQ(error_code(execute(*client, b, "b again")), "PROCESS_ACTIVE");

  // Kill A: B starts, C moves up to position 1; B finishes, then C runs.
  const std::size_t before_kill = client->skipped().size();
  client->request(Json{{"type", "agent_kill"}, {"project_id", a}}, 30s);
  std::vector<std::string> order;
  const auto track = [&](const Json& m) {
    if (is_state(m, "EXECUTING")) order.push_back(str(m, "project_id"));
    if (is_state(m, "QUEUED") && str(m, "project_id") == c) {
      EXPECT_EQ(data(m).at("queue_position").as_int64(), 1);
    }
    return is_state(m, "IDLE") && str(m, "project_id") == c;
  };
  // B may start before the kill's reply arrives: look at what came in meanwhile first.
  bool c_done = false;
  for (std::size_t i = before_kill; i < client->skipped().size(); ++i)
    c_done |= track(client->skipped()[i]);
  if (!c_done) {
    ASSERT_TRUE(client->read_until(track, 30s));
  }
  EXPECT_EQ(order, (std::vector<std::string>{b, c}));

  // A queued run can be cancelled.
  ASSERT_TRUE(is_state(execute(*client, a, "[[fake:hang]]"), "EXECUTING"));
  ASSERT_TRUE(is_state(execute(*client, b, "b"), "QUEUED"));
  EXPECT_TRUE(is_state(client->request(Json{{"type", "agent_kill"}, {"project_id", b}}), "IDLE"));
  client->request(Json{{"type", "agent_kill"}, {"project_id", a}}, 30s);
  EXPECT_EQ(records().size(), 4u) << "A, B, C, A ran; the cancelled B never started";
}

TEST_F(AgentTest, MissingBinaryIsClaudeNotFound) {
  ServerOptions options;
  options.claude_binary = "/nonexistent/claude";
  start_server(options);
  auto client = connect();
  const auto id = new_project(*client);
  execute(*client, id, "hi");
  const auto errors = of_type(until_idle(*client), "error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(error_code(errors[0]), "CLAUDE_NOT_FOUND");
  EXPECT_EQ(str(data(errors[0]).at("details").as_object(), "binary"), "/nonexistent/claude");
  // Logged, counted as failed, and no duration enters the histogram (or avg_duration_ms).
  EXPECT_TRUE(server_->wait_for_log(
      [](const std::string& line) {
        return line.find("Execution failed to start") != std::string::npos;
      },
      10s));
  const auto metrics = http_get(server_->port(), true, "/metrics",
                                {{"Authorization", "Bearer " + server_->token()}});
  ASSERT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("pocket_agent_executions_total{outcome=\"failed\"} 1\n"),
            std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("pocket_agent_execution_duration_seconds_count 0\n"),
            std::string::npos)
      << metrics.body;
}

TEST_F(AgentTest, FailureWithStderrAndCrashLeaveTheProjectUsable) {
  auto client = connect();
  const auto id = new_project(*client);
  execute(*client, id, "[[fake:fail code=3 stderr=boom-at-startup]]");
  auto errors = of_type(until_idle(*client), "error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(error_code(errors[0]), "EXECUTION_FAILED");
  const auto& details = data(errors[0]).at("details").as_object();
  EXPECT_EQ(details.at("exit_code").as_int64(), 3);
  EXPECT_NE(str(details, "stderr").find("boom-at-startup"), std::string::npos);

  execute(*client, id, "[[fake:crash]]");
  errors = of_type(until_idle(*client), "error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(data(errors[0]).at("details").at("signal").as_int64(), SIGSEGV);

  execute(*client, id, "fine now");
  EXPECT_TRUE(of_type(until_idle(*client), "error").empty());
}

TEST_F(AgentTest, FourMebibyteLineAndNonJsonLines) {
  auto client = connect();
  const auto id = new_project(*client);
  execute(*client, id, "[[fake:bigline bytes=4194304]]");
  const auto lines = of_type(until_idle(*client), "agent_message");
  std::size_t biggest = 0;
  for (const auto& m : lines) biggest = std::max(biggest, json::serialize(m).size());
  EXPECT_GE(biggest, 4194304u);

  execute(*client, id, "[[fake:nonjson]]");
  const auto mixed = of_type(until_idle(*client), "agent_message");
  std::size_t raw = 0;
  for (const auto& m : mixed) {
    if (str(data(m), "type") == "raw") {
      ++raw;
      EXPECT_TRUE(data(m).at("text").is_string());
    }
  }
  EXPECT_GE(raw, 1u);
  EXPECT_EQ(str(data(mixed.back()), "type"), "result");
}

// A CLI that prints faster than history is written (here every entry is fsynced) has its
// stdout read paused while too many bytes wait to be written; nothing is lost or reordered and
// the run completes.
TEST_F(AgentTest, FloodFasterThanHistoryArrivesWholeAndInOrder) {
  constexpr int kLines = 2000;
  start_agent_server({"--log-rotation-fsync-interval", "0", "--websocket-message-buffer", "100000",
                      "--websocket-max-queue-bytes", std::to_string(256 << 20)});
  auto client = connect();
  const auto id = new_project(*client);
  execute(*client, id, "[[fake:flood lines=" + std::to_string(kLines) + " bytes=8000]]");
  const auto seen = until_idle(*client, std::chrono::seconds(120));
  const auto assistant = cli_lines_of_type(seen, "assistant");
  ASSERT_EQ(assistant.size(), static_cast<std::size_t>(kLines));
  for (int i = 0; i < kLines; ++i) {
    const auto& block =
        assistant[static_cast<std::size_t>(i)].at("message").at("content").as_array()[0];
    const std::string text(block.at("text").as_string());
    ASSERT_EQ(text.rfind("#" + std::to_string(i) + " ", 0), 0u)
        << "line " << i << " is " << text.substr(0, 20);
  }
  const auto results = cli_lines_of_type(seen, "result");
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].at("is_error").as_bool());
  EXPECT_TRUE(of_type(seen, "error").empty());
  // Live seqs are gap-free, and history holds every line.
  std::int64_t previous = 0;
  for (const auto& m : seen) {
    if (!m.contains("seq")) continue;
    if (previous != 0) {
      EXPECT_EQ(m.at("seq").as_int64(), previous + 1);
    }
    previous = m.at("seq").as_int64();
  }
  std::size_t in_history = 0;
  std::int64_t cursor = 0;
  for (const auto& e : all_history(*client, id)) {
    if (str(e.at("message").as_object(), "type") == "assistant") ++in_history;
    EXPECT_EQ(e.at("seq").as_int64(), cursor + 1);
    cursor = e.at("seq").as_int64();
  }
  EXPECT_EQ(in_history, static_cast<std::size_t>(kLines));
  const auto rec = records();
  ASSERT_EQ(rec.size(), 1u);
  EXPECT_EQ(rec[0].at("exit_code").as_int64(), 0);
}

TEST_F(AgentTest, OverlongLineIsReportedAndTheRunGoesOn) {
  start_agent_server({"--claude-max-line-bytes", "100000"});
  auto client = connect();
  const auto id = new_project(*client);
  execute(*client, id, "[[fake:bigline bytes=200000]]");
  const auto lines = of_type(until_idle(*client), "agent_message");
  std::vector<std::string> dropped;
  for (const auto& m : lines) {
    if (str(data(m), "type") == "oversized_line") {
      dropped.push_back(str(data(m), "line_type"));
      EXPECT_GE(data(m).at("bytes").as_int64(), 100000);
      EXPECT_EQ(data(m).at("limit").as_int64(), 100000);
    }
  }
  // The big assistant line and the result that repeats its text were both too long; the run
  // still ended cleanly (the result was recognised from the line's head).
  EXPECT_EQ(dropped, (std::vector<std::string>{"assistant", "result"}));
  EXPECT_EQ(str(data(lines.front()), "subtype"), "init");
}

}  // namespace
}  // namespace pa::test
