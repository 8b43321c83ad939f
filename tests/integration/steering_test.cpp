// Issue 8 through the real server and the fake CLI: tool calls approved or denied by clients
// (--permission-prompt-tool stdio), follow-ups queued into the running CLI, agent_interrupt,
// and the audit trail in history.
#include <fstream>
#include <regex>
#include <set>

#include "integration/fixture.hpp"

namespace pa::test {
namespace {

class SteeringTest : public AgentServerTest {
 protected:
  SteeringTest() { answers_permissions_ = true; }
  static bool is(const Json& m, std::string_view type) { return str(m, "type") == type; }

  // Reads until a message of `type` arrives; fails the test if none does.
  static Json next(WsClient& client, std::string_view type,
                   std::chrono::milliseconds deadline = std::chrono::seconds(30)) {
    auto m = client.read_until([&](const Json& x) { return is(x, type); }, deadline);
    EXPECT_TRUE(m) << "no " << type << " arrived";
    return m ? *m : Json{};
  }

  Json answer(WsClient& client, const std::string& project_id, Json answer_data) {
    return client.request(Json{{"type", "permission_response"},
                               {"project_id", project_id},
                               {"data", std::move(answer_data)}});
  }

  Json queue(WsClient& client, const std::string& project_id, const std::string& prompt) {
    return client.request(Json{{"type", "execute"},
                               {"project_id", project_id},
                               {"data", {{"prompt", prompt}, {"mode", "queue"}}}});
  }

  std::unique_ptr<WsClient> connect_named(const std::string& query) {
    return connect("/ws?" + query);
  }

  Json join(WsClient& client, const std::string& project_id) {
    return client.request(Json{{"type", "project_join"}, {"project_id", project_id}});
  }

  std::vector<Json> history(WsClient& client, const std::string& project_id) {
    const auto page = client.request(
        Json{{"type", "get_messages"}, {"project_id", project_id}, {"data", {{"limit", 1000}}}});
    std::vector<Json> out;
    for (const auto& entry : data(page).at("messages").as_array()) {
      out.push_back(entry.as_object());
    }
    return out;
  }
};

constexpr std::size_t kMaxFollowUps = 16;  // AgentRun::kMaxFollowUps
constexpr const char* kAsk = "[[fake:permission command=\"touch made-by-tool.txt\"]]";

TEST_F(SteeringTest, AllowRunsTheToolAndTheAuditIsInHistory) {
  auto client = connect_named("client_name=Pixel%207");
  const auto id = new_project(*client);
  ASSERT_TRUE(is_state(execute(*client, id, kAsk), "EXECUTING"));
  const Json ask = data(next(*client, "permission_request"));
  const std::string permission_id = str(ask, "permission_id");
  EXPECT_FALSE(permission_id.empty());
  EXPECT_EQ(str(ask, "tool_name"), "Bash");
  EXPECT_EQ(str(ask, "display_name"), "Bash");
  EXPECT_EQ(ask.at("input").at("command"), "touch made-by-tool.txt");
  EXPECT_FALSE(str(ask, "tool_use_id").empty());
  EXPECT_TRUE(ask.at("permission_suggestions").is_array());
  EXPECT_GT(str(ask, "expires_at"), str(ask, "requested_at"));
  // The CLI's control_request itself is not forwarded as a CLI line.
  for (const auto& m : client->skipped()) {
    EXPECT_NE(str(is(m, "agent_message") ? data(m) : Json{}, "type"), "control_request");
  }

  const auto resolved =
      answer(*client, id, {{"permission_id", permission_id}, {"decision", "allow"}});
  ASSERT_EQ(str(resolved, "type"), "permission_resolved") << json::serialize(resolved);
  const Json& r = data(resolved);
  EXPECT_EQ(str(r, "decision"), "allow");
  EXPECT_EQ(str(r, "reason"), "answered");
  EXPECT_EQ(str(r.at("by").as_object(), "type"), "client");
  EXPECT_EQ(str(r.at("by").as_object(), "client_name"), "Pixel 7");
  EXPECT_TRUE(r.at("by").at("connection_id").is_number());
  EXPECT_FALSE(str(r, "at").empty());
  EXPECT_EQ(str(r, "tool_name"), "Bash");
  EXPECT_TRUE(std::regex_match(str(r, "input_sha256"), std::regex("[0-9a-f]{64}")));

  const auto seen = until_idle(*client);
  const auto results = tool_result_blocks(seen);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].at("is_error").as_bool());
  EXPECT_EQ(str(results[0], "content"), "ran: touch made-by-tool.txt");
  EXPECT_TRUE(cli_lines_of_type(seen, "result").back().at("permission_denials").as_array().empty());

