// Hardening (issue 21): one server per data directory, history descriptors within a budget,
// leftovers of interrupted writes removed at start, a bounded token file, strict HTTP heads
// (Host, Transfer-Encoding, Expect) and the Host check against DNS rebinding.
#include <sys/resource.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <set>

#include "integration/descriptors.hpp"
#include "integration/fixture.hpp"
#include "integration/raw_client.hpp"

namespace pa::test {
namespace {

namespace fs = std::filesystem;

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// argv for a server on `data_dir` as ServerProcess starts one (port 0, test certificate).
std::vector<std::string> server_argv(const fs::path& data_dir,
                                     std::vector<std::string> extra = {}) {
  const auto& cert = test_certificate();
  std::vector<std::string> argv = {
      PA_SERVER_BINARY, "--host",          "127.0.0.1",    "--port",       "0",
      "--data-dir",     data_dir.string(), "--tls-cert",   cert.cert,      "--tls-key",
      cert.key,         "--claude-binary", PA_FAKE_CLAUDE, "--log-format", "text"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return with_root_flag(std::move(argv));
}

class HardeningTest : public ServerTest {
 protected:
  void SetUp() override {}  // each test starts the server it needs

  // One raw request on a fresh TLS connection; everything the server sent until it closed.
  std::string exchange(const std::string& request) {
    RawClient raw(server_->port(), server_->tls());
    EXPECT_TRUE(raw.connect());
    EXPECT_TRUE(raw.send(request));
    auto got = raw.read_until_closed(10s);
    EXPECT_TRUE(got.closed) << "the connection stayed open after " << request.substr(0, 60);
    return got.bytes;
  }
  // The status of the response head to one raw request on a fresh connection (0 if none came).
  int status_of(const std::string& request) {
    RawClient raw(server_->port(), server_->tls());
    EXPECT_TRUE(raw.connect());
    EXPECT_TRUE(raw.send(request));
    const auto head = raw.read_until("\r\n\r\n", 10s);
    last_head_ = head;
    return http_status(head);
  }
  std::string last_head_;
  std::string host() const { return "localhost:" + std::to_string(server_->port()); }
};

// --- one server per data directory ------------------------------------------------------------

TEST_F(HardeningTest, SecondServerOnTheSameDataDirIsRefusedAndTheFirstKeepsServing) {
  start_server();
  auto client = connect();
  const auto created = create_project(*client, make_dir("one"));
  ASSERT_EQ(str(created, "type"), "project_state");
  const auto lock = server_->data_dir() / "server.lock";
  EXPECT_EQ(read_file(lock), std::to_string(server_->pid()) + "\n");

  const auto second =
      run_command(server_argv(server_->data_dir()), {{"PA_AUTH_TOKEN", server_->token()}}, 30s);
  EXPECT_EQ(second.exit_code, 2) << second.output;
  EXPECT_NE(second.output.find("in use by another pocket-agent-server (pid " +
                               std::to_string(server_->pid()) + ","),
            std::string::npos)
      << second.output;
  EXPECT_EQ(second.output.find("listening on"), std::string::npos) << second.output;
  // It wrote nothing: the lock still names the first server, the tmp dir (emptied by a starting
  // hub) still exists and the first server's history is untouched.
  EXPECT_EQ(read_file(lock), std::to_string(server_->pid()) + "\n");

  // The first one is unaffected: the same connection and a new one are served.
  EXPECT_EQ(all_history(*client, str(created, "project_id")).size(), 1u);
  auto other = connect();
  EXPECT_EQ(str(other->request(Json{{"type", "project_list"}}), "type"), "project_list_response");

  // Once the first has stopped, the lock is free again (a stale pid in the file does not matter).
  client.reset();
  other.reset();
  server_->stop();
  ServerOptions again;
  again.data_dir = server_->data_dir();
  auto next = std::make_unique<ServerProcess>(again);
  ASSERT_NO_THROW(next->start());
  EXPECT_EQ(read_file(lock), std::to_string(next->pid()) + "\n");
}

// --- the token file ---------------------------------------------------------------------------

TEST_F(HardeningTest, OversizedOrMultiLineTokenFileStopsTheServerAtStart) {
  TempDir dir("pa-data");
  {
    std::ofstream out(dir / "auth_token");
    out << std::string(2 * 1024 * 1024, 'a') << "\n";
  }
  auto r = run_command(server_argv(dir.path()), {}, 30s);
  EXPECT_EQ(r.exit_code, 2) << r.output.substr(0, 2000);
  EXPECT_NE(r.output.find("at most 4096 bytes"), std::string::npos) << r.output.substr(0, 2000);
  EXPECT_EQ(r.output.find("listening on"), std::string::npos);

  {
    std::ofstream out(dir / "auth_token", std::ios::trunc);
    out << "0123456789abcdef0123\nsecond-line-0123456789\n";
  }
  r = run_command(server_argv(dir.path()), {}, 30s);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("more than one line"), std::string::npos) << r.output;

  // A token of one line (with its newline) is used as before.
  {
    std::ofstream out(dir / "auth_token", std::ios::trunc);
    out << "0123456789abcdef0123456789abcdef\n";
  }
  ServerOptions options;
  options.data_dir = dir.path();
  options.token.clear();  // use the file
  start_server(options);
  ClientOptions o;
  o.bearer = "0123456789abcdef0123456789abcdef";
  WsClient client(server_->port(), o);
  EXPECT_EQ(client.connect(), 101);
  client.close();
  server_.reset();  // before its data directory goes
}

// --- leftovers of interrupted writes ----------------------------------------------------------

TEST_F(HardeningTest, LeftoversOfInterruptedCreatesDeletesAndWritesAreRemovedAtStart) {
  TempDir dir("pa-data");
  const auto projects = dir.path() / "projects";
  // A real project first.
  std::string real_id;
  {
    ServerOptions options;
    options.data_dir = dir.path();
    start_server(options);
    auto client = connect();
    const auto created = create_project(*client, make_dir("real"));
    ASSERT_EQ(str(created, "type"), "project_state");
    real_id = str(created, "project_id");
    client.reset();
    server_->stop();
  }
  const std::string staged = "11111111-1111-4111-8111-111111111111";
  const std::string half_made = "22222222-2222-4222-8222-222222222222";
  const std::string deleting = "33333333-3333-4333-8333-333333333333";
  // A project_create killed before its rename: the staging directory with complete metadata.
  fs::create_directories(projects / (".creating-" + staged));
  std::ofstream(projects / (".creating-" + staged) / "project.json") << "{}";
  // One killed by an older server between mkdir and rename: a temp file and no metadata.
  fs::create_directories(projects / half_made);
  std::ofstream(projects / half_made / ".project.json.tmp.Ab12Cd") << "{\"id\":";
  // A project_delete killed midway.
  fs::create_directories(projects / (".deleting-" + deleting) / "logs");
  // A metadata update of the real project killed before its rename.
  std::ofstream(projects / real_id / ".project.json.tmp.Qq7Ww6") << "{";
  // A token being generated when the server was killed.
  std::ofstream(dir / ".auth_token.tmp.Zz9Yy8") << "0123";
  // Not a leftover: a project directory without metadata that holds history is kept.
  const std::string orphan = "44444444-4444-4444-8444-444444444444";
  fs::create_directories(projects / orphan / "logs");
  std::ofstream(projects / orphan / "logs" / "messages_2024-01-01_00-00-00.jsonl") << "";

  ServerOptions options;
  options.data_dir = dir.path();
  start_server(options);
  EXPECT_FALSE(fs::exists(projects / (".creating-" + staged)));
  EXPECT_FALSE(fs::exists(projects / half_made));
  EXPECT_FALSE(fs::exists(projects / (".deleting-" + deleting)));
  EXPECT_FALSE(fs::exists(projects / real_id / ".project.json.tmp.Qq7Ww6"));
  EXPECT_TRUE(fs::exists(projects / real_id / "project.json"));
  EXPECT_FALSE(fs::exists(dir / ".auth_token.tmp.Zz9Yy8"));
  EXPECT_TRUE(fs::exists(projects / orphan / "logs"));
  auto client = connect();
  const auto list = client->request(Json{{"type", "project_list"}});
  // The real project, and the orphan: history without metadata is never lost, it is listed
  // (rebuilt, without a path it could not recover).
  const auto& listed = data(list).at("projects").as_array();
  ASSERT_EQ(listed.size(), 2u) << json::serialize(list);
  EXPECT_EQ(str(listed[0].as_object(), "id"), real_id);
  EXPECT_EQ(str(listed[1].as_object(), "id"), orphan);
  EXPECT_EQ(str(listed[1].as_object(), "path"), "");
  // The removed leftovers are not reported as broken projects (the orphan still is).
  for (const auto& line : server_->log_lines()) {
    EXPECT_EQ(line.find("skipping project " + half_made), std::string::npos) << line;
    EXPECT_EQ(line.find("skipping project .creating"), std::string::npos) << line;
    EXPECT_EQ(line.find("skipping project .deleting"), std::string::npos) << line;
  }

  // New projects and deletions leave nothing behind either.
  const auto created = create_project(*client, make_dir("another"));
  ASSERT_EQ(str(created, "type"), "project_state");
  client->request(Json{{"type", "project_delete"}, {"project_id", real_id}});
  EXPECT_FALSE(fs::exists(projects / real_id));
  std::set<std::string> left;
  for (const auto& entry : fs::directory_iterator(projects))
    left.insert(entry.path().filename().string());
  EXPECT_EQ(left, (std::set<std::string>{orphan, str(created, "project_id")}));
  client.reset();
  server_.reset();  // before its data directory goes
}

// --- history descriptors ----------------------------------------------------------------------

TEST_F(HardeningTest, OpenHistoryFilesStayWithinTheBudgetWithManyProjects) {
  TempDir dir("pa-data");
  ServerOptions options;
  options.args = {"--max-projects", "400", "--server-threads", "2"};
  options.data_dir = dir.path();
  start_server(options);
  auto client = connect();
  const std::size_t before = open_descriptors(server_->pid());
  constexpr int kProjects = 300;
  std::vector<std::string> ids;
  for (int i = 0; i < kProjects; ++i) {
    const auto created = create_project(*client, make_dir("p" + std::to_string(i)));
    ASSERT_EQ(str(created, "type"), "project_state") << json::serialize(created);
    ids.push_back(str(created, "project_id"));
  }
  // Every project has history (its creation's project_state). Before the budget, each kept its
  // file open: 300 more descriptors. Now at most 64 history files, plus a few transient ones.
  const std::size_t after = open_descriptors(server_->pid());
  EXPECT_LE(after, before + 64 + 16) << "before " << before << ", after " << after;

  // Evicted files are reopened: an early project gets a new entry and reads back both, in order.
  const auto reset = client->request(Json{{"type", "agent_new_session"}, {"project_id", ids[0]}});
  ASSERT_NE(str(reset, "type"), "error") << json::serialize(reset);
  const auto entries = all_history(*client, ids[0]);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].at("seq").as_int64(), 1);
  EXPECT_EQ(entries[1].at("seq").as_int64(), 2);
  EXPECT_LE(open_descriptors(server_->pid()), before + 64 + 16);

