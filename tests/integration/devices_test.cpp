// Issue 18 through the real server: pairing devices (device_pair, POST /pair), their tokens on
// every connection, the role × message matrix, revocation (close 4401, then 401), the audit
// trail (`by.device_id`) and a data dir from before devices.
#include <regex>
#include <set>

#include "devices/roles.hpp"
#include "integration/fixture.hpp"

namespace pa::test {
namespace {

using devices::Role;

const Role kAllRoles[] = {Role::kViewer, Role::kOperator, Role::kApprover, Role::kAdmin};

struct Paired {
  std::string device_id;
  std::string token;
  std::string name;
};

class DevicesTest : public AgentServerTest {
 protected:
  // Each POST /pair and /auth/check is a new connection: no per-address connection rate, so
  // that a 429 here is always the pairing limit's.
  void SetUp() override { start_agent_server(kArgs); }
  const std::vector<std::string> kArgs{"--limits-connection-rate", "0"};

  // device_pair over `admin`; returns the reply (device_pairing, or an error).
  Json pair_code(WsClient& admin, Role role, const std::string& name = {}) {
    Json d{{"role", devices::role_name(role)}};
    if (!name.empty()) d["name"] = name;
    return admin.request(Json{{"type", "device_pair"}, {"data", std::move(d)}});
  }
  HttpResult redeem(const std::string& body, std::map<std::string, std::string> headers = {}) {
    headers.emplace("Content-Type", "application/json");
    return http_post(server_->port(), server_->tls(), "/pair", body, headers);
  }
  // A device of `role` paired through device_pair and POST /pair.
  Paired pair(WsClient& admin, Role role, const std::string& name) {
    const auto code = pair_code(admin, role, name);
    EXPECT_EQ(str(code, "type"), "device_pairing") << json::serialize(code);
    const auto r = redeem(json::serialize(Json{{"code", str(data(code), "code")}}));
    EXPECT_EQ(r.status, 200) << r.body;
    if (r.status != 200) return {};
    const auto body = json::parse(r.body).as_object();
    EXPECT_EQ(str(body, "role"), devices::role_name(role));
    EXPECT_EQ(str(body, "name"), name);
    return Paired{str(body, "device_id"), str(body, "token"), name};
  }
  std::unique_ptr<WsClient> connect_with(const std::string& token, int expected = 101) {
    ClientOptions o;
    o.tls = server_->tls();
    o.bearer = token;
    auto client = std::make_unique<WsClient>(server_->port(), o);
    EXPECT_EQ(client->connect(), expected) << client->response_body();
    return client;
  }
  int auth_check(const std::string& token) {
    return http_get(server_->port(), server_->tls(), "/auth/check",
                    {{"Authorization", "Bearer " + token}})
        .status;
  }
};

// Every client message under every role: allowed (any reply but FORBIDDEN) or FORBIDDEN naming
// the least role it needs; the connection stays open either way.
TEST_F(DevicesTest, RoleByMessageMatrix) {
  auto admin = connect();
  for (const Role role : kAllRoles) {
    const std::string role_text(devices::role_name(role));
    const auto device = pair(*admin, role, "matrix " + role_text);
    auto client = connect_with(device.token);
    for (const auto& rule : devices::message_rules()) {
      const std::string type(rule.type);
      // An unknown project: every handler then answers (client_focus too), and nothing runs.
      const auto reply = client->request(
          Json{{"type", type}, {"project_id", "no-such-project"}, {"data", Json{}}});
      if (devices::allows(role, type)) {
        EXPECT_NE(error_code(reply), "FORBIDDEN") << role_text << " " << json::serialize(reply);
      } else {
        ASSERT_EQ(error_code(reply), "FORBIDDEN") << role_text << " " << json::serialize(reply);
        const auto& details = data(reply).at("details").as_object();
        EXPECT_EQ(str(details, "required_role"), devices::role_name(rule.least)) << type;
        EXPECT_EQ(str(details, "role"), role_text) << type;
        EXPECT_EQ(str(details, "type"), type);
        EXPECT_NE(str(data(reply), "message").find("ask an admin"), std::string::npos);
      }
      ASSERT_TRUE(client->is_open()) << role_text << " after " << type;
    }
  }
  // Requests are counted per role, every role's series from the start.
  const std::string text = metrics();
  for (const Role role : kAllRoles) {
    const std::regex series("pocket_agent_requests_total\\{role=\"" +
                            std::string(devices::role_name(role)) + "\"\\} ([0-9]+)");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(text, m, series)) << devices::role_name(role);
    EXPECT_GE(std::stoi(m[1]), static_cast<int>(devices::message_rules().size()));
  }
}

TEST_F(DevicesTest, WelcomeNamesTheRoleAndDeviceAndForbiddenKeepsTheConnection) {
  auto admin = connect_without_hello();
  const auto master = hello(*admin, {});
  EXPECT_EQ(str(data(master), "role"), "admin");
  EXPECT_TRUE(data(master).at("device").is_null());

  const auto viewer = pair(*admin, Role::kViewer, "Kitchen tablet");
  auto client = connect_with(viewer.token);
  const auto welcome = hello(*client, {});
  EXPECT_EQ(str(data(welcome), "role"), "viewer");
  EXPECT_EQ(data(welcome).at("device"),
            (Json{{"device_id", viewer.device_id}, {"name", "Kitchen tablet"}}));
  // What the console may offer: the viewer's messages, not project_create or execute.
  std::set<std::string> allowed;
  for (const auto& type : data(welcome).at("allowed_messages").as_array())
    allowed.emplace(type.as_string());
  EXPECT_TRUE(allowed.contains("project_list"));
  EXPECT_TRUE(allowed.contains("get_messages"));
  EXPECT_FALSE(allowed.contains("project_create"));
  EXPECT_FALSE(allowed.contains("execute"));
  EXPECT_EQ(data(master).at("allowed_messages").as_array().size(), devices::message_rules().size());
  // What a client checks before sending: the server's limits (defaults here).
  const auto& limits = data(master).at("limits").as_object();
  EXPECT_EQ(limits.at("message_size").to_number<std::uint64_t>(), 1048576u);
  EXPECT_EQ(limits.at("attachment_bytes").to_number<std::uint64_t>(), 5u * 1024 * 1024);
  EXPECT_EQ(limits.at("attachments_per_prompt").to_number<std::uint64_t>(), 10u);

  const auto refused = client->request(
      Json{{"type", "project_create"}, {"data", {{"path", make_dir("nope").string()}}}});
  EXPECT_EQ(error_code(refused), "FORBIDDEN") << json::serialize(refused);
  EXPECT_EQ(str(data(refused).at("details").as_object(), "required_role"), "admin");
  const auto list = client->request(Json{{"type", "project_list"}});
  EXPECT_EQ(str(list, "type"), "project_list_response") << json::serialize(list);
}

TEST_F(DevicesTest, PairingCodeRedeemsOnceAndWrongCodesAreRefusedThenLimited) {
  auto admin = connect();
  const auto code = pair_code(*admin, Role::kOperator, "Phone");
  ASSERT_EQ(str(code, "type"), "device_pairing") << json::serialize(code);
  const std::string text = str(data(code), "code");
  EXPECT_EQ(text.size(), 10u);
  EXPECT_EQ(
      str(data(code), "url"), "https://" +
                                  [] {
                                    char name[256] = {};
                                    ::gethostname(name, sizeof name - 1);
                                    return std::string(name);
                                  }() +
                                  ":" + std::to_string(server_->port()) + "/?pair=" + text);
  EXPECT_FALSE(str(data(code), "expires_at").empty());
  // The console's QR code: an SVG image (decoded to the URL by browser.devices).
  EXPECT_TRUE(str(data(code), "qr_svg").starts_with("<svg")) << json::serialize(code);

  // The name given at redemption wins over device_pair's.
  const auto first = redeem(json::serialize(Json{{"code", text}, {"name", "Anna's phone"}}));
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.headers.at("Cache-Control"), "no-store");
  const auto body = json::parse(first.body).as_object();
  EXPECT_EQ(str(body, "name"), "Anna's phone");
  EXPECT_EQ(str(body, "role"), "operator");
  EXPECT_TRUE(str(body, "token").starts_with("pad_"));

