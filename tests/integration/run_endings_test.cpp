// Honest run endings: each prompt names the client that sent it (`by` in the execute history
// entry and in EXECUTING), a stop a client asks for is announced at once (run_stopping) and the
// final IDLE says how the run ended (`ended`), live and in history.
#include "integration/fixture.hpp"

namespace pa::test {
namespace {

class RunEndingsTest : public AgentServerTest {
 protected:
  std::unique_ptr<WsClient> connect_as(const std::string& name) {
    ClientOptions o;
    o.tls = server_->tls();
    o.bearer = server_->token();
    o.target = "/ws?client_name=" + name;
    auto client = std::make_unique<WsClient>(server_->port(), o);
    EXPECT_EQ(client->connect(), 101) << client->response_body();
    return client;
  }
  // Joins and returns this connection's id (project_joined.data.connection_id).
  std::int64_t join(WsClient& client, const std::string& id) {
    const auto joined = client.request(Json{{"type", "project_join"}, {"project_id", id}});
    EXPECT_EQ(str(joined, "type"), "project_joined") << json::serialize(joined);
    return data(joined).at("connection_id").as_int64();
  }
  static Json by(const std::string& name, std::int64_t connection_id) {
    return Json{{"type", "client"},
                {"connection_id", connection_id},
                {"client_name", name},
                {"device_id", nullptr},
                {"device_name", nullptr}};  // the master token: no device
  }
  // The history entries whose message has `type`, in order.
  static std::vector<Json> entries_of(const std::vector<Json>& history, std::string_view type) {
    std::vector<Json> out;
    for (const auto& e : history) {
      if (str(e.at("message").as_object(), "type") == type) out.push_back(e);
    }
    return out;
  }
  // The hold file of a drip run: the run waits after its first line until it exists.
  std::string held_drip() {
    return "[[fake:drip lines=3 interval_ms=1 hold_after=1 hold_file=" +
           (state_.path() / "never").string() + "]]";
  }
};

TEST_F(RunEndingsTest, PromptsNameTheClientThatSentThem) {
  auto phone = connect_as("phone");
  auto laptop = connect_as("laptop");
  const auto id = new_project(*phone);
  const auto phone_id = join(*phone, id);
  const auto laptop_id = join(*laptop, id);
  EXPECT_NE(phone_id, laptop_id);

  const auto started = execute(*phone, id, "[[fake:text]]");
  ASSERT_TRUE(is_state(started, "EXECUTING")) << json::serialize(started);
  EXPECT_EQ(data(started).at("by"), by("phone", phone_id));
  // The other client sees who started it, live.
  const auto seen = laptop->read_until([](const Json& m) { return is_state(m, "EXECUTING"); });
  ASSERT_TRUE(seen);
  EXPECT_EQ(data(*seen).at("by"), by("phone", phone_id));
  const auto idle = until_idle(*laptop);
  EXPECT_EQ(data(idle.back()).at("ended"), (Json{{"reason", "completed"}}));
  EXPECT_FALSE(data(idle.back()).contains("by")) << "IDLE names no starter";

  // History keeps who sent the prompt (the execute entry) and how the run ended.
  const auto history = all_history(*laptop, id);
  const auto prompts = entries_of(history, "execute");
  ASSERT_EQ(prompts.size(), 1u);
  EXPECT_EQ(str(prompts[0], "direction"), "client");
  EXPECT_EQ(prompts[0].at("message").at("by"), by("phone", phone_id));
  EXPECT_EQ(prompts[0].at("message").at("data").at("prompt"), "[[fake:text]]");
  const auto states = entries_of(history, "project_state");
  ASSERT_FALSE(states.empty());
  EXPECT_EQ(states.back().at("message").at("data").at("ended"), (Json{{"reason", "completed"}}));
}

TEST_F(RunEndingsTest, AKillIsAnnouncedAtOnceAndEndsAsKilledByThatClient) {
  auto phone = connect_as("phone");
  auto laptop = connect_as("laptop");
  const auto id = new_project(*phone);
  join(*phone, id);
  const auto laptop_id = join(*laptop, id);
  ASSERT_TRUE(is_state(execute(*phone, id, "[[fake:hang]]"), "EXECUTING"));
  ASSERT_TRUE(phone->read_until([](const Json& m) { return str(m, "type") == "agent_message"; }));

  const auto killed = laptop->request(Json{{"type", "agent_kill"}, {"project_id", id}}, 30s);
  ASSERT_TRUE(is_idle(killed)) << json::serialize(killed);
  const Json expected{{"reason", "killed"}, {"by", by("laptop", laptop_id)}};
  EXPECT_EQ(data(killed).at("ended"), expected);
  // The other client heard "stopping" before the end, then the same ending.
  const auto seen = until_idle(*phone);
  const auto stopping = std::find_if(
      seen.begin(), seen.end(), [](const Json& m) { return str(m, "type") == "run_stopping"; });
  ASSERT_NE(stopping, seen.end());
  EXPECT_EQ(data(*stopping), (Json{{"how", "kill"}, {"by", by("laptop", laptop_id)}}));
  EXPECT_GT(stopping->at("seq").as_int64(), 0) << "kept in history";
  EXPECT_EQ(data(seen.back()).at("ended"), expected);
  for (const auto& m : seen) EXPECT_NE(str(m, "type"), "error") << json::serialize(m);

  const auto history = all_history(*phone, id);
  ASSERT_EQ(entries_of(history, "run_stopping").size(), 1u);
  EXPECT_EQ(entries_of(history, "project_state").back().at("message").at("data").at("ended"),
            expected);
}

TEST_F(RunEndingsTest, AnInterruptEndsAsInterruptedByThatClient) {
  auto phone = connect_as("phone");
  const auto id = new_project(*phone);
  const auto phone_id = join(*phone, id);
  ASSERT_TRUE(is_state(execute(*phone, id, held_drip()), "EXECUTING"));
  ASSERT_TRUE(phone->read_until([](const Json& m) { return str(m, "type") == "agent_message"; }));
  const auto idle = phone->request(Json{{"type", "agent_interrupt"}, {"project_id", id}}, 30s);
  ASSERT_TRUE(is_idle(idle)) << json::serialize(idle);
  EXPECT_EQ(data(idle).at("ended"),
            (Json{{"reason", "interrupted"}, {"by", by("phone", phone_id)}}));
  bool announced = false;
  for (const auto& m : phone->skipped()) {
    if (str(m, "type") == "run_stopping") {
      announced = true;
      EXPECT_EQ(str(data(m), "how"), "interrupt");
    }
  }
  EXPECT_TRUE(announced);
}

// A CLI that ignores the interrupt and SIGTERM: "stopping" is announced at once, long before the
// run ends (SIGKILL after the graces).
TEST_F(RunEndingsTest, AKillOfACliThatIgnoresItIsAnnouncedBeforeItEnds) {
  start_agent_server({"--timeouts-kill-grace", "1s", "--timeouts-term-grace", "1s"});
  auto phone = connect_as("phone");
  auto laptop = connect_as("laptop");
  const auto id = new_project(*phone);
  const auto phone_id = join(*phone, id);
  join(*laptop, id);
  ASSERT_TRUE(is_state(execute(*phone, id, "[[fake:hang ignore-interrupt=1 ignore-sigterm=1]]"),
                       "EXECUTING"));
  ASSERT_TRUE(laptop->read_until([](const Json& m) { return str(m, "type") == "agent_message"; }));
  Json kill{{"type", "agent_kill"}, {"project_id", id}, {"request_id", "k1"}};
  phone->send(kill);
  // The laptop hears "stopping" while the run still goes on: before any IDLE.
  bool idle_first = false;
  const auto stopping = laptop->read_until([&](const Json& m) {
    idle_first |= is_idle(m);
    return str(m, "type") == "run_stopping";
  });
  ASSERT_TRUE(stopping);
  EXPECT_FALSE(idle_first);
  EXPECT_EQ(data(*stopping).at("by"), by("phone", phone_id));
  const auto seen = until_idle(*laptop);
  EXPECT_EQ(str(data(seen.back()).at("ended").as_object(), "reason"), "killed");
}

// A client that joins while a stop is under way learns it from project_joined (`stopping`); once
// the run has ended, nothing is pending.
TEST_F(RunEndingsTest, AClientThatJoinsWhileARunStopsIsToldSo) {
  // Graces far longer than the join takes: the run cannot end before the laptop has joined.
  start_agent_server({"--timeouts-kill-grace", "3s", "--timeouts-term-grace", "3s"});
  auto phone = connect_as("phone");
  const auto id = new_project(*phone);
  const auto phone_id = join(*phone, id);
  ASSERT_TRUE(is_state(execute(*phone, id, "[[fake:hang ignore-interrupt=1 ignore-sigterm=1]]"),
                       "EXECUTING"));
  ASSERT_TRUE(phone->read_until([](const Json& m) { return str(m, "type") == "agent_message"; }));
  phone->send(Json{{"type", "agent_kill"}, {"project_id", id}, {"request_id", "k1"}});
  ASSERT_TRUE(phone->read_until([](const Json& m) { return str(m, "type") == "run_stopping"; }));

  auto laptop = connect_as("laptop");
  const auto joined = laptop->request(Json{{"type", "project_join"}, {"project_id", id}});
  ASSERT_TRUE(data(joined).contains("stopping")) << json::serialize(joined);
  EXPECT_EQ(data(joined).at("stopping"), (Json{{"how", "kill"}, {"by", by("phone", phone_id)}}));
  until_idle(*laptop);
  const auto after = laptop->request(Json{{"type", "project_join"}, {"project_id", id}});
  EXPECT_FALSE(data(after).contains("stopping")) << json::serialize(after);
}

TEST_F(RunEndingsTest, AFailedRunEndsAsFailed) {
  auto phone = connect_as("phone");
  const auto id = new_project(*phone);
  join(*phone, id);
  ASSERT_TRUE(
      is_state(execute(*phone, id, "[[fake:fail code=3 stderr=boom init=1]]"), "EXECUTING"));
  const auto seen = until_idle(*phone);
  EXPECT_EQ(data(seen.back()).at("ended"), (Json{{"reason", "failed"}}));
  bool stderr_shown = false;
  for (const auto& m : seen) {
    if (str(m, "type") == "error") {
      EXPECT_EQ(error_code(m), "EXECUTION_FAILED");
      stderr_shown =
          str(data(m).at("details").as_object(), "stderr").find("boom") != std::string::npos;
    }
  }
  EXPECT_TRUE(stderr_shown);
}

}  // namespace
}  // namespace pa::test
