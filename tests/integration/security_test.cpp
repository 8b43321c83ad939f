// Security policy through the real server: the path deny list and allowed roots (project_create
// and add_dirs), a project directory swapped for a symlink after creation, refusing root,
// data-directory permissions, the CLI's environment allow-list and argv built only from
// server-chosen flags.
#include <sys/stat.h>
#include <unistd.h>

#include <set>

#include "integration/fixture.hpp"

namespace pa::test {
namespace {

namespace fs = std::filesystem;

class SecurityTest : public AgentServerTest {
 protected:
  // Expects an INVALID_PATH error whose reason contains `reason_part`.
  static void expect_invalid_path(const Json& reply, std::string_view reason_part) {
    ASSERT_EQ(error_code(reply), "INVALID_PATH") << json::serialize(reply);
    const std::string message = str(data(reply), "message");
    EXPECT_NE(message.find(reason_part), std::string::npos) << message;
  }

  // The server still serves: a new project in a fresh directory works.
  void expect_still_serving(WsClient& client, const std::string& name) {
    const auto reply = create_project(client, make_dir(name));
    EXPECT_EQ(str(reply, "type"), "project_state") << json::serialize(reply);
  }

  static mode_t mode_of(const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
  }
};

TEST_F(SecurityTest, ProjectCreateRefusesSystemAndPrivateDirectories) {
  auto client = connect();
  for (const char* denied : {"/", "/etc", "/usr/bin", "/proc/self", "/var/tmp", "/dev"}) {
    SCOPED_TRACE(denied);
    expect_invalid_path(create_project(*client, denied), "");
  }
  expect_invalid_path(create_project(*client, "/etc/ssl"), "inside /etc");
  // The server's own data directory, a directory inside it, and one that contains it.
  expect_invalid_path(create_project(*client, server_->data_dir()), "private directory");
  expect_invalid_path(create_project(*client, server_->data_dir() / "tmp"), "private directory");
  expect_invalid_path(create_project(*client, server_->data_dir().parent_path()),
                      "contains the server's private directory");
  // A symlink into a denied directory, and ".." walking into one.
  fs::create_directory_symlink("/etc", projects_root_.path() / "etc-link");
  const auto via_link = create_project(*client, projects_root_.path() / "etc-link");
  expect_invalid_path(via_link, "inside /etc");
  EXPECT_EQ(str(data(via_link).at("details").as_object(), "canonical_path"), "/etc");
  expect_invalid_path(
      create_project(*client, projects_root_.path().string() + "/../../../../../../../etc"),
      "inside /etc");

  const auto list = client->request(Json{{"type", "project_list"}});
  EXPECT_TRUE(data(list).at("projects").as_array().empty()) << json::serialize(list);
  expect_still_serving(*client, "fine");
}

TEST_F(SecurityTest, AddDirsAreCheckedAgainstThePolicyBeforeTheCliStarts) {
  auto client = connect();
  const auto id = new_project(*client);
  fs::create_directory_symlink("/usr", projects_root_.path() / "usr-link");
  const json::array cases[] = {json::array{"/etc"},
                               json::array{(projects_root_.path() / "usr-link").string()},
                               json::array{make_dir("ok").string(), server_->data_dir().string()}};
  const char* fields[] = {"data.options.add_dirs[0]", "data.options.add_dirs[0]",
                          "data.options.add_dirs[1]"};
  for (std::size_t i = 0; i < std::size(cases); ++i) {
    SCOPED_TRACE(i);
    const auto reply = execute(*client, id, "hi", Json{{"add_dirs", cases[i]}});
    ASSERT_EQ(error_code(reply), "INVALID_PATH") << json::serialize(reply);
    const auto& details = data(reply).at("details").as_object();
    EXPECT_EQ(str(details, "field"), fields[i]);
    EXPECT_NE(str(data(reply), "message").find("refused"), std::string::npos)
        << json::serialize(reply);
  }
  EXPECT_TRUE(records().empty()) << "no CLI may start for a refused execute";
  // An allowed directory works.
  ASSERT_TRUE(is_state(
      execute(*client, id, "hi", Json{{"add_dirs", json::array{make_dir("extra").string()}}}),
      "EXECUTING"));
  until_idle(*client);
  EXPECT_EQ(records().size(), 1u);
}

TEST_F(SecurityTest, AllowedRootsConfineProjectsAndAddDirs) {
  const fs::path root = make_dir("allowed");
  start_agent_server({"--allowed-roots", root.string()});
  auto client = connect();
  const auto inside = create_project(*client, make_dir("allowed/app"));
  ASSERT_EQ(str(inside, "type"), "project_state") << json::serialize(inside);
  expect_invalid_path(create_project(*client, make_dir("outside")),
                      "outside projects.allowed_roots");
  const auto id = str(inside, "project_id");
  const auto reply =
      execute(*client, id, "hi", Json{{"add_dirs", json::array{make_dir("outside2").string()}}});
  ASSERT_EQ(error_code(reply), "INVALID_PATH") << json::serialize(reply);
  EXPECT_NE(str(data(reply), "message").find("outside projects.allowed_roots"), std::string::npos);
  ASSERT_TRUE(is_state(
      execute(*client, id, "hi", Json{{"add_dirs", json::array{make_dir("allowed/lib").string()}}}),
      "EXECUTING"));
  until_idle(*client);
}

TEST_F(SecurityTest, MissingAllowedRootStopsTheServerAtStart) {
  TempDir data_dir("pa-data");
  const auto r = run_command(with_root_flag({PA_SERVER_BINARY, "--port", "0", "--no-tls", "--host",
                                             "127.0.0.1", "--data-dir", data_dir.path().string(),
                                             "--allowed-roots", "/nonexistent/pa-allowed"}));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("projects.allowed_roots"), std::string::npos) << r.output;
}

TEST_F(SecurityTest, ProjectDirectorySwappedForASymlinkAfterCreateIsNotEntered) {
  auto client = connect();
  const fs::path parent = make_dir("parent");
  const fs::path project_dir = make_dir("parent/proj");
  const auto id = str(create_project(*client, project_dir), "project_id");
  ASSERT_FALSE(id.empty());

  // Swap a component of the checked path for a symlink (to a look-alike tree), then the
  // project directory itself for a symlink into /etc.
  fs::rename(parent, projects_root_.path() / "parent-real");
  fs::create_directory_symlink(projects_root_.path() / "parent-real", parent);
  auto seen = [&] {
    const auto reply = execute(*client, id, "hi");
    EXPECT_TRUE(is_state(reply, "EXECUTING")) << json::serialize(reply);
    return until_idle(*client);
  }();
  auto errors = std::count_if(seen.begin(), seen.end(),
                              [](const Json& m) { return error_code(m) == "INVALID_PATH"; });
  EXPECT_EQ(errors, 1) << "a symlinked component is refused";

  fs::remove(parent);
  fs::create_directory(parent);
  fs::create_directory_symlink("/etc", project_dir);
  const auto reply = execute(*client, id, "hi");
  EXPECT_TRUE(is_state(reply, "EXECUTING")) << json::serialize(reply);
  seen = until_idle(*client);
  errors = std::count_if(seen.begin(), seen.end(),
                         [](const Json& m) { return error_code(m) == "INVALID_PATH"; });
  EXPECT_EQ(errors, 1) << "a project directory replaced by a symlink is refused";
  EXPECT_TRUE(records().empty()) << "the CLI never started in a swapped directory";

  // Restored, it runs again.
  fs::remove(project_dir);
  fs::create_directory(project_dir);
  ASSERT_TRUE(is_state(execute(*client, id, "hi"), "EXECUTING"));
  until_idle(*client);
  const auto rec = records();
  ASSERT_EQ(rec.size(), 1u);
  EXPECT_EQ(str(rec[0], "cwd"), fs::canonical(project_dir).string());
}

TEST_F(SecurityTest, AddDirSwappedWhileTheRunIsQueuedIsRefusedAtStart) {
  start_agent_server({"--execution-max-concurrent", "1"});
  auto client = connect();
  const auto busy = new_project(*client, "busy");
  const auto queued = new_project(*client, "queued");
  const fs::path extra = make_dir("extra");
  ASSERT_TRUE(is_state(execute(*client, busy, "[[fake:hang]]"), "EXECUTING"));
  ASSERT_TRUE(is_state(
      execute(*client, queued, "hi", Json{{"add_dirs", json::array{extra.string()}}}), "QUEUED"));
  // The checked directory becomes a symlink into /etc before the queued run starts.
  fs::remove(extra);
  fs::create_directory_symlink("/etc", extra);
  const std::size_t before_kill = client->skipped().size();
  client->request(Json{{"type", "agent_kill"}, {"project_id", busy}}, std::chrono::seconds(30));
  bool refused = false;
  const auto track = [&](const Json& m) {
    if (error_code(m) == "INVALID_PATH" && str(m, "project_id") == queued) {
      refused = true;
      EXPECT_EQ(str(data(m).at("details").as_object(), "path"),
                fs::canonical(projects_root_.path()).string() + "/extra");
    }
    return is_state(m, "IDLE") && str(m, "project_id") == queued;
  };
  // The queued run may start, and be refused, before the kill's reply arrives.
  bool idle = false;
  for (std::size_t i = before_kill; i < client->skipped().size(); ++i) {
    idle |= track(client->skipped()[i]);
  }
  if (!idle) {
    ASSERT_TRUE(client->read_until(track, std::chrono::seconds(30)));
  }
  EXPECT_TRUE(refused);
  for (const auto& record : records()) {
    EXPECT_EQ(json::serialize(record.at("argv")).find("--add-dir"), std::string::npos)
        << "the queued run must not start with the swapped directory";
  }
}

TEST_F(SecurityTest, RefusesToRunAsRootWithoutAllowRoot) {
  if (::geteuid() != 0) GTEST_SKIP() << "only meaningful when the tests run as root";
  TempDir data_dir("pa-data");
  const auto r = run_command({PA_SERVER_BINARY, "--port", "0", "--no-tls", "--host", "127.0.0.1",
                              "--data-dir", data_dir.path().string()});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("refusing to run as root"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--allow-root"), std::string::npos) << r.output;
}

TEST_F(SecurityTest, DataFilesArePrivateAndLooseDataDirIsReported) {
  TempDir base("pa-perm");
  const fs::path data_dir = base.path() / "data";
  fs::create_directory(data_dir);
  ASSERT_EQ(::chmod(data_dir.c_str(), 0755), 0);
  ServerOptions options;
  options.data_dir = data_dir;
  options.args = {"--claude-env", "FAKE_CLAUDE_STATE_DIR=" + (state_.path() / "s").string()};
  start_server(options);
  EXPECT_TRUE(server_->wait_for_log(
      [](const std::string& line) { return line.find("permissions 0755") != std::string::npos; },
      std::chrono::seconds(10)));
  EXPECT_EQ(mode_of(data_dir), 0700u);

  auto client = connect();
  const auto id = new_project(*client);
  ASSERT_TRUE(is_state(execute(*client, id, "hi"), "EXECUTING"));
  until_idle(*client);
  const fs::path project = data_dir / "projects" / id;
  EXPECT_EQ(mode_of(project / "project.json"), 0600u);
  EXPECT_EQ(mode_of(project / "logs"), 0700u);
  std::size_t logs = 0;
  for (const auto& entry : fs::directory_iterator(project / "logs")) {
    EXPECT_EQ(mode_of(entry.path()), 0600u) << entry.path();
    ++logs;
  }
  EXPECT_GE(logs, 1u);
  EXPECT_EQ(mode_of(data_dir / "tmp"), 0700u);

  const auto token = run_command(
      with_root_flag({PA_SERVER_BINARY, "token", "--data-dir", (base.path() / "other").string()}));
  ASSERT_EQ(token.exit_code, 0) << token.output;
  EXPECT_EQ(mode_of(base.path() / "other" / "auth_token"), 0600u);
  // The data dir the token command creates is as private as the server's own.
  EXPECT_EQ(mode_of(base.path() / "other"), 0700u);
}

TEST_F(SecurityTest, CliEnvironmentIsBuiltFromTheAllowList) {
  ServerOptions options;
  options.env = {{"PA_TEST_UNRELATED", "x"},           {"AWS_SECRET_ACCESS_KEY", "leak-me-not"},
                 {"SSH_AUTH_SOCK", "/tmp/agent.sock"}, {"ANTHROPIC_API_KEY", "sk-test"},
                 {"CLAUDE_CODE_USE_BEDROCK", "0"},     {"LANG", "C.UTF-8"}};
  options.args = {"--claude-env",
                  "FAKE_CLAUDE_RECORD=" + record_file().string() + ",FAKE_CLAUDE_STATE_DIR=" +
                      (state_.path() / "sessions").string() + ",EXTRA_FROM_CONFIG=1"};
  start_server(options);
  auto client = connect();
  const Json record = record_of_one_run(*client);
  ASSERT_FALSE(record.empty());
  const auto& env = record.at("env").as_object();
  std::set<std::string> names;
  for (const auto& entry : env) names.insert(std::string(entry.key()));
  for (const char* absent :
       {"AWS_SECRET_ACCESS_KEY", "SSH_AUTH_SOCK", "PA_TEST_UNRELATED", "PA_AUTH_TOKEN"}) {
    EXPECT_FALSE(names.contains(absent)) << absent;
  }
  EXPECT_EQ(str(env, "ANTHROPIC_API_KEY"), "sk-test");
  EXPECT_EQ(str(env, "CLAUDE_CODE_USE_BEDROCK"), "0");
  EXPECT_EQ(str(env, "LANG"), "C.UTF-8");
  EXPECT_EQ(str(env, "EXTRA_FROM_CONFIG"), "1");
  EXPECT_TRUE(names.contains("PATH"));
  static const std::set<std::string> kAllowed = {
      "PATH",    "HOME",  "LANG", "LC_ALL",   "LC_CTYPE",         "TZ", "TMPDIR", "USER",
      "LOGNAME", "SHELL", "TERM", "NO_COLOR", "EXTRA_FROM_CONFIG"};
  for (const auto& name : names) {
    const bool allowed = kAllowed.contains(name) || name.starts_with("ANTHROPIC_") ||
                         name.starts_with("CLAUDE_") || name.starts_with("FAKE_CLAUDE_");
    EXPECT_TRUE(allowed) << name << " is not on the allow-list";
  }
}

TEST_F(SecurityTest, ClientTextNeverTakesAFlagPosition) {
  auto client = connect();
  const auto id = new_project(*client);
  // Option values that look like flags are refused where the value has a pattern...
  for (const auto& [name, value] :
       {std::pair<const char*, json::value>{"model", "--dangerously-skip-permissions"},
        {"fallback_model", "-p"},
        {"permission_mode", "--help"},
        {"allowed_tools", json::array{"--dangerously-skip-permissions"}},
        {"disallowed_tools", json::array{"-x"}},
        {"add_dirs", json::array{"--add-dir=/etc"}}}) {
    SCOPED_TRACE(name);
    const auto reply = execute(*client, id, "hi", Json{{name, value}});
    EXPECT_FALSE(error_code(reply).empty()) << json::serialize(reply);
  }
  // ...and free text rides inside "--flag=value" or on stdin, never as an argument of its own.
  const std::string prompt = "--dangerously-skip-permissions --help";
  const std::string appended = "--permission-mode=bypassPermissions";
  ASSERT_TRUE(is_state(execute(*client, id, prompt, Json{{"append_system_prompt", appended}}),
                       "EXECUTING"));
  const auto seen = until_idle(*client);
  EXPECT_TRUE(std::any_of(seen.begin(), seen.end(),
                          [](const Json& m) { return str(m, "type") == "agent_message"; }));
  const auto rec = records();
  ASSERT_EQ(rec.size(), 1u);
  static const std::set<std::string> kServerFlags = {"-p",
                                                     "--permission-prompt-tool",
                                                     "--input-format",
                                                     "--output-format",
                                                     "--verbose",
                                                     "--model",
                                                     "--append-system-prompt",
                                                     "--permission-mode",
                                                     "--resume",
                                                     "--allowedTools"};
  const auto& argv = rec[0].at("argv").as_array();
  for (std::size_t i = 1; i < argv.size(); ++i) {
    const std::string arg(argv[i].as_string());
    const std::string flag = arg.substr(0, arg.find('='));
    EXPECT_TRUE(kServerFlags.contains(flag)) << "unexpected argv element: " << arg;
    EXPECT_NE(arg, prompt);
    EXPECT_NE(arg, appended) << "client text must not be an argument of its own";
  }
  EXPECT_NE(std::find(argv.begin(), argv.end(), json::value("--append-system-prompt=" + appended)),
            argv.end());
  // The prompt travelled on stdin, as a stream-json user message.
  const auto& in = rec[0].at("stdin").as_array();
  ASSERT_FALSE(in.empty());
  const auto first = json::parse(in[0].as_string()).as_object();
  EXPECT_EQ(str(first.at("message").as_object(), "content"), prompt);
}

}  // namespace
}  // namespace pa::test
