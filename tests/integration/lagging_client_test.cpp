// Lagging clients catch up from the log instead of being dropped (issue 15): a client that reads
// slower than a burst arrives, or stops reading for a while, is fed what it missed from history
// and switches back to the live stream with no gap and no duplicate; only one that makes no
// progress at all for timeouts.slow_consumer is closed (1013); and the server's memory stays
// bounded meanwhile.
#include <fstream>

#include "integration/fixture.hpp"

namespace pa::test {
namespace {

// A /proc/<pid>/status field in KiB (VmRSS, VmHWM), or 0.
std::uint64_t proc_status_kib(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::stoull(line.substr(field.size() + 1));
  }
  return 0;
}

// The seqs of the broadcasts in `messages`, and whether each follows the one before.
struct SeqRun {
  std::vector<std::int64_t> seqs;
  int cli_lines = 0;
};
SeqRun seqs_of(const std::vector<Json>& messages) {
  SeqRun out;
  for (const auto& m : messages) {
    if (m.contains("seq")) out.seqs.push_back(m.at("seq").as_int64());
    if (str(m, "type") == "agent_message" && str(data(m), "type") == "assistant") ++out.cli_lines;
  }
  return out;
}

class LaggingClientTest : public AgentServerTest {
 protected:
  void SetUp() override {}
  // A client with a small receive buffer that joined project `id`; it reads only when told.
  std::unique_ptr<WsClient> join_without_reading(const std::string& id) {
    ClientOptions o;
    o.bearer = server_->token();
    o.receive_buffer = 4096;
    auto client = std::make_unique<WsClient>(server_->port(), o);
    EXPECT_EQ(client->connect(), 101);
    EXPECT_EQ(str(client->request(Json{{"type", "project_join"}, {"project_id", id}}), "type"),
              "project_joined");
    return client;
  }
  // Reads until IDLE, keeping every message.
  std::vector<Json> read_to_idle(WsClient& client, std::chrono::seconds deadline) {
    std::vector<Json> seen;
    const auto last = client.read_until(
        [&](const Json& m) {
          seen.push_back(m);
          return is_idle(m);
        },
        deadline);
    EXPECT_TRUE(last) << "no IDLE after " << seen.size() << " messages";
    return seen;
  }
};

// 2,000 lines of 10 KB at once with a 64-message queue: the client reads as fast as it can and
// gets every line, in order, and stays connected; the lines its queue could not take came from
// history.
TEST_F(LaggingClientTest, AFastReaderGetsAWholeBurstThroughASmallQueue) {
  start_agent_server({"--websocket-message-buffer", "64"});
  auto client = connect();
  const auto id = new_project(*client);
  const auto started = execute(*client, id, "[[fake:flood lines=2000 bytes=10000]]");
  ASSERT_EQ(str(started, "type"), "project_state") << json::serialize(started);
  std::vector<Json> seen = {started};
  const auto rest = read_to_idle(*client, 120s);
  seen.insert(seen.end(), rest.begin(), rest.end());
  const auto got = seqs_of(seen);
  EXPECT_EQ(got.cli_lines, 2000);
  for (std::size_t i = 1; i < got.seqs.size(); ++i)
    ASSERT_EQ(got.seqs[i], got.seqs[i - 1] + 1) << "at message " << i;
  EXPECT_TRUE(client->is_open());
  EXPECT_EQ(str(client->request(Json{{"type", "project_list"}}), "type"), "project_list_response");
  const auto m = metrics();
  EXPECT_EQ(metric_sample(m, "pocket_agent_slow_consumer_closes_total"), 0);
  std::cout << "history pages sent to catch up: "
            << metric_sample(m, "pocket_agent_catch_up_pages_total") << ", live frames declined: "
            << metric_sample(m, "pocket_agent_catch_up_deferred_total") << "\n";
}

// A watcher that stops reading for 20 s while the run floods its project (more than its socket
// buffers and queue hold) gets, once it reads again, every broadcast it missed, in order, without
// get_messages: the same seqs the reading client got.
TEST_F(LaggingClientTest, AClientPausedFor20SecondsGetsEveryLineItMissedInOrder) {
  start_agent_server({});
  auto driver = connect();
  const auto id = new_project(*driver);
  auto paused = join_without_reading(id);
  const auto pause_from = std::chrono::steady_clock::now();
  // 2,000 lines of 10 KB: 20 MB, far beyond the 100-message queue and the socket buffers.
  const auto started = execute(*driver, id, "[[fake:flood lines=2000 bytes=10000]]");
  ASSERT_EQ(str(started, "type"), "project_state") << json::serialize(started);
  std::vector<Json> driver_seen = {started};
  const auto rest = read_to_idle(*driver, 120s);
  driver_seen.insert(driver_seen.end(), rest.begin(), rest.end());
  const auto expected = seqs_of(driver_seen);
  ASSERT_EQ(expected.cli_lines, 2000);
  // The pause is the scenario: 20 s without reading, whatever the server does meanwhile.
  std::this_thread::sleep_until(pause_from + 20s);
  ASSERT_GT(metric_sample(metrics(), "pocket_agent_catch_up_deferred_total"), 0)
      << "the paused client's queue never filled: the test would prove nothing";

  std::vector<Json> seen;
  ASSERT_TRUE(paused->read_until(
      [&](const Json& m) {
        if (str(m, "type") != "server_stats") seen.push_back(m);
        return m.contains("seq") && m.at("seq").as_int64() == expected.seqs.back();
      },
      120s))
      << "got " << seen.size() << " messages";
  const auto got = seqs_of(seen);
  EXPECT_EQ(got.cli_lines, 2000);
  EXPECT_EQ(got.seqs, expected.seqs);
  EXPECT_TRUE(paused->is_open());
  EXPECT_EQ(metric_sample(metrics(), "pocket_agent_slow_consumer_closes_total"), 0);
}

// A client whose writes make no progress at all for timeouts.slow_consumer is closed with 1013
// and the documented reason.
TEST_F(LaggingClientTest, AClientPausedLongerThanSlowConsumerIsClosedWith1013) {
  start_agent_server({"--timeouts-slow-consumer", "5"});
  auto driver = connect();
  const auto id = new_project(*driver);
  auto stuck = join_without_reading(id);
  execute(*driver, id, "[[fake:flood lines=2000 bytes=10000]]");
  read_to_idle(*driver, 120s);
  // It reads only once the server gave up on it.
  ASSERT_TRUE(server_->wait_for_log(
      [](const std::string& l) { return l.find("closing slow connection") != std::string::npos; },
      60s));
  const auto closed = stuck->wait_closed(60s);
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->code, 1013);
  EXPECT_EQ(closed->reason,
            "slow consumer: outbound queue full; reconnect and catch up with get_messages "
            "after_seq");
  EXPECT_EQ(metric_sample(metrics(), "pocket_agent_slow_consumer_closes_total"), 1);
  EXPECT_TRUE(driver->is_open());
}

