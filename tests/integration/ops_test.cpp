// Operations: server_stats, /metrics, connection limits, slow consumers, keep-alive, compression.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <regex>
#include <thread>

#include "integration/fixture.hpp"
#include "integration/raw_client.hpp"
#include "protocol/clock.hpp"

namespace pa::test {
namespace {

namespace fs = std::filesystem;

class OpsTest : public ServerTest {
 protected:
  void SetUp() override {}
  ServerOptions with_args(std::vector<std::string> args) {
    ServerOptions o;
    o.args = std::move(args);
    return o;
  }
  void run_once(WsClient& client, const std::string& prompt) {
    const std::string id =
        str(create_project(client, make_dir("p" + std::to_string(++runs_))), "project_id");
    client.request(Json{{"type", "execute"}, {"project_id", id}, {"data", {{"prompt", prompt}}}});
    ASSERT_TRUE(client.read_until(is_idle, 30s));
  }
  int runs_ = 0;
};

TEST_F(OpsTest, ServerStatsAfterKnownActivity) {
  start_server(with_args({"--stats-interval", "1s"}));
  auto client = connect();
  run_once(*client, "hello");
  run_once(*client, "[[fake:fail code=2]]");
  // The next tick after the runs reports them.
  const auto stats = client->read_until(
      [](const Json& m) {
        // The tick that reports both runs and the messages of the interval they ended in (a
        // tick landing between a run's count and its last broadcasts is followed by one that
        // has both).
        return str(m, "type") == "server_stats" &&
               data(m).at("executions").at("total").to_number<int>() == 2 &&
               data(m).at("messages").at("rate_per_sec").to_number<double>() > 0;
      },
      10s);
  ASSERT_TRUE(stats);
  const auto& d = data(*stats);
  EXPECT_EQ(d.at("connections").to_number<int>(), 1);
  EXPECT_EQ(d.at("projects").to_number<int>(), 2);
  const auto& e = d.at("executions").as_object();
  EXPECT_EQ(e.at("active").to_number<int>(), 0);
  EXPECT_EQ(e.at("success").to_number<int>(), 1);
  EXPECT_EQ(e.at("failed").to_number<int>(), 1);
  // Each run takes some time: a fork, an exec and a stream of lines.
  EXPECT_GT(e.at("avg_duration_ms").to_number<double>(), 0);
  const auto& msgs = d.at("messages").as_object();
  EXPECT_GE(msgs.at("received").to_number<int>(), 4);  // 2 creates + 2 executes
  EXPECT_GT(msgs.at("sent").to_number<int>(), 6);
  EXPECT_GE(d.at("uptime").to_number<int>(), 0);
  EXPECT_FALSE(stats->contains("project_id"));
  // The cadence: another one follows. (When ticks fall is the beat grid's, unit-tested in
  // tests/net/keepalive_grid_test.cpp: wall-clock gaps between two sends under load say nothing
  // reliable.)
  const auto next =
      client->read_until([](const Json& m) { return str(m, "type") == "server_stats"; }, 5s);
  ASSERT_TRUE(next);
  EXPECT_GE(data(*next).at("uptime").to_number<int>(), d.at("uptime").to_number<int>());
}

TEST_F(OpsTest, MetricsParseAndMove) {
  start_server();
  EXPECT_EQ(http_get(server_->port(), true, "/metrics").status, 401);
  const std::string before = metrics();
  auto client = connect();
  run_once(*client, "hello");
  client->request(Json{{"type", "nope"}});
  const std::string after = metrics();

  const fs::path file = projects_root_.path() / "metrics.txt";
  std::ofstream(file) << after;
  const auto lint =
      run_command({"/usr/bin/python3", std::string(PA_SOURCE_DIR) + "/tests/ops/prometheus_lint.py",
                   file.string()});
  EXPECT_EQ(lint.exit_code, 0) << lint.output;
  // And the reference parser (prometheus_client) reads it, with the types we declare.
  const auto parsed =
      run_command({"/usr/bin/python3",
                   std::string(PA_SOURCE_DIR) + "/tests/ops/prometheus_parse.py", file.string()});
  EXPECT_EQ(parsed.exit_code, 0) << parsed.output;
  EXPECT_NE(parsed.output.find("pocket_agent_executions counter"), std::string::npos)
      << parsed.output;
  EXPECT_NE(parsed.output.find("pocket_agent_execution_duration_seconds histogram"),
            std::string::npos)
      << parsed.output;
  EXPECT_NE(parsed.output.find("pocket_agent_connections_active gauge"), std::string::npos)
      << parsed.output;

  EXPECT_EQ(metric_sample(before, R"(pocket_agent_executions_total{outcome="success"})"), 0);
  // Every error code's series exists from the start, at 0.
  EXPECT_NE(before.find(R"(pocket_agent_errors_total{code="SHUTTING_DOWN"} 0)"), std::string::npos)
      << before;
  EXPECT_EQ(metric_sample(after, R"(pocket_agent_executions_total{outcome="success"})"), 1);
  EXPECT_EQ(metric_sample(after, "pocket_agent_execution_duration_seconds_count"), 1);
  EXPECT_EQ(metric_sample(after, "pocket_agent_connections_active"), 1);
  EXPECT_EQ(metric_sample(after, "pocket_agent_projects_total"), 1);
  EXPECT_GE(metric_sample(after, R"(pocket_agent_messages_total{direction="received"})"), 3);
  EXPECT_GT(metric_sample(after, R"(pocket_agent_messages_total{direction="sent"})"),
            metric_sample(before, R"(pocket_agent_messages_total{direction="sent"})"));
  EXPECT_EQ(metric_sample(after, R"(pocket_agent_errors_total{code="INVALID_MESSAGE"})"), 1);
  EXPECT_GT(metric_sample(after, "pocket_agent_history_bytes_written_total"), 0);
  EXPECT_GT(metric_sample(after, "pocket_agent_bytes_sent_total"), 0);

  start_server(with_args({"--metrics-public"}));
  EXPECT_EQ(http_get(server_->port(), true, "/metrics").status, 200);
  start_server(with_args({"--metrics-enabled=false"}));
  EXPECT_EQ(
      http_get(server_->port(), true, "/metrics", {{"Authorization", "Bearer " + server_->token()}})
          .status,
      404);
}

unsigned short free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

TEST_F(OpsTest, MetricsAloneOnALoopbackPort) {
  const unsigned short port = free_port();
  start_server(with_args({"--metrics-port", std::to_string(port)}));
  const std::map<std::string, std::string> auth = {{"Authorization", "Bearer " + server_->token()}};
  const auto r = http_get(port, false, "/metrics", auth);
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("pocket_agent_connections_active"), std::string::npos);
  EXPECT_EQ(http_get(port, false, "/metrics").status, 401);
  EXPECT_EQ(http_get(port, false, "/health", auth).status, 404);
}

TEST_F(OpsTest, ConnectionLimitIs503AndRateIs429) {
  start_server(with_args({"--max-connections", "2"}));
  auto a = connect();
  auto b = connect();
  ClientOptions o;
  o.bearer = server_->token();
  WsClient third(server_->port(), o);
  EXPECT_EQ(third.connect(), 503);

  start_server(with_args({"--limits-connection-rate", "0.01"}));
  WsClient first(server_->port(), o);
  EXPECT_EQ(first.connect(), 101);
  WsClient second(server_->port(), o);
  EXPECT_EQ(second.connect(), 429);
}

TEST_F(OpsTest, SlowReaderIsClosedWhileAFastReaderGetsEverything) {
  // 12 MB of output at about 2 MB/s: the slow reader's socket buffers plus a 1 MB queue cannot
  // hold it; the fast reader drains as it goes (at that pace also in a sanitizer build on a
  // loaded machine).
  // A reader that stops is closed once its writes made no progress for 5 s (and dropped if it
  // does not read the close within 5 s more: the margin the reader below has to start reading).
  start_server(with_args({"--websocket-message-buffer", "1000", "--websocket-max-queue-bytes",
                          "1000000", "--timeouts-slow-consumer", "5"}));
  auto fast = connect();
  const std::string id = str(create_project(*fast, make_dir("flood")), "project_id");
  ClientOptions slow_options;
  slow_options.bearer = server_->token();
  slow_options.receive_buffer = 4096;
  WsClient slow(server_->port(), slow_options);
  ASSERT_EQ(slow.connect(), 101);
  ASSERT_EQ(str(slow.request(Json{{"type", "project_join"}, {"project_id", id}}), "type"),
            "project_joined");
  // From here on the slow client reads nothing until the server gave up on it.
  std::optional<CloseInfo> closed;
  std::thread slow_reader([&] {
    if (server_->wait_for_log(
            [](const std::string& l) {
              return l.find("closing slow connection") != std::string::npos;
            },
            60s))
      closed = slow.wait_closed(60s);
  });
  constexpr int kLines = 1500;
  const auto reply = fast->request(
      Json{{"type", "execute"},
           {"project_id", id},
           {"data", {{"prompt", "[[fake:drip lines=1500 interval_ms=4 bytes=8000]]"}}}});
  std::int64_t previous = reply.at("seq").as_int64();
  int lines = 0;
  ASSERT_TRUE(fast->read_until(
      [&](const Json& m) {
        if (m.contains("seq")) {
          EXPECT_EQ(m.at("seq").as_int64(), previous + 1);
          previous = m.at("seq").as_int64();
        }
        if (str(m, "type") == "agent_message" && str(data(m), "type") == "assistant") ++lines;
        return is_idle(m);
      },
      120s));
  EXPECT_EQ(lines, kLines);
  slow_reader.join();
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->code, 1013);
  EXPECT_NE(closed->reason.find("slow consumer"), std::string::npos);
  EXPECT_GE(metric_sample(metrics(), "pocket_agent_slow_consumer_closes_total"), 1);
}

