// Issue 16 part 4 through the real server and the fake CLI: the hello/welcome handshake, its
// validation and version rules, and tool-permission asks that go to clients only while a
// subscriber declared "permissions" (otherwise claude.permission_fallback applies at once).
#include <fstream>

#include "integration/fixture.hpp"

namespace pa::test {
namespace {

constexpr const char* kAsk = "[[fake:permission command=\"touch made-by-tool.txt\"]]";

class HandshakeTest : public AgentServerTest {
 protected:
  static Json send_hello(WsClient& client, Json data) {
    return client.request(Json{{"type", "hello"}, {"data", std::move(data)}});
  }
  // The error code of `reply` and its details.field ("" when absent).
  static std::pair<std::string, std::string> refusal(const Json& reply) {
    if (!is(reply, "error")) return {"", ""};
    return {error_code(reply), str(data(reply).at("details").as_object(), "field")};
  }

  Json join(WsClient& client, const std::string& project_id) {
    return client.request(Json{{"type", "project_join"}, {"project_id", project_id}});
  }

  // The history messages ({type, data}) of the project, oldest first.
  static std::vector<Json> history_messages(WsClient& client, const std::string& id) {
    std::vector<Json> out;
    for (const auto& e : all_history(client, id)) out.push_back(e.at("message").as_object());
    return out;
  }
};

TEST_F(HandshakeTest, WelcomeNamesTheVersionTheServerAndItsCapabilities) {
  auto client = connect_without_hello();
  const auto welcome =
      send_hello(*client, {{"protocol", 1},
                           {"client_name", "Pixel 7"},
                           {"capabilities", json::array{"permissions", "telepathy", "queue"}}});
  ASSERT_TRUE(is(welcome, "welcome")) << json::serialize(welcome);
  EXPECT_FALSE(welcome.contains("project_id"));
  const Json& w = data(welcome);
  EXPECT_EQ(w.at("protocol").as_int64(), 1);
  const auto health = client->request(Json{{"type", "health"}});
  EXPECT_EQ(str(w, "server_version"), str(data(health), "version"));
  EXPECT_FALSE(str(w, "server_version").empty());
  EXPECT_EQ(
      json::serialize(w.at("capabilities")),
      R"(["permissions","queue","interrupt","idempotency","history_paging","review","notifications","devices"])");
  EXPECT_EQ(str(w, "client_name"), "Pixel 7");
  // Unknown capabilities are ignored, not refused.
  EXPECT_EQ(json::serialize(w.at("accepted_capabilities")), R"(["permissions","queue"])");

  // Without a name from the query or the hello: null.
  auto anonymous = connect_without_hello();
  const auto plain = send_hello(*anonymous, {{"protocol", 1}, {"capabilities", json::array{}}});
  EXPECT_TRUE(data(plain).at("client_name").is_null()) << json::serialize(plain);
  EXPECT_TRUE(data(plain).at("accepted_capabilities").as_array().empty());
}

TEST_F(HandshakeTest, VersionRules) {
  // A newer client is answered with the server's version and goes on with it.
  auto newer = connect_without_hello();
  const auto welcome = send_hello(*newer, {{"protocol", 7}, {"capabilities", json::array{}}});
  ASSERT_TRUE(is(welcome, "welcome")) << json::serialize(welcome);
  EXPECT_EQ(data(welcome).at("protocol").as_int64(), 1);

  // An older one than the server speaks is refused; the connection stays, and may say hello
  // again with a version the server speaks.
  auto older = connect_without_hello();
  const auto refused = send_hello(*older, {{"protocol", 0}, {"capabilities", json::array{}}});
  ASSERT_EQ(error_code(refused), "UNSUPPORTED_PROTOCOL") << json::serialize(refused);
  const Json& details = data(refused).at("details").as_object();
  EXPECT_EQ(details.at("protocol").as_int64(), 0);
  EXPECT_EQ(details.at("oldest").as_int64(), 1);
  EXPECT_EQ(details.at("newest").as_int64(), 1);
  EXPECT_NE(str(data(refused), "message").find("send no hello"), std::string::npos);
  EXPECT_TRUE(is(hello(*older, {"permissions"}), "welcome"));
}

TEST_F(HandshakeTest, BadHellosAreInvalidMessageAndAGoodOneMayFollow) {
  auto client = connect_without_hello();
  const std::vector<std::pair<Json, std::string>> cases = {
      {{{"capabilities", json::array{}}}, "data.protocol"},
      {{{"protocol", "1"}, {"capabilities", json::array{}}}, "data.protocol"},
      {{{"protocol", 1.5}, {"capabilities", json::array{}}}, "data.protocol"},
      {{{"protocol", 1}}, "data.capabilities"},
      {{{"protocol", 1}, {"capabilities", "permissions"}}, "data.capabilities"},
      {{{"protocol", 1}, {"capabilities", json::array{42}}}, "data.capabilities"},
      {{{"protocol", 1}, {"capabilities", json::array{std::string(65, 'c')}}}, "data.capabilities"},
      {{{"protocol", 1}, {"capabilities", json::array(65, "queue")}}, "data.capabilities"},
      {{{"protocol", 1}, {"capabilities", json::array{}}, {"client_name", ""}}, "data.client_name"},
      {{{"protocol", 1}, {"capabilities", json::array{}}, {"client_name", std::string(65, 'n')}},
       "data.client_name"},
      {{{"protocol", 1}, {"capabilities", json::array{}}, {"client_name", "a\x01z"}},
       "data.client_name"},
      {{{"protocol", 1}, {"capabilities", json::array{}}, {"client_name", json::array{}}},
       "data.client_name"},
      {{{"protocol", 1}, {"capabilities", json::array{}}, {"features", json::array{}}},
       "data.features"},
  };
  for (const auto& [bad, field] : cases) {
    const auto reply = send_hello(*client, bad);
    EXPECT_EQ(refusal(reply), std::make_pair(std::string("INVALID_MESSAGE"), field))
        << json::serialize(bad) << " -> " << json::serialize(reply);
  }
  const auto with_project =
      client->request(Json{{"type", "hello"},
                           {"project_id", "p1"},
                           {"data", {{"protocol", 1}, {"capabilities", json::array{}}}}});
  EXPECT_EQ(refusal(with_project),
            std::make_pair(std::string("INVALID_MESSAGE"), std::string("project_id")));
  // None of them counted: the handshake is still open.
  EXPECT_TRUE(is(hello(*client, {"permissions"}, "Tablet"), "welcome"));
}

TEST_F(HandshakeTest, ASecondHelloOrAHelloAfterOtherRequestsIsRefusedAndTheConnectionGoesOn) {
  auto client = connect_without_hello();
  hello(*client, {"permissions"}, "First");
  const auto again = send_hello(
      *client, {{"protocol", 1}, {"capabilities", json::array{}}, {"client_name", "Second"}});
  EXPECT_EQ(refusal(again), std::make_pair(std::string("INVALID_MESSAGE"), std::string("type")));
  EXPECT_EQ(str(data(again).at("details").as_object(), "reason"), "hello_repeated");
  EXPECT_TRUE(is(client->request(Json{{"type", "project_list"}}), "project_list_response"));

  auto late = connect_without_hello();
  EXPECT_TRUE(is(late->request(Json{{"type", "project_list"}}), "project_list_response"));
  const auto too_late =
      send_hello(*late, {{"protocol", 1}, {"capabilities", json::array{"permissions"}}});
  EXPECT_EQ(refusal(too_late), std::make_pair(std::string("INVALID_MESSAGE"), std::string("type")));
  EXPECT_EQ(str(data(too_late).at("details").as_object(), "reason"), "hello_not_first");
  EXPECT_TRUE(is(late->request(Json{{"type", "health"}}), "health_status"));

  // Neither late hello changed anything: the first client is still "First" and answers asks;
  // the late one did not declare permissions, so with only it subscribed nobody is asked.
  const auto id = new_project(*late);
  execute(*late, id, kAsk);
  const auto seen = until_idle(*late);
  EXPECT_TRUE(of_type(seen, "permission_request").empty());
  ASSERT_EQ(of_type(seen, "permission_resolved").size(), 1u);
  EXPECT_EQ(str(data(of_type(seen, "permission_resolved")[0]), "reason"), "no_client");
  ASSERT_EQ(str(join(*client, id), "type"), "project_joined");
  execute(*late, id, kAsk);
  const auto ask = client->read_until([](const Json& m) { return is(m, "permission_request"); });
  ASSERT_TRUE(ask);
  const auto resolved = client->request(
      Json{{"type", "permission_response"},
           {"project_id", id},
           {"data", {{"permission_id", str(data(*ask), "permission_id")}, {"decision", "deny"}}}});
  EXPECT_EQ(str(data(resolved).at("by").as_object(), "client_name"), "First")
      << json::serialize(resolved);
  until_idle(*late);
}

TEST_F(HandshakeTest, TheQueryNameWinsOverTheHelloName) {
  auto named = connect_without_hello("/ws?client_name=From%20query");
  const auto welcome = hello(*named, {"permissions"}, "From hello");
  EXPECT_EQ(str(data(welcome), "client_name"), "From query");

  // The hello's name is the audit name when the query gave none.
  auto phone = connect_without_hello();
  EXPECT_EQ(str(data(hello(*phone, {"permissions"}, "Phone")), "client_name"), "Phone");
  const auto id = new_project(*phone);
  execute(*phone, id, kAsk);
  const auto ask = phone->read_until([](const Json& m) { return is(m, "permission_request"); });
  ASSERT_TRUE(ask);
  const auto resolved = phone->request(
      Json{{"type", "permission_response"},
           {"project_id", id},
           {"data", {{"permission_id", str(data(*ask), "permission_id")}, {"decision", "allow"}}}});
  EXPECT_EQ(str(data(resolved).at("by").as_object(), "client_name"), "Phone");
  until_idle(*phone);
}

// A client as the spec describes it, without hello: a plain run is exactly what it was.
TEST_F(HandshakeTest, WithoutHelloAPlainRunWorksAsTheSpecSays) {
  auto client = connect_without_hello();
  const auto id = new_project(*client);
  const auto started = execute(*client, id, "hello there");
  ASSERT_TRUE(is_state(started, "EXECUTING")) << json::serialize(started);
  const auto seen = until_idle(*client);
  EXPECT_EQ(cli_lines_of_type(seen, "system").size(), 1u);
  EXPECT_FALSE(cli_lines_of_type(seen, "assistant").empty());
  ASSERT_EQ(cli_lines_of_type(seen, "result").size(), 1u);
  EXPECT_EQ(str(cli_lines_of_type(seen, "result")[0], "subtype"), "success");
  EXPECT_FALSE(str(data(seen.back()), "session_id").empty());
  for (const auto& m : seen) {
    EXPECT_NE(str(m, "type").rfind("permission_", 0), 0u) << json::serialize(m);
    EXPECT_NE(str(m, "type"), "error") << json::serialize(m);
  }
}

// No subscriber declared "permissions": the ask is denied at once (claude.permission_fallback
// deny, the default), with a message naming the setting; nobody gets a permission_request and
// the run goes on.
TEST_F(HandshakeTest, WithoutACapableSubscriberTheAskIsDeniedAtOnceAndTheRunGoesOn) {
  auto client = connect_without_hello();
  auto watcher = connect_without_hello();
  const auto id = new_project(*client);
  ASSERT_EQ(str(join(*watcher, id), "type"), "project_joined");
  execute(*client, id, kAsk);
  // Well within claude.permission_timeout (5 m): the answer did not wait for a person.
  const auto seen = until_idle(*client, std::chrono::seconds(30));
  EXPECT_TRUE(of_type(seen, "permission_request").empty());
  const auto resolved = of_type(seen, "permission_resolved");
  ASSERT_EQ(resolved.size(), 1u);
  const Json& r = data(resolved[0]);
  EXPECT_EQ(str(r, "decision"), "deny");
  EXPECT_EQ(str(r, "reason"), "no_client");
  EXPECT_EQ(json::serialize(r.at("by")), R"({"type":"server"})");
  EXPECT_EQ(str(r, "tool_name"), "Bash");
  EXPECT_FALSE(str(r, "permission_id").empty());
  EXPECT_FALSE(str(r, "tool_use_id").empty());
  EXPECT_EQ(str(r, "input_sha256").size(), 64u);
  const std::string message = str(r, "message");
  EXPECT_NE(message.find("claude.permission_fallback"), std::string::npos) << message;
  EXPECT_NE(message.find("\"permissions\""), std::string::npos) << message;

  // The CLI got the deny with that message and finished its turn.
  const auto results = tool_result_blocks(seen);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].at("is_error").as_bool());
  EXPECT_EQ(str(results[0], "content"), message);
  const auto result = cli_lines_of_type(seen, "result");
  ASSERT_EQ(result.size(), 1u);
  EXPECT_EQ(result[0].at("permission_denials").as_array().size(), 1u);
  EXPECT_FALSE(std::filesystem::exists(projects_root_.path() / "proj" / "made-by-tool.txt"));
  const auto records_now = records();
  ASSERT_EQ(records_now.size(), 1u);
  EXPECT_NE(json::serialize(records_now[0].at("argv")).find("--permission-prompt-tool=stdio"),
            std::string::npos);

