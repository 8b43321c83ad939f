// Shutdown and reload: SIGTERM mid-run, a second signal, SIGHUP with a new certificate.
#include <signal.h>

#include "integration/fixture.hpp"

namespace pa::test {
namespace {

namespace fs = std::filesystem;

bool is_idle(const Json& m) {
  return str(m, "type") == "project_state" && str(data(m), "state") == "IDLE";
}

class LifecycleTest : public ServerTest {
 protected:
  void SetUp() override {}
};

TEST_F(LifecycleTest, SigtermMidRunFlushesHistoryAndClosesWith1001) {
  ServerOptions options;
  options.args = {"--timeouts-shutdown-grace", "1s", "--timeouts-kill-grace", "1s"};
  start_server(options);
  auto client = connect();
  const std::string id = str(create_project(*client, make_dir("p")), "project_id");
  client->request(Json{{"type", "execute"},
                       {"project_id", id},
                       {"data", {{"prompt", "[[fake:drip lines=100000 interval_ms=20]]"}}}});
  ASSERT_TRUE(client->read_until([](const Json& m) { return str(m, "type") == "agent_message"; }));

  server_->send_signal(SIGTERM);
  // The client is told the run ended, then the connection closes with 1001.
  std::optional<Json> last_state;
  std::int64_t last_seq = 0;
  while (auto m = client->read(30s)) {
    if (m->contains("seq")) last_seq = m->at("seq").as_int64();
    if (str(*m, "type") == "project_state") last_state = *m;
  }
  ASSERT_TRUE(last_state);
  EXPECT_TRUE(is_idle(*last_state)) << json::serialize(*last_state);
  const auto closed = client->wait_closed(1s);
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->code, 1001);
  EXPECT_EQ(server_->wait_exit(30s), 0);
  bool flushed = false;
  for (const auto& l : server_->log_lines())
    flushed |= l.find("history flushed") != std::string::npos;
  EXPECT_TRUE(flushed);

  // Everything the client saw is on disk, and the project is IDLE after a restart.
  const auto data_dir = server_->data_dir();
  auto old = std::move(server_);
  ServerOptions again;
  again.data_dir = data_dir;
  start_server(again);
  client = connect();
  const auto list = client->request(Json{{"type", "project_list"}});
  EXPECT_EQ(str(data(list).at("projects").as_array()[0].as_object(), "state"), "IDLE");
  const auto history = client->request(
      Json{{"type", "get_messages"}, {"project_id", id}, {"data", {{"after_seq", last_seq - 1}}}});
  const auto& entries = data(history).at("messages").as_array();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].at("message").at("data").at("state").as_string(), "IDLE");
}

TEST_F(LifecycleTest, SecondSignalStopsRunsAtOnce) {
  ServerOptions options;
  options.args = {"--timeouts-shutdown-grace", "10m", "--timeouts-kill-grace", "10m"};
  start_server(options);
  auto client = connect();
  const std::string id = str(create_project(*client, make_dir("p")), "project_id");
  client->request(
      Json{{"type", "execute"},
           {"project_id", id},
           {"data", {{"prompt", "[[fake:hang ignore-interrupt=1 ignore-sigterm=1]]"}}}});
  ASSERT_TRUE(client->read_until([](const Json& m) { return str(m, "type") == "agent_message"; }));
  server_->send_signal(SIGTERM);
  ASSERT_TRUE(server_->wait_for_log(
      [](const std::string& l) { return l.find("shutting down") != std::string::npos; }, 10s));
  server_->send_signal(SIGTERM);
  EXPECT_EQ(server_->wait_exit(60s), 0);
  const auto closed = client->wait_closed(10s);
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->code, 1001);
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