  const auto again = redeem(json::serialize(Json{{"code", text}}));
  EXPECT_EQ(again.status, 410) << again.body;
  EXPECT_EQ(str(json::parse(again.body).as_object(), "reason"), "used");

  // Malformed requests: 400 with a reason, nothing counted as a guess.
  EXPECT_EQ(redeem("not json").status, 400);
  EXPECT_EQ(redeem(R"({"code": "ABCDEFGHJK", "extra": 1})").status, 400);
  EXPECT_EQ(redeem(R"({"code": "ABCDEFGHJK", "name": ""})").status, 400);
  EXPECT_EQ(http_post(server_->port(), server_->tls(), "/pair", "{}", {}).status, 415);
  EXPECT_EQ(redeem(R"({"code": "0000000000"})", {{"Origin", "https://evil.example"}}).status, 403);

  const auto wrong = redeem(R"({"code": "0000000000"})");
  EXPECT_EQ(wrong.status, 400) << wrong.body;
  EXPECT_EQ(str(json::parse(wrong.body).as_object(), "reason"), "unknown_code");
  // Repeated wrong codes from one address: 429 with Retry-After (auth.max_failures, 10).
  HttpResult limited;
  for (int i = 0; i < 20 && limited.status != 429; ++i)
    limited = redeem(R"({"code": "0000000000"})");
  ASSERT_EQ(limited.status, 429) << limited.body;
  EXPECT_EQ(str(json::parse(limited.body).as_object(), "reason"), "too_many_attempts");
  ASSERT_TRUE(limited.headers.count("Retry-After"));
  EXPECT_GE(std::stoi(limited.headers.at("Retry-After")), 1);
}

