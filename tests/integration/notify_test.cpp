// Issue 17 through the real server: Web Push to a push-service double (which checks VAPID and
// decrypts every message), ntfy and webhook targets against local doubles, focus suppression,
// withdrawn permission notifications, removed subscriptions, metrics, and what never leaks.
#include <sys/stat.h>

#include <regex>
#include <set>

#include "common/hex.hpp"
#include "integration/fixture.hpp"
#include "integration/small_disk.hpp"
#include "notify/base64url.hpp"
#include "notify/channels.hpp"
#include "notify/digest.hpp"
#include "support/hook_double.hpp"
#include "support/push_service_double.hpp"

namespace pa::test {
namespace {

constexpr auto kPushWait = 30s;  // a push under load (sanitizer builds, a busy machine)
constexpr const char* kNtfyToken = "tk_ntfy_0123456789abcdef";
constexpr const char* kWebhookSecret = "whsec_fedcba9876543210";
constexpr const char* kAsk = "[[fake:permission command=\"touch made-by-tool.txt\"]]";
const std::vector<std::string> kAllEvents = {"permission_request", "run_succeeded", "run_failed",
                                             "run_timeout",        "run_lost",      "queue_drained",
                                             "server_problem"};

class NotifyTest : public AgentServerTest {
 protected:
  NotifyTest() { answers_permissions_ = true; }
  void SetUp() override { start_notify_server(); }
  // The server stops before the doubles and directories it uses go (they are ours; server_ is
  // the base's and would outlive them).
  void TearDown() override {
    AgentServerTest::TearDown();
    server_.reset();
    if (disk_ && !disk_->path().empty()) kill_supervisors_of(disk_->path() / "data");
  }

  // The server with a config.yaml that trusts the push double and names the ntfy and webhook
  // doubles as targets (and an ntfy topic for failures only); `args` adds flags, `data_dir`
  // reuses one (restarts).
  void start_notify_server(std::vector<std::string> args = {},
                           const std::filesystem::path& data_dir = {}) {
    const auto config = config_dir_ / "config.yaml";
    std::ofstream(config, std::ios::trunc) << "notify:\n"
                                           << "  push_service_hosts: [localhost, 127.0.0.1]\n"
                                           << "  ca_file: \"" << test_certificate().cert << "\"\n";
    if (with_targets_) {
      std::ofstream(config, std::ios::app)
          << "  targets:\n"
          << "    - type: ntfy\n"
          << "      url: \"" << ntfy_.url("/pocket-agent") << "\"\n"
          << "      token: \"" << kNtfyToken << "\"\n"
          << "    - type: webhook\n"
          << "      url: \"" << webhook_.url("/hook") << "\"\n"
          << "      secret: \"" << kWebhookSecret << "\"\n"
          << "    - type: ntfy\n"
          << "      url: \"" << ntfy_.url("/failures-only") << "\"\n"
          << "      events: [run_failed]\n";
    }
    args.insert(args.begin(), {"--config", config.string(), "--log-level", "debug"});
    start_agent_server(std::move(args), {}, data_dir);
  }

  static Json subscription_json(const BrowserSubscription& s) {
    return Json{{"endpoint", s.endpoint}, {"keys", {{"p256dh", s.p256dh}, {"auth", s.auth}}}};
  }
  Json subscribe(WsClient& client, const BrowserSubscription& s,
                 std::optional<std::vector<std::string>> events = std::nullopt) {
    Json d{{"subscription", subscription_json(s)}};
    if (events) d["events"] = json::array(events->begin(), events->end());
    return client.request(Json{{"type", "push_subscribe"}, {"data", std::move(d)}});
  }
  // A device paired as `role` (device_pair by `admin`, POST /pair), connected with its token.
  struct PairedDevice {
    Json device;  // the POST /pair answer: device_id, token, role, name
    std::unique_ptr<WsClient> client;
  };
  PairedDevice pair_device(WsClient& admin, const std::string& role, const std::string& name) {
    const auto code =
        admin.request(Json{{"type", "device_pair"}, {"data", {{"role", role}, {"name", name}}}});
    EXPECT_TRUE(is(code, "device_pairing")) << json::serialize(code);
    const auto paired = http_post(server_->port(), server_->tls(), "/pair",
                                  json::serialize(Json{{"code", str(data(code), "code")}}),
                                  {{"Content-Type", "application/json"}});
    EXPECT_EQ(paired.status, 200) << paired.body;
    PairedDevice out{json::parse(paired.body).as_object(), nullptr};
    ClientOptions o;
    o.tls = server_->tls();
    o.bearer = str(out.device, "token");
    out.client = std::make_unique<WsClient>(server_->port(), o);
    EXPECT_EQ(out.client->connect(), 101) << out.client->response_body();
    return out;
  }
  // Subscribes `name` at the push double for every event; fails the test unless subscribed.
  BrowserSubscription subscribed(WsClient& client, const std::string& name) {
    const auto s = push_.subscribe(name);
    const auto reply = subscribe(client, s);
    EXPECT_TRUE(is(reply, "push_subscribed")) << json::serialize(reply);
    return s;
  }
  Json push_info(WsClient& client, std::optional<std::string> endpoint = std::nullopt) {
    Json d;
    if (endpoint) d["endpoint"] = *endpoint;
    return client.request(Json{{"type", "push_info"}, {"data", std::move(d)}});
  }
  // client_focus has no reply: a push_info after it shows it was handled (in order).
  void focus(WsClient& client, json::value project_id) {
    client.send(Json{{"type", "client_focus"}, {"data", {{"project_id", project_id}}}});
    EXPECT_TRUE(is(push_info(client), "push_info_response"));
  }

