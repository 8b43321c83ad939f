// Cluster mode (issue 20): several servers (separate data dirs, ports and project roots) joined
// through one real Redis (Debian's redis-server, started by the test on 127.0.0.1). A client on
// one node uses another node's projects exactly as that node's own clients do: the same lines
// in the same order, permission answers, history pages. Owner crashes, Redis restarts and forged
// node messages are handled without losing a line.
#include <set>

#include "integration/fixture.hpp"
#include "support/push_service_double.hpp"
#include "support/redis_server.hpp"

namespace pa::test {
namespace {

namespace fs = std::filesystem;

constexpr const char* kSecret = "cluster-test-secret-0123456789abcdef0123456789";
constexpr const char* kAsk = "[[fake:permission command=\"touch made-by-remote.txt\"]]";

// A seq'd broadcast as every subscriber must see it: without request_id (the requester's own
// copy carries one, and its keys come in another order: objects compare as sets of members).
Json feed_item(Json message) {
  message.erase("request_id");
  return message;
}

class ClusterTest : public ::testing::Test {
 protected:
  struct Node {
    std::string name;
    std::unique_ptr<ServerProcess> server;
    std::unique_ptr<TempDir> root;  // its projects' directories
    fs::path data_dir;
  };

  void SetUp() override {
    if (!RedisServer::available()) GTEST_SKIP() << "redis-server is not installed";
    redis_ = std::make_unique<RedisServer>();
    redis_->start();
  }
  void TearDown() override {
    if (!HasFailure()) return;
    for (const auto& [name, node] : nodes_) {
      if (!node.server) continue;
      const auto lines = node.server->log_lines();
      const std::size_t from = lines.size() > 40 ? lines.size() - 40 : 0;
      std::cerr << "--- last log lines of node " << name << " ---\n";
      for (std::size_t i = from; i < lines.size(); ++i) std::cerr << lines[i] << "\n";
    }
  }

  Node& start_node(const std::string& name) {
    Node& node = nodes_[name];
    node.name = name;
    if (!node.root) node.root = std::make_unique<TempDir>("pa-root-" + name);
    ServerOptions options;
    options.data_dir = node.data_dir;  // empty the first time: a fresh temp dir
    options.args = {"--cluster-redis-url",
                    redis_->url(),
                    "--cluster-node-name",
                    name,
                    "--cluster-secret",
                    kSecret,
                    "--cluster-heartbeat-ttl",
                    "2s",
                    "--projects-allowed-roots",
                    node.root->path().string(),
                    "--notify-push-service-hosts",
                    "localhost,127.0.0.1",
                    "--notify-ca-file",
                    test_certificate().cert,
                    "--claude-env",
                    "FAKE_CLAUDE_STATE_DIR=" + (state_.path() / "sessions").string()};
    node.server = std::make_unique<ServerProcess>(options);
    node.server->start();
    node.data_dir = node.server->data_dir();
    return node;
  }
  // SIGKILL: the node's data dir stays for its restart.
  void kill_node(const std::string& name) {
    Node& node = nodes_.at(name);
    node.server->kill_hard();
    killed_.push_back(std::move(node.server));
  }

  std::unique_ptr<WsClient> client_of(const std::string& name, bool answers_permissions = false) {
    const auto& server = *nodes_.at(name).server;
    ClientOptions o;
    o.bearer = server.token();
    auto client = std::make_unique<WsClient>(server.port(), o);
    EXPECT_EQ(client->connect(), 101) << client->response_body();
    if (answers_permissions) {
      const auto welcome = client->request(
          Json{{"type", "hello"},
               {"data", {{"protocol", 1}, {"capabilities", json::array{"permissions"}}}}});
      EXPECT_TRUE(is(welcome, "welcome")) << json::serialize(welcome);
    }
    return client;
  }