  // The CLI was asked through stdio and got the original input back.
  const auto rec = records();
  ASSERT_EQ(rec.size(), 1u);
  const std::string argv = json::serialize(rec[0].at("argv"));
  EXPECT_NE(argv.find("\"--permission-prompt-tool=stdio\""), std::string::npos) << argv;
  const std::string stdin_text = json::serialize(rec[0].at("stdin"));
  EXPECT_NE(stdin_text.find("updatedInput"), std::string::npos) << stdin_text;

  // Audit: request and decision are in history, the decision with who, when and the input hash.
  const auto entries = history(*client, id);
  bool request_kept = false, decision_kept = false;
  for (const auto& e : entries) {
    const auto& message = e.at("message").as_object();
    if (str(message, "type") == "permission_request") {
      request_kept = str(data(message), "permission_id") == permission_id;
    }
    if (str(message, "type") == "permission_resolved") {
      decision_kept = str(data(message), "permission_id") == permission_id &&
                      str(data(message).at("by").as_object(), "client_name") == "Pixel 7" &&
                      str(data(message), "input_sha256") == str(r, "input_sha256");
    }
  }
  EXPECT_TRUE(request_kept);
  EXPECT_TRUE(decision_kept);

  // Answering again: it was already resolved.
  const auto late = answer(*client, id, {{"permission_id", permission_id}, {"decision", "deny"}});
  EXPECT_EQ(error_code(late), "PERMISSION_NOT_FOUND");
  EXPECT_EQ(str(data(late).at("details").as_object(), "status"), "resolved");
  EXPECT_EQ(str(data(late).at("details").as_object(), "decision"), "allow");
  const auto unknown = answer(*client, id, {{"permission_id", "nope"}, {"decision", "allow"}});
  EXPECT_EQ(error_code(unknown), "PERMISSION_NOT_FOUND");
  EXPECT_EQ(str(data(unknown).at("details").as_object(), "status"), "unknown");
}

TEST_F(SteeringTest, DenyGivesTheCliErrorToolResultAndADenial) {
  auto client = connect();
  const auto id = new_project(*client);
  execute(*client, id, kAsk);
  const std::string permission_id = str(data(next(*client, "permission_request")), "permission_id");
  const auto resolved = answer(
      *client, id,
      {{"permission_id", permission_id}, {"decision", "deny"}, {"message", "Not on my phone"}});
  ASSERT_EQ(str(data(resolved), "decision"), "deny") << json::serialize(resolved);
  const auto seen = until_idle(*client);
  const auto results = tool_result_blocks(seen);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].at("is_error").as_bool());
  EXPECT_EQ(str(results[0], "content"), "Not on my phone");
  const auto denials = cli_lines_of_type(seen, "result").back().at("permission_denials").as_array();
  ASSERT_EQ(denials.size(), 1u);
  EXPECT_EQ(str(denials[0].as_object(), "tool_name"), "Bash");

  // A deny without a message still satisfies the CLI (it needs one): the server names who.
  execute(*client, id, kAsk);
  const std::string second = str(data(next(*client, "permission_request")), "permission_id");
  answer(*client, id, {{"permission_id", second}, {"decision", "deny"}});
  const auto again = tool_result_blocks(until_idle(*client));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_NE(str(again[0], "content").find("Denied by connection"), std::string::npos)
      << str(again[0], "content");
}