  // The first push to `name` of `event` (and project, when given); fails the test if none comes.
  PushMessage push_of(const std::string& name, const std::string& event,
                      const std::string& project_id = {}) {
    auto found = push_.messages().wait_for(
        [&](const PushMessage& m) {
          return m.endpoint_name == name && m.field("event") == event &&
                 (project_id.empty() || m.field("project_id") == project_id);
        },
        kPushWait);
    EXPECT_TRUE(found) << "no " << event << " push to " << name;
    return found.value_or(PushMessage{});
  }
  // The first request to an ntfy or webhook double that matches; fails the test if none comes.
  static HttpRequest hook_of(const HookDouble& hook,
                             const std::function<bool(const HttpRequest&)>& match) {
    auto r = hook.requests().wait_for(match, kPushWait);
    EXPECT_TRUE(r) << "no matching request at the target";
    return r.value_or(HttpRequest{});
  }
  // What the webhook's signature header must say: HMAC-SHA256 of the body with the secret.
  static std::string expected_signature(const std::string& body) {
    return "sha256=" + common::to_hex(notify::hmac_sha256(kWebhookSecret, body).value());
  }
  static std::optional<Json> webhook_json(const HttpRequest& r) {
    boost::system::error_code ec;
    auto v = json::parse(r.body, ec);
    if (ec || !v.is_object()) return std::nullopt;
    return v.as_object();
  }

  double metric(const std::string& series) { return metric_sample(metrics(), series); }
  bool metric_reaches(const std::string& series, double value) {
    return eventually([&] { return metric(series) >= value; }, kPushWait);
  }

