// Issue 14, part 6: a resent request is not run twice. execute, permission_response and
// project_create with data.idempotency_key, resent on the same connection, after a reconnect,
// after a server restart, and twice at once; refused requests are not recorded; bad keys.
#include <fstream>

#include <algorithm>

#include "integration/fixture.hpp"

namespace pa::test {
namespace {

namespace fs = std::filesystem;

class IdempotencyTest : public AgentServerTest {
 protected:
  IdempotencyTest() { answers_permissions_ = true; }
  static bool duplicate(const Json& m) {
    const auto* d = m.at("data").as_object().if_contains("duplicate");
    return d != nullptr && d->is_bool() && d->get_bool();
  }

  static Json execute_message(const std::string& project_id, const std::string& prompt,
                              const std::string& key) {
    return Json{{"type", "execute"},
                {"project_id", project_id},
                {"data", {{"prompt", prompt}, {"idempotency_key", key}}}};
  }

  // A prompt whose run prints one line and then waits until `release` exists: the run is
  // certainly in progress until the test creates the file.
  std::string held_prompt() const {
    return "[[fake:drip lines=2 interval_ms=1 hold_after=1 hold_file=" + release().string() + "]]";
  }
  fs::path release() const { return scratch_.path() / "release"; }
  void let_go() const { std::ofstream(release()) << "go\n"; }

  // The history entries that are a client's execute.
  static std::vector<Json> executes_in(const std::vector<Json>& entries) {
    std::vector<Json> out;
    for (const auto& e : entries) {
      if (str(e, "direction") == "client" && str(e.at("message").as_object(), "type") == "execute")
        out.push_back(e);
    }
    return out;
  }

  // Stops the server as a crash would (SIGKILL, no shutdown) and starts it on the same data.
  void crash_and_restart(std::vector<std::string> args = {}) {
    const auto data_dir = server_->data_dir();
    stopped_.push_back(std::move(server_));  // owns the data directory
    stopped_.back()->kill_hard();
    start_agent_server(std::move(args), {}, data_dir);
  }

  Json answer(WsClient& client, const std::string& project_id, Json answer_data) {
    return client.request(Json{{"type", "permission_response"},
                               {"project_id", project_id},
                               {"data", std::move(answer_data)}});
  }