  // Waits until `client`'s node sees every node in `names` up (health.cluster.nodes).
  static bool sees_up(WsClient& client, const std::vector<std::string>& names) {
    return eventually(
        [&] {
          const auto health = client.request(Json{{"type", "health"}});
          const auto* cluster = data(health).if_contains("cluster");
          if (!cluster || !cluster->is_object()) return false;
          std::set<std::string> up;
          for (const auto& node : cluster->as_object().at("nodes").as_array()) {
            if (str(node.as_object(), "state") == "up") up.insert(str(node.as_object(), "name"));
          }
          for (const auto& name : names) {
            if (!up.count(name)) return false;
          }
          return true;
        },
        20s);
  }

  // Nodes a and b; a project on b that a client on a joined (and b's creator is subscribed to).
  struct RemoteSubscriber {
    std::unique_ptr<WsClient> on_a, on_b;
    std::string id;
    std::int64_t joined_at = 0;  // the last_seq of a's project_joined
  };
  RemoteSubscriber remote_subscriber() {
    start_node("a");
    start_node("b");
    RemoteSubscriber r{client_of("a"), client_of("b"), {}, 0};
    if (!sees_up(*r.on_a, {"b"})) {
      ADD_FAILURE() << "node a never saw node b";
      return r;
    }
    const auto id = create_on(*r.on_b, "b", "repo");
    const auto joined =
        r.on_a->request(Json{{"type", "project_join"}, {"data", {{"project_id", id}}}});
    if (!is(joined, "project_joined")) {
      ADD_FAILURE() << json::serialize(joined);
      return r;
    }
    r.id = id;
    r.joined_at = data(joined).at("last_seq").as_int64();
    return r;
  }

  std::string create_on(WsClient& client, const std::string& owner, const std::string& dir) {
    const auto path = nodes_.at(owner).root->path() / dir;
    fs::create_directories(path);
    const auto created = client.request(
        Json{{"type", "project_create"}, {"data", {{"path", path.string()}, {"node", owner}}}});
    EXPECT_TRUE(is(created, "project_state")) << json::serialize(created);
    return str(created, "project_id");
  }

  static Json execute(WsClient& client, const std::string& id, const std::string& prompt) {
    return client.request(
        Json{{"type", "execute"}, {"project_id", id}, {"data", {{"prompt", prompt}}}});
  }

  // Reads until the project is IDLE again; returns every message read (skipped ones included).
  static std::vector<Json> until_idle(WsClient& client, std::chrono::milliseconds deadline = 60s) {
    std::vector<Json> seen;
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < until) {
      auto m = client.read(1s);
      if (!m) {
        if (!client.is_open()) break;
        continue;
      }
      seen.push_back(*m);
      if (is_idle(*m) && !m->contains("request_id")) return seen;
    }
    ADD_FAILURE() << "the project did not become IDLE";
    return seen;
  }

  // The seq'd broadcasts among `messages`, as feed items, in the order received.
  static std::vector<Json> feed(const std::vector<Json>& messages) {
    std::vector<Json> out;
    for (const auto& m : messages) {
      if (m.contains("seq")) out.push_back(feed_item(m));
    }
    return out;
  }
  // The two feeds are the same, item for item (the first difference is shown).
  static void expect_same_feed(const std::vector<Json>& a, const std::vector<Json>& b) {
    EXPECT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
      if (a[i] != b[i]) {
        ADD_FAILURE() << "item " << i << " differs:\n"
                      << json::serialize(a[i]) << "\n"
                      << json::serialize(b[i]);
        return;
      }
    }
  }
  // Checks the seqs received are strictly increasing (no duplicate, in order) and cover every
  // broadcast in history after `after_seq` (no gap).
  static void expect_gap_free(const std::vector<Json>& received, const std::vector<Json>& history,
                              std::int64_t after_seq) {
    std::vector<std::int64_t> seqs;
    for (const auto& m : received) {
      if (m.contains("seq")) seqs.push_back(m.at("seq").as_int64());
    }
    for (std::size_t i = 1; i < seqs.size(); ++i) ASSERT_LT(seqs[i - 1], seqs[i]) << "at " << i;
    std::set<std::int64_t> got(seqs.begin(), seqs.end());
    std::size_t broadcasts = 0;
    for (const auto& entry : history) {
      const auto seq = entry.at("seq").as_int64();
      if (seq <= after_seq || str(entry, "direction") == "client") continue;
      ++broadcasts;
      EXPECT_TRUE(got.count(seq)) << "broadcast " << seq
                                  << " never arrived: " << json::serialize(entry);
    }
    EXPECT_GT(broadcasts, 0u);
  }

