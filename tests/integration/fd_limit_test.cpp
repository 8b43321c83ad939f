// Descriptors are a limit like any other (issue 15). With a low open file limit the server lowers
// limits.max_connections to what fits beside its reserve for runs and history, says so once at
// start, answers the surplus 503 at once, and still starts runs. When accept fails for lack of
// descriptors anyway, waiting clients are answered 503 (through the spare descriptor), and the
// log says so a few times, not hundreds.
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>

#include "integration/descriptors.hpp"
#include "integration/fixture.hpp"
#include "integration/raw_client.hpp"

namespace pa::test {
namespace {

namespace fs = std::filesystem;

std::size_t count_lines(const std::vector<std::string>& lines, std::string_view needle) {
  std::size_t n = 0;
  for (const auto& line : lines)
    if (line.find(needle) != std::string::npos) ++n;
  return n;
}

// What `n` clients connecting at once (from a few threads) got: the upgraded ones are kept open.
struct Outcomes {
  int upgraded = 0;
  int refused = 0;  // HTTP 503
  std::vector<std::string> other;
  std::string refusal_body;
  std::vector<std::unique_ptr<WsClient>> kept;
};

Outcomes connect_many(unsigned short port, const std::string& token, int n, int threads) {
  Outcomes out;
  std::mutex mutex;
  std::atomic<int> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (int i; (i = next++) < n;) {
        ClientOptions o;
        o.tls = true;
        o.bearer = token;
        auto client = std::make_unique<WsClient>(port, o);
        // A deadline only against a hang: an answer comes at once.
        const int status = client->connect(60s);
        std::lock_guard lock(mutex);
        if (status == 101) {
          ++out.upgraded;
          out.kept.push_back(std::move(client));
        } else if (status == 503) {
          ++out.refused;
          out.refusal_body = client->response_body();
        } else {
          out.other.push_back(std::to_string(status) + " " + client->response_body());
        }
      }
    });
  }
  for (auto& t : pool) t.join();
  return out;
}

class FdLimitTest : public AgentServerTest {
 protected:
  void SetUp() override {}  // each test starts the server it needs

  void start_with(ServerOptions options) {
    options.args.insert(options.args.end(),
                        {"--limits-connection-rate", "0", "--claude-env",
                         "FAKE_CLAUDE_RECORD=" + record_file().string() +
                             ",FAKE_CLAUDE_STATE_DIR=" + (state_.path() / "sessions").string()});
    start_server(std::move(options));
  }

  // A run started now fails with INTERNAL_ERROR, details.reason EMFILE and a message naming
  // `while` (not INVALID_PATH or EXECUTION_FAILED, as if the path or the CLI were at fault).
  void expect_run_out_of_descriptors(WsClient& driver, const std::string& id,
                                     const std::string& while_doing) {
    const auto starved = execute(driver, id, "hello");
    EXPECT_TRUE(is_state(starved, "EXECUTING")) << json::serialize(starved);
    std::optional<Json> run_error;
    for (const auto& m : until_idle(driver))
      if (str(m, "type") == "error") run_error = m;
    ASSERT_TRUE(run_error) << "the run neither started nor failed";
    const auto text = json::serialize(*run_error);
    EXPECT_EQ(error_code(*run_error), "INTERNAL_ERROR") << text;
    EXPECT_NE(str(data(*run_error), "message").find("ran out of file descriptors"),
              std::string::npos)
        << text;
    EXPECT_NE(str(data(*run_error), "message").find(while_doing), std::string::npos) << text;
    const auto* details = data(*run_error).if_contains("details");
    ASSERT_NE(details, nullptr) << text;
    EXPECT_EQ(str(details->as_object(), "reason"), "EMFILE");
  }
};

TEST_F(FdLimitTest, WithALimitOf256The400ClientsOverTheCapGet503AndARunStillStarts) {
  ServerOptions options;
  options.open_file_limit = 256;
  options.args = {"--max-connections", "1000"};
  start_with(options);
  const auto start_log = server_->log_lines();
  EXPECT_EQ(count_lines(start_log,
                        "limits.max_connections 1000 does not fit the open file limit "
                        "256"),
            1u);

  auto driver = connect();
  const auto health = driver->request(Json{{"type", "health"}});
  const auto limit = data(health).at("connections").as_object().at("limit").as_int64();
  // 256 minus the reserve (124 on two cores, more with more cores) minus the handshake slots:
  // 116 here. The unit test has the arithmetic; here it only has to be below 400.
  EXPECT_LT(limit, 256);
  EXPECT_GE(limit, 1);

  // 32 at a time: more than the sockets kept for handshakes (16 on two cores), so the listener
  // also has to make clients wait in the backlog.
  constexpr int kClients = 400;
  auto got = connect_many(server_->port(), server_->token(), kClients, 32);
  EXPECT_TRUE(got.other.empty()) << got.other.size() << " clients got neither 101 nor 503, e.g. "
                                 << (got.other.empty() ? "" : got.other.front());
  EXPECT_EQ(got.upgraded, limit - 1);  // the driver holds one
  EXPECT_EQ(got.refused, kClients - (limit - 1));
  EXPECT_NE(got.refusal_body.find("lowered from 1000 to fit the open file limit 256"),
            std::string::npos)
      << got.refusal_body;
  std::cout << "open file limit 256, max_connections 1000: " << got.upgraded + 1
            << " connections admitted, " << got.refused << " of " << kClients
            << " clients refused with 503; server descriptors open now: "
            << open_descriptors(server_->pid()) << "\n";

  // Every admitted connection is still open, and a run starts (supervisor, pipes, project
  // directory) and ends normally.
  const auto id = new_project(*driver);
  ASSERT_FALSE(id.empty());
  const auto started = execute(*driver, id, "hello");
  ASSERT_TRUE(is_state(started, "EXECUTING")) << json::serialize(started);
  const auto seen = until_idle(*driver);
  for (const auto& m : seen) EXPECT_NE(str(m, "type"), "error") << json::serialize(m);
  EXPECT_EQ(records().size(), 1u);

  // Nothing was logged per refused client, and accept never failed.
  const auto lines = server_->log_lines();
  EXPECT_EQ(count_lines(lines, "Too many open files"), 0u);
  EXPECT_EQ(count_lines(lines, "accept:") + count_lines(lines, "accept failed"), 0u);
  EXPECT_LT(count_lines(lines, "503"), 5u);
  got.kept.clear();
}