  // The other subscriber saw the same resolution; history keeps it, and no request.
  const auto watched =
      watcher->read_until([](const Json& m) { return is(m, "permission_resolved"); });
  ASSERT_TRUE(watched);
  EXPECT_EQ(str(data(*watched), "permission_id"), str(r, "permission_id"));
  const auto kept = history_messages(*client, id);
  EXPECT_TRUE(of_type(kept, "permission_request").empty());
  ASSERT_EQ(of_type(kept, "permission_resolved").size(), 1u);
  EXPECT_EQ(str(data(of_type(kept, "permission_resolved")[0]), "reason"), "no_client");

  // A late answer learns how it ended.
  const auto late = client->request(
      Json{{"type", "permission_response"},
           {"project_id", id},
           {"data", {{"permission_id", str(r, "permission_id")}, {"decision", "allow"}}}});
  EXPECT_EQ(error_code(late), "PERMISSION_NOT_FOUND");
  EXPECT_EQ(str(data(late).at("details").as_object(), "reason"), "no_client");
}

// One subscriber declared "permissions": the ask goes to the clients (all subscribers see it),
// whoever started the run.
TEST_F(HandshakeTest, ACapableSubscriberGetsTheAsk) {
  auto starter = connect_without_hello();
  auto phone = connect_without_hello();
  hello(*phone, {"permissions"});
  const auto id = new_project(*starter);
  ASSERT_EQ(str(join(*phone, id), "type"), "project_joined");
  execute(*starter, id, kAsk);
  const auto ask = phone->read_until([](const Json& m) { return is(m, "permission_request"); });
  ASSERT_TRUE(ask);
  const auto also = starter->read_until([](const Json& m) { return is(m, "permission_request"); });
  ASSERT_TRUE(also);
  const auto resolved = phone->request(
      Json{{"type", "permission_response"},
           {"project_id", id},
           {"data", {{"permission_id", str(data(*ask), "permission_id")}, {"decision", "allow"}}}});
  EXPECT_EQ(str(data(resolved), "reason"), "answered") << json::serialize(resolved);
  const auto seen = until_idle(*starter);
  const auto results = tool_result_blocks(seen);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].at("is_error").as_bool());
}