TEST_F(SteeringTest, TwoSubscribersAnswerAtOnceAndExactlyOneWins) {
  auto a = connect();
  auto b = connect();
  const auto id = new_project(*a);
  ASSERT_EQ(str(join(*b, id), "type"), "project_joined");
  execute(*a, id, kAsk);
  const std::string permission_id = str(data(next(*a, "permission_request")), "permission_id");
  ASSERT_EQ(str(data(next(*b, "permission_request")), "permission_id"), permission_id);

  // Both answer without waiting for the other.
  a->send(Json{{"type", "permission_response"},
               {"project_id", id},
               {"request_id", "from-a"},
               {"data", {{"permission_id", permission_id}, {"decision", "allow"}}}});
  b->send(Json{{"type", "permission_response"},
               {"project_id", id},
               {"request_id", "from-b"},
               {"data", {{"permission_id", permission_id}, {"decision", "deny"}}}});
  auto outcome = [&](WsClient& client, const std::string& request_id) {
    struct Outcome {
      bool won = false, lost = false;
      int resolved_seen = 0;
    } o;
    // Until both the run's end and this client's own reply arrived: the losing answer may be
    // handled after the run already ended (its reply then comes after IDLE).
    bool idle = false, replied = false;
    client.read_until(
        [&](const Json& m) {
          if (is(m, "permission_resolved")) ++o.resolved_seen;
          if (str(m, "request_id") == request_id) {
            o.won = is(m, "permission_resolved");
            o.lost = error_code(m) == "PERMISSION_NOT_FOUND";
            replied = true;
          }
          idle = idle || is_state(m, "IDLE");
          return idle && replied;
        },
        std::chrono::seconds(30));
    return o;
  };
  const auto oa = outcome(*a, "from-a");
  const auto ob = outcome(*b, "from-b");
  EXPECT_NE(oa.won, ob.won) << "exactly one answer wins";
  EXPECT_TRUE(oa.won || oa.lost);
  EXPECT_TRUE(ob.won || ob.lost);
  // Everyone hears the decision exactly once.
  EXPECT_EQ(oa.resolved_seen, 1);
  EXPECT_EQ(ob.resolved_seen, 1);
}

TEST_F(SteeringTest, ReconnectWhilePendingThenAnswerAfterRejoining) {
  std::string id, permission_id;
  {
    auto phone = connect();
    id = new_project(*phone);
    execute(*phone, id, kAsk);
    permission_id = str(data(next(*phone, "permission_request")), "permission_id");
    phone->close();  // the phone drops off while the request waits
  }
  auto phone = connect();
  const auto joined = join(*phone, id);
  ASSERT_EQ(str(joined, "type"), "project_joined");
  const auto& pending = data(joined).at("pending_permissions").as_array();
  ASSERT_EQ(pending.size(), 1u) << json::serialize(joined);
  EXPECT_EQ(str(pending[0].as_object(), "permission_id"), permission_id);
  EXPECT_EQ(pending[0].at("input").at("command"), "touch made-by-tool.txt");
  EXPECT_TRUE(data(joined).at("queued_prompts").as_array().empty());

  const auto resolved =
      answer(*phone, id, {{"permission_id", permission_id}, {"decision", "allow"}});
  EXPECT_EQ(str(resolved, "type"), "permission_resolved") << json::serialize(resolved);
  const auto results = tool_result_blocks(until_idle(*phone));
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].at("is_error").as_bool());
  EXPECT_TRUE(data(join(*phone, id)).at("pending_permissions").as_array().empty());
}

TEST_F(SteeringTest, KillCancelsPendingRequests) {
  auto client = connect();
  const auto id = new_project(*client);
  execute(*client, id, kAsk);
  const std::string permission_id = str(data(next(*client, "permission_request")), "permission_id");
  const auto killed = client->request(Json{{"type", "agent_kill"}, {"project_id", id}}, 30s);
  ASSERT_TRUE(is_state(killed, "IDLE")) << json::serialize(killed);
  bool cancelled = false;
  for (const auto& m : client->skipped()) {
    if (is(m, "permission_resolved") && str(data(m), "permission_id") == permission_id) {
      cancelled = str(data(m), "decision") == "cancelled" && str(data(m), "reason") == "killed";
    }
  }
  EXPECT_TRUE(cancelled);
  const auto late = answer(*client, id, {{"permission_id", permission_id}, {"decision", "allow"}});
  EXPECT_EQ(error_code(late), "PERMISSION_NOT_FOUND");
  EXPECT_EQ(str(data(late).at("details").as_object(), "status"), "cancelled");
}