// A paused watcher of a project that writes 200 MB: the server's peak RSS stays bounded (the
// paused client's queue holds at most websocket.message_buffer messages; the rest waits on disk).
TEST_F(LaggingClientTest, ServerMemoryStaysBoundedWhileAPausedClientsProjectFloods200MB) {
  start_agent_server({"--timeouts-slow-consumer", "600"});
  auto driver = connect();
  const auto id = new_project(*driver);
  auto paused = join_without_reading(id);
  const auto rss_before = proc_status_kib(server_->pid(), "VmRSS");
  execute(*driver, id, "[[fake:flood lines=20000 bytes=10000]]");
  // The driver (subscribed by its execute) reads everything as it comes.
  ASSERT_TRUE(driver->read_until(is_idle, 300s)) << "the 200 MB run did not end";
  const auto peak = proc_status_kib(server_->pid(), "VmHWM");
  std::cout << "server RSS before the flood " << rss_before / 1024 << " MiB, peak " << peak / 1024
            << " MiB, after " << proc_status_kib(server_->pid(), "VmRSS") / 1024 << " MiB\n";
  const auto m = metrics();
  EXPECT_GT(metric_sample(m, "pocket_agent_catch_up_deferred_total"), 0);
#if defined(__SANITIZE_ADDRESS__)
  // ASan keeps freed memory in quarantine (256 MB by default): peak RSS says nothing here.
#else
  EXPECT_LT(peak, rss_before + 96 * 1024) << "KiB";
#endif
  EXPECT_TRUE(paused->is_open());
}

}  // namespace
}  // namespace pa::test