  std::unique_ptr<RedisServer> redis_;
  std::map<std::string, Node> nodes_;
  std::vector<std::unique_ptr<ServerProcess>> killed_;
  TempDir state_{"pa-cluster-state"};
};

// Must show 1: three nodes; a client on A runs a prompt in B's project and gets every line, in
// order, identical to what a client on B gets; answers B's permission request from A; pages
// B's history from A. C lists the project with its owner.
TEST_F(ClusterTest, AClientOnOneNodeUsesAnotherNodesProjectLikeItsOwnClients) {
  start_node("a");
  start_node("b");
  start_node("c");
  auto on_a = client_of("a", /*answers_permissions=*/true);
  auto on_b = client_of("b");
  auto on_c = client_of("c");
  ASSERT_TRUE(sees_up(*on_a, {"b", "c"}));
  ASSERT_TRUE(sees_up(*on_c, {"a", "b"}));

  // Created from A on B: B checks the path with its own policy (A's root is not allowed there).
  const auto wrong = on_a->request(
      Json{{"type", "project_create"},
           {"data", {{"path", nodes_.at("a").root->path().string()}, {"node", "b"}}}});
  EXPECT_EQ(error_code(wrong), "INVALID_PATH") << json::serialize(wrong);
  const auto unknown = on_a->request(
      Json{{"type", "project_create"}, {"data", {{"path", "/tmp"}, {"node", "nowhere"}}}});
  EXPECT_EQ(error_code(unknown), "INVALID_MESSAGE") << json::serialize(unknown);

  const auto id = create_on(*on_b, "b", "repo");
  ASSERT_FALSE(id.empty());
  const auto listed = project_listed(*on_c, id);
  EXPECT_EQ(str(listed, "node"), "b");
  EXPECT_EQ(str(listed, "state"), "IDLE");

  const auto joined = on_a->request(Json{{"type", "project_join"}, {"data", {{"project_id", id}}}});
  ASSERT_TRUE(is(joined, "project_joined")) << json::serialize(joined);

  const auto started = execute(*on_a, id, "[[fake:drip lines=30 interval_ms=5]]");
  ASSERT_TRUE(is_state(started, "EXECUTING")) << json::serialize(started);
  auto seen_a = until_idle(*on_a);
  seen_a.insert(seen_a.begin(), started);  // its own copy was the reply
  const auto seen_b = until_idle(*on_b);
  const auto feed_a = feed(seen_a);
  const auto feed_b = feed(seen_b);
  ASSERT_GE(feed_a.size(), 30u);
  expect_same_feed(feed_a, feed_b);
  EXPECT_EQ(cli_lines_of_type(seen_a, "assistant").size(), 30u);

  // History paged from A is B's history, entry for entry.
  const auto history_a = all_history(*on_a, id);
  const auto history_b = all_history(*on_b, id);
  ASSERT_FALSE(history_a.empty());
  EXPECT_EQ(history_a, history_b);
  const auto page = on_a->request(Json{
      {"type", "get_messages"}, {"project_id", id}, {"data", {{"after_seq", 2}, {"limit", 3}}}});
  ASSERT_TRUE(is(page, "messages_response")) << json::serialize(page);
  EXPECT_EQ(data(page).at("messages").as_array().size(), 3u);
  EXPECT_TRUE(data(page).at("has_more").as_bool());

  // B's run asks for a permission; only A's client declared it answers them.
  ASSERT_TRUE(is_state(execute(*on_b, id, kAsk), "EXECUTING"));
  const auto ask = on_a->read_until([](const Json& m) { return is(m, "permission_request"); }, 30s);
  ASSERT_TRUE(ask);
  const auto resolved = on_a->request(
      Json{{"type", "permission_response"},
           {"project_id", id},
           {"data", {{"permission_id", str(data(*ask), "permission_id")}, {"decision", "allow"}}}});
  EXPECT_TRUE(is(resolved, "permission_resolved")) << json::serialize(resolved);
  EXPECT_EQ(str(data(resolved), "decision"), "allow");
  const auto after_ask = until_idle(*on_b);
  const auto resolutions = of_type(after_ask, "permission_resolved");
  ASSERT_EQ(resolutions.size(), 1u);
  EXPECT_EQ(str(data(resolutions[0]), "decision"), "allow");
  // The tool ran: its result is not an error.
  const auto results = tool_result_blocks(after_ask);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].contains("is_error") && results[0].at("is_error").as_bool());

  // Errors come back as the owner gives them.
  const auto bad = on_a->request(
      Json{{"type", "permission_response"},
           {"project_id", id},
           {"data", {{"permission_id", "no-such-permission"}, {"decision", "allow"}}}});
  EXPECT_EQ(error_code(bad), "PERMISSION_NOT_FOUND") << json::serialize(bad);
  const auto missing =
      on_a->request(Json{{"type", "project_join"}, {"data", {{"project_id", "no-such-project"}}}});
  EXPECT_EQ(error_code(missing), "PROJECT_NOT_FOUND") << json::serialize(missing);
}