// --- keep-alive: pings every ping_interval, a pong due within pong_timeout, timeouts.idle ------

using Clock = std::chrono::steady_clock;
const std::string kPing("\x89\x00", 2);  // an empty ping frame from the server

std::size_t pings_in(const std::string& bytes) {
  const auto opcodes = frame_opcodes(bytes);
  return static_cast<std::size_t>(std::count(opcodes.begin(), opcodes.end(), 0x9));
}

TEST_F(OpsTest, PingsGoOnEveryIntervalUntilThePongTimeoutDropsASilentPeer) {
  start_server(with_args({"--ping-interval", "1s", "--pong-timeout", "5s", "--idle-timeout", "0"}));
  const auto t0 = Clock::now();  // before the server accepts: its timers start later
  auto raw = raw_websocket(*server_);
  const std::string first = raw->read_until(kPing, 10s);
  ASSERT_NE(first.find(kPing), std::string::npos) << "no ping";
  EXPECT_GE(Clock::now() - t0, 1s) << "the first ping comes after ping_interval";
  const auto rest = raw->read_until_closed(30s);
  const auto elapsed = Clock::now() - t0;
  ASSERT_TRUE(rest.closed) << "a peer that never answers was not dropped";
  // Pinged every second while the first ping's pong was due (5 s): about five pings.
  EXPECT_GE(pings_in(first + rest.bytes), 3u);
  EXPECT_GE(elapsed, 6s);                    // first ping (>= 1 s) + pong_timeout (5 s)
  EXPECT_EQ(close_code_of(rest.bytes), -1);  // dropped: no close frame
  EXPECT_TRUE(server_->wait_for_log(
      [](const std::string& l) {
        return l.find("no pong within timeouts.pong_timeout") != std::string::npos;
      },
      10s));
}

