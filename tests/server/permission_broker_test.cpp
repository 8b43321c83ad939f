// PermissionBroker: a tool-permission ask is closed exactly once (an answer, its deadline, the
// CLI's cancel, or the run cancelling all), the CLI hears the answer, the run is told how it
// ended, and pending asks keep their original deadlines through run.json.
#include "server/permission_broker.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <string>
#include <vector>

#include "protocol/clock.hpp"

namespace pa::server {
namespace {

namespace json = boost::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Closed {
  std::string permission_id;
  ClosedPermission closed;
  std::size_t requesters = 0;
};

// Stands in for the run: records what the broker asks of it.
class RecordingHost : public PermissionBroker::Host {
 public:
  struct Sent {
    std::string cli_request_id;
    json::object line;
  };
  std::vector<Sent> sent;
  std::vector<Closed> closed;
  std::vector<bool> waiting;
  int changed = 0;
  // When a permission closes, the broker already no longer lists it (run.json is saved then).
  std::vector<std::size_t> pending_when_closed;
  const PermissionBroker* broker = nullptr;

  void send_control(const std::string& cli_request_id, std::string line) override {
    sent.push_back({cli_request_id, json::parse(line).as_object()});
  }
  void permission_closed(const std::string& permission_id, ClosedPermission c,
                         const std::vector<Requester>& requesters) override {
    if (broker != nullptr) pending_when_closed.push_back(broker->size());
    closed.push_back({permission_id, std::move(c), requesters.size()});
  }
  void permissions_changed() override { ++changed; }
  void waiting_for_person(bool w) override { waiting.push_back(w); }
  std::shared_ptr<void> keep_alive() override { return nullptr; }
};

std::string ask_line(const std::string& cli_request_id, const std::string& tool = "Bash") {
  return R"({"type":"control_request","request_id":")" + cli_request_id +
         R"(","request":{"subtype":"can_use_tool","tool_name":")" + tool +
         R"(","input":{"command":"ls"},"tool_use_id":"toolu_)" + cli_request_id +
         R"(","description":"List files"}})";
}

agent::PermissionAsk ask_of(const std::string& line) {
  auto request = agent::parse_control_request(json::parse(line).as_object());
  EXPECT_TRUE(request && request->ask);
  return *request->ask;
}

json::object client(std::int64_t connection_id, const char* name) {
  return json::object{{"type", "client"}, {"connection_id", connection_id}, {"client_name", name}};
}

class PermissionBrokerTest : public ::testing::Test {
 protected:
  PermissionBrokerTest() { host.broker = &broker; }

  std::string open(const std::string& cli_request_id) {
    const std::string line = ask_line(cli_request_id);
    const json::object& announced = broker.open(line, ask_of(line));
    return std::string(announced.at("permission_id").as_string());
  }

  boost::asio::io_context io;
  RecordingHost host;
  PermissionBroker broker{host, io.get_executor(), "p-1", std::chrono::seconds(300)};
};

TEST_F(PermissionBrokerTest, OpenAnnouncesTheAskWithItsDeadline) {
  const std::string line = ask_line("cli-1");
  const json::object announced = broker.open(line, ask_of(line));
  EXPECT_EQ(announced.at("tool_name"), "Bash");
  EXPECT_EQ(announced.at("display_name"), "Bash");
  EXPECT_EQ(announced.at("tool_use_id"), "toolu_cli-1");
  EXPECT_EQ(announced.at("description"), "List files");
  const auto requested = protocol::parse_rfc3339(announced.at("requested_at").as_string());
  const auto expires = protocol::parse_rfc3339(announced.at("expires_at").as_string());
  ASSERT_TRUE(requested && expires);
  EXPECT_EQ(*expires - *requested, std::chrono::seconds(300));
  EXPECT_THAT(host.waiting, ElementsAre(true));
  EXPECT_EQ(host.changed, 1);
  ASSERT_NE(broker.announced_for("cli-1"), nullptr);
  EXPECT_EQ(*broker.announced_for("cli-1"), announced);
  EXPECT_EQ(broker.announced_for("cli-2"), nullptr);
  const json::array pending = broker.pending_permissions();
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].as_object(), announced);
  EXPECT_TRUE(host.sent.empty());  // nothing goes to the CLI until it is answered
}