// Steering another node's run from A: a follow-up queued into it, an interrupt, a kill: each
// answered as the owner answers its own clients.
TEST_F(ClusterTest, ARemoteClientQueuesInterruptsAndKillsAnotherNodesRun) {
  const auto nodes = remote_subscriber();
  WsClient* on_a = nodes.on_a.get();
  WsClient* on_b = nodes.on_b.get();
  const std::string& id = nodes.id;
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(is_state(execute(*on_a, id, "[[fake:hang]]"), "EXECUTING"));
  const auto queued =
      on_a->request(Json{{"type", "execute"},
                         {"project_id", id},
                         {"data", {{"prompt", "[[fake:text]]"}, {"mode", "queue"}}}});
  EXPECT_TRUE(is(queued, "prompt_queued")) << json::serialize(queued);
  const auto interrupted =
      on_a->request(Json{{"type", "agent_interrupt"}, {"project_id", id}}, 30s);
  ASSERT_TRUE(is_state(interrupted, "IDLE")) << json::serialize(interrupted);
  EXPECT_EQ(str(data(interrupted).at("ended").as_object(), "reason"), "interrupted");

  ASSERT_TRUE(is_state(execute(*on_a, id, "[[fake:hang]]"), "EXECUTING"));
  const auto killed = on_a->request(Json{{"type", "agent_kill"}, {"project_id", id}}, 30s);
  ASSERT_TRUE(is_state(killed, "IDLE")) << json::serialize(killed);
  EXPECT_EQ(str(data(killed).at("ended").as_object(), "reason"), "killed");
  // B's own client saw the same ends.
  const auto ended = on_b->read_until(
      [](const Json& m) {
        return is_idle(m) && data(m).contains("ended") &&
               str(data(m).at("ended").as_object(), "reason") == "killed";
      },
      30s);
  EXPECT_TRUE(ended);
}

