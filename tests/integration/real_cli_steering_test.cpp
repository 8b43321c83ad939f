// Issue 8 with the REAL Claude CLI and the scripted model API: tool calls approved or denied by
// clients through `--permission-prompt-tool stdio`, follow-ups queued into the running CLI,
// agent_interrupt keeping the session. The tools really run, so "allow" is checked on disk.
#include "integration/real_cli_fixture.hpp"

namespace pa::test {
namespace {

class RealCliSteeringTest : public RealCliStubTest {
 protected:
  RealCliSteeringTest() { answers_permissions_ = true; }
  static bool is(const Json& m, std::string_view type) { return str(m, "type") == type; }

  static Json next(WsClient& client, std::string_view type) {
    auto m = client.read_until([&](const Json& x) { return is(x, type); }, 120s);
    EXPECT_TRUE(m) << "no " << type << " arrived";
    return m ? data(*m) : Json{};
  }

  Json answer(WsClient& client, const std::string& id, Json answer_data) {
    return client.request(
        Json{{"type", "permission_response"}, {"project_id", id}, {"data", std::move(answer_data)}},
        30s);
  }

  static std::string tool(const std::string& command) {
    return "[[stub:tool command=\"" + command + "\"]] please";
  }

  std::size_t runs_started() {
    std::size_t n = 0;
    for (const auto& l : server_->log_lines())
      n += l.find("Execution started") != std::string::npos;
    return n;
  }
};

TEST_F(RealCliSteeringTest, AllowRunsTheToolForReal) {
  start();
  auto client = connect();
  const auto dir = make_dir("allow");
  const auto id = str(create_project(*client, dir), "project_id");
  execute_ok(*client, id, tool("touch allowed.txt"));
  const Json ask = next(*client, "permission_request");
  EXPECT_EQ(str(ask, "tool_name"), "Bash");
  EXPECT_EQ(ask.at("input").at("command"), "touch allowed.txt");
  EXPECT_FALSE(str(ask, "tool_use_id").empty());
  EXPECT_FALSE(fs::exists(dir / "allowed.txt")) << "nothing runs before the answer";
  const auto resolved =
      answer(*client, id, {{"permission_id", str(ask, "permission_id")}, {"decision", "allow"}});
  EXPECT_EQ(str(data(resolved), "decision"), "allow") << json::serialize(resolved);
  const auto seen = until_idle(*client, 120s);
  EXPECT_TRUE(fs::exists(dir / "allowed.txt"));
  const auto r = cli_lines_of_type(seen, "result");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_FALSE(r[0].at("is_error").as_bool());
  EXPECT_TRUE(r[0].at("permission_denials").as_array().empty());
}

TEST_F(RealCliSteeringTest, DenyGivesAnErrorToolResultAndAPermissionDenial) {
  start();
  auto client = connect();
  const auto dir = make_dir("deny");
  const auto id = str(create_project(*client, dir), "project_id");
  execute_ok(*client, id, tool("touch denied.txt"));
  const Json ask = next(*client, "permission_request");
  answer(*client, id,
         {{"permission_id", str(ask, "permission_id")},
          {"decision", "deny"},
          {"message", "Not from my phone"}});
  const auto seen = until_idle(*client, 120s);
  EXPECT_FALSE(fs::exists(dir / "denied.txt"));
  const auto blocks = tool_result_blocks(seen);
  ASSERT_EQ(blocks.size(), 1u);
  EXPECT_TRUE(blocks[0].at("is_error").as_bool());
  EXPECT_NE(json::serialize(blocks[0].at("content")).find("Not from my phone"), std::string::npos)
      << json::serialize(blocks[0]);
  const auto r = cli_lines_of_type(seen, "result");
  ASSERT_EQ(r.size(), 1u);
  const auto& denials = r[0].at("permission_denials").as_array();
  ASSERT_EQ(denials.size(), 1u);
  EXPECT_EQ(str(denials[0].as_object(), "tool_name"), "Bash");
}

// A client without hello (as the spec's clients): nobody declared "permissions", so the real
// CLI's ask is denied at once by claude.permission_fallback (deny), the run goes on, and no
// permission_request is sent.
TEST_F(RealCliSteeringTest, WithoutACapableSubscriberTheFallbackDeniesAtOnce) {
  start();
  auto client = connect_without_hello();
  const auto dir = make_dir("fallback");
  const auto id = str(create_project(*client, dir), "project_id");
  execute_ok(*client, id, tool("touch unasked.txt"));
  // Far below claude.permission_timeout (5 m): nobody waited for a person.
  const auto seen = until_idle(*client, 120s);
  EXPECT_FALSE(fs::exists(dir / "unasked.txt"));
  std::optional<Json> resolved;
  for (const auto& m : seen) {
    EXPECT_NE(str(m, "type"), "permission_request");
    if (is(m, "permission_resolved")) resolved = data(m);
  }
  ASSERT_TRUE(resolved);
  EXPECT_EQ(str(*resolved, "decision"), "deny");
  EXPECT_EQ(str(*resolved, "reason"), "no_client");
  EXPECT_EQ(str(*resolved, "tool_name"), "Bash");
  const std::string message = str(*resolved, "message");
  EXPECT_NE(message.find("claude.permission_fallback"), std::string::npos) << message;
  const auto blocks = tool_result_blocks(seen);
  ASSERT_EQ(blocks.size(), 1u);
  EXPECT_TRUE(blocks[0].at("is_error").as_bool());
  EXPECT_NE(json::serialize(blocks[0].at("content")).find("claude.permission_fallback"),
            std::string::npos)
      << json::serialize(blocks[0]);
  const auto r = cli_lines_of_type(seen, "result");
  ASSERT_EQ(r.size(), 1u);
  ASSERT_EQ(r[0].at("permission_denials").as_array().size(), 1u);
}

// claude.permission_fallback cli with nobody capable at the start: the real CLI runs without
// the prompt tool and its own permission mode (default, in -p mode) denies the call.
TEST_F(RealCliSteeringTest, CliFallbackLeavesTheDecisionToTheCli) {
  start({"--claude-permission-fallback", "cli"});
  auto client = connect_without_hello();
  const auto dir = make_dir("cli-fallback");
  const auto id = str(create_project(*client, dir), "project_id");
  execute_ok(*client, id, tool("touch by-cli.txt"));
  const auto seen = until_idle(*client, 120s);
  EXPECT_FALSE(fs::exists(dir / "by-cli.txt"));
  for (const auto& m : seen) EXPECT_EQ(str(m, "type").rfind("permission_", 0), std::string::npos);
  const auto r = cli_lines_of_type(seen, "result");
  ASSERT_EQ(r.size(), 1u);
  ASSERT_EQ(r[0].at("permission_denials").as_array().size(), 1u);
  EXPECT_EQ(str(r[0].at("permission_denials").as_array()[0].as_object(), "tool_name"), "Bash");
}

TEST_F(RealCliSteeringTest, TwoSubscribersAnswerAtOnceAndOneWins) {
  start();
  auto a = connect();
  auto b = connect();
  const auto dir = make_dir("race");
  const auto id = str(create_project(*a, dir), "project_id");
  b->request(Json{{"type", "project_join"}, {"project_id", id}});
  execute_ok(*a, id, tool("touch raced.txt"));
  const std::string permission_id = str(next(*a, "permission_request"), "permission_id");
  ASSERT_EQ(str(next(*b, "permission_request"), "permission_id"), permission_id);
  using Answer = std::tuple<WsClient*, std::string, std::string>;
  for (const auto& [client, rid, choice] :
       {Answer{a.get(), "a", "allow"}, Answer{b.get(), "b", "deny"}}) {
    client->send(Json{{"type", "permission_response"},
                      {"project_id", id},
                      {"request_id", rid},
                      {"data", {{"permission_id", permission_id}, {"decision", choice}}}});
  }
  int won = 0, lost = 0;
  std::string decision;
  using Reader = std::pair<WsClient*, std::string>;
  for (const auto& [client, rid] : {Reader{a.get(), "a"}, Reader{b.get(), "b"}}) {
    int resolved_seen = 0;
    client->read_until(
        [&](const Json& m) {
          if (is(m, "permission_resolved")) {
            ++resolved_seen;
            decision = str(data(m), "decision");
          }
          if (str(m, "request_id") == rid) {
            won += is(m, "permission_resolved");
            lost += error_code(m) == "PERMISSION_NOT_FOUND";
          }
          return is_state(m, "IDLE");
        },
        120s);
    EXPECT_EQ(resolved_seen, 1);
  }
  EXPECT_EQ(won, 1);
  EXPECT_EQ(lost, 1);
  EXPECT_EQ(fs::exists(dir / "raced.txt"), decision == "allow");
}

TEST_F(RealCliSteeringTest, ReconnectWhilePendingAndAnswerAfterRejoining) {
  start();
  std::string id, permission_id;
  const auto dir = make_dir("reconnect");
  {
    auto phone = connect();
    id = str(create_project(*phone, dir), "project_id");
    execute_ok(*phone, id, tool("touch after-reconnect.txt"));
    permission_id = str(next(*phone, "permission_request"), "permission_id");
  }
  auto phone = connect();
  const auto joined = phone->request(Json{{"type", "project_join"}, {"project_id", id}});
  const auto& pending = data(joined).at("pending_permissions").as_array();
  ASSERT_EQ(pending.size(), 1u) << json::serialize(joined);
  EXPECT_EQ(str(pending[0].as_object(), "permission_id"), permission_id);
  answer(*phone, id, {{"permission_id", permission_id}, {"decision", "allow"}});
  until_idle(*phone, 120s);
  EXPECT_TRUE(fs::exists(dir / "after-reconnect.txt"));
}

TEST_F(RealCliSteeringTest, NoAnswerInTimeDenies) {
  start({"--claude-permission-timeout", "2s"});
  auto client = connect();
  const auto dir = make_dir("timeout");
  const auto id = str(create_project(*client, dir), "project_id");
  execute_ok(*client, id, tool("touch too-late.txt"));
  const std::string permission_id = str(next(*client, "permission_request"), "permission_id");
  const Json resolved = next(*client, "permission_resolved");
  EXPECT_EQ(str(resolved, "reason"), "timeout");
  EXPECT_EQ(str(resolved, "decision"), "deny");
  const auto seen = until_idle(*client, 120s);
  EXPECT_FALSE(fs::exists(dir / "too-late.txt"));
  const auto r = cli_lines_of_type(seen, "result");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].at("permission_denials").as_array().size(), 1u);
  const auto late = answer(*client, id, {{"permission_id", permission_id}, {"decision", "allow"}});
  EXPECT_EQ(str(data(late).at("details").as_object(), "status"), "expired");
}