// Nobody can be asked: the CLI hears the deny at once and the run reports it as resolved,
// without the ask ever being pending (no wait, no clocks paused).
TEST_F(PermissionBrokerTest, AnUnaskedDenyGoesToTheCliAtOnceAndIsReportedResolved) {
  const std::string line = ask_line("cli-9");
  broker.deny_unasked(ask_of(line), "no_client", "nobody can answer");
  ASSERT_EQ(host.sent.size(), 1u);
  EXPECT_EQ(host.sent[0].cli_request_id, "cli-9");
  EXPECT_THAT(json::serialize(host.sent[0].line), HasSubstr("\"behavior\":\"deny\""));
  EXPECT_THAT(json::serialize(host.sent[0].line), HasSubstr("nobody can answer"));
  ASSERT_EQ(host.closed.size(), 1u);
  const Closed& c = host.closed[0];
  EXPECT_FALSE(c.permission_id.empty());
  EXPECT_EQ(c.closed.status, "resolved");
  const json::object& r = c.closed.resolution;
  EXPECT_EQ(r.at("permission_id").as_string(), c.permission_id);
  EXPECT_EQ(r.at("decision"), "deny");
  EXPECT_EQ(r.at("reason"), "no_client");
  EXPECT_EQ(r.at("by"), (json::object{{"type", "server"}}));
  EXPECT_EQ(r.at("message"), "nobody can answer");
  EXPECT_EQ(r.at("tool_name"), "Bash");
  EXPECT_EQ(r.at("tool_use_id"), "toolu_cli-9");
  EXPECT_EQ(r.at("input_sha256").as_string().size(), 64u);
  EXPECT_EQ(c.requesters, 0u);
  EXPECT_TRUE(broker.empty());
  EXPECT_EQ(broker.announced_for("cli-9"), nullptr);
  EXPECT_TRUE(host.waiting.empty());
  EXPECT_EQ(host.changed, 0);
}

TEST_F(PermissionBrokerTest, AnAllowGoesToTheCliOnceAndClosesTheAsk) {
  const std::string id = open("cli-1");
  agent::PermissionAnswer answer;
  answer.permission_id = id;
  answer.allow = true;
  EXPECT_TRUE(broker.answer(answer, client(7, "phone"), Requester{}));

  ASSERT_EQ(host.sent.size(), 1u);
  EXPECT_EQ(host.sent[0].cli_request_id, "cli-1");
  EXPECT_THAT(json::serialize(host.sent[0].line), HasSubstr("\"behavior\":\"allow\""));
  ASSERT_EQ(host.closed.size(), 1u);
  const Closed& c = host.closed[0];
  EXPECT_EQ(c.permission_id, id);
  EXPECT_EQ(c.closed.status, "resolved");
  EXPECT_EQ(c.closed.resolution.at("decision"), "allow");
  EXPECT_EQ(c.closed.resolution.at("reason"), "answered");
  EXPECT_EQ(c.closed.resolution.at("by"), client(7, "phone"));
  EXPECT_EQ(c.requesters, 1u);  // the one who answered gets it as its reply
  EXPECT_THAT(host.pending_when_closed, ElementsAre(0u));
  EXPECT_THAT(host.waiting, ElementsAre(true, false));
  EXPECT_TRUE(broker.empty());

  // A second answer (or one for an unknown id) finds nothing and sends nothing.
  EXPECT_FALSE(broker.answer(answer, client(8, "laptop"), Requester{}));
  answer.permission_id = "nope";
  EXPECT_FALSE(broker.answer(answer, client(8, "laptop"), Requester{}));
  EXPECT_EQ(host.sent.size(), 1u);
  EXPECT_EQ(host.closed.size(), 1u);

  // Its timer was cancelled: nothing expires later.
  io.run();
  EXPECT_EQ(host.closed.size(), 1u);
}

TEST_F(PermissionBrokerTest, ADenyWithoutMessageSaysWhoDenied) {
  const std::string id = open("cli-1");
  agent::PermissionAnswer answer;
  answer.permission_id = id;
  answer.allow = false;
  EXPECT_TRUE(broker.answer(answer, client(7, "phone"), Requester{}));
  ASSERT_EQ(host.sent.size(), 1u);
  const std::string line = json::serialize(host.sent[0].line);
  EXPECT_THAT(line, HasSubstr("\"behavior\":\"deny\""));
  EXPECT_THAT(line, HasSubstr("Denied by connection 7 (phone) from Pocket Agent Server"));
  ASSERT_EQ(host.closed.size(), 1u);
  EXPECT_EQ(host.closed[0].closed.resolution.at("decision"), "deny");
  EXPECT_EQ(host.closed[0].closed.resolution.at("message"),
            "Denied by connection 7 (phone) from Pocket Agent Server");
}