  bool with_targets_ = true;  // the ntfy and webhook targets in config.yaml
  TempDir config_dir_{"pa-notify-config"};
  TempDir data_dir_{"pa-notify-data"};  // for a server that restarts on the same data
  std::unique_ptr<SmallDisk> disk_;     // a data dir to fill up, unmounted after TearDown
  PushServiceDouble push_;
  HookDouble ntfy_;
  HookDouble webhook_;
};

// --- push_info and push_subscribe ---------------------------------------------------------------

TEST_F(NotifyTest, PushInfoGivesTheKeyThePushServiceSeesInVapid) {
  auto client = connect();
  const auto info = push_info(*client);
  ASSERT_TRUE(is(info, "push_info_response")) << json::serialize(info);
  const auto key_text = str(data(info), "vapid_public_key");
  const auto key = notify::base64url_decode(key_text);
  ASSERT_TRUE(key) << key_text;
  EXPECT_EQ(key_text.find('='), std::string::npos);  // no padding
  ASSERT_EQ(key->size(), 65u);
  EXPECT_EQ((*key)[0], '\x04');  // uncompressed point
  EXPECT_TRUE(notify::P256Key::from_public(*key));
  std::vector<std::string> events;
  for (const auto& e : data(info).at("events").as_array()) events.emplace_back(e.as_string());
  EXPECT_EQ(events, kAllEvents);
  EXPECT_TRUE(data(info).at("subscription").is_null());
  push_.expect_server_key(key_text);

  const auto phone = push_.subscribe("phone");
  const auto reply = subscribe(*client, phone);
  ASSERT_TRUE(is(reply, "push_subscribed")) << json::serialize(reply);
  EXPECT_EQ(str(data(reply), "endpoint"), phone.endpoint);
  EXPECT_EQ(data(reply).at("events"), json::value_from(kAllEvents));

  const auto known = data(push_info(*client, phone.endpoint)).at("subscription");
  ASSERT_TRUE(known.is_object()) << json::serialize(known);
  EXPECT_EQ(str(known.as_object(), "endpoint"), phone.endpoint);
  EXPECT_EQ(known.at("events"), json::value_from(kAllEvents));
  EXPECT_TRUE(std::regex_match(str(known.as_object(), "created_at"),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z)")));

  const auto sent =
      client->request(Json{{"type", "push_test"}, {"data", {{"endpoint", phone.endpoint}}}});
  ASSERT_TRUE(is(sent, "push_test_sent")) << json::serialize(sent);
  EXPECT_EQ(str(data(sent), "endpoint"), phone.endpoint);
  const auto m = push_of("phone", "test");
  EXPECT_TRUE(m.problems.empty()) << m.problems.front();
  EXPECT_TRUE(m.vapid_ok);
  EXPECT_EQ(m.vapid_key, key_text);  // k= is the key push_info gave
  EXPECT_EQ(m.field("tag"), "test");

  // The keys on disk are private to the server's user.
  struct stat st {};
  ASSERT_EQ(::stat((server_->data_dir() / "vapid_private_key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  ASSERT_EQ(::stat((server_->data_dir() / "push_subscriptions.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
}

// Revoking a paired device (issue 18) removes the subscriptions it made, and only those.
TEST_F(NotifyTest, RevokingADeviceRemovesItsPushSubscriptions) {
  auto admin = connect();
  auto [device, phone] = pair_device(*admin, "viewer", "Phone");
  ASSERT_TRUE(phone);
  const auto mine = subscribed(*phone, "phone");
  const auto theirs = subscribed(*admin, "laptop");

  const auto revoked = admin->request(
      Json{{"type", "device_revoke"}, {"data", {{"device_id", str(device, "device_id")}}}});
  ASSERT_TRUE(is(revoked, "device_revoked")) << json::serialize(revoked);
  EXPECT_TRUE(data(push_info(*admin, mine.endpoint)).at("subscription").is_null());
  EXPECT_TRUE(data(push_info(*admin, theirs.endpoint)).at("subscription").is_object());
  std::ifstream in(server_->data_dir() / "push_subscriptions.json");
  const std::string saved((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(saved.find(mine.endpoint), std::string::npos) << saved;
  EXPECT_NE(saved.find(theirs.endpoint), std::string::npos) << saved;
}

TEST_F(NotifyTest, PushSubscribeRefusesBadSubscriptionsAndTheConnectionSurvives) {
  auto client = connect();
  const auto good = push_.subscribe("phone");
  const auto other_key = notify::base64url_encode(std::string(65, '\x04'));  // not on the curve
  struct Case {
    std::string what;
    Json data;
    std::string message_names;  // a word the error message must contain
  };
  const auto with = [&](std::string endpoint, std::string p256dh, std::string auth) {
    return Json{
        {"subscription", {{"endpoint", endpoint}, {"keys", {{"p256dh", p256dh}, {"auth", auth}}}}}};
  };
  std::vector<Case> cases = {
      {"not https", with("http://localhost:1/push/x", good.p256dh, good.auth), "https"},
      {"host not allowed", with("https://push.example.org/x", good.p256dh, good.auth),
       "notify.push_service_hosts"},
      {"a host that only ends like an allowed one",
       with("https://evillocalhost:1/push/x", good.p256dh, good.auth), "notify.push_service_hosts"},
      {"p256dh not a point", with(good.endpoint, other_key, good.auth), "p256dh"},
      {"p256dh not base64url", with(good.endpoint, "!!!", good.auth), "p256dh"},
      {"auth not 16 bytes", with(good.endpoint, good.p256dh, "AAAA"), "auth"},
      {"no subscription", Json{{"events", json::array{"run_failed"}}}, "subscription"},
      {"no keys", Json{{"subscription", {{"endpoint", good.endpoint}}}}, "keys"},
      {"endpoint not a string", with("", good.p256dh, good.auth), "endpoint"},
  };
  cases.back().data.at("subscription").as_object()["endpoint"] = 42;
  Json unknown_event = with(good.endpoint, good.p256dh, good.auth);
  unknown_event["events"] = json::array{"run_succeeded", "coffee_ready"};
  cases.push_back({"unknown event", unknown_event, "events"});
  Json unknown_field = with(good.endpoint, good.p256dh, good.auth);
  unknown_field["colour"] = "blue";
  cases.push_back({"an unknown field", unknown_field, "colour"});
  cases.push_back({"endpoint over 2048 bytes",
                   with(good.endpoint + "/" + std::string(2048, 'a'), good.p256dh, good.auth),
                   "endpoint"});
  Json events_not_array = with(good.endpoint, good.p256dh, good.auth);
  events_not_array["events"] = "run_failed";
  cases.push_back({"events not an array", events_not_array, "events"});

  for (const auto& c : cases) {
    const auto reply = client->request(Json{{"type", "push_subscribe"}, {"data", c.data}});
    EXPECT_EQ(error_code(reply), "INVALID_MESSAGE") << c.what << ": " << json::serialize(reply);
    EXPECT_NE(str(data(reply), "message").find(c.message_names), std::string::npos)
        << c.what << ": " << json::serialize(reply);
  }
  // Nothing was stored; the connection still works.
  EXPECT_TRUE(data(push_info(*client, good.endpoint)).at("subscription").is_null());
  EXPECT_EQ(metric("pocket_agent_push_subscriptions"), 0);

  const auto unknown_test =
      client->request(Json{{"type", "push_test"}, {"data", {{"endpoint", good.endpoint}}}});
  EXPECT_EQ(error_code(unknown_test), "INVALID_MESSAGE") << json::serialize(unknown_test);
  const auto unsubscribed =
      client->request(Json{{"type", "push_unsubscribe"}, {"data", {{"endpoint", good.endpoint}}}});
  EXPECT_TRUE(is(unsubscribed, "push_unsubscribed")) << json::serialize(unsubscribed);
  const auto bad_focus =
      client->request(Json{{"type", "client_focus"}, {"data", {{"project_id", 7}}}});
  EXPECT_EQ(error_code(bad_focus), "INVALID_MESSAGE") << json::serialize(bad_focus);
  const auto unknown_focus =
      client->request(Json{{"type", "client_focus"}, {"data", {{"project_id", "no-such"}}}});
  EXPECT_EQ(error_code(unknown_focus), "PROJECT_NOT_FOUND") << json::serialize(unknown_focus);
  // What a browser's PushSubscription.toJSON() gives, expirationTime included, is accepted.
  auto browser = subscription_json(good);
  browser["expirationTime"] = nullptr;
  const auto accepted =
      client->request(Json{{"type", "push_subscribe"}, {"data", {{"subscription", browser}}}});
  EXPECT_TRUE(is(accepted, "push_subscribed")) << json::serialize(accepted);
}

TEST_F(NotifyTest, ResubscribingReplacesAndUnsubscribingStopsPushes) {
  auto client = connect();
  const auto phone = subscribed(*client, "phone");
  const auto created_at =
      str(data(push_info(*client, phone.endpoint)).at("subscription").as_object(), "created_at");
  const auto reply = subscribe(*client, phone, std::vector<std::string>{"run_failed"});
  ASSERT_TRUE(is(reply, "push_subscribed")) << json::serialize(reply);
  EXPECT_EQ(data(reply).at("events"), json::array{"run_failed"});
  EXPECT_EQ(metric("pocket_agent_push_subscriptions"), 1);
  const auto known = data(push_info(*client, phone.endpoint)).at("subscription");
  EXPECT_EQ(known.at("events"), json::array{"run_failed"});
  EXPECT_EQ(str(known.as_object(), "created_at"), created_at);

  const auto gone =
      client->request(Json{{"type", "push_unsubscribe"}, {"data", {{"endpoint", phone.endpoint}}}});
  ASSERT_TRUE(is(gone, "push_unsubscribed")) << json::serialize(gone);
  EXPECT_EQ(str(data(gone), "endpoint"), phone.endpoint);
  EXPECT_TRUE(data(push_info(*client, phone.endpoint)).at("subscription").is_null());
  EXPECT_EQ(metric("pocket_agent_push_subscriptions"), 0);
}

TEST_F(NotifyTest, TheHundredAndFirstSubscriptionIsRefused) {
  auto client = connect();
  for (int i = 0; i < 100; ++i) subscribed(*client, "device-" + std::to_string(i));
  EXPECT_EQ(metric("pocket_agent_push_subscriptions"), 100);
  const auto refused = subscribe(*client, push_.subscribe("one-too-many"));
  EXPECT_EQ(error_code(refused), "RESOURCE_LIMIT") << json::serialize(refused);
  // Replacing one of the hundred is no new subscription.
  const auto again = push_.subscribe("device-7");
  EXPECT_TRUE(is(subscribe(*client, again), "push_subscribed"));
  EXPECT_EQ(metric("pocket_agent_push_subscriptions"), 100);
}

// --- events ---------------------------------------------------------------------------------

TEST_F(NotifyTest, APermissionRequestIsPushedUrgentlyAndWithdrawnWhenAnswered) {
  auto client = connect();
  subscribed(*client, "phone");
  const auto project_dir = make_dir("asks");
  const auto id = str(create_project(*client, project_dir), "project_id");
  ASSERT_TRUE(is_state(execute(*client, id, kAsk), "EXECUTING"));
  const auto ask =
      client->read_until([](const Json& m) { return is(m, "permission_request"); }, kPushWait);
  ASSERT_TRUE(ask);
  const auto request_id = str(data(*ask), "permission_id");

  const auto m = push_of("phone", "permission_request", id);
  EXPECT_TRUE(m.problems.empty()) << m.problems.front();
  EXPECT_EQ(m.urgency, "high");
  EXPECT_EQ(m.ttl, "300");
  EXPECT_EQ(m.topic, notify::push_topic("permission:" + request_id));
  EXPECT_EQ(m.field("project_path"), project_dir.string());
  EXPECT_EQ(m.field("url"), "/#/p/" + id + "/permission/" + request_id);
  EXPECT_EQ(m.field("tag"), "permission:" + request_id);
  EXPECT_FALSE(m.field("title").empty());
  EXPECT_TRUE(
      std::regex_match(m.field("at"), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z)")));
  std::set<std::string> keys;
  for (const auto& [key, value] : *m.payload) keys.insert(std::string(key));
  EXPECT_EQ(keys, (std::set<std::string>{"event", "project_id", "project_path", "title", "body",
                                         "url", "tag", "at"}));

  // Answered while this very device looks at the project: the withdrawal still goes out.
  focus(*client, json::value(id));
  const auto resolved =
      client->request(Json{{"type", "permission_response"},
                           {"project_id", id},
                           {"data", {{"permission_id", request_id}, {"decision", "allow"}}}});
  ASSERT_TRUE(is(resolved, "permission_resolved")) << json::serialize(resolved);
  const auto withdrawn = push_of("phone", "permission_resolved", id);
  EXPECT_TRUE(withdrawn.problems.empty()) << withdrawn.problems.front();
  EXPECT_EQ(withdrawn.field("tag"), "permission:" + request_id);
  EXPECT_EQ(withdrawn.topic, m.topic);
  until_idle(*client);
}

// With no client that answers permission requests, an ask is denied at once, unless a
// notification of it reaches someone: then it waits for that person, who opens the console and
// answers (claude.permission_fallback applies only when no one can answer).
TEST_F(NotifyTest, APermissionRequestWaitsForThePersonANotificationReaches) {
  server_.reset();
  with_targets_ = false;  // targets would reach someone whatever is subscribed
  start_notify_server();
  auto watcher = connect_without_hello();
  hello(*watcher, {});  // subscribed to the project, but answers no permission requests
  const auto id = new_project(*watcher);

  execute(*watcher, id, kAsk);
  const auto unreached = until_idle(*watcher);
  ASSERT_EQ(of_type(unreached, "permission_resolved").size(), 1u);
  EXPECT_EQ(str(data(of_type(unreached, "permission_resolved")[0]), "reason"), "no_client");
  EXPECT_TRUE(of_type(unreached, "permission_request").empty());

  // A phone subscribed to permission requests only: the next ask waits for it.
  ASSERT_TRUE(is(
      subscribe(*watcher, push_.subscribe("phone"), std::vector<std::string>{"permission_request"}),
      "push_subscribed"));
  execute(*watcher, id, kAsk);
  const auto m = push_of("phone", "permission_request", id);
  const std::string tag = m.field("tag");
  ASSERT_EQ(tag.rfind("permission:", 0), 0u) << tag;
  const std::string permission_id = tag.substr(std::string("permission:").size());

  // The person opens the console (a client that answers) and allows it.
  auto phone = connect();
  ASSERT_EQ(str(phone->request(Json{{"type", "project_join"}, {"project_id", id}}), "type"),
            "project_joined");
  const auto resolved =
      phone->request(Json{{"type", "permission_response"},
                          {"project_id", id},
                          {"data", {{"permission_id", permission_id}, {"decision", "allow"}}}});
  ASSERT_TRUE(is(resolved, "permission_resolved")) << json::serialize(resolved);
  EXPECT_EQ(str(data(resolved), "reason"), "answered");
  EXPECT_EQ(push_of("phone", "permission_resolved", id).field("tag"), tag);
  const auto answered = until_idle(*watcher);
  EXPECT_TRUE(of_type(answered, "permission_resolved").empty() ||
              str(data(of_type(answered, "permission_resolved")[0]), "reason") == "answered");
}

// A subscription counts only when its device's role may answer: a viewer's phone gets the
// notification, but nobody who may answer is reached, so the request is denied at once.
TEST_F(NotifyTest, AViewersSubscriptionDoesNotMakeAPermissionRequestWait) {
  server_.reset();
  with_targets_ = false;
  start_notify_server();
  auto watcher = connect_without_hello();
  hello(*watcher, {});
  const auto id = new_project(*watcher);
  auto [device, viewer] = pair_device(*watcher, "viewer", "Viewer phone");
  ASSERT_TRUE(viewer);
  ASSERT_TRUE(is(subscribe(*viewer, push_.subscribe("viewer-phone"),
                           std::vector<std::string>{"permission_request"}),
                 "push_subscribed"));
  execute(*watcher, id, kAsk);
  const auto seen = until_idle(*watcher);
  ASSERT_EQ(of_type(seen, "permission_resolved").size(), 1u);
  EXPECT_EQ(str(data(of_type(seen, "permission_resolved")[0]), "reason"), "no_client");
}

// A command of any length: the notification shows its start, within the documented bounds.
TEST_F(NotifyTest, APermissionPushShowsOnlyTheStartOfAHugeCommand) {
  auto client = connect();
  subscribed(*client, "phone");
  const auto id = new_project(*client);
  const std::string command = "echo " + std::string(3000, 'a') + " end-of-command";
  ASSERT_TRUE(is_state(execute(*client, id, "[[fake:permission command=\"" + command + "\"]]"),
                       "EXECUTING"));
  const auto m = push_of("phone", "permission_request", id);
  EXPECT_TRUE(m.problems.empty()) << m.problems.front();
  EXPECT_LE(m.field("title").size(), 200u);
  EXPECT_LE(m.field("body").size(), 1000u);
  EXPECT_NE(m.field("body").find(command.substr(0, 100)), std::string::npos) << m.field("body");
  EXPECT_EQ(m.plaintext.find("end-of-command"), std::string::npos);
  const auto hook = hook_of(webhook_, [](const HttpRequest& r) {
    const auto j = webhook_json(r);
    return j && str(*j, "event") == "permission_request";
  });
  EXPECT_EQ(hook.body.find("end-of-command"), std::string::npos);
  const auto ntfy =
      hook_of(ntfy_, [](const HttpRequest& r) { return r.header("Tags") == "permission_request"; });
  EXPECT_EQ(ntfy.header("Priority"), "5");
  EXPECT_LE(ntfy.body.size(), 1000u);
  // Answered, so that the run ends (a pending one would hold the server's shutdown).
  const auto ask =
      client->read_until([](const Json& x) { return is(x, "permission_request"); }, kPushWait);
  ASSERT_TRUE(ask);
  client->request(
      Json{{"type", "permission_response"},
           {"project_id", id},
           {"data", {{"permission_id", str(data(*ask), "permission_id")}, {"decision", "deny"}}}});
  until_idle(*client);
}

// Nobody answered in time: the request expires and its notification is withdrawn.
TEST_F(NotifyTest, AnExpiredPermissionRequestIsWithdrawn) {
  start_notify_server({"--claude-permission-timeout", "1s"});
  auto client = connect();
  subscribed(*client, "phone");
  const auto id = new_project(*client);
  ASSERT_TRUE(is_state(execute(*client, id, kAsk), "EXECUTING"));
  const auto asked = push_of("phone", "permission_request", id);
  const auto withdrawn = push_of("phone", "permission_resolved", id);
  EXPECT_TRUE(withdrawn.problems.empty()) << withdrawn.problems.front();
  EXPECT_EQ(withdrawn.field("tag"), asked.field("tag"));
  until_idle(*client);
}

// Prompts queued on a run (mode "queue") have all had their turn.
TEST_F(NotifyTest, ADrainedQueueIsPushed) {
  auto client = connect();
  subscribed(*client, "phone");
  const auto id = new_project(*client);
  const auto go = state_.path() / "go";
  ASSERT_TRUE(is_state(
      execute(*client, id,
              "[[fake:drip lines=2 interval_ms=1 hold_after=1 hold_file=" + go.string() + "]]"),
      "EXECUTING"));
  ASSERT_TRUE(client->read_until(
      [](const Json& m) { return is(m, "agent_message") && str(data(m), "type") == "assistant"; },
      kPushWait));
  const auto queued =
      client->request(Json{{"type", "execute"},
                           {"project_id", id},
                           {"data", {{"prompt", "[[fake:text]]"}, {"mode", "queue"}}}});
  ASSERT_TRUE(is(queued, "prompt_queued")) << json::serialize(queued);
  std::ofstream(go) << "go";
  until_idle(*client);
  const auto m = push_of("phone", "queue_drained", id);
  EXPECT_TRUE(m.problems.empty()) << m.problems.front();
  EXPECT_EQ(m.field("tag"), "queue:" + id);
  EXPECT_EQ(m.field("url"), "/#/p/" + id);
  EXPECT_EQ(m.urgency, "normal");
}

TEST_F(NotifyTest, ASuccessfulRunIsPushedWithCostAndDurationToEveryChannel) {
  auto client = connect();
  subscribed(*client, "phone");
  const auto id = new_project(*client);
  execute(*client, id, "hi");
  until_idle(*client);

  const auto m = push_of("phone", "run_succeeded", id);
  EXPECT_TRUE(m.problems.empty()) << m.problems.front();
  EXPECT_EQ(m.urgency, "normal");
  EXPECT_EQ(m.ttl, "86400");
  EXPECT_EQ(m.field("tag"), "run:" + id);
  EXPECT_EQ(m.topic, notify::push_topic("run:" + id));
  EXPECT_EQ(m.field("url"), "/#/p/" + id);
  // The result's cost ($0.000685…) and duration, in some human form.
  const auto body = m.field("body");
  EXPECT_TRUE(std::regex_search(body, std::regex(R"(\$\d)"))) << body;
  EXPECT_TRUE(std::regex_search(body, std::regex(R"(\d\s?(ms|s|min)\b)"))) << body;

  // ntfy: the text, its headers and the token.
  const auto ntfy =
      hook_of(ntfy_, [&](const HttpRequest& r) { return r.header("Tags") == "run_succeeded"; });
  EXPECT_EQ(ntfy.method, "POST");
  EXPECT_EQ(ntfy.target, "/pocket-agent");
  EXPECT_EQ(ntfy.header("Title"), m.field("title"));
  EXPECT_EQ(ntfy.header("Priority"), "3");
  EXPECT_EQ(ntfy.header("Tags"), "run_succeeded");
  EXPECT_EQ(ntfy.header("Authorization"), std::string("Bearer ") + kNtfyToken);
  EXPECT_EQ(ntfy.body, body);

  // The webhook: the same JSON as the push payload, signed with the secret.
  const auto hook = hook_of(webhook_, [&](const HttpRequest& r) {
    const auto j = webhook_json(r);
    return j && str(*j, "event") == "run_succeeded" && str(*j, "project_id") == id;
  });
  EXPECT_EQ(hook.target, "/hook");
  EXPECT_EQ(hook.header("Content-Type"), "application/json");
  EXPECT_EQ(hook.header("X-Pocket-Agent-Signature"), expected_signature(hook.body));
  EXPECT_EQ(webhook_json(hook), m.payload);

  EXPECT_TRUE(metric_reaches("pocket_agent_notifications_sent_total{channel=\"web_push\"}", 1));
  EXPECT_TRUE(metric_reaches("pocket_agent_notifications_sent_total{channel=\"ntfy\"}", 1));
  EXPECT_TRUE(metric_reaches("pocket_agent_notifications_sent_total{channel=\"webhook\"}", 1));
  EXPECT_EQ(metric("pocket_agent_push_subscriptions"), 1);
}

TEST_F(NotifyTest, AFailedRunIsPushedAndOnlyToWhoAskedForIt) {
  auto client = connect();
  subscribed(*client, "all");
  const auto failures = push_.subscribe("failures-only");
  ASSERT_TRUE(
      is(subscribe(*client, failures, std::vector<std::string>{"run_failed"}), "push_subscribed"));
  const auto id = new_project(*client);
  execute(*client, id, "hi");
  until_idle(*client);
  push_of("all", "run_succeeded", id);
  execute(*client, id, "[[fake:fail code=3 stderr=\"model exploded\"]]");
  until_idle(*client);

  const auto m = push_of("all", "run_failed", id);
  EXPECT_TRUE(m.problems.empty()) << m.problems.front();
  EXPECT_EQ(m.field("tag"), "run:" + id);
  EXPECT_EQ(m.urgency, "normal");
  push_of("failures-only", "run_failed", id);
  for (const auto& other : push_.messages_to("failures-only")) {
    EXPECT_EQ(other.field("event"), "run_failed");
  }
  const auto hook = hook_of(webhook_, [&](const HttpRequest& r) {
    const auto j = webhook_json(r);
    return j && str(*j, "event") == "run_failed";
  });
  // A target's `events` limit it the same way.
  hook_of(ntfy_, [](const HttpRequest& r) { return r.target == "/failures-only"; });
  for (const auto& r : ntfy_.requests().all()) {
    if (r.target == "/failures-only") {
      EXPECT_EQ(r.header("Tags"), "run_failed");
    }
  }
  EXPECT_EQ(hook.header("X-Pocket-Agent-Signature"), expected_signature(hook.body));
}

TEST_F(NotifyTest, ARunThatTimesOutIsPushed) {
  start_notify_server({"--execution-timeout", "1s", "--timeouts-kill-grace", "1s"});
  auto client = connect();
  subscribed(*client, "phone");
  const auto id = new_project(*client);
  execute(*client, id, "[[fake:hang]]");
  until_idle(*client);
  const auto m = push_of("phone", "run_timeout", id);
  EXPECT_TRUE(m.problems.empty()) << m.problems.front();
  EXPECT_EQ(m.field("tag"), "run:" + id);
  EXPECT_EQ(m.field("url"), "/#/p/" + id);
  const auto ntfy =
      hook_of(ntfy_, [](const HttpRequest& r) { return r.header("Tags") == "run_timeout"; });
  EXPECT_EQ(ntfy.header("Authorization"), std::string("Bearer ") + kNtfyToken);
}

// Supervisor and CLI killed while the server was down: the next server finds the run lost and
// says so to the devices that subscribed before.
TEST_F(NotifyTest, ARunLostWhileTheServerWasDownIsPushed) {
  start_notify_server({}, data_dir_.path());
  auto client = connect();
  subscribed(*client, "phone");
  const auto id = new_project(*client);
  const auto pidfile = state_.path() / "cli.pid";
  execute(*client, id,
          "[[fake:drip lines=10 interval_ms=1 hold_after=3 hold_file=" +
              (state_.path() / "never").string() + " self_pidfile=" + pidfile.string() + "]]");
  ASSERT_TRUE(client->read_until(
      [](const Json& m) { return is(m, "agent_message") && str(data(m), "type") == "assistant"; },
      kPushWait));
  pid_t cli = 0;
  std::ifstream(pidfile) >> cli;
  ASSERT_GT(cli, 0);
  client.reset();
  server_->kill_hard();
  const auto supervisors = supervisors_of(data_dir_.path());
  ASSERT_EQ(supervisors.size(), 1u);
  ::kill(supervisors[0], SIGKILL);
  ASSERT_TRUE(eventually([&] { return !alive(cli); }, kPushWait)) << "the CLI outlived it";

  start_notify_server({}, data_dir_.path());
  const auto m = push_of("phone", "run_lost", id);
  EXPECT_TRUE(m.problems.empty()) << m.problems.front();
  EXPECT_EQ(m.field("tag"), "run:" + id);
  EXPECT_EQ(m.field("url"), "/#/p/" + id);
}

// The server's own trouble: a run's output it cannot write (a full disk) is pushed to devices
// and targets.
TEST_F(NotifyTest, AFullDiskIsPushedAsAServerProblem) {
  disk_ = std::make_unique<SmallDisk>();
  if (disk_->path().empty()) {
    GTEST_SKIP() << "cannot mount a tmpfs to fill (needs root with CAP_SYS_ADMIN): "
                 << disk_->error();
  }
  const auto data_dir = disk_->path() / "data";
  std::filesystem::create_directories(data_dir);
  start_notify_server({}, data_dir);
  auto client = connect();
  subscribed(*client, "phone");
  const auto id = new_project(*client);
  // A run that prints two lines, then waits for `go` before four more (each over a page).
  const auto go = state_.path() / "go";
  ASSERT_TRUE(is_state(execute(*client, id,
                               "[[fake:drip lines=6 interval_ms=1 bytes=6000 hold_after=2 "
                               "hold_file=" +
                                   go.string() + "]]"),
                       "EXECUTING"));
  int lines = 0;
  ASSERT_TRUE(client->read_until(
      [&](const Json& m) {
        lines += is(m, "agent_message") && str(data(m), "type") == "assistant";
        return lines == 2;
      },
      kPushWait));
  const auto filler = disk_->fill();
  std::ofstream(go) << "go";

  const auto m = push_of("phone", "server_problem");
  EXPECT_TRUE(m.problems.empty()) << m.problems.front();
  EXPECT_EQ(m.field("tag"), "server");
  EXPECT_EQ(m.urgency, "normal");
  EXPECT_FALSE(m.field("title").empty());
  const auto hook = hook_of(webhook_, [](const HttpRequest& r) {
    const auto j = webhook_json(r);
    return j && str(*j, "event") == "server_problem";
  });
  EXPECT_EQ(hook.header("X-Pocket-Agent-Signature"), expected_signature(hook.body));
  std::filesystem::remove(filler);
  until_idle(*client, 40s);
}

// --- delivery ---------------------------------------------------------------------------------

TEST_F(NotifyTest, ASubscriptionThePushServiceCallsGoneIsRemoved) {
  auto client = connect();
  const auto gone = subscribed(*client, "gone");
  const auto kept = subscribed(*client, "kept");
  push_.answer("gone", PushAnswer::gone(410));
  EXPECT_EQ(metric("pocket_agent_push_subscriptions"), 2);
  const auto id = new_project(*client);
  execute(*client, id, "hi");
  until_idle(*client);

  push_of("gone", "run_succeeded", id);
  push_of("kept", "run_succeeded", id);
  ASSERT_TRUE(metric_reaches("pocket_agent_push_subscriptions_removed_total", 1));
  EXPECT_EQ(metric("pocket_agent_push_subscriptions"), 1);
  EXPECT_TRUE(data(push_info(*client, gone.endpoint)).at("subscription").is_null());
  EXPECT_TRUE(data(push_info(*client, kept.endpoint)).at("subscription").is_object());
  const auto file = server_->data_dir() / "push_subscriptions.json";
  const auto contents = [&] {
    std::ifstream in(file);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  EXPECT_TRUE(
      eventually([&] { return contents().find(gone.endpoint) == std::string::npos; }, kPushWait))
      << contents();
  EXPECT_NE(contents().find(kept.endpoint), std::string::npos);
  // Gone means gone: the next run pushes to the other subscription only.
  execute(*client, id, "[[fake:fail]]");
  until_idle(*client);
  push_of("kept", "run_failed", id);
  for (const auto& m : push_.messages_to("gone")) {
    EXPECT_NE(m.field("event"), "run_failed") << m.plaintext;
  }
}

// The push service accepts every push and never answers: runs, their frames and their ends reach
// every client as if nothing were being sent.
TEST_F(NotifyTest, AHoldingPushServiceNeverDelaysARunOrABroadcast) {
  push_.answer_all(PushAnswer::held());
  auto phone = connect();
  auto desk = connect();
  subscribed(*phone, "phone");
  const auto id = new_project(*phone);
  ASSERT_TRUE(
      is(desk->request(Json{{"type", "project_join"}, {"project_id", id}}), "project_joined"));

  ASSERT_TRUE(is_state(execute(*phone, id, kAsk), "EXECUTING"));
  const auto ask =
      desk->read_until([](const Json& m) { return is(m, "permission_request"); }, kPushWait);
  ASSERT_TRUE(ask);
  // The permission's push is held by the service while the run goes on.
  push_of("phone", "permission_request", id);
  ASSERT_TRUE(eventually([&] { return push_.held() >= 1; }, kPushWait));
  const auto resolved = desk->request(
      Json{{"type", "permission_response"},
           {"project_id", id},
           {"data", {{"permission_id", str(data(*ask), "permission_id")}, {"decision", "allow"}}}});
  ASSERT_TRUE(is(resolved, "permission_resolved")) << json::serialize(resolved);
  const auto seen_by_phone = until_idle(*phone);
  const auto seen_by_desk = until_idle(*desk);
  EXPECT_FALSE(tool_result_blocks(seen_by_phone).empty());
  EXPECT_FALSE(tool_result_blocks(seen_by_desk).empty());

  // A second run, with every earlier push still held, streams and ends as well.
  execute(*phone, id, "[[fake:drip lines=5 interval_ms=10]]");
  const auto drip = until_idle(*desk);
  EXPECT_EQ(cli_lines_of_type(drip, "assistant").size(), 5u);
  EXPECT_GE(push_.held(), 1u);
  push_.answer_all(PushAnswer::created());
}

// A target that refuses (4xx) is counted as failed, not retried, and stops no other channel.
TEST_F(NotifyTest, ARefusingTargetIsCountedAndTheOthersStillDeliver) {
  webhook_.answer_with(403);
  auto client = connect();
  subscribed(*client, "phone");
  const auto id = new_project(*client);
  execute(*client, id, "hi");
  until_idle(*client);
  push_of("phone", "run_succeeded", id);
  hook_of(ntfy_, [](const HttpRequest& r) { return r.header("Tags") == "run_succeeded"; });
  ASSERT_TRUE(metric_reaches("pocket_agent_notifications_failed_total{channel=\"webhook\"}", 1));
  std::set<std::string> bodies;  // a retry would send the same body again
  for (const auto& r : webhook_.requests().all()) EXPECT_TRUE(bodies.insert(r.body).second);
  const auto text = metrics();
  // A channel's series appears with its first count: absent (-1) is none.
  EXPECT_LE(metric_sample(text, "pocket_agent_notifications_failed_total{channel=\"web_push\"}"),
            0);
  EXPECT_EQ(metric_sample(text, "pocket_agent_notifications_dropped_total"), 0);
  EXPECT_EQ(metric_sample(text, "pocket_agent_notifications_suppressed_total"), 0);
  EXPECT_EQ(metric_sample(text, "pocket_agent_push_subscriptions_removed_total"), 0);
}

// With notify.console_url, links that leave the browser (ntfy's Click, the webhook's url) open
// the console where it is.
TEST_F(NotifyTest, TheConsoleUrlMakesLinksAbsolute) {
  start_notify_server({"--notify-console-url", "https://pocket.example:8443"});
  auto client = connect();
  const auto id = new_project(*client);
  execute(*client, id, "hi");
  until_idle(*client);
  const auto ntfy =
      hook_of(ntfy_, [](const HttpRequest& r) { return r.header("Tags") == "run_succeeded"; });
  EXPECT_EQ(ntfy.header("Click"), "https://pocket.example:8443/#/p/" + id);
  const auto hook = hook_of(webhook_, [](const HttpRequest& r) { return !r.body.empty(); });
  EXPECT_EQ(str(webhook_json(hook).value_or(Json{}), "url"),
            "https://pocket.example:8443/#/p/" + id);
}

// --- focus ------------------------------------------------------------------------------------

TEST_F(NotifyTest, FocusSuppressesPushesForTheProjectOnScreenOnly) {
  auto phone = connect();
  subscribed(*phone, "phone");
  const auto viewed = new_project(*phone, "viewed");
  const auto elsewhere = new_project(*phone, "elsewhere");
  focus(*phone, json::value(viewed));

  execute(*phone, viewed, "hi");
  until_idle(*phone);
  ASSERT_TRUE(metric_reaches("pocket_agent_notifications_suppressed_total", 1));
  const double suppressed = metric("pocket_agent_notifications_suppressed_total");
  execute(*phone, elsewhere, "hi");
  until_idle(*phone);
  push_of("phone", "run_succeeded", elsewhere);
  for (const auto& m : push_.messages_to("phone")) {
    EXPECT_NE(m.field("project_id"), viewed) << m.plaintext;
  }
  // Other channels are not a device's screen: they still hear of the viewed project.
  hook_of(webhook_, [&](const HttpRequest& r) {
    const auto j = webhook_json(r);
    return j && str(*j, "project_id") == viewed;
  });

  // Nothing on screen (the page was hidden): the viewed project's events arrive again.
  focus(*phone, json::value(nullptr));
  execute(*phone, viewed, "[[fake:fail]]");
  until_idle(*phone);
  const auto m = push_of("phone", "run_failed", viewed);
  EXPECT_TRUE(m.problems.empty()) << m.problems.front();
  EXPECT_EQ(metric("pocket_agent_notifications_suppressed_total"), suppressed);
}

// Focus belongs to the device whose connection is tied to the subscription: another device
// looking at the project does not silence this one.
TEST_F(NotifyTest, AnotherConnectionsFocusDoesNotSuppress) {
  auto phone = connect();
  auto desk = connect();
  subscribed(*phone, "phone");
  const auto id = new_project(*phone);
  focus(*desk, json::value(id));
  execute(*phone, id, "hi");
  until_idle(*phone);
  push_of("phone", "run_succeeded", id);

  // push_info with the endpoint ties a (new) connection to the subscription: its focus counts.
  auto reopened = connect();
  EXPECT_TRUE(data(push_info(*reopened, push_.endpoint("phone"))).at("subscription").is_object());
  focus(*reopened, json::value(id));
  execute(*phone, id, "[[fake:fail]]");
  until_idle(*phone);
  ASSERT_TRUE(metric_reaches("pocket_agent_notifications_suppressed_total", 1));
  for (const auto& m : push_.messages_to("phone")) {
    EXPECT_NE(m.field("event"), "run_failed") << m.plaintext;
  }
}

// A device whose connection closed is not looking at anything.
TEST_F(NotifyTest, AClosedConnectionHasNoFocus) {
  auto phone = connect();  // connection 1
  subscribed(*phone, "phone");
  auto desk = connect();
  const auto id = new_project(*desk);
  focus(*phone, json::value(id));
  phone->close();
  ASSERT_TRUE(server_->wait_for_log(
      [](const std::string& line) {
        return line.find("connection 1 from") != std::string::npos &&
               line.find("closed") != std::string::npos;
      },
      kPushWait));
  execute(*desk, id, "hi");
  until_idle(*desk);
  push_of("phone", "run_succeeded", id);
}

// --- what never leaks, what lasts -------------------------------------------------------------

TEST_F(NotifyTest, NoSecretOrSubscriptionAppearsInALogLineOrAPayload) {
  const std::string name = "phone-endpoint-capability-5a7c";
  const std::string gone_name = "gone-endpoint-capability-9e1b";
  auto client = connect();
  const auto phone = subscribed(*client, name);
  // The failure paths log too: a subscription the push service calls gone, a refusing webhook.
  const auto gone = subscribed(*client, gone_name);
  push_.answer(gone_name, PushAnswer::gone(410));
  webhook_.answer_with(403);
  const auto id = new_project(*client);
  ASSERT_TRUE(is_state(execute(*client, id, kAsk), "EXECUTING"));
  const auto ask =
      client->read_until([](const Json& m) { return is(m, "permission_request"); }, kPushWait);
  ASSERT_TRUE(ask);
  push_of(name, "permission_request", id);
  client->request(
      Json{{"type", "permission_response"},
           {"project_id", id},
           {"data", {{"permission_id", str(data(*ask), "permission_id")}, {"decision", "deny"}}}});
  until_idle(*client);
  push_of(name, "run_succeeded", id);
  ASSERT_TRUE(webhook_.requests().wait_for_count(2, kPushWait));
  ASSERT_TRUE(ntfy_.requests().wait_for_count(2, kPushWait));
  ASSERT_TRUE(metric_reaches("pocket_agent_push_subscriptions_removed_total", 1));
  ASSERT_TRUE(metric_reaches("pocket_agent_notifications_failed_total{channel=\"webhook\"}", 2));

  const std::vector<std::string> secrets = {
      kNtfyToken,  kWebhookSecret, phone.p256dh,  phone.auth, phone.endpoint,  name,
      gone.p256dh, gone.auth,      gone.endpoint, gone_name,  server_->token()};
  const auto leaks = [&](const std::string& text) {
    for (const auto& s : secrets) {
      if (text.find(s) != std::string::npos) return s;
    }
    return std::string();
  };
  const auto lines = server_->log_lines();
  EXPECT_FALSE(lines.empty());
  for (const auto& line : lines) EXPECT_EQ(leaks(line), "") << line;
  for (const auto& m : push_.messages().all()) EXPECT_EQ(leaks(m.plaintext), "") << m.plaintext;
  for (const auto& r : webhook_.requests().all()) EXPECT_EQ(leaks(r.body), "") << r.body;
  for (const auto& r : ntfy_.requests().all()) {
    EXPECT_EQ(leaks(r.body), "") << r.body;
    for (const auto& [header, value] : r.headers) {
      if (header == "Authorization") continue;  // the token's place
      EXPECT_EQ(leaks(value), "") << header << ": " << value;
    }
  }
}

TEST_F(NotifyTest, SubscriptionsAndTheVapidKeySurviveARestart) {
  start_notify_server({}, data_dir_.path());
  std::string key_before;
  BrowserSubscription phone;
  {
    auto client = connect();
    key_before = str(data(push_info(*client)), "vapid_public_key");
    phone = subscribed(*client, "phone");
  }
  server_->stop();
  start_notify_server({}, data_dir_.path());

  auto client = connect();
  const auto info = push_info(*client, phone.endpoint);
  EXPECT_EQ(str(data(info), "vapid_public_key"), key_before);
  ASSERT_TRUE(data(info).at("subscription").is_object()) << json::serialize(info);
  EXPECT_EQ(metric("pocket_agent_push_subscriptions"), 1);
  push_.expect_server_key(key_before);
  const auto id = new_project(*client);
  execute(*client, id, "hi");
  until_idle(*client);
  const auto m = push_of("phone", "run_succeeded", id);
  EXPECT_TRUE(m.problems.empty()) << m.problems.front();
}

}  // namespace
}  // namespace pa::test
