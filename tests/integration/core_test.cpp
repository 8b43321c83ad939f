// The core server over real TLS WebSocket: envelope, errors, projects, subscriptions, health.
#include <unistd.h>

#include <regex>

#include "integration/fixture.hpp"

namespace pa::test {
namespace {

namespace fs = std::filesystem;

class CoreTest : public ServerTest {};

TEST_F(CoreTest, CreateListJoinLeaveDelete) {
  auto alice = connect();
  auto bob = connect();
  const auto dir = make_dir("app");

  const auto created = create_project(*alice, dir);
  ASSERT_EQ(str(created, "type"), "project_state") << json::serialize(created);
  const auto& project = data(created);
  const std::string id = str(created, "project_id");
  EXPECT_EQ(str(project, "id"), id);
  EXPECT_EQ(str(project, "path"), fs::canonical(dir).string());
  EXPECT_EQ(str(project, "state"), "IDLE");
  EXPECT_TRUE(project.at("session_id").is_null());
  EXPECT_TRUE(std::regex_match(
      id, std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")));
  EXPECT_TRUE(std::regex_match(str(created, "timestamp"),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));
  EXPECT_EQ(str(project, "created_at"), str(project, "last_active"));

  const auto list = bob->request(Json{{"type", "project_list"}});
  ASSERT_EQ(str(list, "type"), "project_list_response");
  const auto& projects = data(list).at("projects").as_array();
  ASSERT_EQ(projects.size(), 1u);
  EXPECT_EQ(str(projects[0].as_object(), "id"), id);

  const auto joined = bob->request(Json{{"type", "project_join"}, {"data", {{"project_id", id}}}});
  ASSERT_EQ(str(joined, "type"), "project_joined") << json::serialize(joined);
  EXPECT_EQ(str(joined, "project_id"), id);
  EXPECT_EQ(str(data(joined).at("project").as_object(), "path"), fs::canonical(dir).string());
  EXPECT_GE(data(joined).at("last_seq").as_int64(), 1);

  // Alice deletes: Bob, a subscriber, is told.
  const auto deleted = alice->request(Json{{"type", "project_delete"}, {"project_id", id}});
  EXPECT_EQ(str(deleted, "type"), "project_deleted");
  EXPECT_EQ(str(deleted, "project_id"), id);
  const auto notice =
      bob->read_until([](const Json& m) { return str(m, "type") == "project_deleted"; });
  ASSERT_TRUE(notice);
  EXPECT_EQ(str(*notice, "project_id"), id);
  EXPECT_FALSE(notice->contains("request_id"));
  EXPECT_TRUE(fs::exists(dir)) << "the project's own directory is never removed";
  EXPECT_FALSE(fs::exists(server_->data_dir() / "projects" / id));

  const auto list2 = alice->request(Json{{"type", "project_list"}});
  EXPECT_TRUE(data(list2).at("projects").as_array().empty());
  const auto again = alice->request(Json{{"type", "project_delete"}, {"project_id", id}});
  EXPECT_EQ(error_code(again), "PROJECT_NOT_FOUND");
  EXPECT_EQ(str(again, "project_id"), id);

  // Leaving works and is idempotent on a live project.
  const auto p2 = create_project(*alice, make_dir("other"));
  const std::string id2 = str(p2, "project_id");
  const auto left = alice->request(Json{{"type", "project_leave"}, {"project_id", id2}});
  EXPECT_EQ(str(left, "type"), "project_left");
  EXPECT_EQ(str(data(left), "project_id"), id2);
}

TEST_F(CoreTest, SubscribersSeeEachOthersChangesAndLeaversDoNot) {
  auto alice = connect();
  auto bob = connect();
  auto carol = connect();
  const auto created = create_project(*alice, make_dir("shared"));
  const std::string id = str(created, "project_id");
  ASSERT_EQ(str(bob->request(Json{{"type", "project_join"}, {"project_id", id}}), "type"),
            "project_joined");
  ASSERT_EQ(str(carol->request(Json{{"type", "project_join"}, {"project_id", id}}), "type"),
            "project_joined");
  ASSERT_EQ(str(carol->request(Json{{"type", "project_leave"}, {"project_id", id}}), "type"),
            "project_left");

  bob->request(Json{{"type", "project_delete"}, {"project_id", id}});
  ASSERT_TRUE(alice->read_until([](const Json& m) { return str(m, "type") == "project_deleted"; }));
  // Carol left: the next thing she sees is the reply to her own request, not the deletion.
  const auto reply = carol->request(Json{{"type", "project_list"}});
  EXPECT_EQ(str(reply, "type"), "project_list_response");
  for (const auto& m : carol->skipped()) EXPECT_NE(str(m, "type"), "project_deleted");
}

TEST_F(CoreTest, PathRules) {
  auto client = connect();
  const auto outer = make_dir("outer");
  const auto inner = make_dir("outer/inner");
  ASSERT_EQ(str(create_project(*client, inner), "type"), "project_state");

  // Containing an existing project, being inside one, or being the same are all nesting.
  auto r = create_project(*client, outer);
  EXPECT_EQ(error_code(r), "PROJECT_NESTING") << json::serialize(r);
  EXPECT_EQ(str(data(r).at("details").as_object(), "existing_path"), fs::canonical(inner).string());
  const auto deeper = make_dir("outer/inner/deeper");
  EXPECT_EQ(error_code(create_project(*client, deeper)), "PROJECT_NESTING");
  EXPECT_EQ(error_code(create_project(*client, inner)), "PROJECT_NESTING");

  // Symlinks and ".." are resolved before comparing.
  const auto link = projects_root_.path() / "link-to-inner";
  fs::create_directory_symlink(inner, link);
  EXPECT_EQ(error_code(create_project(*client, link)), "PROJECT_NESTING");
  EXPECT_EQ(error_code(create_project(*client, inner / ".." / "inner")), "PROJECT_NESTING");

  // "/a/inner2" does not nest with "/a/inner".
  EXPECT_EQ(str(create_project(*client, make_dir("outer/inner2")), "type"), "project_state");

  // A project created through a symlink is stored (and reported) under its real path.
  const auto real = make_dir("real");
  const auto alias = projects_root_.path() / "alias";
  fs::create_directory_symlink(real, alias);
  r = create_project(*client, alias / ".");
  ASSERT_EQ(str(r, "type"), "project_state") << json::serialize(r);
  EXPECT_EQ(str(data(r), "path"), fs::canonical(real).string());

  EXPECT_EQ(error_code(create_project(*client, "relative/path")), "INVALID_PATH");
  EXPECT_EQ(error_code(create_project(*client, projects_root_.path() / "missing")), "INVALID_PATH");
  const auto file = projects_root_.path() / "file.txt";
  { std::ofstream(file) << "x"; }
  r = create_project(*client, file);
  EXPECT_EQ(error_code(r), "INVALID_PATH");
  EXPECT_NE(str(data(r), "message").find("not a directory"), std::string::npos);
  r = client->request(Json{{"type", "project_create"}, {"data", Json{}}});
  EXPECT_EQ(error_code(r), "INVALID_MESSAGE");
  EXPECT_EQ(str(data(r).at("details").as_object(), "field"), "data.path");
}

TEST_F(CoreTest, ProjectLimit) {
  ServerOptions options;
  options.args = {"--max-projects", "2"};
  start_server(options);
  auto client = connect();
  EXPECT_EQ(str(create_project(*client, make_dir("a")), "type"), "project_state");
  EXPECT_EQ(str(create_project(*client, make_dir("b")), "type"), "project_state");
  const auto r = create_project(*client, make_dir("c"));
  EXPECT_EQ(error_code(r), "PROJECT_LIMIT");
}

TEST_F(CoreTest, MalformedInputGetsErrorsAndTheConnectionSurvives) {
  auto client = connect();
  const auto expect_invalid = [&](const std::string& text, const std::string& field) {
    client->send_text(text);
    const auto m = client->read();
    ASSERT_TRUE(m) << "no reply to " << text;
    EXPECT_EQ(error_code(*m), "INVALID_MESSAGE") << text;
    EXPECT_EQ(str(data(*m).at("details").as_object(), "field"), field) << text;
  };
  expect_invalid("{not json", "$");
  expect_invalid("[1,2]", "$");
  expect_invalid(R"({"data":{}})", "type");
  expect_invalid(R"({"type":42})", "type");
  expect_invalid(R"({"type":"project_list","data":"x"})", "data");
  expect_invalid(R"({"type":"project_list","extra":1})", "extra");
  expect_invalid(R"({"type":"get_messages","project_id":"p","data":{"limit":"ten"}})",
                 "data.limit");
  expect_invalid(R"({"type":"project_join","project_id":"a","data":{"project_id":"b"}})",
                 "project_id");
  expect_invalid(R"({"type":"no_such_type"})", "type");

  // request_id is echoed on errors.
  client->send_text(R"({"type":"no_such_type","request_id":"r-1"})");
  auto m = client->read();
  ASSERT_TRUE(m);
  EXPECT_EQ(str(*m, "request_id"), "r-1");

  client->send_binary("\x01\x02\x03");
  m = client->read();
  ASSERT_TRUE(m);
  EXPECT_EQ(error_code(*m), "INVALID_MESSAGE");

  const auto unknown = client->request(Json{{"type", "project_join"}, {"project_id", "nope"}});
  EXPECT_EQ(error_code(unknown), "PROJECT_NOT_FOUND");
  EXPECT_EQ(str(data(unknown).at("details").as_object(), "project_id"), "nope");

  // Still usable.
  EXPECT_EQ(str(client->request(Json{{"type", "project_list"}}), "type"), "project_list_response");
}

TEST_F(CoreTest, OversizedMessageClosesWith1009) {
  ServerOptions options;
  options.args = {"--message-size", "1024"};
  start_server(options);
  auto client = connect();
  client->send_text(R"({"type":"project_list","request_id":")" + std::string(2000, 'x') + "\"}");
  const auto closed = client->wait_closed();
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->code, 1009);
  auto other = connect();  // the server is fine
  EXPECT_EQ(str(other->request(Json{{"type", "project_list"}}), "type"), "project_list_response");
}

TEST_F(CoreTest, HealthOverWebSocketAndHttp) {
  auto client = connect();
  const auto health = client->request(Json{{"type", "health"}});
  ASSERT_EQ(str(health, "type"), "health_status");
  const auto& d = data(health);
  EXPECT_TRUE(str(d, "status") == "healthy" || str(d, "status") == "degraded");
  EXPECT_GE(d.at("uptime").as_int64(), 0);
  EXPECT_FALSE(str(d, "version").empty());
  EXPECT_EQ(d.at("connections").at("active").to_number<std::uint64_t>(), 1u);
  EXPECT_EQ(d.at("connections").at("limit").to_number<std::uint64_t>(), 100u);
  EXPECT_EQ(d.at("projects").at("count").to_number<std::uint64_t>(), 0u);
  EXPECT_EQ(d.at("projects").at("executing").to_number<std::uint64_t>(), 0u);
  const auto& res = d.at("resources").as_object();
  EXPECT_GT(res.at("memory_mb").to_number<double>(), 0);
  EXPECT_GE(res.at("threads").to_number<std::uint64_t>(), 2u);
  EXPECT_GT(res.at("disk_free_gb").to_number<double>(), 0);
  EXPECT_TRUE(res.contains("cpu_percent"));
  EXPECT_TRUE(d.at("claude").as_object().contains("available"));

  const auto http = http_get(server_->port(), true, "/health");
  EXPECT_EQ(http.status, 200);
  const auto body = json::parse(http.body).as_object();
  EXPECT_EQ(body.at("connections").at("limit").to_number<std::uint64_t>(), 100u);
  EXPECT_EQ(http.headers.at("Content-Type"), "application/json");

  EXPECT_EQ(http_get(server_->port(), true, "/nothing-here").status, 404);
  EXPECT_EQ(http_get(server_->port(), true, "/ws").status, 404);  // not an upgrade
}

TEST_F(CoreTest, ClaudeVersionIsReported) {
  // The probe runs in the background and logs its finding; health then reports it.
  ASSERT_TRUE(server_->wait_for_log(
      [](const std::string& l) { return l.find("claude CLI available") != std::string::npos; },
      20s));
  auto client = connect();
  const auto health = client->request(Json{{"type", "health"}});
  const auto& claude = data(health).at("claude").as_object();
  EXPECT_TRUE(claude.at("available").as_bool());
  EXPECT_EQ(str(claude, "version"), "2.1.197");
}

TEST_F(CoreTest, MissingClaudeIsReportedInHealth) {
  ServerOptions options;
  options.claude_binary = "/nonexistent/claude";
  start_server(options);
  ASSERT_TRUE(server_->wait_for_log(
      [](const std::string& l) { return l.find("claude CLI unavailable") != std::string::npos; },
      20s));
  auto client = connect();
  const auto health = client->request(Json{{"type", "health"}});
  EXPECT_EQ(str(data(health), "status"), "degraded");
  EXPECT_FALSE(data(health).at("claude").at("available").as_bool());
}

TEST_F(CoreTest, PersistsAcrossRestart) {
  auto client = connect();
  const auto dir = make_dir("keep");
  const auto created = create_project(*client, dir);
  const std::string id = str(created, "project_id");
  client.reset();
  const auto data_dir = server_->data_dir();
  ServerOptions options;
  options.data_dir = data_dir;
  auto keep_data = std::move(server_);  // keep its temp dir alive
  keep_data->stop();
  start_server(options);
  client = connect();
  const auto list = client->request(Json{{"type", "project_list"}});
  const auto& projects = data(list).at("projects").as_array();
  ASSERT_EQ(projects.size(), 1u);
  const auto& p = projects[0].as_object();
  EXPECT_EQ(str(p, "id"), id);
  EXPECT_EQ(str(p, "path"), fs::canonical(dir).string());
  EXPECT_EQ(str(p, "state"), "IDLE");
  EXPECT_EQ(str(p, "created_at"), str(data(created), "created_at"));
  // History survived too and continues its seq.
  const auto history = client->request(Json{{"type", "get_messages"}, {"project_id", id}});
  ASSERT_EQ(str(history, "type"), "messages_response");
  const auto& messages = data(history).at("messages").as_array();
  ASSERT_GE(messages.size(), 1u);
  EXPECT_EQ(messages[0].at("seq").as_int64(), 1);
  EXPECT_EQ(str(messages[0].as_object(), "direction"), "server");
}

TEST_F(CoreTest, UnwritableDataDirIsStorageFailedAndTheConnectionSurvives) {
  auto client = connect();
  // A regular file where the projects directory should be: no project can be saved.
  const auto projects = server_->data_dir() / "projects";
  fs::remove_all(projects);
  { std::ofstream(projects) << "not a directory"; }
  const auto dir = make_dir("unsaved");
  const auto failed = create_project(*client, dir);
  EXPECT_EQ(error_code(failed), "STORAGE_FAILED") << json::serialize(failed);
  EXPECT_FALSE(str(data(failed), "message").empty());
  EXPECT_EQ(str(data(failed).at("details").as_object(), "what"), "metadata");
  // Nothing half-made is listed, and once the directory is back the same create works.
  EXPECT_TRUE(
      data(client->request(Json{{"type", "project_list"}})).at("projects").as_array().empty());
  fs::remove(projects);
  fs::create_directories(projects);
  EXPECT_EQ(str(create_project(*client, dir), "type"), "project_state");
}

// A damaged project.json with no history to rebuild the path from: the project is not dropped
// silently. It is listed without a path (it cannot run), the log and health say so, and it can
// be deleted; the damaged file is kept aside.
TEST_F(CoreTest, CorruptMetadataWithoutHistoryIsListedWithoutAPathNotFatal) {
  auto client = connect();
  create_project(*client, make_dir("good"));
  client.reset();
  const auto data_dir = server_->data_dir();
  auto keep_data = std::move(server_);
  keep_data->stop();
  const std::string bad_id = "11111111-2222-4333-8444-555555555555";
  const auto bad = data_dir / "projects" / bad_id;
  fs::create_directories(bad);
  { std::ofstream(bad / "project.json") << "{ torn"; }
  ServerOptions options;
  options.data_dir = data_dir;
  start_server(options);
  EXPECT_TRUE(server_->wait_for_log(
      [&](const std::string& l) {
        return l.find(bad_id) != std::string::npos && l.find("cannot run") != std::string::npos;
      },
      5s));
  client = connect();
  const auto list = client->request(Json{{"type", "project_list"}});
  const auto& projects = data(list).at("projects").as_array();
  ASSERT_EQ(projects.size(), 2u) << json::serialize(list);
  bool listed = false;
  for (const auto& p : projects) {
    if (str(p.as_object(), "id") != bad_id) continue;
    listed = true;
    EXPECT_EQ(str(p.as_object(), "path"), "");
  }
  EXPECT_TRUE(listed);
  bool kept = false;
  for (const auto& e : fs::directory_iterator(bad)) {
    kept |= e.path().filename().string().rfind("project.json.corrupt-", 0) == 0;
  }
  EXPECT_TRUE(kept);
  auto health = client->request(Json{{"type", "health"}});
  ASSERT_EQ(data(health).at("warnings").as_array().size(), 1u) << json::serialize(health);
  EXPECT_NE(std::string(data(health).at("warnings").at(0).as_string()).find(bad_id),
            std::string::npos);
  // A project elsewhere can still be created (an unknown path nests with nothing).
  EXPECT_EQ(str(create_project(*client, make_dir("another")), "type"), "project_state");
  // Deleting it removes it and its warning.
  const auto deleted = client->request(Json{{"type", "project_delete"}, {"project_id", bad_id}});
  EXPECT_EQ(str(deleted, "type"), "project_deleted") << json::serialize(deleted);
  health = client->request(Json{{"type", "health"}});
  EXPECT_TRUE(data(health).at("warnings").as_array().empty()) << json::serialize(health);
}

}  // namespace
}  // namespace pa::test