TEST_F(PermissionBrokerTest, RememberSessionIsRecorded) {
  const std::string id = open("cli-1");
  agent::PermissionAnswer answer;
  answer.permission_id = id;
  answer.allow = true;
  answer.remember_session = true;
  EXPECT_TRUE(broker.answer(answer, client(7, "phone"), Requester{}));
  ASSERT_EQ(host.closed.size(), 1u);
  EXPECT_EQ(host.closed[0].closed.resolution.at("remember"), "session");
}

TEST_F(PermissionBrokerTest, TheClisCancelClosesOnlyItsAsk) {
  const std::string first = open("cli-1");
  const std::string second = open("cli-2");
  EXPECT_THAT(host.waiting, ElementsAre(true));  // paused once, for the first ask

  broker.cancel_ask("cli-1", "interrupted");
  broker.cancel_ask("cli-unknown", "run_ended");
  ASSERT_EQ(host.closed.size(), 1u);
  EXPECT_EQ(host.closed[0].permission_id, first);
  EXPECT_EQ(host.closed[0].closed.status, "cancelled");
  EXPECT_EQ(host.closed[0].closed.resolution.at("decision"), "cancelled");
  EXPECT_EQ(host.closed[0].closed.resolution.at("reason"), "interrupted");
  EXPECT_EQ(host.closed[0].closed.resolution.at("by"), (json::object{{"type", "server"}}));
  EXPECT_TRUE(host.sent.empty());  // the CLI withdrew it: nothing to answer
  EXPECT_THAT(host.waiting, ElementsAre(true));
  EXPECT_EQ(broker.size(), 1u);
  EXPECT_NE(broker.announced_for("cli-2"), nullptr);
  EXPECT_EQ(broker.announced_for("cli-1"), nullptr);
  (void)second;
}

TEST_F(PermissionBrokerTest, CancelAllClosesEveryAskAndResumesTheClocksOnce) {
  open("cli-1");
  open("cli-2");
  open("cli-3");
  broker.cancel_all("killed");
  ASSERT_EQ(host.closed.size(), 3u);
  for (const auto& c : host.closed) {
    EXPECT_EQ(c.closed.status, "cancelled");
    EXPECT_EQ(c.closed.resolution.at("reason"), "killed");
    EXPECT_EQ(c.requesters, 0u);
  }
  EXPECT_THAT(host.pending_when_closed, ElementsAre(2u, 1u, 0u));
  EXPECT_THAT(host.waiting, ElementsAre(true, false));
  EXPECT_TRUE(host.sent.empty());
  EXPECT_TRUE(broker.empty());
  EXPECT_TRUE(broker.pending_permissions().empty());
  io.run();  // every timer was cancelled
  EXPECT_EQ(host.closed.size(), 3u);
}

TEST_F(PermissionBrokerTest, RefuseDeniesAtOnceWithoutAnAsk) {
  const std::string line = ask_line("cli-9");
  broker.refuse(ask_of(line), "The run is being stopped");
  ASSERT_EQ(host.sent.size(), 1u);
  EXPECT_EQ(host.sent[0].cli_request_id, "cli-9");
  EXPECT_THAT(json::serialize(host.sent[0].line), HasSubstr("The run is being stopped"));
  EXPECT_TRUE(host.closed.empty());
  EXPECT_TRUE(host.waiting.empty());
  EXPECT_TRUE(broker.empty());
}

TEST_F(PermissionBrokerTest, SaveAndRestoreKeepTheOriginalDeadlines) {
  const std::string first = open("cli-1");
  const std::string second = open("cli-2");
  RunState saved;
  broker.save(saved);
  ASSERT_EQ(saved.permissions.size(), 2u);
  for (const auto& p : saved.permissions) {
    const json::object* announced =
        broker.announced_for(p.permission_id == first ? "cli-1" : "cli-2");
    ASSERT_NE(announced, nullptr);
    EXPECT_EQ(json::value(p.deadline), announced->at("expires_at"));
  }

  // Through the file format and into a broker of a new server.
  const RunState back = run_state_from_json(to_json(saved));
  RecordingHost host2;
  PermissionBroker restored(host2, io.get_executor(), "p-1", std::chrono::seconds(10));
  restored.restore(back);
  EXPECT_EQ(restored.pending_permissions(), broker.pending_permissions());
  RunState again;
  restored.save(again);
  ASSERT_EQ(again.permissions.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(again.permissions[i].permission_id, saved.permissions[i].permission_id);
    EXPECT_EQ(again.permissions[i].deadline, saved.permissions[i].deadline);
    EXPECT_EQ(again.permissions[i].control_line, saved.permissions[i].control_line);
    EXPECT_EQ(again.permissions[i].announced, saved.permissions[i].announced);
  }
  // Restoring arms nothing and tells the run nothing: it is not a new ask.
  EXPECT_TRUE(host2.waiting.empty());
  EXPECT_EQ(host2.changed, 0);
  io.poll();
  EXPECT_TRUE(host2.closed.empty());

  // Answerable under the same id, by the CLI request id it had.
  agent::PermissionAnswer answer;
  answer.permission_id = second;
  answer.allow = true;
  EXPECT_TRUE(restored.answer(answer, client(3, "web"), Requester{}));
  ASSERT_EQ(host2.sent.size(), 1u);
  EXPECT_EQ(host2.sent[0].cli_request_id, "cli-2");
  broker.cancel_all("run_ended");
  restored.cancel_all("run_ended");
}