TEST_F(DevicesTest, DeviceMessagesValidateTheirFields) {
  auto admin = connect();
  EXPECT_EQ(error_code(pair_code(*admin, Role::kViewer, std::string(65, 'x'))), "INVALID_MESSAGE");
  const auto bad_role =
      admin->request(Json{{"type", "device_pair"}, {"data", {{"role", "owner"}}}});
  EXPECT_EQ(error_code(bad_role), "INVALID_MESSAGE");
  EXPECT_EQ(str(data(bad_role).at("details").as_object(), "field"), "data.role");

  const auto device = pair(*admin, Role::kViewer, "Old name");
  const auto renamed = admin->request(Json{
      {"type", "device_rename"}, {"data", {{"device_id", device.device_id}, {"name", "New"}}}});
  EXPECT_EQ(str(renamed, "type"), "device_renamed") << json::serialize(renamed);
  EXPECT_EQ(data(renamed), (Json{{"device_id", device.device_id}, {"name", "New"}}));
  const auto bad_name = admin->request(Json{
      {"type", "device_rename"}, {"data", {{"device_id", device.device_id}, {"name", "a\nb"}}}});
  EXPECT_EQ(error_code(bad_name), "INVALID_MESSAGE");
  const auto unknown = admin->request(
      Json{{"type", "device_rename"}, {"data", {{"device_id", "no-such"}, {"name", "x"}}}});
  EXPECT_EQ(error_code(unknown), "DEVICE_NOT_FOUND");

  const auto list = admin->request(Json{{"type", "device_list"}});
  ASSERT_EQ(str(list, "type"), "device_list_response") << json::serialize(list);
  const auto& devices = data(list).at("devices").as_array();
  ASSERT_EQ(devices.size(), 1u);
  EXPECT_EQ(str(devices[0].as_object(), "name"), "New");
  EXPECT_EQ(str(devices[0].as_object(), "role"), "viewer");
  EXPECT_FALSE(json::serialize(list).find(device.token) != std::string::npos);
}

