// History through the real server: seq on broadcasts, get_messages across rotated files,
// reconnect mid-run without gaps or duplicates, restart after SIGKILL.
#include <algorithm>
#include <set>

#include "integration/fixture.hpp"

namespace pa::test {
namespace {

namespace fs = std::filesystem;

class HistoryTest : public ServerTest {
 protected:
  void SetUp() override {}
  static ServerOptions with_args(std::vector<std::string> args) {
    ServerOptions o;
    o.args = std::move(args);
    return o;
  }
  static ServerOptions with_data(const std::filesystem::path& dir) {
    ServerOptions o;
    o.data_dir = dir;
    return o;
  }
  Json get(WsClient& c, const std::string& id, Json query,
           std::chrono::milliseconds deadline = 10s) {
    return c.request(Json{{"type", "get_messages"}, {"project_id", id}, {"data", std::move(query)}},
                     deadline);
  }
  // A new project (directory "p") after one run of `prompt` has ended.
  std::string project_after_run(WsClient& client, const std::string& prompt) {
    const std::string id = str(create_project(client, make_dir("p")), "project_id");
    client.request(Json{{"type", "execute"}, {"project_id", id}, {"data", {{"prompt", prompt}}}});
    EXPECT_TRUE(client.read_until(is_idle, 30s)) << "the run did not end";
    return id;
  }
  static std::vector<std::int64_t> seqs(const Json& response) {
    std::vector<std::int64_t> out;
    for (const auto& e : data(response).at("messages").as_array())
      out.push_back(e.at("seq").as_int64());
    return out;
  }
};

TEST_F(HistoryTest, RotationAndPagesBySeqAndSince) {
  start_server(with_args({"--log-rotation-count", "7"}));
  auto client = connect();
  // Lines 10 ms apart, so that entries have distinct timestamps for the `since` checks.
  const std::string id =
      project_after_run(*client, "[[fake:drip lines=40 interval_ms=10 bytes=50]]");

  std::size_t files = 0;
  for (const auto& f : fs::directory_iterator(server_->data_dir() / "projects" / id / "logs")) {
    EXPECT_EQ(f.path().extension(), ".jsonl");
    ++files;
  }
  const auto all = get(*client, id, Json{});
  const auto all_seqs = seqs(all);
  ASSERT_GE(all_seqs.size(), 44u);  // project_state x3, execute, init, 40 lines, result
  EXPECT_GE(files, all_seqs.size() / 7);
  for (std::size_t i = 0; i < all_seqs.size(); ++i)
    EXPECT_EQ(all_seqs[i], static_cast<std::int64_t>(i + 1));
  EXPECT_FALSE(data(all).at("has_more").as_bool());
  EXPECT_EQ(data(all).at("last_seq").as_int64(), static_cast<std::int64_t>(all_seqs.size()));

  // Directions: the execute is the client's, CLI lines are claude's, states the server's.
  const auto& entries = data(all).at("messages").as_array();
  std::set<std::string> directions;
  for (const auto& e : entries) directions.insert(str(e.as_object(), "direction"));
  EXPECT_EQ(directions, (std::set<std::string>{"client", "claude", "server"}));

  // Pages by after_seq across files.
  auto page = get(*client, id, Json{{"after_seq", 10}, {"limit", 5}});
  EXPECT_EQ(seqs(page), (std::vector<std::int64_t>{11, 12, 13, 14, 15}));
  EXPECT_TRUE(data(page).at("has_more").as_bool());
  page = get(*client, id, Json{{"after_seq", all_seqs.back() - 2}});
  EXPECT_EQ(seqs(page).size(), 2u);
  EXPECT_FALSE(data(page).at("has_more").as_bool());

  // By since (exclusive): everything strictly newer than entry 20's timestamp.
  const std::string ts20 = str(entries[19].as_object(), "timestamp");
  page = get(*client, id, Json{{"since", ts20}});
  for (const auto& e : data(page).at("messages").as_array()) {
    EXPECT_GT(std::string(e.at("timestamp").as_string()), ts20);
  }
  std::size_t newer = 0;
  for (const auto& e : entries) newer += std::string(e.at("timestamp").as_string()) > ts20 ? 1 : 0;
  EXPECT_EQ(seqs(page).size(), newer);
  // The 20 lines after entry 20 took about 200 ms: most are newer, and more than 7 (one file's
  // worth) means the page was read across rotated files.
  EXPECT_GE(newer, 8u);
  const auto since_seqs = seqs(page);
  ASSERT_FALSE(since_seqs.empty());
  EXPECT_EQ(since_seqs.back(), all_seqs.back());
  for (std::size_t i = 1; i < since_seqs.size(); ++i)
    EXPECT_EQ(since_seqs[i], since_seqs[i - 1] + 1);

  // By before_seq: the newest entries below it, oldest first; with after_seq, a window.
  page = get(*client, id, Json{{"before_seq", 20}, {"limit", 3}});
  EXPECT_EQ(seqs(page), (std::vector<std::int64_t>{17, 18, 19}));
  EXPECT_TRUE(data(page).at("has_more").as_bool());
  page = get(*client, id, Json{{"before_seq", 4}});
  EXPECT_EQ(seqs(page), (std::vector<std::int64_t>{1, 2, 3}));
  EXPECT_FALSE(data(page).at("has_more").as_bool());
  page = get(*client, id, Json{{"after_seq", 10}, {"before_seq", 14}, {"limit", 10}});
  EXPECT_EQ(seqs(page), (std::vector<std::int64_t>{11, 12, 13}));
  EXPECT_FALSE(data(page).at("has_more").as_bool());
  EXPECT_EQ(error_code(get(*client, id, Json{{"before_seq", 0}})), "INVALID_MESSAGE");

  EXPECT_EQ(error_code(get(*client, id, Json{{"since", "yesterday"}})), "INVALID_MESSAGE");
  EXPECT_EQ(error_code(get(*client, id, Json{{"limit", 0}})), "INVALID_MESSAGE");
  // Above the cap (limits.history_page_max, 1000 here) is capped, not refused.
  page = get(*client, id, Json{{"limit", 5000}});
  EXPECT_EQ(seqs(page), all_seqs);
  EXPECT_FALSE(data(page).at("has_more").as_bool());
}

TEST_F(HistoryTest, LimitAboveTheCapIsCappedAndBadLimitsAreRefused) {
  start_server(with_args({"--limits-history-page-max", "5"}));
  auto client = connect();
  const std::string id = project_after_run(*client, "[[fake:flood lines=10 bytes=50]]");
  auto page = get(*client, id, Json{{"limit", 5000}});
  ASSERT_EQ(str(page, "type"), "messages_response") << json::serialize(page);
  EXPECT_EQ(seqs(page), (std::vector<std::int64_t>{1, 2, 3, 4, 5}));
  EXPECT_TRUE(data(page).at("has_more").as_bool());
  page = get(*client, id, Json{{"after_seq", 5}});  // the default limit (1000) is capped too
  EXPECT_EQ(seqs(page), (std::vector<std::int64_t>{6, 7, 8, 9, 10}));
  EXPECT_TRUE(data(page).at("has_more").as_bool());
  page = get(*client, id, Json{{"after_seq", 5}, {"limit", 2}});
  EXPECT_EQ(seqs(page), (std::vector<std::int64_t>{6, 7}));
  for (const auto& bad : {json::value(0), json::value(-3), json::value("ten"), json::value(2.5)}) {
    const auto r = get(*client, id, Json{{"limit", bad}});
    EXPECT_EQ(error_code(r), "INVALID_MESSAGE") << json::serialize(bad);
    EXPECT_EQ(str(data(r).at("details").as_object(), "field"), "data.limit");
  }
}

// Entries of several MiB: get_messages pages stay within a byte budget (half the outbound queue
// here), so paging through everything never overflows the connection's queue, and has_more says
// when a page was cut short.
TEST_F(HistoryTest, BigEntriesArePagedWithinTheOutboundQueue) {
  constexpr std::int64_t kQueue = 8 << 20;
  constexpr std::size_t kLine = 3 << 20;
  start_server(with_args({"--websocket-max-queue-bytes", std::to_string(kQueue),
                          "--claude-max-line-bytes", std::to_string(4 << 20)}));
  auto client = connect();
  const std::string id = str(create_project(*client, make_dir("p")), "project_id");
  // Two runs, each an assistant line of 3 MiB and a result that repeats its text: four big
  // entries, about 12 MiB together, more than the queue holds.
  for (int run = 0; run < 2; ++run) {
    client->request(
        Json{{"type", "execute"},
             {"project_id", id},
             {"data", {{"prompt", "[[fake:bigline bytes=" + std::to_string(kLine) + "]]"}}}});
    ASSERT_TRUE(client->read_until(is_idle, 60s)) << "run " << run;
  }

  std::vector<std::int64_t> seen;
  std::int64_t last_seq = 0;
  std::size_t cut_by_bytes = 0;
  std::size_t big = 0;
  Json query{};
  for (int guard = 0; guard < 50; ++guard) {
    const auto page = get(*client, id, query, 30s);
    ASSERT_EQ(str(page, "type"), "messages_response") << "page " << guard;
    const auto& messages = data(page).at("messages").as_array();
    ASSERT_FALSE(messages.empty());
    std::size_t bytes = 0;
    for (const auto& e : messages) {
      const auto size = json::serialize(e).size();
      bytes += size;
      big += size >= kLine ? 1 : 0;
      seen.push_back(e.at("seq").as_int64());
    }
    if (messages.size() > 1) {
      EXPECT_LE(bytes, static_cast<std::size_t>(kQueue / 2));
    }
    last_seq = data(page).at("last_seq").as_int64();
    if (!data(page).at("has_more").as_bool()) break;
    cut_by_bytes += messages.size() < 1000 ? 1 : 0;
    query = Json{{"after_seq", seen.back()}};
  }
  EXPECT_TRUE(client->is_open());
  EXPECT_EQ(big, 4u);
  EXPECT_GE(cut_by_bytes, 3u) << "four 3 MiB entries need at least four pages of 4 MiB";
  ASSERT_FALSE(seen.empty());
  std::vector<std::int64_t> expected(static_cast<std::size_t>(last_seq));
  for (std::size_t i = 0; i < expected.size(); ++i) expected[i] = static_cast<std::int64_t>(i + 1);
  EXPECT_EQ(seen, expected) << "every entry exactly once, in order";

  // Backwards too: the newest page holds the last result alone and says that more exist.
  const auto newest = get(*client, id, Json{{"before_seq", last_seq + 1}}, 30s);
  const auto newest_seqs = seqs(newest);
  ASSERT_FALSE(newest_seqs.empty());
  EXPECT_EQ(newest_seqs.back(), last_seq);
  EXPECT_TRUE(data(newest).at("has_more").as_bool());
}

TEST_F(HistoryTest, RotationBySize) {
  start_server(with_args({"--log-rotation-size", "2000"}));
  auto client = connect();
  const std::string id = project_after_run(*client, "[[fake:flood lines=20 bytes=300]]");
  std::size_t files = 0;
  for (const auto& f : fs::directory_iterator(server_->data_dir() / "projects" / id / "logs")) {
    ++files;
    if (fs::file_size(f.path()) > 2000) {
      // Only a single entry larger than the limit may exceed it.
      std::ifstream in(f.path());
      std::string line;
      std::size_t n = 0;
      while (std::getline(in, line)) ++n;
      EXPECT_EQ(n, 1u) << f.path();
    }
  }
  EXPECT_GE(files, 5u);
  const auto all = get(*client, id, Json{});
  const auto s = seqs(all);
  for (std::size_t i = 0; i < s.size(); ++i) EXPECT_EQ(s[i], static_cast<std::int64_t>(i + 1));
}

TEST_F(HistoryTest, ReconnectMidRunMissesNothingAndGetsNothingTwice) {
  start_server();
  const TempDir scratch("pa-hold");
  const auto release = scratch.path() / "release";
  auto runner = connect();
  const std::string id = str(create_project(*runner, make_dir("p")), "project_id");
  auto watcher = connect();
  ASSERT_EQ(str(watcher->request(Json{{"type", "project_join"}, {"project_id", id}}), "type"),
            "project_joined");
  // The run stops after 30 of its 60 lines until the test creates `release`: the reconnect
  // below certainly happens mid-run, whatever the speed of the machine.
  runner->request(Json{{"type", "execute"},
                       {"project_id", id},
                       {"data",
                        {{"prompt", "[[fake:drip lines=60 interval_ms=5 hold_after=30 hold_file=" +
                                        release.string() + "]]"}}}});

  // The watcher sees a few lines, then its connection drops mid-run.
  std::vector<std::int64_t> seen;
  ASSERT_TRUE(watcher->read_until([&](const Json& m) {
    if (m.contains("seq")) seen.push_back(m.at("seq").as_int64());
    return seen.size() >= 5;
  }));
  watcher.reset();

  // A new connection: join (learn last_seq), catch up exactly the gap, then follow live.
  auto again = connect();
  const auto joined = again->request(Json{{"type", "project_join"}, {"project_id", id}});
  ASSERT_EQ(str(joined, "type"), "project_joined") << json::serialize(joined);
  EXPECT_EQ(str(data(joined).at("project").as_object(), "state"), "EXECUTING");
  const auto last = data(joined).at("last_seq").as_int64();
  ASSERT_GE(last, seen.back());
  std::int64_t cursor = seen.back();
  while (cursor < last) {
    const auto page = get(*again, id, Json{{"after_seq", cursor}, {"limit", last - cursor}});
    const auto page_seqs = seqs(page);
    ASSERT_FALSE(page_seqs.empty()) << json::serialize(page);
    for (auto s : page_seqs) seen.push_back(s);
    cursor = page_seqs.back();
  }
  // get_messages' reply arrives after any broadcast queued before it: collect those too.
  for (const auto& m : again->skipped()) {
    if (m.contains("seq")) seen.push_back(m.at("seq").as_int64());
  }
  std::ofstream(release) << "go\n";
  std::size_t live_after_join = 0;
  ASSERT_TRUE(again->read_until(
      [&](const Json& m) {
        if (m.contains("seq")) {
          seen.push_back(m.at("seq").as_int64());
          live_after_join += m.at("seq").as_int64() > last ? 1 : 0;
        }
        return is_idle(m);
      },
      30s));
  // At least the 30 held lines came live, after the join.
  EXPECT_GE(live_after_join, 30u);

  std::sort(seen.begin(), seen.end());
  const auto dup = std::adjacent_find(seen.begin(), seen.end());
  EXPECT_EQ(dup, seen.end()) << "duplicate seq " << (dup == seen.end() ? 0 : *dup);
  // No gap from the watcher's first message to the end of the run.
  for (std::size_t i = 1; i < seen.size(); ++i)
    EXPECT_EQ(seen[i], seen[i - 1] + 1) << "gap after " << seen[i - 1];
  const auto all = get(*again, id, Json{});
  EXPECT_EQ(seen.back(), data(all).at("last_seq").as_int64());
}

// seq is never reused: the server keeps the newest durable seq in project.json, so deleting or
// archiving every history file of a project does not restart its numbering.
TEST_F(HistoryTest, SeqContinuesAfterTheLogFilesAreDeleted) {
  start_server();
  auto client = connect();
  const std::string id = project_after_run(*client, "one");
  const auto before = data(get(*client, id, Json{})).at("last_seq").as_int64();
  ASSERT_GE(before, 5);
  const auto data_dir = server_->data_dir();
  const auto logs = data_dir / "projects" / id / "logs";

  // A killed server (no shutdown flush) restarts: the entries it wrote are found in the files
  // and the mark is stored at once.
  auto old = std::move(server_);
  old->kill_hard();
  client.reset();
  start_server(with_data(data_dir));
  client = connect();
  EXPECT_EQ(data(get(*client, id, Json{})).at("last_seq").as_int64(), before);
  server_->stop();

  // The operator archives every history file.
  std::size_t removed = 0;
  for (const auto& f : fs::directory_iterator(logs)) removed += fs::remove(f.path()) ? 1 : 0;
  ASSERT_GE(removed, 1u);

  start_server(with_data(data_dir));
  client = connect();
  const auto joined = client->request(Json{{"type", "project_join"}, {"project_id", id}});
  EXPECT_EQ(data(joined).at("last_seq").as_int64(), before);
  const auto reply =
      client->request(Json{{"type", "execute"}, {"project_id", id}, {"data", {{"prompt", "two"}}}});
  ASSERT_EQ(reply.at("seq").as_int64(), before + 2) << "the execute, then EXECUTING";
  ASSERT_TRUE(client->read_until(is_idle, 30s));
  const auto after = get(*client, id, Json{});
  const auto s = seqs(after);
  ASSERT_FALSE(s.empty());
  EXPECT_EQ(s.front(), before + 1) << "numbering continues above the old last_seq";
  for (std::size_t i = 1; i < s.size(); ++i) EXPECT_EQ(s[i], s[i - 1] + 1);
}

TEST_F(HistoryTest, RestartAfterSigkillMidRun) {
  start_server();
  auto client = connect();
  const std::string id = str(create_project(*client, make_dir("p")), "project_id");
  const TempDir scratch("pa-pid");
  const auto pidfile = scratch.path() / "cli.pid";
  client->request(Json{{"type", "execute"},
                       {"project_id", id},
                       {"data",
                        {{"prompt", "[[fake:drip lines=1000 interval_ms=5 self_pidfile=" +
                                        pidfile.string() + "]]"}}}});
  std::int64_t last_seen = 0;
  std::string session;  // from the run's init line
  ASSERT_TRUE(client->read_until([&](const Json& m) {
    if (m.contains("seq")) last_seen = m.at("seq").as_int64();
    if (str(m, "type") == "agent_message" && str(data(m), "subtype") == "init")
      session = str(data(m), "session_id");
    return last_seen >= 12;
  }));
  ASSERT_FALSE(session.empty());
  pid_t cli = 0;
  std::ifstream(pidfile) >> cli;  // written before the init line
  ASSERT_GT(cli, 0);
  ASSERT_TRUE(alive(cli));
  const auto data_dir = server_->data_dir();
  auto old = std::move(server_);
  old->kill_hard();
  client.reset();
  // The run belongs to the host (its supervisor), not to the server: the CLI goes on.
  EXPECT_TRUE(alive(cli)) << "the CLI died with the server";

  start_server(with_data(data_dir));
  client = connect();
  const auto list = client->request(Json{{"type", "project_list"}});
  const auto& listed = data(list).at("projects").as_array()[0].as_object();
  EXPECT_EQ(str(listed, "state"), "EXECUTING") << "taken over after the restart";
  // The id from init was stored at once, before the run ended.
  EXPECT_EQ(str(listed, "session_id"), session);
  client->request(Json{{"type", "project_join"}, {"project_id", id}});
  ASSERT_TRUE(client->read_until(is_idle, 60s));
  std::vector<std::int64_t> s;
  for (const auto& e : all_history(*client, id)) s.push_back(e.at("seq").as_int64());
  ASSERT_GE(s.size(), static_cast<std::size_t>(last_seen))
      << "every message a client saw is in history";
  for (std::size_t i = 0; i < s.size(); ++i) EXPECT_EQ(s[i], static_cast<std::int64_t>(i + 1));
  // The project runs again; its new entries continue the seq.
  client->request(Json{{"type", "execute"}, {"project_id", id}, {"data", {{"prompt", "again"}}}});
  ASSERT_TRUE(client->read_until(is_idle, 30s));
  const auto after = get(*client, id, Json{{"after_seq", s.back()}});
  EXPECT_EQ(seqs(after).front(), s.back() + 1);
}

}  // namespace
}  // namespace pa::test