// The last capable subscriber leaving does not cancel what waits: a capable client that joins
// later sees the ask in project_joined and answers it.
TEST_F(HandshakeTest, APendingAskWaitsWhenTheCapableSubscriberLeaves) {
  auto watcher = connect_without_hello();
  std::string id, permission_id;
  {
    auto phone = connect_without_hello();
    hello(*phone, {"permissions"});
    id = new_project(*phone);
    ASSERT_EQ(str(join(*watcher, id), "type"), "project_joined");
    execute(*phone, id, kAsk);
    const auto ask = phone->read_until([](const Json& m) { return is(m, "permission_request"); });
    ASSERT_TRUE(ask);
    permission_id = str(data(*ask), "permission_id");
    phone->close();
  }
  auto tablet = connect_without_hello();
  hello(*tablet, {"permissions"});
  const auto joined = join(*tablet, id);
  const auto& pending = data(joined).at("pending_permissions").as_array();
  ASSERT_EQ(pending.size(), 1u) << json::serialize(joined);
  EXPECT_EQ(str(pending[0].as_object(), "permission_id"), permission_id);
  const auto resolved =
      tablet->request(Json{{"type", "permission_response"},
                           {"project_id", id},
                           {"data", {{"permission_id", permission_id}, {"decision", "deny"}}}});
  EXPECT_EQ(str(data(resolved), "reason"), "answered") << json::serialize(resolved);
  until_idle(*watcher);
}