TEST_F(DevicesTest, RevocationClosesTheDeviceAtOnceAndItsTokenGets401) {
  auto admin = connect();
  const auto lost = pair(*admin, Role::kViewer, "Lost phone");
  const auto kept = pair(*admin, Role::kOperator, "Laptop");
  auto lost_client = connect_with(lost.token);
  auto kept_client = connect_with(kept.token);
  EXPECT_EQ(auth_check(lost.token), 204);

  const auto revoked =
      admin->request(Json{{"type", "device_revoke"}, {"data", {{"device_id", lost.device_id}}}});
  EXPECT_EQ(str(revoked, "type"), "device_revoked") << json::serialize(revoked);
  EXPECT_EQ(data(revoked), (Json{{"device_id", lost.device_id}}));
  // The issue's requirement: closed within a second.
  const auto closed = lost_client->wait_closed(1s);
  ASSERT_TRUE(closed) << "the revoked device's connection is still open";
  EXPECT_EQ(closed->code, 4401);
  EXPECT_EQ(closed->reason, "revoked");

  connect_with(lost.token, 401);
  EXPECT_EQ(auth_check(lost.token), 401);
  // The other device and the master token keep working.
  EXPECT_EQ(str(kept_client->request(Json{{"type", "project_list"}}), "type"),
            "project_list_response");
  EXPECT_EQ(auth_check(kept.token), 204);
  connect_with(server_->token());
  EXPECT_EQ(error_code(admin->request(
                Json{{"type", "device_revoke"}, {"data", {{"device_id", lost.device_id}}}})),
            "DEVICE_NOT_FOUND");
}

TEST_F(DevicesTest, APairedDeviceReconnectsAfterARestart) {
  Paired device;
  {
    auto admin = connect();
    device = pair(*admin, Role::kApprover, "Watch");
  }
  const auto data_dir = server_->data_dir();
  auto keep_data = std::move(server_);  // keep its temp dir alive
  keep_data->stop();
  start_agent_server(kArgs, {}, data_dir);
  auto client = connect_with(device.token);
  const auto welcome = hello(*client, {});
  EXPECT_EQ(str(data(welcome), "role"), "approver");
  EXPECT_EQ(str(data(welcome).at("device").as_object(), "device_id"), device.device_id);
  // devices.json keeps hashes only, private to the server's user.
  const auto file = data_dir / "devices.json";
  EXPECT_EQ(std::filesystem::status(file).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  std::ifstream in(file);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.find(device.token), std::string::npos);
  EXPECT_NE(text.find(device.device_id), std::string::npos);
}

// A data dir from before devices: no devices.json; the master token works as it did.
TEST_F(DevicesTest, ADataDirWithoutDevicesKeepsTheMasterToken) {
  EXPECT_FALSE(std::filesystem::exists(server_->data_dir() / "devices.json"));
  auto admin = connect_without_hello();
  EXPECT_EQ(str(data(hello(*admin, {})), "role"), "admin");
  const auto id = new_project(*admin);
  EXPECT_FALSE(id.empty());
  EXPECT_EQ(auth_check(server_->token()), 204);
  EXPECT_EQ(auth_check("pad_not-a-device-token"), 401);
  EXPECT_FALSE(std::filesystem::exists(server_->data_dir() / "devices.json"));
}