TEST_F(SteeringTest, RememberSessionIsNotAskedAgain) {
  auto client = connect();
  const auto id = new_project(*client);
  execute(*client, id, kAsk);
  const std::string permission_id = str(data(next(*client, "permission_request")), "permission_id");
  // The same tool call again, queued into this CLI process while the first waits.
  EXPECT_EQ(str(queue(*client, id, kAsk), "type"), "prompt_queued");
  const auto resolved =
      answer(*client, id,
             {{"permission_id", permission_id}, {"decision", "allow"}, {"remember", "session"}});
  EXPECT_EQ(str(data(resolved), "remember"), "session");
  const auto seen = until_idle(*client);
  for (const auto& m : seen) EXPECT_FALSE(is(m, "permission_request")) << json::serialize(m);
  const auto results = tool_result_blocks(seen);
  ASSERT_EQ(results.size(), 2u);  // both turns ran the tool; the second without asking
  for (const auto& result : results) EXPECT_FALSE(result.at("is_error").as_bool());
  EXPECT_EQ(cli_lines_of_type(seen, "result").size(), 2u);
  // The CLI got its own suggestion back, scoped to the session.
  const std::string stdin_text = json::serialize(records().at(0).at("stdin"));
  EXPECT_NE(stdin_text.find("updatedPermissions"), std::string::npos);
  EXPECT_NE(stdin_text.find(R"(\"destination\":\"session\")"), std::string::npos) << stdin_text;
}

TEST_F(SteeringTest, QueuedFollowUpRunsInTheSameProcessAndSession) {
  auto client = connect();
  auto watcher = connect();
  const auto id = new_project(*client);
  join(*watcher, id);
  execute(*client, id, kAsk);  // holds the first turn until answered
  const std::string permission_id = str(data(next(*client, "permission_request")), "permission_id");

  const auto queued = queue(*client, id, "[[fake:text text=\"second answer\"]]");
  ASSERT_EQ(str(queued, "type"), "prompt_queued") << json::serialize(queued);
  const std::string queue_id = str(data(queued), "queue_id");
  EXPECT_EQ(data(queued).at("position").as_int64(), 1);
  EXPECT_EQ(str(data(queued), "prompt"), "[[fake:text text=\"second answer\"]]");
  EXPECT_EQ(str(data(next(*watcher, "prompt_queued")), "queue_id"), queue_id);
  // A phone joining now sees the queue.
  const auto joined = join(*watcher, id);
  ASSERT_EQ(data(joined).at("queued_prompts").as_array().size(), 1u);

  answer(*client, id, {{"permission_id", permission_id}, {"decision", "allow"}});
  const auto seen = until_idle(*client);
  // After the first result: prompt_dequeued(started), the second turn, its result, then IDLE.
  std::vector<std::string> order;
  std::set<std::string> sessions;
  for (const auto& m : seen) {
    if (is(m, "prompt_dequeued")) {
      EXPECT_EQ(str(data(m), "queue_id"), queue_id);
      EXPECT_EQ(str(data(m), "reason"), "started");
      order.push_back("dequeued");
    } else if (is(m, "agent_message") && str(data(m), "type") == "result") {
      order.push_back("result");
      sessions.insert(str(data(m), "session_id"));
    } else if (is(m, "project_state")) {
      order.push_back(str(data(m), "state"));
    }
  }
  EXPECT_EQ(order, (std::vector<std::string>{"result", "dequeued", "result", "IDLE"}));
  EXPECT_EQ(sessions.size(), 1u);
  EXPECT_EQ(str(data(seen.back()), "session_id"), *sessions.begin());
  const auto rec = records();
  ASSERT_EQ(rec.size(), 1u) << "one CLI process for both turns";
  const auto& stdin_lines = rec[0].at("stdin").as_array();
  int user_lines = 0;
  for (const auto& line : stdin_lines) {
    if (std::string(line.as_string()).find("\"type\":\"user\"") != std::string::npos) ++user_lines;
  }
  EXPECT_EQ(user_lines, 2);
  EXPECT_EQ(rec[0].at("exit_code").as_int64(), 0);
}