// Must show 2: B is SIGKILLed during a run; A shows B's projects UNAVAILABLE; B restarts, the run
// (which outlived it, issue 10) and A's subscriber go on with no gap.
TEST_F(ClusterTest, AKilledOwnerIsUnavailableAndItsRunContinuesWhenItReturns) {
  auto [on_a, on_b, id, joined_at] = remote_subscriber();
  ASSERT_FALSE(id.empty());
  const auto started = execute(*on_a, id, "[[fake:drip lines=60 interval_ms=100]]");
  ASSERT_TRUE(is_state(started, "EXECUTING"));
  std::vector<Json> received{started};
  std::size_t lines_before = 0;
  const auto first = on_a->read_until(
      [&](const Json& m) {
        received.push_back(m);
        lines_before += cli_lines_of_type({m}, "assistant").size();
        return lines_before == 5;
      },
      30s);
  ASSERT_TRUE(first);
  kill_node("b");

  // Within the heartbeat TTL (2 s) and a tick: B's project is UNAVAILABLE on A.
  const auto unavailable = on_a->read_until(
      [&](const Json& m) {
        received.push_back(m);
        return is_state(m, "UNAVAILABLE");
      },
      20s);
  ASSERT_TRUE(unavailable);
  EXPECT_EQ(str(data(*unavailable), "node"), "b");
  EXPECT_EQ(str(project_listed(*on_a, id), "state"), "UNAVAILABLE");
  const auto refused = execute(*on_a, id, "again");
  EXPECT_EQ(error_code(refused), "NODE_UNAVAILABLE") << json::serialize(refused);

  start_node("b");
  auto rest = until_idle(*on_a, 90s);
  received.insert(received.end(), rest.begin(), rest.end());
  auto on_b2 = client_of("b");
  const auto history = all_history(*on_b2, id);
  expect_gap_free(received, history, joined_at);
  std::size_t lines = 0;
  for (const auto& m : received) {
    if (m.contains("seq")) lines += cli_lines_of_type({m}, "assistant").size();
  }
  EXPECT_EQ(lines, 60u);
}

// Must show 3: Redis restarts (losing everything: no persistence) during a run; the remote
// subscriber misses no line, the local one is unaffected.
TEST_F(ClusterTest, ARedisRestartLosesNoLine) {
  auto [on_a, on_b, id, joined_at] = remote_subscriber();
  ASSERT_FALSE(id.empty());
  const auto started = execute(*on_b, id, "[[fake:drip lines=60 interval_ms=80]]");
  ASSERT_TRUE(is_state(started, "EXECUTING"));
  std::vector<Json> received;
  ASSERT_TRUE(on_a->read_until(
      [&](const Json& m) {
        received.push_back(m);
        return cli_lines_of_type({m}, "assistant").size() == 1;
      },
      30s));
  redis_->stop();
  ASSERT_TRUE(nodes_.at("b").server->wait_for_log(
      [](const std::string& line) { return line.find("connection lost") != std::string::npos; },
      20s));
  redis_->start();
  auto rest_a = until_idle(*on_a, 90s);
  received.insert(received.end(), rest_a.begin(), rest_a.end());
  auto seen_b = until_idle(*on_b, 90s);
  seen_b.insert(seen_b.begin(), started);
  const auto history = all_history(*on_b, id);
  expect_gap_free(received, history, joined_at);
  expect_gap_free(seen_b, history, joined_at);
  std::size_t lines_a = 0, lines_b = 0;
  for (const auto& m : received) lines_a += cli_lines_of_type({m}, "assistant").size();
  for (const auto& m : seen_b) lines_b += cli_lines_of_type({m}, "assistant").size();
  EXPECT_EQ(lines_a, 60u);
  EXPECT_EQ(lines_b, 60u);
}