// History names the device that acted; the server log names it too, never its token.
TEST_F(DevicesTest, HistoryAndLogNameTheDeviceNeverTheToken) {
  auto master = connect();
  const auto laptop = pair(*master, Role::kAdmin, "Laptop");
  const auto device = pair(*master, Role::kOperator, "Phone");
  auto admin = connect_with(laptop.token);
  const auto id = new_project(*admin);
  ASSERT_FALSE(id.empty());
  auto phone = connect_with(device.token);
  ASSERT_EQ(str(phone->request(Json{{"type", "project_join"}, {"project_id", id}}), "type"),
            "project_joined");
  const auto started = execute(*phone, id, "[[fake:text]]");
  ASSERT_TRUE(is_state(started, "EXECUTING")) << json::serialize(started);
  const auto& by = data(started).at("by").as_object();
  EXPECT_EQ(str(by, "device_id"), device.device_id);
  EXPECT_EQ(str(by, "device_name"), "Phone");
  until_idle(*phone);

  bool named = false;
  for (const auto& entry : all_history(*admin, id)) {
    const auto& message = entry.at("message").as_object();
    if (str(message, "type") != "execute") continue;
    EXPECT_EQ(str(message.at("by").as_object(), "device_id"), device.device_id);
    EXPECT_EQ(str(message.at("by").as_object(), "device_name"), "Phone");
    named = true;
  }
  EXPECT_TRUE(named) << "no execute entry in history";

  ASSERT_EQ(str(admin->request(Json{{"type", "project_delete"}, {"project_id", id}}), "type"),
            "project_deleted");
  // The line of each project action names the admin device that did it.
  const auto line_with = [&](const std::string& text) {
    for (const auto& line : server_->log_lines())
      if (line.find(text) != std::string::npos) return line;
    return std::string();
  };
  ASSERT_TRUE(eventually([&] { return !line_with("project deleted").empty(); }, 5s));
  EXPECT_NE(line_with("project created").find("device " + laptop.device_id + " (Laptop, admin)"),
            std::string::npos)
      << line_with("project created");
  EXPECT_NE(line_with("project deleted").find("device " + laptop.device_id + " (Laptop, admin)"),
            std::string::npos)
      << line_with("project deleted");
  for (const auto& line : server_->log_lines()) {
    for (const auto* token : {&device.token, &laptop.token, &server_->token()})
      EXPECT_EQ(line.find(*token), std::string::npos) << line;
  }
}

// last_seen_at: null until the device connects, a time once it has.
// Only a subscriber whose role may answer is asked: a viewer that declares "permissions" sees
// nothing to answer, so with only it joined the request is denied at once (no_client) instead of
// waiting for an answer that cannot come; an approver joining makes the next request wait.
TEST_F(DevicesTest, APermissionRequestWaitsOnlyForARoleThatMayAnswerIt) {
  auto admin = connect_without_hello();
  const auto id = new_project(*admin);
  const auto viewer = pair(*admin, Role::kViewer, "Tablet");
  auto tablet = connect_with(viewer.token);
  hello(*tablet, {"permissions"});
  ASSERT_EQ(str(tablet->request(Json{{"type", "project_join"}, {"project_id", id}}), "type"),
            "project_joined");
  const std::string ask = "[[fake:permission command=\"touch made-by-tool.txt\"]]";
  execute(*admin, id, ask);
  const auto seen = until_idle(*tablet);
  EXPECT_TRUE(of_type(seen, "permission_request").empty());
  ASSERT_EQ(of_type(seen, "permission_resolved").size(), 1u);
  EXPECT_EQ(str(data(of_type(seen, "permission_resolved")[0]), "reason"), "no_client");

  const auto approver = pair(*admin, Role::kApprover, "Watch");
  auto watch = connect_with(approver.token);
  hello(*watch, {"permissions"});
  ASSERT_EQ(str(watch->request(Json{{"type", "project_join"}, {"project_id", id}}), "type"),
            "project_joined");
  execute(*admin, id, ask);
  const auto request = watch->read_until([](const Json& m) { return is(m, "permission_request"); });
  ASSERT_TRUE(request);
  const auto answered = watch->request(Json{
      {"type", "permission_response"},
      {"project_id", id},
      {"data", {{"permission_id", str(data(*request), "permission_id")}, {"decision", "allow"}}}});
  EXPECT_EQ(str(answered, "type"), "permission_resolved") << json::serialize(answered);
  until_idle(*watch);
}

TEST_F(DevicesTest, DeviceListShowsWhenADeviceWasLastSeen) {
  auto admin = connect();
  const auto device = pair(*admin, Role::kViewer, "Tablet");
  const auto seen = [&] {
    const auto list = admin->request(Json{{"type", "device_list"}});
    return data(list).at("devices").as_array().at(0).as_object().at("last_seen_at");
  };
  EXPECT_TRUE(seen().is_null());
  auto tablet = connect_with(device.token);
  // A reply means the server has taken the connection in (and touched the device).
  EXPECT_EQ(str(tablet->request(Json{{"type", "project_list"}}), "type"), "project_list_response");
  EXPECT_TRUE(seen().is_string());
}

}  // namespace
}  // namespace pa::test