TEST_F(OpsTest, AShortPongTimeoutDropsThePeerAfterTheFirstUnansweredPing) {
  start_server(with_args({"--ping-interval", "3s", "--pong-timeout", "1s", "--idle-timeout", "0"}));
  const auto t0 = Clock::now();
  auto raw = raw_websocket(*server_);
  const std::string first = raw->read_until(kPing, 10s);
  ASSERT_NE(first.find(kPing), std::string::npos) << "no ping";
  EXPECT_GE(Clock::now() - t0, 3s) << "the first ping comes after ping_interval";
  const auto rest = raw->read_until_closed(30s);
  ASSERT_TRUE(rest.closed);
  EXPECT_GE(Clock::now() - t0, 4s);             // ping at >= 3 s, then 1 s without a pong
  EXPECT_EQ(pings_in(first + rest.bytes), 1u);  // the next ping would have been at 6 s
  EXPECT_EQ(close_code_of(rest.bytes), -1);
}

TEST_F(OpsTest, AWatcherAnsweringPingsIsNotIdleAndASilentOneIs) {
  // The watcher only reads (its WebSocket library answers each ping) for twice timeouts.idle.
  start_server(with_args({"--ping-interval", "1s", "--pong-timeout", "2s", "--idle-timeout", "3s",
                          "--stats-interval", "1s"}));
  auto watcher = connect();
  const auto t0 = Clock::now();
  int ticks = 0;
  ASSERT_TRUE(watcher->read_until(
      [&](const Json& m) { return str(m, "type") == "server_stats" && ++ticks == 7; }, 30s));
  EXPECT_GE(Clock::now() - t0, 5s);  // 7 ticks a second apart: well past the 3 s idle timeout
  EXPECT_EQ(str(watcher->request(Json{{"type", "project_list"}}), "type"), "project_list_response");

  // With timeouts.idle shorter than ping_interval there is no ping to answer: a client that sends
  // nothing is idle, and is closed with 1000.
  start_server(with_args({"--ping-interval", "30s", "--idle-timeout", "2s"}));
  auto silent = connect();
  const auto t1 = Clock::now();
  const auto closed = silent->wait_closed(30s);
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->code, 1000);
  EXPECT_NE(closed->reason.find("idle"), std::string::npos) << closed->reason;
  EXPECT_GE(Clock::now() - t1, 1s);
}