// Must show 4: a command written to a node's stream without the cluster secret is refused and
// logged, and does nothing.
TEST_F(ClusterTest, AForgedCommandIsRefusedAndLogged) {
  start_node("a");
  start_node("b");
  auto on_b = client_of("b");
  ASSERT_TRUE(sees_up(*on_b, {"a"}));
  const auto path = nodes_.at("b").root->path() / "forged";
  fs::create_directories(path);
  const std::string text =
      json::serialize(Json{{"type", "project_create"}, {"data", {{"path", path.string()}}}});
  const std::string body = json::serialize(Json{{"rid", "r1"},
                                                {"who",
                                                 {{"conn", 1},
                                                  {"role", "admin"},
                                                  {"device_id", ""},
                                                  {"device_name", ""},
                                                  {"client_name", "forger"},
                                                  {"caps", json::array{}}}},
                                                {"text", text}});
  const auto now = std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::system_clock::now().time_since_epoch())
                                      .count());
  redis_->cli({"XADD", "pa:cmd:b", "*", "k", "req", "from", "a", "boot", "0123", "ts", now, "b",
               body, "m", std::string(64, 'f')});
  EXPECT_TRUE(nodes_.at("b").server->wait_for_log(
      [](const std::string& line) {
        return line.find("refused an entry on pa:cmd:b") != std::string::npos &&
               line.find("bad MAC") != std::string::npos;
      },
      20s));
  // A forged reply and event are refused the same way (A reads its reply stream).
  redis_->cli(
      {"XADD", "pa:reply:a", "*", "k", "frame", "from", "b", "boot", "0123", "ts", now, "m", "00"});
  EXPECT_TRUE(nodes_.at("a").server->wait_for_log(
      [](const std::string& line) {
        return line.find("refused an entry on pa:reply:a") != std::string::npos;
      },
      20s));
  const auto list = on_b->request(Json{{"type", "project_list"}});
  EXPECT_TRUE(data(list).at("projects").as_array().empty()) << json::serialize(list);
}

// What every node shares: a device paired through one node (its code redeemed on another, as
// behind a load balancer) signs in on every node; a code works once in the whole cluster; a
// device revoked on one node is disconnected and refused on all.
TEST_F(ClusterTest, DevicesAndTheirRevocationsAreTheWholeClusters) {
  start_node("a");
  start_node("b");
  auto admin_a = client_of("a");
  ASSERT_TRUE(sees_up(*admin_a, {"b"}));
  const auto& a = *nodes_.at("a").server;
  const auto& b = *nodes_.at("b").server;
  const auto code = admin_a->request(
      Json{{"type", "device_pair"}, {"data", {{"role", "operator"}, {"name", "Phone"}}}});
  ASSERT_TRUE(is(code, "device_pairing")) << json::serialize(code);
  const std::string body = json::serialize(Json{{"code", str(data(code), "code")}});
  const auto redeemed =
      http_post(b.port(), true, "/pair", body, {{"Content-Type", "application/json"}});
  ASSERT_EQ(redeemed.status, 200) << redeemed.body;
  // Once in the whole cluster: the node that made it refuses it now.
  const auto again =
      http_post(a.port(), true, "/pair", body, {{"Content-Type", "application/json"}});
  EXPECT_EQ(again.status, 410) << again.body;
  const auto device = json::parse(redeemed.body).as_object();
  const std::string token = str(device, "token");

  const auto connect_with = [&](const ServerProcess& server) {
    ClientOptions o;
    o.bearer = token;
    auto client = std::make_unique<WsClient>(server.port(), o);
    return std::make_pair(client->connect(), std::move(client));
  };
  // A takes the device at its next heartbeat.
  std::unique_ptr<WsClient> on_a;
  ASSERT_TRUE(eventually(
      [&] {
        auto [status, client] = connect_with(a);
        if (status != 101) return false;
        on_a = std::move(client);
        return true;
      },
      20s));
  auto [status_b, on_b] = connect_with(b);
  ASSERT_EQ(status_b, 101);
  const auto list = admin_a->request(Json{{"type", "device_list"}});
  ASSERT_EQ(data(list).at("devices").as_array().size(), 1u) << json::serialize(list);
  EXPECT_EQ(str(data(list).at("devices").at(0).as_object(), "name"), "Phone");

  // Revoked on A: B closes its connection with 4401 and refuses the token.
  const auto revoked = admin_a->request(
      Json{{"type", "device_revoke"}, {"data", {{"device_id", str(device, "device_id")}}}});
  ASSERT_TRUE(is(revoked, "device_revoked")) << json::serialize(revoked);
  const auto closed = on_b->wait_closed(20s);
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->code, 4401);
  EXPECT_EQ(connect_with(b).first, 401);
}