  // After a restart the seq numbers go on (nothing was lost when files were closed).
  client.reset();
  server_->stop();
  start_server(options);
  auto next = connect();
  const auto more = next->request(Json{{"type", "agent_new_session"}, {"project_id", ids[0]}});
  ASSERT_NE(str(more, "type"), "error") << json::serialize(more);
  const auto all = all_history(*next, ids[0]);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[2].at("seq").as_int64(), 3);
  next.reset();     // a client that does not answer the close would hold the shutdown 5 s
  server_.reset();  // before its data directory goes
}

// Out of descriptors, a request that needs one gets INTERNAL_ERROR saying so (not INVALID_PATH
// or a vague storage error), and the server recovers once descriptors are free again.
TEST_F(HardeningTest, OutOfDescriptorsIsReportedAsSuchAndTheServerRecovers) {
  start_server();
  ASSERT_TRUE(server_->wait_for_log(
      [](const std::string& l) { return l.find("claude CLI available") != std::string::npos; },
      20s));
  auto client = connect();
  auto exhausted = exhaust_descriptors(*server_);
  const rlim_t kLimit = exhausted.limit;
  ASSERT_EQ(open_descriptors(server_->pid()), kLimit);
  const auto refused = create_project(*client, make_dir("starved"));
  EXPECT_EQ(error_code(refused), "INTERNAL_ERROR") << json::serialize(refused);
  EXPECT_NE(str(data(refused), "message").find("ran out of file descriptors"), std::string::npos)
      << json::serialize(refused);
  EXPECT_NE(str(data(refused), "message").find("ulimit -n"), std::string::npos);
  // Nothing half-made was left in the data directory.
  std::size_t entries = 0;
  std::error_code ec;
  for (fs::directory_iterator it(server_->data_dir() / "projects", ec), end; !ec && it != end;
       it.increment(ec))
    ++entries;
  EXPECT_EQ(entries, 0u);

  ASSERT_TRUE(release_descriptors(*server_, exhausted))
      << open_descriptors(server_->pid()) << " open, " << exhausted.open_before << " before";
  const auto created = create_project(*client, make_dir("fed"));
  EXPECT_EQ(str(created, "type"), "project_state") << json::serialize(created);
}