TEST_F(SteeringTest, QueueModeChecks) {
  auto client = connect();
  const auto id = new_project(*client);
  // On an idle project a queued prompt simply runs.
  EXPECT_TRUE(is_state(queue(*client, id, "[[fake:text]]"), "EXECUTING"));
  until_idle(*client);
  auto bad_mode = client->request(Json{
      {"type", "execute"}, {"project_id", id}, {"data", {{"prompt", "x"}, {"mode", "later"}}}});
  EXPECT_EQ(str(data(bad_mode).at("details").as_object(), "field"), "data.mode");
  auto with_options = client->request(
      Json{{"type", "execute"},
           {"project_id", id},
           {"data", {{"prompt", "x"}, {"mode", "queue"}, {"options", {{"model", "opus"}}}}}});
  EXPECT_EQ(error_code(with_options), "INVALID_MESSAGE");
  EXPECT_EQ(str(data(with_options).at("details").as_object(), "field"), "data.options");
  // Without a mode, a busy project is still PROCESS_ACTIVE.
  execute(*client, id, "[[fake:hang]]");
  EXPECT_EQ(error_code(execute(*client, id, "again")), "PROCESS_ACTIVE");
  for (std::size_t i = 0; i < kMaxFollowUps; ++i) {
    ASSERT_EQ(str(queue(*client, id, "more"), "type"), "prompt_queued");
  }
  EXPECT_EQ(error_code(queue(*client, id, "one too many")), "RESOURCE_LIMIT");
  client->request(Json{{"type", "agent_kill"}, {"project_id", id}}, 30s);
  int cancelled = 0;
  for (const auto& m : client->skipped()) {
    if (is(m, "prompt_dequeued") && str(data(m), "reason") == "cancelled") ++cancelled;
  }
  EXPECT_EQ(cancelled, static_cast<int>(kMaxFollowUps));
}

TEST_F(SteeringTest, InterruptEndsTheTurnKeepsTheSessionAndCancelsWhatWaits) {
  auto client = connect();
  const auto id = new_project(*client);
  execute(*client, id, kAsk);
  const std::string permission_id = str(data(next(*client, "permission_request")), "permission_id");
  queue(*client, id, "[[fake:text]]");
  const auto idle = client->request(Json{{"type", "agent_interrupt"}, {"project_id", id}},
                                    std::chrono::seconds(30));
  ASSERT_TRUE(is_state(idle, "IDLE")) << json::serialize(idle);
  const std::string session = str(data(idle), "session_id");
  EXPECT_FALSE(session.empty());
  bool permission_cancelled = false, follow_up_cancelled = false, result_seen = false;
  for (const auto& m : client->skipped()) {
    EXPECT_NE(str(m, "type"), "error") << json::serialize(m);
    if (is(m, "permission_resolved")) {
      permission_cancelled = str(data(m), "decision") == "cancelled" &&
                             str(data(m), "reason") == "interrupted" &&
                             str(data(m), "permission_id") == permission_id;
    }
    if (is(m, "prompt_dequeued")) follow_up_cancelled = str(data(m), "reason") == "cancelled";
    if (is(m, "agent_message") && str(data(m), "type") == "result") result_seen = true;
  }
  EXPECT_TRUE(permission_cancelled);
  EXPECT_TRUE(follow_up_cancelled);
  EXPECT_TRUE(result_seen) << "the turn ended with the CLI's own result";
  // No signal: the CLI exited by itself after stdin closed.
  auto rec = records();
  ASSERT_EQ(rec.size(), 1u);
  EXPECT_FALSE(rec[0].contains("signal"));
  EXPECT_NE(rec[0].at("exit_code").as_int64(), 143);
  EXPECT_NE(json::serialize(rec[0].at("stdin")).find("\"subtype\\\":\\\"interrupt\\\""),
            std::string::npos);

  // The next execute resumes the same conversation.
  execute(*client, id, "[[fake:text]]");
  const auto after = until_idle(*client);
  EXPECT_EQ(str(data(after.back()), "session_id"), session);
  rec = records();
  ASSERT_EQ(rec.size(), 2u);
  EXPECT_NE(json::serialize(rec[1].at("argv")).find("--resume=" + session), std::string::npos);
  // Interrupting an idle project answers IDLE at once.
  EXPECT_TRUE(
      is_state(client->request(Json{{"type", "agent_interrupt"}, {"project_id", id}}), "IDLE"));
}