// --- outbound queue -----------------------------------------------------------------------------

TEST_F(OpsTest, AMessageLargerThanTheQueueBoundReachesAFastClientWhileASlowOneIsClosed) {
  // Each agent_message (about 100 KB) is five times websocket.max_queue_bytes (20 KB).
  start_server(
      with_args({"--websocket-max-queue-bytes", "20000", "--timeouts-slow-consumer", "5"}));
  auto fast = connect();
  const std::string id = str(create_project(*fast, make_dir("big")), "project_id");
  const auto reply = fast->request(
      Json{{"type", "execute"},
           {"project_id", id},
           {"data", {{"prompt", "[[fake:drip lines=3 interval_ms=500 bytes=100000]]"}}}});
  std::int64_t previous = reply.at("seq").as_int64();
  std::vector<std::size_t> sizes;
  ASSERT_TRUE(fast->read_until(
      [&](const Json& m) {
        if (m.contains("seq")) {
          EXPECT_EQ(m.at("seq").as_int64(), previous + 1);
          previous = m.at("seq").as_int64();
        }
        if (str(m, "type") == "agent_message" && str(data(m), "type") == "assistant") {
          sizes.push_back(
              str(data(m).at("message").at("content").at(0).as_object(), "text").size());
        }
        return is_idle(m);
      },
      60s));
  EXPECT_EQ(sizes, (std::vector<std::size_t>{100000, 100000, 100000}));
  // History pages are cut at half the queue bound, but always hold one entry however large:
  // paging through it reaches the last entry, and the client stays open.
  std::int64_t after = 0;
  int pages = 0;
  for (bool more = true; more; ++pages) {
    const auto page = fast->request(
        Json{{"type", "get_messages"}, {"project_id", id}, {"data", {{"after_seq", after}}}}, 30s);
    ASSERT_EQ(str(page, "type"), "messages_response") << json::serialize(page);
    const auto& entries = data(page).at("messages").as_array();
    ASSERT_FALSE(entries.empty());
    EXPECT_EQ(entries.front().at("seq").as_int64(), after + 1);
    after = entries.back().at("seq").as_int64();
    more = data(page).at("has_more").as_bool();
  }
  EXPECT_EQ(after, previous);
  EXPECT_GE(pages, 3);  // each 100 KB line is a page of its own
  EXPECT_TRUE(fast->is_open());

  // A client that stops reading is still closed as a slow consumer: it runs a flood in its own
  // project (12 MB, more than its socket buffers hold) and reads nothing.
  ClientOptions slow_options;
  slow_options.bearer = server_->token();
  slow_options.receive_buffer = 4096;
  WsClient slow(server_->port(), slow_options);
  ASSERT_EQ(slow.connect(), 101);
  const std::string flood = str(create_project(slow, make_dir("flood")), "project_id");
  slow.send(Json{{"type", "execute"},
                 {"project_id", flood},
                 {"data", {{"prompt", "[[fake:drip lines=1500 interval_ms=1 bytes=8000]]"}}}});
  // It reads only once the server gave up on it.
  ASSERT_TRUE(server_->wait_for_log(
      [](const std::string& l) { return l.find("closing slow connection") != std::string::npos; },
      60s));
  const auto closed = slow.wait_closed(60s);
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->code, 1013);
  EXPECT_NE(closed->reason.find("slow consumer"), std::string::npos);
  EXPECT_EQ(str(fast->request(Json{{"type", "project_list"}}), "type"), "project_list_response");
}

// --- compression and buffers --------------------------------------------------------------------