// --- HTTP strictness --------------------------------------------------------------------------

TEST_F(HardeningTest, UnknownTransferEncodingIs501) {
  start_server();
  auto got = exchange("POST /health HTTP/1.1\r\nHost: " + host() +
                      "\r\nTransfer-Encoding: gzip\r\n\r\nGET /health HTTP/1.1\r\nHost: " + host() +
                      "\r\n\r\n");
  EXPECT_EQ(http_status(got), 501) << got;
  EXPECT_NE(got.find("Transfer-Encoding"), std::string::npos) << got;
  // The smuggled second request was not answered.
  EXPECT_EQ(got.find("HTTP/1.1", 8), std::string::npos) << got;

  got = exchange("POST /health HTTP/1.1\r\nHost: " + host() +
                 "\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n");
  EXPECT_EQ(http_status(got), 501) << got;

  // Chunked alone is HTTP/1.1 and is read as usual (then 404: nothing takes a POST).
  got = exchange("POST /nothing HTTP/1.1\r\nHost: " + host() +
                 "\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n");
  EXPECT_EQ(http_status(got), 404) << got;
}

TEST_F(HardeningTest, MissingOrDoubledHostIs400) {
  start_server();
  auto got = exchange("GET /health HTTP/1.1\r\n\r\n");
  EXPECT_EQ(http_status(got), 400) << got;
  EXPECT_NE(got.find("no Host"), std::string::npos) << got;

  got = exchange("GET /health HTTP/1.1\r\nHost: " + host() + "\r\nHost: " + host() + "\r\n\r\n");
  EXPECT_EQ(http_status(got), 400) << got;
  EXPECT_NE(got.find("more than one Host"), std::string::npos) << got;

  // The same for an upgrade with a valid token.
  got = exchange("GET /ws HTTP/1.1\r\nHost: " + host() + "\r\nHost: evil.example\r\n" +
                 "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
                 "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer " +
                 server_->token() + "\r\n\r\n");
  EXPECT_EQ(http_status(got), 400) << got;
}