TEST_F(SteeringTest, InterruptMidStreamKeepsTheProcessAlive) {
  auto client = connect();
  const auto id = new_project(*client);
  execute(*client, id, "[[fake:hang]]");
  ASSERT_TRUE(client->read_until([](const Json& m) { return str(m, "type") == "agent_message"; }));
  const auto idle = client->request(Json{{"type", "agent_interrupt"}, {"project_id", id}},
                                    std::chrono::seconds(30));
  ASSERT_TRUE(is_state(idle, "IDLE")) << json::serialize(idle);
  bool interrupted_result = false;
  for (const auto& m : client->skipped()) {
    if (is(m, "agent_message") && str(data(m), "type") == "result") {
      interrupted_result = str(data(m), "subtype") == "error_during_execution";
    }
  }
  EXPECT_TRUE(interrupted_result);
}

TEST_F(SteeringTest, ClientNameMustBePrintable) {
  ClientOptions o;
  o.tls = server_->tls();
  o.bearer = server_->token();
  o.target = "/ws?client_name=bad%0Aname";
  WsClient bad(server_->port(), o);
  EXPECT_EQ(bad.connect(), 400);
  o.target = "/ws?client_name=" + std::string(65, 'x');
  WsClient too_long(server_->port(), o);
  EXPECT_EQ(too_long.connect(), 400);
}

class PermissionTimeoutTest : public SteeringTest {
 protected:
  void SetUp() override { start_agent_server({"--claude-permission-timeout", "1s"}); }
};

TEST_F(PermissionTimeoutTest, NoAnswerDeniesWithAMessageSayingSo) {
  auto client = connect();
  const auto id = new_project(*client);
  execute(*client, id, kAsk);
  const std::string permission_id = str(data(next(*client, "permission_request")), "permission_id");
  const Json resolved = data(next(*client, "permission_resolved"));
  EXPECT_EQ(str(resolved, "permission_id"), permission_id);
  EXPECT_EQ(str(resolved, "decision"), "deny");
  EXPECT_EQ(str(resolved, "reason"), "timeout");
  EXPECT_EQ(str(resolved.at("by").as_object(), "type"), "server");
  const auto results = tool_result_blocks(until_idle(*client));
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].at("is_error").as_bool());
  EXPECT_NE(str(results[0], "content").find("claude.permission_timeout (1s)"), std::string::npos)
      << str(results[0], "content");
  const auto late = answer(*client, id, {{"permission_id", permission_id}, {"decision", "allow"}});
  EXPECT_EQ(error_code(late), "PERMISSION_NOT_FOUND");
  EXPECT_EQ(str(data(late).at("details").as_object(), "status"), "expired");
}

class NoPermissionPromptTest : public SteeringTest {
 protected:
  void SetUp() override { start_agent_server({"--claude-permission-prompt", "none"}); }
};

TEST_F(NoPermissionPromptTest, TheCliDecidesAlone) {
  auto client = connect();
  const auto id = new_project(*client);
  execute(*client, id, kAsk);
  const auto seen = until_idle(*client);
  for (const auto& m : seen) EXPECT_FALSE(is(m, "permission_request"));
  const auto denials = cli_lines_of_type(seen, "result").back().at("permission_denials").as_array();
  EXPECT_EQ(denials.size(), 1u);  // the CLI's own non-interactive denial
  EXPECT_EQ(json::serialize(records().at(0).at("argv")).find("--permission-prompt-tool"),
            std::string::npos);
}

}  // namespace
}  // namespace pa::test
