// The review requests over the WebSocket (docs/protocol.md "Reviewing a project"):
// project_changes and project_diff from history (non-git project, fake CLI transcripts with
// Write/Edit) and from git, file_read and file_list with their path refusals, session_list and
// resuming a past session with execute options.session_id. Every refusal leaves the connection
// usable.
#include <sys/stat.h>

#include <fstream>

#include "integration/fixture.hpp"
#include "review/git.hpp"

namespace pa::test {
namespace {

namespace fs = std::filesystem;

class ReviewTest : public AgentServerTest {
 protected:
  Json ask(WsClient& client, const std::string& type, const std::string& id, Json data = {}) {
    Json message{{"type", type}, {"project_id", id}};
    if (!data.empty()) message["data"] = std::move(data);
    return client.request(std::move(message));
  }

  // A transcript for the fake CLI's replay mode: Write then Edit of notes.txt in `dir`, a Write
  // outside the project, a denied Write, and a result with a cost.
  fs::path write_transcript(const fs::path& dir) {
    const std::string notes = (dir / "notes.txt").string();
    auto tool_use = [](const std::string& id, const std::string& name, Json input) {
      return json::serialize(Json{
          {"type", "assistant"},
          {"message",
           {{"id", "msg_" + id},
            {"type", "message"},
            {"role", "assistant"},
            {"model", "claude-sonnet-4-5"},
            {"content",
             json::array{{{"type", "tool_use"}, {"id", id}, {"name", name}, {"input", input}}}}}},
          {"parent_tool_use_id", nullptr},
          {"session_id", "11111111-1111-4111-8111-111111111111"}});
    };
    auto tool_result = [](const std::string& id, bool error) {
      return json::serialize(Json{{"type", "user"},
                                  {"message",
                                   {{"role", "user"},
                                    {"content", json::array{{{"tool_use_id", id},
                                                             {"type", "tool_result"},
                                                             {"content", error ? "denied" : "ok"},
                                                             {"is_error", error}}}}}},
                                  {"parent_tool_use_id", nullptr},
                                  {"session_id", "11111111-1111-4111-8111-111111111111"}});
    };
    const auto path = state_.path() / "edits.jsonl";
    std::ofstream out(path);
    out << tool_use("toolu_01", "Write", {{"file_path", notes}, {"content", "one\ntwo\n"}}) << "\n"
        << tool_result("toolu_01", false) << "\n"
        << tool_use("toolu_02", "Edit",
                    {{"file_path", notes}, {"old_string", "two"}, {"new_string", "TWO"}})
        << "\n"
        << tool_result("toolu_02", false) << "\n"
        << tool_use("toolu_03", "Write", {{"file_path", "/tmp/elsewhere.txt"}, {"content", "x"}})
        << "\n"
        << tool_result("toolu_03", false) << "\n"
        << tool_use("toolu_04", "Write",
                    {{"file_path", (dir / "denied.txt").string()}, {"content", "no"}})
        << "\n"
        << tool_result("toolu_04", true) << "\n"
        << R"({"type":"result","subtype":"success","is_error":false,"duration_ms":10,"num_turns":3,"result":"done","session_id":"11111111-1111-4111-8111-111111111111","total_cost_usd":0.25})"
        << "\n";
    return path;
  }

