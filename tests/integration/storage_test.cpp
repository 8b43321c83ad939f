// Storage trouble is never silent (issue 14): a damaged project.json is kept aside and rebuilt
// from the history; a full disk is told to clients (STORAGE_FAILED), shown by health, and nothing
// is sent without a seq; once space is back the held messages are written and history is whole.
#include <set>
#include <sstream>

#include "integration/fixture.hpp"
#include "integration/small_disk.hpp"

namespace pa::test {
namespace {

namespace fs = std::filesystem;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<fs::path> kept_copies(const fs::path& project_dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(project_dir)) {
    if (e.path().filename().string().rfind("project.json.corrupt-", 0) == 0)
      out.push_back(e.path());
  }
  return out;
}

const Json* find_project(const Json& list, const std::string& id) {
  for (const auto& p : data(list).at("projects").as_array()) {
    if (str(p.as_object(), "id") == id) return &p.as_object();
  }
  return nullptr;
}

bool is_storage_failed(const Json& m, std::string_view what) {
  if (error_code(m) != "STORAGE_FAILED") return false;
  const auto* details = data(m).if_contains("details");
  return details != nullptr && details->is_object() && str(details->as_object(), "what") == what;
}

// Seqs 1..N with no gap and no repeat.
void expect_contiguous(const std::vector<Json>& history) {
  std::int64_t expected = 1;
  for (const auto& entry : history) {
    EXPECT_EQ(entry.at("seq").as_int64(), expected) << json::serialize(entry);
    expected = entry.at("seq").as_int64() + 1;
  }
}

// --- damaged project.json at start ----------------------------------------------------------

class MetadataRecoveryTest : public AgentServerTest,
                             public ::testing::WithParamInterface<std::string> {
 protected:
  std::unique_ptr<ServerProcess> stopped_;
};

TEST_P(MetadataRecoveryTest, ProjectIsRebuiltFromItsHistoryAndTheBadFileIsKept) {
  auto client = connect();
  const auto dir = make_dir("recover-me");
  const auto id = new_project(*client, "recover-me");
  ASSERT_TRUE(is_state(execute(*client, id, "hello"), "EXECUTING"));
  until_idle(*client);
  const auto before_list = client->request(Json{{"type", "project_list"}});
  const auto* before = find_project(before_list, id);
  ASSERT_NE(before, nullptr);
  const std::string session = str(*before, "session_id");
  ASSERT_FALSE(session.empty());
  const auto history_before = all_history(*client, id);
  ASSERT_FALSE(history_before.empty());
  client.reset();

  const auto data_dir = server_->data_dir();
  stopped_ = std::move(server_);  // owns the data directory
  stopped_->stop();
  const auto project_dir = data_dir / "projects" / id;
  const auto meta = project_dir / "project.json";
  const std::string original = read_file(meta);
  const std::string damaged = GetParam() == "truncated"
                                  ? original.substr(0, original.size() / 3)
                                  : std::string("\x00\x9f garbage {{{ \xff", 16);
  std::ofstream(meta, std::ios::trunc | std::ios::binary) << damaged;

  start_agent_server({}, {}, data_dir);
  // Said in the log, at error level, naming the project and the kept copy.
  EXPECT_TRUE(server_->wait_for_log(
      [&](const std::string& l) {
        return l.find(id) != std::string::npos && l.find("kept as") != std::string::npos &&
               l.find("rebuilt from its history") != std::string::npos;
      },
      10s));

  client = connect();
  const auto list = client->request(Json{{"type", "project_list"}});
  const auto* p = find_project(list, id);
  ASSERT_NE(p, nullptr) << "the project vanished: " << json::serialize(list);
  EXPECT_EQ(str(*p, "path"), fs::canonical(dir).string());
  EXPECT_EQ(str(*p, "session_id"), session);
  EXPECT_EQ(str(*p, "created_at"), str(history_before.front(), "timestamp"));
  EXPECT_EQ(str(*p, "state"), "IDLE");

  // The damaged file is kept aside, byte for byte; a valid project.json replaces it.
  const auto kept = kept_copies(project_dir);
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(read_file(kept[0]), damaged);
  const auto rebuilt = json::parse(read_file(meta)).as_object();
  EXPECT_EQ(str(rebuilt, "id"), id);
  EXPECT_EQ(str(rebuilt, "path"), fs::canonical(dir).string());

  // Its history is still reachable, all of it.
  const auto history_after = all_history(*client, id);
  ASSERT_EQ(history_after.size(), history_before.size());
  for (std::size_t i = 0; i < history_after.size(); ++i) {
    EXPECT_EQ(json::serialize(history_after[i]), json::serialize(history_before[i]));
  }

  // health.warnings says what happened (status is not degraded by a repaired file).
  const auto health = client->request(Json{{"type", "health"}});
  const auto& warnings = data(health).at("warnings").as_array();
  ASSERT_EQ(warnings.size(), 1u) << json::serialize(health);
  const std::string warning(warnings[0].as_string());
  EXPECT_NE(warning.find(id), std::string::npos) << warning;
  EXPECT_NE(warning.find(kept[0].string()), std::string::npos) << warning;

  // And it works: a run resumes the recovered session, its seqs continue the history.
  ASSERT_TRUE(is_state(execute(*client, id, "again"), "EXECUTING"));
  until_idle(*client);
  const auto rec = records();
  ASSERT_FALSE(rec.empty());
  EXPECT_NE(json::serialize(rec.back().at("argv")).find(session), std::string::npos)
      << json::serialize(rec.back().at("argv"));
  const auto history_now = all_history(*client, id);
  EXPECT_GT(history_now.size(), history_before.size());
  expect_contiguous(history_now);
}

INSTANTIATE_TEST_SUITE_P(Damage, MetadataRecoveryTest,
                         ::testing::Values(std::string("truncated"), std::string("garbage")),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

// --- full disk -------------------------------------------------------------------------------

class DiskFullTest : public AgentServerTest {
 protected:
  void SetUp() override {}
  void TearDown() override {
    AgentServerTest::TearDown();
    server_.reset();  // stops the server: nothing holds files on the mount any more
    if (!disk_.path().empty()) kill_supervisors_of(disk_.path() / "data");  // runs outlive servers
  }

  // A run of 6 big lines that waits after the 2nd until `go` exists; returns once the client
  // saw those 2 (the run is certainly in progress).
  void start_held_run(WsClient& client, const std::string& id, const fs::path& go,
                      const std::string& extra = {}) {
    ASSERT_TRUE(is_state(execute(client, id,
                                 "[[fake:drip lines=6 interval_ms=1 bytes=6000 hold_after=2 "
                                 "hold_file=" +
                                     go.string() + extra + "]]"),
                         "EXECUTING"));
    int lines = 0;
    ASSERT_TRUE(client.read_until(
        [&](const Json& m) {
          if (str(m, "type") == "agent_message" && str(data(m), "type") == "assistant") ++lines;
          return lines == 2;
        },
        20s));
  }

  SmallDisk disk_;  // unmounted after TearDown
};

TEST_F(DiskFullTest, ClientsAreToldHealthDegradesNothingGoesOutWithoutSeqAndHistoryStaysWhole) {
  const auto mnt = disk_.path();
  if (mnt.empty()) {
    GTEST_SKIP() << "cannot mount a tmpfs to fill (needs root with CAP_SYS_ADMIN): "
                 << disk_.error();
  }
  const auto data_dir = mnt / "data";
  fs::create_directories(data_dir);
  start_agent_server({}, {}, data_dir);

  auto client = connect();
  const auto id = new_project(*client);
  // A second client that only watches the project: every message it gets is checked.
  auto watcher = connect();
  ASSERT_EQ(str(watcher->request(Json{{"type", "project_join"}, {"project_id", id}}), "type"),
            "project_joined");

  // A run that prints two lines, waits until `go` exists, then prints four more (each over a
  // page, so no append fits into a page the log file already has) and its result.
  const auto go = state_.path() / "go";
  start_held_run(*client, id, go);
  ASSERT_FALSE(HasFailure());

  const auto filler = disk_.fill();
  { std::ofstream(go) << "go"; }

  // The client is told: STORAGE_FAILED, with where and why. The run's spool (in the same data
  // directory, written first) or its history: whichever the full disk refuses first.
  const auto failed = client->read_until(
      [](const Json& m) {
        return is_storage_failed(m, "history") || is_storage_failed(m, "spool");
      },
      20s);
  ASSERT_TRUE(failed) << "no STORAGE_FAILED";
  const auto& details = data(*failed).at("details").as_object();
  const std::string what = str(details, "what");
  if (what == "history") {
    EXPECT_EQ(str(details, "path"), (data_dir / "projects" / id / "logs").string());
  } else {
    EXPECT_EQ(fs::path(str(details, "path")).filename(), "spool");
    EXPECT_EQ(fs::path(str(details, "path")).parent_path().parent_path(), data_dir / "runs");
  }
  EXPECT_NE(str(details, "error").find("No space left"), std::string::npos)
      << json::serialize(*failed);
  EXPECT_EQ(str(*failed, "project_id"), id);
  EXPECT_FALSE(failed->contains("seq")) << "the error itself is not history";

  // health: degraded, with the problem and a reason naming it.
  const auto health = client->request(Json{{"type", "health"}});
  EXPECT_EQ(str(data(health), "status"), "degraded");
  const auto& problems = data(health).at("storage_problems").as_array();
  bool listed = false;
  for (const auto& p : problems) {
    const auto& o = p.as_object();
    if (str(o, "what") == what && str(o, "project_id") == id) {
      listed = true;
      EXPECT_EQ(str(o, "path"), str(details, "path"));
      EXPECT_FALSE(str(o, "since").empty());
    }
  }
  EXPECT_TRUE(listed) << json::serialize(health);
  bool reason = false;
  for (const auto& r : data(health).at("reasons").as_array()) {
    reason |= std::string(r.as_string()).find(what + " of project " + id) != std::string::npos;
  }
  EXPECT_TRUE(reason) << json::serialize(health);
  // Counted in errors_total.
  const auto metrics = http_get(server_->port(), true, "/metrics",
                                {{"Authorization", "Bearer " + server_->token()}});
  EXPECT_EQ(metrics.body.find("pocket_agent_errors_total{code=\"STORAGE_FAILED\"} 0\n"),
            std::string::npos);
  EXPECT_NE(metrics.body.find("pocket_agent_errors_total{code=\"STORAGE_FAILED\"}"),
            std::string::npos);

  // Space is back: the held messages are written and sent, and the run ends normally.
  fs::remove(filler);
  until_idle(*client, 40s);
  EXPECT_TRUE(eventually(
      [&] {
        const auto h = client->request(Json{{"type", "health"}});
        return data(h).at("storage_problems").as_array().empty();
      },
      20s))
      << "the storage problem did not clear";

  // Nothing reached the watcher without its seq; seqs only go up; it saw STORAGE_FAILED too.
  std::vector<Json> seen;
  ASSERT_TRUE(watcher->read_until(
      [&](const Json& m) {
        seen.push_back(m);
        return is_state(m, "IDLE");
      },
      20s));
  bool watcher_told = false;
  std::int64_t last_seq = 0;
  std::set<std::int64_t> seen_seqs;
  for (const auto& m : seen) {
    if (str(m, "type") == "error") {
      watcher_told |= is_storage_failed(m, what);
      continue;
    }
    if (str(m, "project_id") != id) continue;  // server_stats
    ASSERT_TRUE(m.contains("seq")) << "sent without a seq: " << json::serialize(m);
    EXPECT_GT(m.at("seq").as_int64(), last_seq);
    last_seq = m.at("seq").as_int64();
    seen_seqs.insert(last_seq);
  }
  EXPECT_TRUE(watcher_told);

  // History: gap-free, every line of the run in order, and everything sent is in it.
  const auto history = all_history(*client, id);
  expect_contiguous(history);
  std::vector<std::string> texts;
  std::set<std::int64_t> history_seqs;
  for (const auto& entry : history) {
    history_seqs.insert(entry.at("seq").as_int64());
    const auto& message = entry.at("message").as_object();
    if (str(message, "type") != "assistant") continue;
    const auto& content = message.at("message").at("content").as_array();
    texts.push_back(str(content.at(0).as_object(), "text").substr(0, 12));
  }
  EXPECT_EQ(texts, (std::vector<std::string>{"Line 1 of 6.", "Line 2 of 6.", "Line 3 of 6.",
                                             "Line 4 of 6.", "Line 5 of 6.", "Line 6 of 6."}));
  for (const auto seq : seen_seqs) EXPECT_TRUE(history_seqs.count(seq)) << seq;

  // Publishing works as before.
  ASSERT_TRUE(is_state(execute(*client, id, "after"), "EXECUTING"));
  until_idle(*client);
  const auto later = all_history(*client, id);
  EXPECT_GT(later.size(), history.size());
  expect_contiguous(later);
}

// A run held by a full disk longer than timeouts.execution_idle is stopped with STORAGE_FAILED
// (not reported as an idle CLI), and the project is usable again once space is back.
TEST_F(DiskFullTest, ARunHeldLongerThanExecutionIdleStopsWithStorageFailed) {
  const auto mnt = disk_.path();
  if (mnt.empty()) {
    GTEST_SKIP() << "cannot mount a tmpfs to fill (needs root with CAP_SYS_ADMIN): "
                 << disk_.error();
  }
  const auto data_dir = mnt / "data";
  fs::create_directories(data_dir);
  start_agent_server({"--timeouts-execution-idle", "2", "--timeouts-kill-grace", "1",
                      "--timeouts-term-grace", "1"},
                     {}, data_dir);
  auto client = connect();
  const auto id = new_project(*client);
  const auto go = state_.path() / "go";
  const auto pidfile = state_.path() / "cli.pid";
  start_held_run(*client, id, go, " self_pidfile=" + pidfile.string());
  ASSERT_FALSE(HasFailure());
  pid_t cli = 0;
  std::ifstream(pidfile) >> cli;
  ASSERT_GT(cli, 0);
  const auto filler = disk_.fill();
  { std::ofstream(go) << "go"; }
  // The supervisor stops the held CLI after execution_idle.
  ASSERT_TRUE(eventually([&] { return !alive(cli); }, 30s)) << "the held run was not stopped";
  fs::remove(filler);
  const auto seen = until_idle(*client, 40s);
  bool storage_stop = false, idle_timeout = false;
  for (const auto& m : seen) {
    if (error_code(m) == "STORAGE_FAILED" && data(m).at("details").as_object().contains("stopped"))
      storage_stop = true;
    idle_timeout |= error_code(m) == "EXECUTION_TIMEOUT";
  }
  EXPECT_TRUE(storage_stop) << "no STORAGE_FAILED saying the run was stopped";
  EXPECT_FALSE(idle_timeout) << "a full disk is not an idle CLI";
  EXPECT_TRUE(is_state(execute(*client, id, "again"), "EXECUTING"));
  until_idle(*client, 30s);
}

}  // namespace
}  // namespace pa::test