TEST_F(OpsTest, CompressionNegotiatedWhenOnAndMessagesRoundTripCompressed) {
  const std::map<std::string, std::string> upgrade = {
      {"Upgrade", "websocket"},
      {"Connection", "Upgrade"},
      {"Sec-WebSocket-Version", "13"},
      {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
      {"Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"},
      {"Authorization", "Bearer test-token-0123456789abcdef"}};
  start_server(with_args({"--websocket-enable-compression"}));
  auto r = http_get(server_->port(), true, "/ws", upgrade, 5s);
  EXPECT_EQ(r.status, 101);
  EXPECT_NE(r.headers["Sec-WebSocket-Extensions"].find("permessage-deflate"), std::string::npos);

  // A client that negotiated it gets a large repetitive message intact, and sends compressed.
  ClientOptions o;
  o.bearer = server_->token();
  o.compression = true;
  WsClient client(server_->port(), o);
  ASSERT_EQ(client.connect(), 101);
  EXPECT_NE(client.extensions().find("permessage-deflate"), std::string::npos);
  const std::string id = str(create_project(client, make_dir("zip")), "project_id");
  client.request(Json{{"type", "execute"},
                      {"project_id", id},
                      {"data", {{"prompt", "[[fake:drip lines=2 interval_ms=1 bytes=300000]]"}}}});
  std::vector<std::string> texts;
  ASSERT_TRUE(client.read_until(
      [&](const Json& m) {
        if (str(m, "type") == "agent_message" && str(data(m), "type") == "assistant") {
          texts.push_back(str(data(m).at("message").at("content").at(0).as_object(), "text"));
        }
        return is_idle(m);
      },
      30s));
  ASSERT_EQ(texts.size(), 2u);
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const std::string head = "Line " + std::to_string(i + 1) + " of 2.";
    EXPECT_EQ(texts[i].size(), 300000u);
    EXPECT_EQ(texts[i].rfind(head, 0), 0u);
    EXPECT_EQ(texts[i].find_first_not_of('.', head.size()), std::string::npos);
  }
  // On the wire the server's messages carry RSV1 (compressed).
  auto raw = std::make_unique<RawClient>(server_->port(), true);
  ASSERT_TRUE(raw->connect());
  ASSERT_TRUE(raw->send(upgrade_request(server_->port(), server_->token(),
                                        "Sec-WebSocket-Extensions: permessage-deflate\r\n")));
  ASSERT_EQ(http_status(raw->read_until("\r\n\r\n")), 101);
  ASSERT_TRUE(raw->send(ws_frame(0x1, R"({"type":"project_list","request_id":"z"})")));
  const auto got = raw->read_until_closed(3s);  // the reply, then nothing (deadline)
  ASSERT_GE(got.bytes.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(got.bytes[0]) & 0x4F, 0x41) << "FIN? RSV1 text frame";

  start_server();
  r = http_get(server_->port(), true, "/ws", upgrade, 5s);
  EXPECT_EQ(r.status, 101);
  EXPECT_EQ(r.headers.count("Sec-WebSocket-Extensions"), 0u);
}

TEST_F(OpsTest, WriteBufferSetsTheFrameSize) {
  start_server(with_args({"--websocket-write-buffer", "64"}));
  auto raw = raw_websocket(*server_);
  ASSERT_TRUE(raw->send(ws_frame(
      0x1, R"({"type":"health","request_id":"a-fairly-long-request-id-to-make-the-reply-long"})")));
  // Until the reply's frames add up to a whole JSON message (however long the server takes).
  const std::string got = raw->read_until_bytes([](const std::string& bytes) {
    std::string message;
    for (const auto& [opcode, payload] : server_frames(bytes))
      if (opcode == 0x1 || opcode == 0x0) message += payload;
    boost::system::error_code ec;
    (void)json::parse(message, ec);
    return !message.empty() && !ec;
  });
  const auto frames = server_frames(got);
  ASSERT_GE(frames.size(), 2u) << "a reply longer than 64 bytes comes in several frames";
  EXPECT_EQ(frames.front().first, 0x1);
  std::string message;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    if (i > 0) {
      EXPECT_EQ(frames[i].first, 0x0) << "continuation frame";
    }
    EXPECT_LE(frames[i].second.size(), 64u);
    message += frames[i].second;
  }
  EXPECT_NE(message.find("a-fairly-long-request-id"), std::string::npos) << message;
}

// --- logging ----------------------------------------------------------------------------------