TEST_F(RealCliSteeringTest, KillCancelsThePendingRequest) {
  start();
  auto client = connect();
  const auto dir = make_dir("kill");
  const auto id = str(create_project(*client, dir), "project_id");
  execute_ok(*client, id, tool("touch never.txt"));
  const std::string permission_id = str(next(*client, "permission_request"), "permission_id");
  const auto killed = client->request(Json{{"type", "agent_kill"}, {"project_id", id}}, 60s);
  ASSERT_TRUE(is_state(killed, "IDLE")) << json::serialize(killed);
  bool cancelled = false;
  for (const auto& m : client->skipped()) {
    if (is(m, "permission_resolved")) cancelled = str(data(m), "decision") == "cancelled";
  }
  EXPECT_TRUE(cancelled);
  EXPECT_FALSE(fs::exists(dir / "never.txt"));
  const auto late = answer(*client, id, {{"permission_id", permission_id}, {"decision", "allow"}});
  EXPECT_EQ(str(data(late).at("details").as_object(), "status"), "cancelled");
}

// remember:"session" sends the CLI's own suggestion back scoped to the session: the same tool
// call in a follow-up turn of this CLI process is not asked again. The follow-up was queued
// while the first turn waited, so it runs in the same process and session.
TEST_F(RealCliSteeringTest, RememberedToolIsNotAskedAgainInAQueuedFollowUp) {
  start();
  auto client = connect();
  const auto dir = make_dir("remember");
  const auto id = str(create_project(*client, dir), "project_id");
  execute_ok(*client, id, tool("touch remembered.txt"));
  const Json ask = next(*client, "permission_request");
  const auto queued = client->request(
      Json{{"type", "execute"},
           {"project_id", id},
           {"data", {{"prompt", tool("touch remembered.txt") + " again"}, {"mode", "queue"}}}});
  ASSERT_EQ(str(queued, "type"), "prompt_queued") << json::serialize(queued);
  answer(*client, id,
         {{"permission_id", str(ask, "permission_id")},
          {"decision", "allow"},
          {"remember", "session"}});
  const auto seen = until_idle(*client, 180s);
  for (const auto& m : seen) EXPECT_FALSE(is(m, "permission_request")) << json::serialize(m);
  const auto r = cli_lines_of_type(seen, "result");
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(str(r[0], "session_id"), str(r[1], "session_id"));
  for (const auto& block : tool_result_blocks(seen)) EXPECT_FALSE(block.at("is_error").as_bool());
  EXPECT_EQ(tool_result_blocks(seen).size(), 2u);
  EXPECT_EQ(runs_started(), 1u);
  EXPECT_TRUE(fs::exists(dir / "remembered.txt"));
}