  TempDir scratch_{"pa-idem"};
  std::vector<std::unique_ptr<ServerProcess>> stopped_;
};

TEST_F(IdempotencyTest, ExecuteResentOnTheConnectionAfterReconnectAndAfterRestartRunsOnce) {
  auto phone = connect();
  const auto id = new_project(*phone);
  const auto first = phone->request(execute_message(id, held_prompt(), "send-1"));
  ASSERT_TRUE(is_state(first, "EXECUTING")) << json::serialize(first);
  EXPECT_FALSE(duplicate(first));

  // The same request again on the same connection: the state now, marked duplicate.
  const auto again = phone->request(execute_message(id, held_prompt(), "send-1"));
  ASSERT_TRUE(is_state(again, "EXECUTING")) << json::serialize(again);
  EXPECT_TRUE(duplicate(again));
  EXPECT_EQ(str(again, "project_id"), id);
  EXPECT_FALSE(again.contains("seq")) << "a duplicate's reply is not in history";

  // The phone lost its connection and resends on a new one: a duplicate too, and the new
  // connection follows the run as the execute's sender would.
  phone.reset();
  auto reconnected = connect();
  const auto resent = reconnected->request(execute_message(id, held_prompt(), "send-1"));
  ASSERT_TRUE(is_state(resent, "EXECUTING")) << json::serialize(resent);
  EXPECT_TRUE(duplicate(resent));
  let_go();
  until_idle(*reconnected);

  // After a crash and restart on the same data directory: still a duplicate, now IDLE.
  reconnected.reset();
  crash_and_restart();
  auto later = connect();
  const auto after_restart = later->request(execute_message(id, held_prompt(), "send-1"));
  ASSERT_TRUE(is_state(after_restart, "IDLE")) << json::serialize(after_restart);
  EXPECT_TRUE(duplicate(after_restart));

  EXPECT_EQ(records().size(), 1u) << "exactly one run of the CLI";
  const auto history = all_history(*later, id);
  EXPECT_EQ(executes_in(history).size(), 1u);
  for (const auto& e : history) {
    EXPECT_EQ(json::serialize(e).find("\"duplicate\""), std::string::npos) << json::serialize(e);
  }

  // Another key on the same project is another request: it runs.
  const auto other = later->request(execute_message(id, "hi", "send-2"));
  ASSERT_TRUE(is_state(other, "EXECUTING")) << json::serialize(other);
  EXPECT_FALSE(duplicate(other));
  until_idle(*later);
  EXPECT_EQ(records().size(), 2u);
}

TEST_F(IdempotencyTest, TwoCopiesAtOnceOnTwoConnectionsStartOneRun) {
  auto a = connect();
  auto b = connect();
  const auto id = new_project(*a);
  auto message = execute_message(id, held_prompt(), "at-once");
  auto to_a = message;
  to_a["request_id"] = "copy-a";
  auto to_b = message;
  to_b["request_id"] = "copy-b";
  a->send(to_a);
  b->send(to_b);
  const auto reply_a =
      a->read_until([](const Json& m) { return str(m, "request_id") == "copy-a"; }, 30s);
  const auto reply_b =
      b->read_until([](const Json& m) { return str(m, "request_id") == "copy-b"; }, 30s);
  ASSERT_TRUE(reply_a && reply_b);
  ASSERT_TRUE(is_state(*reply_a, "EXECUTING")) << json::serialize(*reply_a);
  ASSERT_TRUE(is_state(*reply_b, "EXECUTING")) << json::serialize(*reply_b);
  EXPECT_NE(duplicate(*reply_a), duplicate(*reply_b)) << "exactly one of them is the duplicate";
  let_go();
  until_idle(*a);
  EXPECT_EQ(records().size(), 1u);
  EXPECT_EQ(executes_in(all_history(*a, id)).size(), 1u);
}

TEST_F(IdempotencyTest, RefusedRequestsAreNotRecordedAndKeysAreScoped) {
  auto client = connect();
  const auto id = new_project(*client, "one");
  const auto other_id = new_project(*client, "two");
  ASSERT_TRUE(is_state(client->request(execute_message(id, held_prompt(), "busy")), "EXECUTING"));

  // Refused while busy (PROCESS_ACTIVE): not recorded, so the same key works later.
  const auto refused = client->request(execute_message(id, "hi", "later"));
  ASSERT_EQ(error_code(refused), "PROCESS_ACTIVE") << json::serialize(refused);
  EXPECT_FALSE(duplicate(refused));
  // Unknown project: refused, not recorded.
  EXPECT_EQ(error_code(client->request(execute_message("no-such-project", "hi", "later"))),
            "PROJECT_NOT_FOUND");

  // The key of the running execute, on another project, is another request: it runs.
  const auto elsewhere = client->request(execute_message(other_id, "hi", "busy"));
  ASSERT_TRUE(is_state(elsewhere, "EXECUTING")) << json::serialize(elsewhere);
  EXPECT_FALSE(duplicate(elsewhere));
  const auto idle_of = [](const std::string& project_id) {
    return [project_id](const Json& m) {
      return is_state(m, "IDLE") && str(m, "project_id") == project_id;
    };
  };
  ASSERT_TRUE(client->read_until(idle_of(other_id), 30s));
  // ... and as another message type too (a permission_response with no such permission).
  const auto as_answer = client->request(Json{
      {"type", "permission_response"},
      {"project_id", id},
      {"data", {{"permission_id", "none"}, {"decision", "allow"}, {"idempotency_key", "busy"}}}});
  EXPECT_EQ(error_code(as_answer), "PERMISSION_NOT_FOUND") << json::serialize(as_answer);
  EXPECT_FALSE(duplicate(as_answer));

  let_go();
  ASSERT_TRUE(client->read_until(idle_of(id), 30s));

  const auto now_runs = client->request(execute_message(id, "hi", "later"));
  ASSERT_TRUE(is_state(now_runs, "EXECUTING")) << json::serialize(now_runs);
  EXPECT_FALSE(duplicate(now_runs));
  until_idle(*client);
  EXPECT_EQ(records().size(), 3u);
  EXPECT_EQ(executes_in(all_history(*client, id)).size(), 2u);
  EXPECT_EQ(executes_in(all_history(*client, other_id)).size(), 1u);
}

// RESOURCE_LIMIT is found after the key was recorded (the scheduler admits or refuses at once):
// the key is forgotten again, also on disk.
TEST_F(IdempotencyTest, QueueFullRefusalIsForgottenAlsoAcrossARestart) {
  const std::vector<std::string> one_slot = {"--execution-max-concurrent", "1",
                                             "--execution-queue-size", "0"};
  start_agent_server(one_slot);
  auto client = connect();
  const auto a = new_project(*client, "a");
  const auto b = new_project(*client, "b");
  ASSERT_TRUE(is_state(execute(*client, a, "[[fake:hang]]"), "EXECUTING"));
  const auto full = client->request(execute_message(b, "hi", "when-free"));
  ASSERT_EQ(error_code(full), "RESOURCE_LIMIT") << json::serialize(full);
  EXPECT_FALSE(duplicate(full));

  client.reset();
  crash_and_restart(one_slot);
  client = connect();
  // Runs outlive the server: a's run was taken over and holds the one slot; stop it.
  client->request(Json{{"type", "project_join"}, {"project_id", a}});
  client->request(Json{{"type", "agent_kill"}, {"project_id", a}});
  const auto runs = client->request(execute_message(b, "hi", "when-free"));
  ASSERT_TRUE(is_state(runs, "EXECUTING")) << json::serialize(runs);
  EXPECT_FALSE(duplicate(runs));
  until_idle(*client);
  EXPECT_EQ(executes_in(all_history(*client, b)).size(), 1u);
}

TEST_F(IdempotencyTest, FollowUpResentIsQueuedOnce) {
  auto client = connect();
  const auto id = new_project(*client);
  ASSERT_TRUE(is_state(client->request(execute_message(id, held_prompt(), "run")), "EXECUTING"));
  auto follow_up = execute_message(id, "and then this", "next");
  follow_up["data"].as_object()["mode"] = "queue";
  const auto queued = client->request(follow_up);
  ASSERT_TRUE(is(queued, "prompt_queued")) << json::serialize(queued);
  EXPECT_FALSE(queued.at("data").as_object().contains("duplicate"));
  const auto again = client->request(follow_up);
  ASSERT_TRUE(is_state(again, "EXECUTING")) << json::serialize(again);
  EXPECT_TRUE(duplicate(again));
  const auto joined = client->request(Json{{"type", "project_join"}, {"project_id", id}});
  EXPECT_EQ(data(joined).at("queued_prompts").as_array().size(), 1u) << json::serialize(joined);
  let_go();
  until_idle(*client);
  const auto rec = records();
  ASSERT_EQ(rec.size(), 1u);
  std::size_t user_lines = 0;
  for (const auto& line : rec[0].at("stdin").as_array()) {
    if (line.as_string().find("\"type\":\"user\"") != json::string::npos) ++user_lines;
  }
  EXPECT_EQ(user_lines, 2u) << "the prompt and one follow-up";
  EXPECT_EQ(executes_in(all_history(*client, id)).size(), 2u);
}

TEST_F(IdempotencyTest, ProjectCreateResentMakesOneProject) {
  auto client = connect();
  const auto dir = make_dir("created-once");
  const Json create{{"type", "project_create"},
                    {"data", {{"path", dir.string()}, {"idempotency_key", "create-1"}}}};
  const auto first = client->request(create);
  ASSERT_TRUE(is(first, "project_state")) << json::serialize(first);
  EXPECT_FALSE(duplicate(first));
  const std::string id = str(first, "project_id");
  ASSERT_FALSE(id.empty());

  client.reset();
  auto again = connect();
  const auto resent = again->request(create);
  ASSERT_TRUE(is(resent, "project_state")) << json::serialize(resent);
  EXPECT_TRUE(duplicate(resent));
  EXPECT_EQ(str(resent, "project_id"), id);
  EXPECT_EQ(str(data(resent), "id"), id);
  EXPECT_EQ(str(data(resent), "state"), "IDLE");
  const auto list = again->request(Json{{"type", "project_list"}});
  EXPECT_EQ(data(list).at("projects").as_array().size(), 1u);
  // Its history holds the one project_state of the creation, nothing for the resend.
  const auto history = all_history(*again, id);
  EXPECT_EQ(history.size(), 1u);

  // Across a restart too; and after the project is deleted the resend does not make it again.
  again.reset();
  crash_and_restart();
  auto later = connect();
  EXPECT_TRUE(duplicate(later->request(create)));
  ASSERT_EQ(str(later->request(Json{{"type", "project_delete"}, {"project_id", id}}), "type"),
            "project_deleted");
  const auto gone = later->request(create);
  EXPECT_EQ(error_code(gone), "PROJECT_NOT_FOUND") << json::serialize(gone);
  EXPECT_TRUE(duplicate(gone));
  EXPECT_EQ(str(data(gone).at("details").as_object(), "project_id"), id);
  EXPECT_TRUE(
      data(later->request(Json{{"type", "project_list"}})).at("projects").as_array().empty());

  // A create that was refused is not recorded: once the path exists, the same key creates.
  const auto missing = projects_root_.path() / "not-yet";
  const Json create_missing{
      {"type", "project_create"},
      {"data", {{"path", missing.string()}, {"idempotency_key", "create-2"}}}};
  const auto refused = later->request(create_missing);
  EXPECT_EQ(error_code(refused), "INVALID_PATH") << json::serialize(refused);
  EXPECT_FALSE(duplicate(refused));
  fs::create_directories(missing);
  const auto created = later->request(create_missing);
  ASSERT_TRUE(is(created, "project_state")) << json::serialize(created);
  EXPECT_FALSE(duplicate(created));
}

TEST_F(IdempotencyTest, TwoIdenticalCreatesAtOnceMakeOneProject) {
  auto a = connect();
  auto b = connect();
  const Json create{{"type", "project_create"},
                    {"data", {{"path", make_dir("raced").string()}, {"idempotency_key", "c"}}}};
  auto to_a = create;
  to_a["request_id"] = "copy-a";
  auto to_b = create;
  to_b["request_id"] = "copy-b";
  a->send(to_a);
  b->send(to_b);
  const auto reply_a =
      a->read_until([](const Json& m) { return str(m, "request_id") == "copy-a"; }, 30s);
  const auto reply_b =
      b->read_until([](const Json& m) { return str(m, "request_id") == "copy-b"; }, 30s);
  ASSERT_TRUE(reply_a && reply_b);
  ASSERT_TRUE(is(*reply_a, "project_state")) << json::serialize(*reply_a);
  ASSERT_TRUE(is(*reply_b, "project_state")) << json::serialize(*reply_b);
  EXPECT_EQ(str(*reply_a, "project_id"), str(*reply_b, "project_id"));
  EXPECT_NE(duplicate(*reply_a), duplicate(*reply_b));
  EXPECT_EQ(data(a->request(Json{{"type", "project_list"}})).at("projects").as_array().size(), 1u);
}

TEST_F(IdempotencyTest, PermissionResponseResentReachesTheCliOnce) {
  auto client = connect();
  const auto id = new_project(*client);
  ASSERT_TRUE(is_state(
      execute(*client, id, "[[fake:permission command=\"touch made-by-tool.txt\"]]"), "EXECUTING"));
  const auto ask =
      client->read_until([](const Json& m) { return is(m, "permission_request"); }, 30s);
  ASSERT_TRUE(ask);
  const std::string permission_id = str(data(*ask), "permission_id");

  // A refused answer (unknown permission) with the key is not recorded ...
  const auto wrong = answer(
      *client, id,
      {{"permission_id", "not-this-one"}, {"decision", "allow"}, {"idempotency_key", "answer-1"}});
  EXPECT_EQ(error_code(wrong), "PERMISSION_NOT_FOUND") << json::serialize(wrong);
  EXPECT_FALSE(duplicate(wrong));
  // ... so the real answer with the same key is carried out.
  const Json allow{
      {"permission_id", permission_id}, {"decision", "allow"}, {"idempotency_key", "answer-1"}};
  const auto resolved = answer(*client, id, allow);
  ASSERT_TRUE(is(resolved, "permission_resolved")) << json::serialize(resolved);
  EXPECT_FALSE(duplicate(resolved));

  // The resend gets what a late answer gets now, marked duplicate.
  const auto resent = answer(*client, id, allow);
  EXPECT_EQ(error_code(resent), "PERMISSION_NOT_FOUND") << json::serialize(resent);
  EXPECT_TRUE(duplicate(resent));
  const auto& details = data(resent).at("details").as_object();
  EXPECT_EQ(str(details, "status"), "resolved");
  EXPECT_EQ(str(details, "decision"), "allow");
  EXPECT_NE(str(data(resent), "message").find("idempotency_key"), std::string::npos);

  // The run may have ended while the resend was answered: its IDLE is then among the skipped.
  const auto& skipped = client->skipped();
  if (std::none_of(skipped.begin(), skipped.end(),
                   [](const Json& m) { return is_state(m, "IDLE"); }))
    until_idle(*client);
  const auto rec = records();
  ASSERT_EQ(rec.size(), 1u);
  std::size_t answers = 0;
  for (const auto& line : rec[0].at("stdin").as_array()) {
    if (line.as_string().find("\"control_response\"") != json::string::npos) ++answers;
  }
  EXPECT_EQ(answers, 1u) << json::serialize(rec[0].at("stdin"));
  std::size_t resolutions = 0;
  for (const auto& e : all_history(*client, id)) {
    if (str(e.at("message").as_object(), "type") == "permission_resolved") ++resolutions;
  }
  EXPECT_EQ(resolutions, 1u);
}

TEST_F(IdempotencyTest, BadKeysAreInvalidMessageAndTheConnectionSurvives) {
  auto client = connect();
  const auto id = new_project(*client);
  const std::vector<json::value> bad = {
      json::value(""),          json::value(std::string(129, 'k')),
      json::value("tab\there"), json::value("caf\xc3\xa9"),
      json::value(7),           json::value(json::object{})};
  for (const auto& key : bad) {
    const std::vector<Json> messages = {
        Json{{"type", "execute"},
             {"project_id", id},
             {"data", {{"prompt", "hi"}, {"idempotency_key", key}}}},
        Json{{"type", "project_create"},
             {"data", {{"path", make_dir("bad-key").string()}, {"idempotency_key", key}}}},
        Json{{"type", "permission_response"},
             {"project_id", id},
             {"data", {{"permission_id", "p"}, {"decision", "allow"}, {"idempotency_key", key}}}}};
    for (const auto& message : messages) {
      const auto reply = client->request(message);
      EXPECT_EQ(error_code(reply), "INVALID_MESSAGE") << json::serialize(message);
      EXPECT_EQ(str(data(reply).at("details").as_object(), "field"), "data.idempotency_key")
          << json::serialize(reply);
    }
  }
  // 128 printable bytes are fine; the connection is still open and nothing ran.
  const auto ok = client->request(execute_message(id, "hi", std::string(128, '~')));
  ASSERT_TRUE(is_state(ok, "EXECUTING")) << json::serialize(ok);
  until_idle(*client);
  EXPECT_EQ(records().size(), 1u);
  EXPECT_EQ(data(client->request(Json{{"type", "project_list"}})).at("projects").as_array().size(),
            1u);
}

}  // namespace
}  // namespace pa::test