int count_in_file(const fs::path& file, const std::string& needle) {
  std::ifstream in(file);
  int n = 0;
  for (std::string line; std::getline(in, line);) n += line.find(needle) != std::string::npos;
  return n;
}

int closes_in_file(const fs::path& file) {
  static const std::regex kClosed(R"(connection \d+ from \S+ closed)");
  std::ifstream in(file);
  int n = 0;
  for (std::string line; std::getline(in, line);) n += std::regex_search(line, kClosed);
  return n;
}

// logrotate moves the log file and sends SIGHUP, over and over, while clients connect and close
// (each close is an info line): every line lands in one of the files, none is lost, and the
// server keeps serving. The SIGHUP path swaps the log's sinks while I/O threads log (run under
// make test-race this checks it for races).
TEST_F(OpsTest, SighupAfterLogrotateReopensTheFileWhileClientsLog) {
  TempDir logs("pa-logs");
  const auto config = logs / "config.yaml";
  const auto file = logs / "server.log";
  std::ofstream(config) << "logging:\n  output: stdout\n";
  start_server(with_args({"--config", config.string(), "--limits-connection-rate", "0"}));
  // The reloaded configuration sends the log to a file.
  std::ofstream(config, std::ios::trunc) << "logging:\n  output: " << file.string() << "\n";
  server_->send_signal(SIGHUP);
  const std::string reopened = "SIGHUP: log output reopened";
  ASSERT_TRUE(eventually([&] { return count_in_file(file, reopened) == 1; }, 10s));

  std::atomic<bool> stop{false};
  std::atomic<int> sessions{0};
  std::thread churn([&] {
    ClientOptions o;
    o.bearer = server_->token();
    for (int i = 0; i < 2000 && !stop; ++i) {
      WsClient c(server_->port(), o);
      if (c.connect() != 101) continue;
      c.request(Json{{"type", "project_list"}});
      c.close();
      ++sessions;
    }
  });
  // At least 15 rotations, and on until 30 clients came and went during them (bounded).
  int rotations = 0;
  while (rotations < 15 || (sessions < 30 && rotations < 200)) {
    ++rotations;
    fs::rename(file, logs / ("server.log." + std::to_string(rotations)));
    server_->send_signal(SIGHUP);
    ASSERT_TRUE(eventually([&] { return count_in_file(file, reopened) == 1; }, 10s))
        << "rotation " << rotations;
  }
  stop = true;
  churn.join();
  EXPECT_GE(sessions.load(), 30);

  // Every client's close was logged exactly once, across the rotated files and the new one.
  const auto closes_logged = [&] {
    int n = closes_in_file(file);
    for (int k = 1; k <= rotations; ++k) {
      n += closes_in_file(logs / ("server.log." + std::to_string(k)));
    }
    return n;
  };
  EXPECT_TRUE(eventually([&] { return closes_logged() == sessions.load(); }, 10s))
      << closes_logged() << " closes logged for " << sessions.load() << " sessions";
  auto client = connect();
  EXPECT_EQ(str(client->request(Json{{"type", "project_list"}}), "type"), "project_list_response");
}

// Runs the server binary with stdout and stderr in files; returns the exit code.
int run_server_binary(std::vector<std::string> args, const fs::path& out, const fs::path& err) {
  std::vector<std::string> argv = {"/bin/sh", "-c", R"(exec "$@" >"$PA_TEST_OUT" 2>"$PA_TEST_ERR")",
                                   "sh", PA_SERVER_BINARY};
  args = with_root_flag(std::move(args));
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, {{"PA_TEST_OUT", out.string()}, {"PA_TEST_ERR", err.string()}}, 30s)
      .exit_code;
}