TEST_F(RealCliSteeringTest, QueuedFollowUpRunsAfterTheFirstTurnInTheSameSession) {
  start();
  auto client = connect();
  const auto id = new_project(*client, "queue");
  execute_ok(*client, id, tool("touch first.txt"));
  const Json ask = next(*client, "permission_request");  // the first turn waits here
  const auto queued = client->request(
      Json{{"type", "execute"},
           {"project_id", id},
           {"data", {{"prompt", "[[stub:text text=\"second turn\"]]"}, {"mode", "queue"}}}});
  ASSERT_EQ(str(queued, "type"), "prompt_queued") << json::serialize(queued);
  answer(*client, id, {{"permission_id", str(ask, "permission_id")}, {"decision", "allow"}});
  const auto seen = until_idle(*client, 180s);
  const auto r = cli_lines_of_type(seen, "result");
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(str(r[1], "result"), "second turn");
  EXPECT_EQ(str(r[0], "session_id"), str(r[1], "session_id"));
  EXPECT_EQ(str(data(seen.back()), "session_id"), str(r[1], "session_id"));
  EXPECT_EQ(runs_started(), 1u);
  // The second prompt went to the model only after the first turn's result.
  const auto requests = stub_->message_requests();
  ASSERT_GE(requests.size(), 3u);
  EXPECT_NE(json::serialize(requests.back()).find("second turn"), std::string::npos);
}