// Notifications: every node pushes with the cluster's Web Push key and knows every
// subscription, so a run ending on B reaches a phone that subscribed through A; an unsubscribe on
// A reaches B too.
TEST_F(ClusterTest, APhoneSubscribedThroughOneNodeHearsFromAnother) {
  PushServiceDouble push;
  start_node("a");
  start_node("b");
  auto on_a = client_of("a");
  auto on_b = client_of("b");
  ASSERT_TRUE(sees_up(*on_a, {"b"}));
  const auto push_info = [](WsClient& client, const std::string& endpoint) {
    Json d;
    if (!endpoint.empty()) d["endpoint"] = endpoint;
    return client.request(Json{{"type", "push_info"}, {"data", std::move(d)}});
  };
  const std::string key = str(data(push_info(*on_a, {})), "vapid_public_key");
  ASSERT_FALSE(key.empty());
  EXPECT_EQ(str(data(push_info(*on_b, {})), "vapid_public_key"), key);
  push.expect_server_key(key);

  const auto phone = push.subscribe("phone");
  const auto subscribed =
      on_a->request(Json{{"type", "push_subscribe"},
                         {"data",
                          {{"subscription",
                            {{"endpoint", phone.endpoint},
                             {"keys", {{"p256dh", phone.p256dh}, {"auth", phone.auth}}}}}}}});
  ASSERT_TRUE(is(subscribed, "push_subscribed")) << json::serialize(subscribed);
  const auto b_knows = [&] {
    return data(push_info(*on_b, phone.endpoint)).at("subscription").is_object();
  };
  ASSERT_TRUE(eventually(b_knows, 20s));

  const auto id = create_on(*on_b, "b", "repo");
  ASSERT_TRUE(is_state(execute(*on_b, id, "hi"), "EXECUTING"));
  until_idle(*on_b);
  const auto sent = push.messages().wait_for(
      [&](const PushMessage& m) {
        return m.endpoint_name == "phone" && m.field("event") == "run_succeeded" &&
               m.field("project_id") == id;
      },
      30s);
  ASSERT_TRUE(sent) << "no run_succeeded push from node b";
  EXPECT_TRUE(sent->vapid_ok);
  EXPECT_TRUE(sent->problems.empty()) << sent->problems.front();

  const auto gone =
      on_a->request(Json{{"type", "push_unsubscribe"}, {"data", {{"endpoint", phone.endpoint}}}});
  EXPECT_FALSE(is(gone, "error")) << json::serialize(gone);
  EXPECT_TRUE(eventually([&] { return !b_knows(); }, 20s));
}

// A node that cannot join says why and stops (exit 2) before serving: a short secret, a bad
// URL, a bad node name. Redis is not needed for that.
TEST(ClusterStartupTest, BadClusterSettingsStopTheServerWithAReason) {
  TempDir data("pa-data");
  const auto& cert = test_certificate();
  const auto start = [&](std::vector<std::string> cluster_args) {
    std::vector<std::string> argv{
        PA_SERVER_BINARY, "--port",  "0",         "--data-dir", data.path().string(),
        "--tls-cert",     cert.cert, "--tls-key", cert.key};
    argv.insert(argv.end(), cluster_args.begin(), cluster_args.end());
    return run_command(with_root_flag(argv), {{"PA_AUTH_TOKEN", "test-token-0123456789abcdef"}});
  };
  auto r = start({"--cluster-redis-url", "redis://127.0.0.1:1", "--cluster-secret", "short"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("cluster.secret must be set"), std::string::npos) << r.output;
  r = start({"--cluster-redis-url", "http://127.0.0.1:1", "--cluster-secret", kSecret});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("cluster.redis_url"), std::string::npos) << r.output;
  r = start({"--cluster-redis-url", "redis://127.0.0.1:1", "--cluster-secret", kSecret,
             "--cluster-node-name", "bad name/../x"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("is not a node name"), std::string::npos) << r.output;
  // The URL's password never reaches the output.
  r = start({"--cluster-redis-url", "redis://:hunter2-password@127.0.0.1:1", "--cluster-secret",
             "short"});
  EXPECT_EQ(r.output.find("hunter2-password"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace pa::test