std::string file_text(const fs::path& file) {
  std::ifstream in(file);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST_F(OpsTest, WithALogFileFatalStartUpErrorsAlsoReachStderr) {
  TempDir dir("pa-fatal");
  const auto log = dir / "server.log";
  const int code = run_server_binary({"--host", "0.0.0.0", "--port", "0", "--no-tls", "--data-dir",
                                      (dir / "data").string(), "--logging-output", log.string()},
                                     dir / "out.txt", dir / "err.txt");
  EXPECT_EQ(code, 2);
  const std::string err = file_text(dir / "err.txt");
  EXPECT_NE(err.find("refusing to listen on 0.0.0.0 without TLS"), std::string::npos) << err;
  EXPECT_NE(err.find(R"("level":"fatal")"), std::string::npos) << err;  // json, the default
  EXPECT_NE(file_text(log).find("refusing to listen on 0.0.0.0"), std::string::npos);
  EXPECT_EQ(file_text(dir / "out.txt"), "");
}

TEST_F(OpsTest, ABusyMetricsPortIsNamedInTheError) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  TempDir dir("pa-metrics-port");
  const int code = run_server_binary(
      {"--host", "127.0.0.1", "--port", "0", "--no-tls", "--data-dir", (dir / "data").string(),
       "--metrics-port", std::to_string(ntohs(addr.sin_port)), "--logging-output", "stderr"},
      dir / "out.txt", dir / "err.txt");
  ::close(fd);
  EXPECT_EQ(code, 2);
  const std::string err = file_text(dir / "err.txt");
  EXPECT_NE(err.find("pick another with --metrics-port"), std::string::npos) << err;
}

TEST_F(OpsTest, DuringShutdownAnUpgradeIsRefusedWith503ShuttingDown) {
  start_server();
  auto client = connect();
  const std::string id = str(create_project(*client, make_dir("long")), "project_id");
  // A run that holds the shutdown in its grace period.
  client->request(Json{{"type", "execute"},
                       {"project_id", id},
                       {"data", {{"prompt", "[[fake:drip lines=600 interval_ms=100]]"}}}});
  // A connection accepted before the signal, whose upgrade comes after it.
  RawClient waiting(server_->port(), true);
  ASSERT_TRUE(waiting.connect());
  server_->send_signal(SIGTERM);
  // The server refuses upgrades (and new runs) before it logs this line.
  ASSERT_TRUE(server_->wait_for_log(
      [](const std::string& l) { return l.find("shutting down") != std::string::npos; }, 10s));
  ASSERT_TRUE(waiting.send(upgrade_request(server_->port(), server_->token())));
  std::string answer = waiting.read_until("\r\n\r\n", 10s);
  answer += waiting.read_until_closed(10s).bytes;
  EXPECT_EQ(http_status(answer), 503) << answer;
  EXPECT_NE(answer.find("server shutting down"), std::string::npos) << answer;
  EXPECT_EQ(answer.find("max_connections"), std::string::npos) << answer;
}

TEST_F(OpsTest, StructuredJsonLogsCarryTheRunsFields) {
  ServerOptions options;
  options.json_logs = true;
  start_server(options);
  auto client = connect();
  const std::string id = str(create_project(*client, make_dir("logs")), "project_id");
  const std::string prompt = "a secret prompt that must not be logged";
  client->send(Json{{"type", "execute"},
                    {"project_id", id},
                    {"data", {{"prompt", prompt}}},
                    {"request_id", "corr-42"}});
  ASSERT_TRUE(client->read_until(is_idle, 30s));
  ASSERT_TRUE(server_->wait_for_log(
      [](const std::string& l) { return l.find("Execution completed") != std::string::npos; },
      10s));
  bool found = false;
  for (const auto& line : server_->log_lines()) {
    EXPECT_EQ(line.find("secret prompt"), std::string::npos) << line;
    if (line.find("Execution completed") == std::string::npos) continue;
    const auto entry = json::parse(line).as_object();
    found = true;
    EXPECT_EQ(str(entry, "level"), "info");
    EXPECT_EQ(str(entry, "msg"), "Execution completed");
    EXPECT_EQ(str(entry, "correlation_id"), "corr-42");
    EXPECT_EQ(str(entry, "project_id"), id);
    EXPECT_FALSE(str(entry, "session_id").empty());
    EXPECT_EQ(entry.at("exit_code").to_number<int>(), 0);
    // As in the spec's example: the sizes are under "fields".
    const auto& sizes = entry.at("fields").as_object();
    EXPECT_EQ(sizes.at("prompt_length").to_number<std::size_t>(), prompt.size());
    EXPECT_GT(sizes.at("response_length").to_number<int>(), 0);
    EXPECT_GE(entry.at("duration_ms").to_number<int>(), 0);
    EXPECT_TRUE(std::regex_match(str(entry, "timestamp"),
                                 std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));
  }
  EXPECT_TRUE(found);
  // Every line is one JSON object.
  for (const auto& line : server_->log_lines()) {
    boost::system::error_code ec;
    EXPECT_TRUE(json::parse(line, ec).is_object()) << line;
  }
}

}  // namespace
}  // namespace pa::test