TEST(PermissionBrokerExpiry, AnAskWhoseDeadlinePassedWhileDownExpiresWhenArmed) {
  boost::asio::io_context io;
  RunState state;
  const std::string line = ask_line("cli-1");
  state.permissions.push_back(
      {"perm-old", line, json::object{{"permission_id", "perm-old"}}, "2020-01-01T00:00:00.000Z"});
  // A line that no longer parses as an ask is dropped.
  state.permissions.push_back(
      {"perm-bad", R"({"type":"assistant"})", json::object{}, "2020-01-01T00:00:00.000Z"});
  RecordingHost host;
  PermissionBroker broker(host, io.get_executor(), "p-1", std::chrono::seconds(300));
  host.broker = &broker;
  broker.restore(state);
  ASSERT_EQ(broker.size(), 1u);

  broker.arm_all();
  io.run();  // the deadline is long past: the timer completes at once

  ASSERT_EQ(host.sent.size(), 1u);
  EXPECT_EQ(host.sent[0].cli_request_id, "cli-1");
  const std::string sent = json::serialize(host.sent[0].line);
  EXPECT_THAT(sent, HasSubstr("\"behavior\":\"deny\""));
  EXPECT_THAT(sent, HasSubstr("No answer within claude.permission_timeout (5m)"));
  ASSERT_EQ(host.closed.size(), 1u);
  EXPECT_EQ(host.closed[0].permission_id, "perm-old");
  EXPECT_EQ(host.closed[0].closed.status, "expired");
  EXPECT_EQ(host.closed[0].closed.resolution.at("decision"), "deny");
  EXPECT_EQ(host.closed[0].closed.resolution.at("reason"), "timeout");
  EXPECT_EQ(host.closed[0].closed.resolution.at("by"), (json::object{{"type", "server"}}));
  EXPECT_EQ(host.closed[0].requesters, 0u);
  EXPECT_THAT(host.waiting, ElementsAre(false));  // the last ask closed
  EXPECT_TRUE(broker.empty());
}

TEST(PermissionBrokerExpiry, AZeroTimeoutExpiresOnTheExecutor) {
  boost::asio::io_context io;
  RecordingHost host;
  PermissionBroker broker(host, io.get_executor(), "p-1", std::chrono::seconds(0));
  const std::string line = ask_line("cli-1");
  broker.open(line, ask_of(line));
  EXPECT_TRUE(host.closed.empty());  // not inside open(): on the executor
  io.run();
  ASSERT_EQ(host.closed.size(), 1u);
  EXPECT_EQ(host.closed[0].closed.status, "expired");
  EXPECT_THAT(host.waiting, ElementsAre(true, false));
}

TEST(PermissionBrokerExpiry, CancelledTimersDoNotExpire) {
  boost::asio::io_context io;
  RunState state;
  state.permissions.push_back({"perm-old", ask_line("cli-1"),
                               json::object{{"permission_id", "perm-old"}},
                               "2020-01-01T00:00:00.000Z"});
  RecordingHost host;
  PermissionBroker broker(host, io.get_executor(), "p-1", std::chrono::seconds(300));
  broker.restore(state);
  broker.arm_all();
  broker.cancel_timers();  // the run was left to the next server
  io.run();
  EXPECT_TRUE(host.closed.empty());
  EXPECT_TRUE(host.sent.empty());
  EXPECT_EQ(broker.size(), 1u);  // still pending, for run.json
}

}  // namespace
}  // namespace pa::server