class CliFallbackTest : public HandshakeTest {
 protected:
  void SetUp() override { start_agent_server({"--claude-permission-fallback", "cli"}); }
};

// claude.permission_fallback cli: a run started with no capable subscriber has no permission
// prompt tool, so the CLI's own permission mode decides (the fake CLI denies on its own).
TEST_F(CliFallbackTest, ARunWithoutACapableSubscriberStartsWithoutThePromptTool) {
  auto client = connect_without_hello();
  const auto id = new_project(*client);
  execute(*client, id, kAsk);
  const auto seen = until_idle(*client);
  EXPECT_TRUE(of_type(seen, "permission_request").empty());
  EXPECT_TRUE(of_type(seen, "permission_resolved").empty());
  const auto results = tool_result_blocks(seen);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_NE(str(results[0], "content").find("haven't granted it yet"), std::string::npos)
      << str(results[0], "content");
  auto rec = records();
  ASSERT_EQ(rec.size(), 1u);
  const std::string argv = json::serialize(rec[0].at("argv"));
  EXPECT_EQ(argv.find("--permission-prompt-tool"), std::string::npos) << argv;

  // With a capable subscriber at the start, the prompt tool is there and the ask reaches it.
  auto phone = connect_without_hello();
  hello(*phone, {"permissions"});
  ASSERT_EQ(str(join(*phone, id), "type"), "project_joined");
  execute(*client, id, kAsk);
  const auto ask = phone->read_until([](const Json& m) { return is(m, "permission_request"); });
  ASSERT_TRUE(ask);
  phone->request(
      Json{{"type", "permission_response"},
           {"project_id", id},
           {"data", {{"permission_id", str(data(*ask), "permission_id")}, {"decision", "allow"}}}});
  until_idle(*client);
  rec = records();
  ASSERT_EQ(rec.size(), 2u);
  EXPECT_NE(json::serialize(rec[1].at("argv")).find("\"--permission-prompt-tool=stdio\""),
            std::string::npos);
}