TEST_F(RealCliSteeringTest, InterruptEndsTheTurnAndTheNextExecuteResumes) {
  start();
  auto client = connect();
  const auto id = new_project(*client, "interrupt");
  execute_ok(*client, id, "[[stub:slow chunks=3000 interval_ms=50]] write a long essay");
  const Json first = next(*client, "agent_message");  // init
  const std::string session = str(first, "session_id");
  ASSERT_TRUE(stub_->wait_for(
      [](const Json& e) { return str(e, "event") == "stream_start" && str(e, "script") == "slow"; },
      120s));
  const auto idle = client->request(Json{{"type", "agent_interrupt"}, {"project_id", id}}, 60s);
  ASSERT_TRUE(is_state(idle, "IDLE")) << json::serialize(idle);
  EXPECT_EQ(str(data(idle), "session_id"), session);
  for (const auto& l : server_->log_lines()) {
    EXPECT_EQ(l.find("sending SIGTERM"), std::string::npos) << l;
  }
  execute_ok(*client, id, "[[stub:text text=\"resumed\"]]");
  const auto seen = until_idle(*client, 120s);
  const auto r = cli_lines_of_type(seen, "result");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(str(r[0], "session_id"), session);
  EXPECT_EQ(str(r[0], "result"), "resumed");
}

}  // namespace
}  // namespace pa::test