TEST_F(HardeningTest, ExpectContinueIsAnsweredNotWaitedOn) {
  start_server();
  // A client that waits for 100 Continue before sending its body gets a final answer at once.
  RawClient raw(server_->port(), true);
  ASSERT_TRUE(raw.connect());
  ASSERT_TRUE(raw.send("POST /health HTTP/1.1\r\nHost: " + host() +
                       "\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n"));
  const auto head = raw.read_until("\r\n\r\n", 5s);
  EXPECT_EQ(http_status(head), 417) << head;
  auto rest = raw.read_until_closed(5s);
  EXPECT_TRUE(rest.closed);

  // An unknown expectation: 417 too.
  auto got =
      exchange("GET /health HTTP/1.1\r\nHost: " + host() + "\r\nExpect: something-else\r\n\r\n");
  EXPECT_EQ(http_status(got), 417) << got;

  // Without a body there is nothing to wait for: served as usual.
  got = exchange("GET /health HTTP/1.1\r\nHost: " + host() +
                 "\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(http_status(got), 200) << got;
}

// --- DNS rebinding ----------------------------------------------------------------------------

TEST_F(HardeningTest, HostThatIsNotTheServersNameIs403) {
  ServerOptions options;
  options.args = {"--allowed-hosts", "agent.example.com,*.lan.example", "--limits-connection-rate",
                  "0"};
  start_server(options);
  const std::string port = std::to_string(server_->port());
  const auto upgrade_with = [&](const std::string& name) {
    return "GET /ws HTTP/1.1\r\nHost: " + name + ":" + port +
           "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
           "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer " +
           server_->token() + "\r\nOrigin: https://" + name + ":" + port + "\r\n\r\n";
  };
  // A page from the attacker's name (resolving to this server) is same-origin for the browser:
  // Origin and Host agree, so only the Host check stops it.
  auto got = exchange(upgrade_with("rebind.attacker.example"));
  EXPECT_EQ(http_status(got), 403) << got;
  EXPECT_NE(got.find("DNS rebinding"), std::string::npos) << got;
  EXPECT_NE(got.find("server.allowed_hosts"), std::string::npos) << got;
  // The console's files and /health too.
  got = exchange("GET / HTTP/1.1\r\nHost: rebind.attacker.example:" + port + "\r\n\r\n");
  EXPECT_EQ(http_status(got), 403) << got;
  got = exchange("GET /health HTTP/1.1\r\nHost: rebind.attacker.example\r\n\r\n");
  EXPECT_EQ(http_status(got), 403) << got;
  // Not fooled by a name that only starts or ends like an allowed one.
  got = exchange("GET /health HTTP/1.1\r\nHost: agent.example.com.attacker.example\r\n\r\n");
  EXPECT_EQ(http_status(got), 403) << got;
  got = exchange("GET /health HTTP/1.1\r\nHost: xlan.example\r\n\r\n");
  EXPECT_EQ(http_status(got), 403) << got;

  // The server's own names pass: localhost, loopback addresses, any IP literal (a rebinding
  // needs a name), the machine's name, server.allowed_hosts (exact and *.), case-insensitively.
  char hostname[256] = {};
  ASSERT_EQ(::gethostname(hostname, sizeof hostname - 1), 0);
  for (const std::string& name :
       {std::string("localhost"), std::string("127.0.0.1"), std::string("[::1]"),
        std::string("192.0.2.7"), std::string(hostname), std::string("Agent.Example.COM"),
        std::string("box.lan.example")}) {
    EXPECT_EQ(status_of(upgrade_with(name)), 101) << name << ": " << last_head_;
  }
}

TEST_F(HardeningTest, CertificateNamesAndAllowedOriginHostsAreTheServersNames) {
  TempDir certs("pa-certs");
  const auto cert = (certs / "server.crt").string();
  const auto key = (certs / "server.key").string();
  const auto made = run_command({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                                 "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out",
                                 cert, "-days", "2", "-subj", "/CN=pocket.test", "-addext",
                                 "subjectAltName=DNS:pocket.test,DNS:*.pocket.test"});
  ASSERT_EQ(made.exit_code, 0) << made.output;
  ServerOptions options;
  options.tls_cert = cert;
  options.tls_key = key;
  options.args = {"--allowed-origins", "https://proxy.example.org"};
  start_server(options);
  for (const std::string name : {"pocket.test", "phone.pocket.test", "proxy.example.org"}) {
    EXPECT_EQ(status_of("GET /health HTTP/1.1\r\nHost: " + name + "\r\n\r\n"), 200)
        << name << ": " << last_head_;
  }
  const auto got = exchange("GET /health HTTP/1.1\r\nHost: other.test\r\n\r\n");
  EXPECT_EQ(http_status(got), 403) << got;
}

}  // namespace
}  // namespace pa::test