  std::string git(const fs::path& dir, std::vector<std::string> args) {
    std::vector<std::string> all = {
        "-c", "user.name=Test", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"};
    all.insert(all.end(), args.begin(), args.end());
    const auto out = review::run_git(review::GitSettings{}, dir.string(), all);
    EXPECT_EQ(out.status, review::GitOutput::Status::kOk) << args.front();
    return out.out;
  }
};

const Json* file_named(const Json& reply, const std::string& path) {
  for (const auto& f : data(reply).at("files").as_array()) {
    if (str(f.as_object(), "path") == path) return &f.as_object();
  }
  return nullptr;
}

TEST_F(ReviewTest, ANonGitProjectReportsTheEditsRecordedInHistory) {
  auto client = connect();
  const auto dir = make_dir("plain");
  const auto id = str(create_project(*client, dir), "project_id");
  const auto transcript = write_transcript(dir);
  ASSERT_TRUE(is_state(execute(*client, id, "[[fake:replay file=" + transcript.string() + "]]"),
                       "EXECUTING"));
  until_idle(*client);

  const auto changes = ask(*client, "project_changes", id);
  ASSERT_EQ(str(changes, "type"), "project_changes_response") << json::serialize(changes);
  EXPECT_EQ(str(data(changes), "source"), "history");
  ASSERT_EQ(data(changes).at("files").as_array().size(), 1u) << json::serialize(changes);
  const auto* notes = file_named(changes, "notes.txt");
  ASSERT_NE(notes, nullptr);
  EXPECT_EQ(str(*notes, "status"), "written");
  EXPECT_EQ(notes->at("tools"), (json::array{"Write", "Edit"}));
  EXPECT_EQ(notes->at("added").as_int64(), 3);
  EXPECT_EQ(notes->at("deleted").as_int64(), 1);
  const auto& seqs = notes->at("seqs").as_array();
  ASSERT_EQ(seqs.size(), 2u);

  const auto diff = ask(*client, "project_diff", id, {{"path", "notes.txt"}});
  ASSERT_EQ(str(diff, "type"), "project_diff_response") << json::serialize(diff);
  EXPECT_EQ(str(data(diff), "source"), "history");
  const std::string text = str(data(diff), "diff");
  EXPECT_NE(text.find("@@ seq " + std::to_string(seqs[0].as_int64()) + " Write @@\n+one\n+two\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(" Edit @@\n-two\n+TWO\n"), std::string::npos) << text;
  EXPECT_EQ(data(diff).at("truncated"), false);

  // since_seq past the edits: nothing.
  const auto later = ask(*client, "project_changes", id, {{"since_seq", seqs[1].as_int64()}});
  EXPECT_TRUE(data(later).at("files").as_array().empty()) << json::serialize(later);
}

TEST_F(ReviewTest, AGitProjectReportsTheWorkTreeAgainstHead) {
  auto client = connect();
  const auto dir = make_dir("repo");
  git(dir, {"init", "-q"});
  std::ofstream(dir / "app.py") << "print('hi')\n";
  git(dir, {"add", "-A"});
  git(dir, {"commit", "-q", "-m", "initial"});
  std::ofstream(dir / "app.py") << "print('hello')\nprint('bye')\n";
  std::ofstream(dir / "new.md") << "# new\n";
  const auto id = str(create_project(*client, dir), "project_id");

  const auto changes = ask(*client, "project_changes", id);
  ASSERT_EQ(str(changes, "type"), "project_changes_response") << json::serialize(changes);
  EXPECT_EQ(str(data(changes), "source"), "git");
  const auto* app = file_named(changes, "app.py");
  ASSERT_NE(app, nullptr) << json::serialize(changes);
  EXPECT_EQ(str(*app, "status"), "modified");
  EXPECT_EQ(app->at("added").as_int64(), 2);
  EXPECT_EQ(app->at("deleted").as_int64(), 1);
  const auto* added = file_named(changes, "new.md");
  ASSERT_NE(added, nullptr);
  EXPECT_EQ(str(*added, "status"), "untracked");

  const auto diff = ask(*client, "project_diff", id);
  const std::string text = str(data(diff), "diff");
  EXPECT_EQ(str(data(diff), "source"), "git");
  EXPECT_NE(text.find("-print('hi')\n+print('hello')\n+print('bye')\n"), std::string::npos) << text;
  EXPECT_NE(text.find("+++ b/new.md\n@@ -0,0 +1 @@\n+# new\n"), std::string::npos) << text;
}

TEST_F(ReviewTest, FileReadAndFileListStayInsideTheProject) {
  auto client = connect();
  const auto dir = make_dir("files");
  const auto outside = make_dir("outside");
  std::ofstream(dir / "hello.txt") << "hello\n";
  std::ofstream(dir / "blob.bin") << std::string("a\0b", 3);
  std::ofstream(dir / "big.txt") << std::string(3u << 20, 'x');
  std::ofstream(outside / "secret.txt") << "secret\n";
  fs::create_symlink(outside / "secret.txt", dir / "escape.txt");
  fs::create_symlink("hello.txt", dir / "alias.txt");
  fs::create_directories(dir / "sub");
  const auto id = str(create_project(*client, dir), "project_id");

  auto read = ask(*client, "file_read", id, {{"path", "alias.txt"}});
  ASSERT_EQ(str(read, "type"), "file_read_response") << json::serialize(read);
  EXPECT_EQ(str(data(read), "content"), "hello\n");
  EXPECT_EQ(data(read).at("eof"), true);

  read = ask(*client, "file_read", id, {{"path", "blob.bin"}});
  EXPECT_EQ(data(read).at("binary"), true);
  EXPECT_FALSE(data(read).contains("content"));

  read = ask(*client, "file_read", id, {{"path", "big.txt"}, {"length", 100000000}});
  EXPECT_EQ(data(read).at("length").as_int64(), 1 << 20);
  EXPECT_EQ(data(read).at("truncated"), true);
  EXPECT_EQ(data(read).at("size").as_int64(), 3 << 20);

  const std::vector<std::pair<std::string, std::string>> refused = {
      {"../outside/secret.txt", "invalid"},
      {(outside / "secret.txt").string(), "invalid"},
      {"escape.txt", "outside_project"},
      {"missing.txt", "not_found"},
      {"sub", "not_a_file"},
  };
  for (const auto& [path, reason] : refused) {
    const auto r = ask(*client, "file_read", id, {{"path", path}});
    EXPECT_EQ(error_code(r), "INVALID_PATH") << path << ": " << json::serialize(r);
    const auto& details = data(r).at("details").as_object();
    EXPECT_EQ(str(details, "reason"), reason) << path;
    EXPECT_EQ(str(details, "path"), path);
    EXPECT_EQ(str(details, "field"), "data.path");
  }
  // Malformed requests: the documented INVALID_MESSAGE.
  EXPECT_EQ(error_code(ask(*client, "file_read", id)), "INVALID_MESSAGE");
  EXPECT_EQ(error_code(ask(*client, "file_read", id, {{"path", 5}})), "INVALID_MESSAGE");
  EXPECT_EQ(error_code(ask(*client, "file_read", id, {{"path", "a"}, {"mode", "w"}})),
            "INVALID_MESSAGE");
  EXPECT_EQ(error_code(ask(*client, "file_read", id, {{"path", "a"}, {"offset", -1}})),
            "INVALID_MESSAGE");
  EXPECT_EQ(error_code(ask(*client, "file_read", "00000000-0000-4000-8000-000000000000",
                           {{"path", "hello.txt"}})),
            "PROJECT_NOT_FOUND");

  const auto list = ask(*client, "file_list", id);
  ASSERT_EQ(str(list, "type"), "file_list_response") << json::serialize(list);
  std::map<std::string, std::string> kinds;
  for (const auto& e : data(list).at("entries").as_array()) {
    kinds[str(e.as_object(), "name")] = str(e.as_object(), "kind");
  }
  EXPECT_EQ(kinds["sub"], "dir");
  EXPECT_EQ(kinds["hello.txt"], "file");
  EXPECT_EQ(kinds["escape.txt"], "symlink");
  EXPECT_EQ(error_code(ask(*client, "file_list", id, {{"path", ".."}})), "INVALID_PATH");
  EXPECT_EQ(error_code(ask(*client, "file_list", id, {{"path", "hello.txt"}})), "INVALID_PATH");
  EXPECT_EQ(error_code(ask(*client, "project_diff", id, {{"path", "/etc"}})), "INVALID_PATH");
  EXPECT_EQ(error_code(ask(*client, "project_changes", id, {{"since_seq", "x"}})),
            "INVALID_MESSAGE");
  EXPECT_EQ(error_code(ask(*client, "session_list", id, {{"x", 1}})), "INVALID_MESSAGE");

  // Still served after every refusal.
  read = ask(*client, "file_read", id, {{"path", "hello.txt"}});
  EXPECT_EQ(str(data(read), "content"), "hello\n");
}

TEST_F(ReviewTest, SessionListShowsPastSessionsAndExecuteResumesOne) {
  auto client = connect();
  const auto id = new_project(*client, "sessions");
  ASSERT_TRUE(is_state(execute(*client, id, "first conversation"), "EXECUTING"));
  until_idle(*client);
  ASSERT_EQ(str(ask(*client, "agent_new_session", id), "type"), "session_reset");
  ASSERT_TRUE(is_state(execute(*client, id, "second conversation"), "EXECUTING"));
  until_idle(*client);

  const auto list = ask(*client, "session_list", id);
  ASSERT_EQ(str(list, "type"), "session_list_response") << json::serialize(list);
  const auto& sessions = data(list).at("sessions").as_array();
  ASSERT_EQ(sessions.size(), 2u) << json::serialize(list);
  EXPECT_EQ(str(sessions[0].as_object(), "first_prompt"), "second conversation");
  EXPECT_EQ(sessions[0].as_object().at("current"), true);
  EXPECT_EQ(str(sessions[1].as_object(), "first_prompt"), "first conversation");
  EXPECT_EQ(sessions[1].as_object().at("runs").as_int64(), 1);
  EXPECT_EQ(sessions[1].as_object().at("current"), false);
  const std::string older = str(sessions[1].as_object(), "session_id");

  ASSERT_TRUE(is_state(execute(*client, id, "back to the first", Json{{"session_id", older}}),
                       "EXECUTING"));
  const auto seen = until_idle(*client);
  EXPECT_EQ(str(data(seen.back()), "session_id"), older);
  const auto runs = records();
  ASSERT_EQ(runs.size(), 3u);
  const auto argv = json::serialize(runs.back().at("argv"));
  EXPECT_NE(argv.find("\"--resume=" + older + "\""), std::string::npos) << argv;

  const auto again = ask(*client, "session_list", id);
  EXPECT_EQ(str(data(again).at("sessions").as_array()[0].as_object(), "session_id"), older);
  EXPECT_EQ(data(again).at("sessions").as_array()[0].as_object().at("runs").as_int64(), 2);

  for (const auto* bad : {"not-a-uuid", "--help", "11111111-1111-4111-8111-11111111111g"}) {
    const auto r = execute(*client, id, "x", Json{{"session_id", bad}});
    EXPECT_EQ(error_code(r), "INVALID_MESSAGE") << bad;
    EXPECT_EQ(str(data(r).at("details").as_object(), "field"), "data.options.session_id");
  }
}

}  // namespace
}  // namespace pa::test
