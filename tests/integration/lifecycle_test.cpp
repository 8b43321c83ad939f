// Shutdown and reload: SIGTERM mid-run, a second signal, SIGHUP with a new certificate.
#include <signal.h>

#include <set>
#include <sstream>

#include "integration/fixture.hpp"

namespace pa::test {
namespace {

namespace fs = std::filesystem;

class LifecycleTest : public ServerTest {
 protected:
  void SetUp() override {}
};

// The project's metadata file as the server saved it.
Json project_file(const fs::path& data_dir, const std::string& id) {
  std::ifstream in(data_dir / "projects" / id / "project.json");
  std::stringstream text;
  text << in.rdbuf();
  return json::parse(text.str()).as_object();
}

TEST_F(LifecycleTest, SigtermMidRunFlushesHistoryAndClosesWith1001) {
  ServerOptions options;
  options.args = {"--timeouts-shutdown-grace", "1s", "--timeouts-kill-grace", "1s"};
  start_server(options);
  auto client = connect();
  const std::string id = str(create_project(*client, make_dir("p")), "project_id");
  const auto created_at = str(project_file(server_->data_dir(), id), "last_active");
  client->request(Json{{"type", "execute"},
                       {"project_id", id},
                       {"data", {{"prompt", "[[fake:drip lines=100000 interval_ms=20]]"}}}});
  std::string session_id;
  ASSERT_TRUE(client->read_until([&](const Json& m) {
    if (str(m, "type") != "agent_message") return false;
    session_id = str(data(m), "session_id");
    return true;
  }));
  ASSERT_FALSE(session_id.empty());

  server_->send_signal(SIGTERM);
  // The client is told the run ended, then the connection closes with 1001.
  std::optional<Json> last_state;
  std::vector<std::int64_t> seen_seqs;
  while (auto m = client->read(30s)) {
    if (m->contains("seq")) seen_seqs.push_back(m->at("seq").as_int64());
    if (str(*m, "type") == "project_state") last_state = *m;
  }
  ASSERT_TRUE(last_state);
  ASSERT_FALSE(seen_seqs.empty());
  EXPECT_TRUE(is_idle(*last_state)) << json::serialize(*last_state);
  const auto closed = client->wait_closed(1s);
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->code, 1001);
  EXPECT_EQ(server_->wait_exit(30s), 0);
  bool flushed = false;
  for (const auto& l : server_->log_lines())
    flushed |= l.find("history flushed") != std::string::npos;
  EXPECT_TRUE(flushed);

  // Metadata saved: the run's session id and a newer last_active are in project.json.
  const auto data_dir = server_->data_dir();
  const auto saved = project_file(data_dir, id);
  EXPECT_EQ(str(saved, "session_id"), session_id);
  EXPECT_GT(str(saved, "last_active"), created_at);