// A run that started with the prompt tool cannot drop it: an ask that comes after the last
// capable subscriber left is denied at once (no_client), with a message for the cli fallback.
TEST_F(CliFallbackTest, AnAskAfterTheLastCapableSubscriberLeftIsDenied) {
  auto watcher = connect_without_hello();
  auto phone = connect_without_hello();
  hello(*phone, {"permissions"});
  const auto id = new_project(*phone);
  ASSERT_EQ(str(join(*watcher, id), "type"), "project_joined");
  const auto hold = state_.path() / "go";
  execute(*phone, id,
          "[[fake:drip lines=2 interval_ms=1 hold_after=1 hold_file=" + hold.string() + "]]");
  const auto queued = phone->request(Json{
      {"type", "execute"}, {"project_id", id}, {"data", {{"prompt", kAsk}, {"mode", "queue"}}}});
  ASSERT_TRUE(is(queued, "prompt_queued")) << json::serialize(queued);
  ASSERT_TRUE(
      is(phone->request(Json{{"type", "project_leave"}, {"project_id", id}}), "project_left"));
  std::ofstream(hold) << "go";
  const auto seen = until_idle(*watcher);
  EXPECT_TRUE(of_type(seen, "permission_request").empty());
  const auto resolved = of_type(seen, "permission_resolved");
  ASSERT_EQ(resolved.size(), 1u);
  EXPECT_EQ(str(data(resolved[0]), "reason"), "no_client");
  const std::string message = str(data(resolved[0]), "message");
  EXPECT_NE(message.find("claude.permission_fallback: cli"), std::string::npos) << message;
  const auto results = tool_result_blocks(seen);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(str(results[0], "content"), message);
}

}  // namespace
}  // namespace pa::test