// The limit lowered under a running server (its plan was made for the old one) and every
// descriptor taken: accept fails with EMFILE. Waiting clients get 503 one at a time through the
// spare descriptor instead of hanging until their handshake times out, the log has a line or two
// instead of one per failure, and once descriptors are free connections are accepted again.
TEST_F(FdLimitTest, OutOfDescriptorsAtAcceptIsAnswered503AndLoggedOnce) {
  ServerOptions options;
  options.args = {"--timeouts-handshake", "60s"};  // the fillers below stay for the whole test
  start_with(options);
  ASSERT_TRUE(server_->wait_for_log(
      [](const std::string& l) { return l.find("claude CLI available") != std::string::npos; },
      20s));
  auto driver = connect();
  const auto id = new_project(*driver);
  ASSERT_FALSE(id.empty());
  auto exhausted = exhaust_descriptors(*server_);
  const rlim_t kLimit = exhausted.limit;
  ASSERT_EQ(open_descriptors(server_->pid()), kLimit);
  // (A filler may itself have been accepted with the spare descriptor when a transient one was
  // open: it says nothing, so it is closed after 2 s and the clients below come next.)

  // A run that cannot open its project directory for lack of descriptors says so: INTERNAL_ERROR
  // with details.reason EMFILE, not INVALID_PATH.
  ASSERT_NO_FATAL_FAILURE(
      expect_run_out_of_descriptors(*driver, id, "while opening the project directory"));
  EXPECT_TRUE(records().empty());

  constexpr int kClients = 60;
  auto got = connect_many(server_->port(), server_->token(), kClients, 4);
  EXPECT_TRUE(got.other.empty()) << got.other.size() << " clients got neither 101 nor 503, e.g. "
                                 << (got.other.empty() ? "" : got.other.front());
  EXPECT_EQ(got.refused, kClients);
  EXPECT_NE(got.refusal_body.find("server out of file descriptors"), std::string::npos)
      << got.refusal_body;
  const auto lines = server_->log_lines();
  const auto reported = count_lines(lines, "out of file descriptors");
  EXPECT_GE(reported, 1u);
  EXPECT_LE(reported, 3u) << "one line per 10 s at most";
  EXPECT_EQ(count_lines(lines, "accept failed"), 0u);
  std::cout << kClients << " clients while out of descriptors: " << got.refused
            << " got 503, log lines about it: " << reported << "\n";

  ASSERT_TRUE(release_descriptors(*server_, exhausted))
      << open_descriptors(server_->pid()) << " open, " << exhausted.open_before << " before";
  auto client = connect();
  EXPECT_TRUE(client->is_open());
  // And runs start again.
  const auto started = execute(*driver, id, "hello again");
  ASSERT_TRUE(is_state(started, "EXECUTING")) << json::serialize(started);
  for (const auto& m : until_idle(*driver))
    EXPECT_NE(str(m, "type"), "error") << json::serialize(m);
  EXPECT_EQ(records().size(), 1u);
}

// Enough descriptors to open the project directory and save the run's state, not enough for the
// run's supervisor (its pipes): the run says the server is out of descriptors (INTERNAL_ERROR,
// details.reason EMFILE), not EXECUTION_FAILED as if the CLI were at fault.
TEST_F(FdLimitTest, RunWhoseSupervisorCannotStartForLackOfDescriptorsSaysSo) {
  start_with({});
  ASSERT_TRUE(server_->wait_for_log(
      [](const std::string& l) { return l.find("claude CLI available") != std::string::npos; },
      20s));
  auto driver = connect();
  const auto id = new_project(*driver);
  ASSERT_FALSE(id.empty());
  // A first run opens what every later one reuses (the history log).
  ASSERT_TRUE(is_state(execute(*driver, id, "warm up"), "EXECUTING"));
  for (const auto& m : until_idle(*driver))
    ASSERT_NE(str(m, "type"), "error") << json::serialize(m);

  auto exhausted = exhaust_descriptors(*server_);
  ASSERT_EQ(open_descriptors(server_->pid()), exhausted.limit);
  // 4: the directory and the run's state file fit, the supervisor's pipes do not (2 to 7 free
  // all end there).
  ASSERT_TRUE(free_descriptors(*server_, exhausted, 4));
  ASSERT_NO_FATAL_FAILURE(
      expect_run_out_of_descriptors(*driver, id, "while starting the run's supervisor"));
  EXPECT_EQ(records().size(), 1u);

  ASSERT_TRUE(release_descriptors(*server_, exhausted));
  ASSERT_TRUE(is_state(execute(*driver, id, "fed"), "EXECUTING"));
  for (const auto& m : until_idle(*driver))
    EXPECT_NE(str(m, "type"), "error") << json::serialize(m);
  EXPECT_EQ(records().size(), 2u);
}

}  // namespace
}  // namespace pa::test