  // Everything the client saw is on disk, ending with the final IDLE, and the project is IDLE
  // after a restart.
  auto old = std::move(server_);
  ServerOptions again;
  again.data_dir = data_dir;
  start_server(again);
  client = connect();
  const auto list = client->request(Json{{"type", "project_list"}});
  const auto& listed = data(list).at("projects").as_array()[0].as_object();
  EXPECT_EQ(str(listed, "state"), "IDLE");
  EXPECT_EQ(str(listed, "session_id"), session_id);
  const auto history = all_history(*client, id);
  std::set<std::int64_t> on_disk;
  for (const auto& e : history) on_disk.insert(e.at("seq").as_int64());
  for (const auto seq : seen_seqs) EXPECT_TRUE(on_disk.count(seq)) << "seq " << seq << " lost";
  ASSERT_FALSE(history.empty());
  EXPECT_EQ(history.back().at("seq").as_int64(), seen_seqs.back());
  EXPECT_EQ(history.back().at("message").at("data").at("state").as_string(), "IDLE");
}

TEST_F(LifecycleTest, SecondSignalStopsRunsAtOnceAndRefusesNewRuns) {
  ServerOptions options;
  options.args = {"--timeouts-shutdown-grace", "10m", "--timeouts-kill-grace", "10m"};
  start_server(options);
  auto client = connect();
  const std::string id = str(create_project(*client, make_dir("p")), "project_id");
  const std::string other = str(create_project(*client, make_dir("q")), "project_id");
  TempDir scratch("pa-lifecycle");
  const auto pidfile = scratch.path() / "grandchild.pid";
  client->request(Json{{"type", "execute"},
                       {"project_id", id},
                       {"data",
                        {{"prompt", "[[fake:grandchild pidfile=" + pidfile.string() +
                                        " ignore-interrupt=1 ignore-sigterm=1]]"}}}});
  std::vector<std::int64_t> seen_seqs;
  ASSERT_TRUE(client->read_until([&](const Json& m) {
    if (m.contains("seq")) seen_seqs.push_back(m.at("seq").as_int64());
    return str(m, "type") == "agent_message";
  }));
  pid_t grandchild = 0;
  std::ifstream(pidfile) >> grandchild;
  ASSERT_GT(grandchild, 0);

  server_->send_signal(SIGTERM);
  ASSERT_TRUE(server_->wait_for_log(
      [](const std::string& l) { return l.find("shutting down") != std::string::npos; }, 10s));
  // While the first run has its grace, a new run is refused (it would outlive the shutdown).
  const auto refused = client->request(
      Json{{"type", "execute"}, {"project_id", other}, {"data", {{"prompt", "[[fake:hang]]"}}}});
  EXPECT_EQ(error_code(refused), "SHUTTING_DOWN") << json::serialize(refused);

  server_->send_signal(SIGTERM);
  while (auto m = client->read(60s)) {
    if (m->contains("seq")) seen_seqs.push_back(m->at("seq").as_int64());
  }
  const auto closed = client->wait_closed(10s);
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->code, 1001);
  EXPECT_EQ(server_->wait_exit(60s), 0);
  // The CLI's process tree is gone; the server reaped what it killed before exiting.
  EXPECT_TRUE(eventually([&] { return !alive(grandchild); }, 10s)) << "grandchild survived";

  // No history entry a client saw is lost, and the refused execute left no trace.
  const auto data_dir = server_->data_dir();
  auto old = std::move(server_);
  ServerOptions again;
  again.data_dir = data_dir;
  start_server(again);
  client = connect();
  std::set<std::int64_t> on_disk;
  for (const auto& e : all_history(*client, id)) on_disk.insert(e.at("seq").as_int64());
  for (const auto seq : seen_seqs) EXPECT_TRUE(on_disk.count(seq)) << "seq " << seq << " lost";
  for (const auto& e : all_history(*client, other))
    EXPECT_NE(str(e, "direction"), "client") << json::serialize(e);
}

std::string served_subject(unsigned short port) {
  const auto r = run_command({"/usr/bin/openssl", "s_client", "-connect",
                              "127.0.0.1:" + std::to_string(port), "-servername", "localhost"});
  const auto at = r.output.find("subject=");
  return at == std::string::npos ? "" : r.output.substr(at, r.output.find('\n', at) - at);
}

void make_cert(const fs::path& dir, const std::string& cn) {
  const auto r = run_command({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                              "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                              (dir / "server.key").string(), "-out", (dir / "server.crt").string(),
                              "-days", "2", "-subj", "/CN=" + cn});
  ASSERT_EQ(r.exit_code, 0) << r.output;
}

TEST_F(LifecycleTest, SighupReloadsTheCertificateAndKeepsTheOldOneIfBad) {
  TempDir certs("pa-certs");
  make_cert(certs.path(), "first");
  ServerOptions options;
  options.tls_cert = (certs.path() / "server.crt").string();
  options.tls_key = (certs.path() / "server.key").string();
  start_server(options);
  EXPECT_NE(served_subject(server_->port()).find("first"), std::string::npos);

  make_cert(certs.path(), "second");
  server_->send_signal(SIGHUP);
  ASSERT_TRUE(server_->wait_for_log(
      [](const std::string& l) { return l.find("SIGHUP: TLS certificate") != std::string::npos; },
      10s));
  EXPECT_NE(served_subject(server_->port()).find("second"), std::string::npos);

  { std::ofstream(certs.path() / "server.crt") << "not a certificate"; }
  server_->send_signal(SIGHUP);
  ASSERT_TRUE(server_->wait_for_log(
      [](const std::string& l) {
        return l.find("keeping the old TLS certificate") != std::string::npos;
      },
      10s));
  EXPECT_NE(served_subject(server_->port()).find("second"), std::string::npos);
  auto client = connect();
  EXPECT_EQ(str(client->request(Json{{"type", "project_list"}}), "type"), "project_list_response");
}

}  // namespace
}  // namespace pa::test
