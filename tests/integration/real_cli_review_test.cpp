// Reviewing what the REAL CLI did: a Bash tool call (scripted by the model stub) edits a tracked
// file and creates a new one in a git project; project_changes and project_diff then show both
// from git, and file_read shows the new file.
#include "integration/real_cli_fixture.hpp"
#include "review/git.hpp"

namespace pa::test {
namespace {

std::string git(const fs::path& dir, std::vector<std::string> args) {
  std::vector<std::string> all = {"-c", "user.name=Test",         "-c", "user.email=t@example.com",
                                  "-c", "init.defaultBranch=main"};
  all.insert(all.end(), args.begin(), args.end());
  const auto out = review::run_git(review::GitSettings{}, dir.string(), all);
  EXPECT_EQ(out.status, review::GitOutput::Status::kOk) << args.front();
  return out.out;
}

TEST_F(RealCliStubTest, ChangesAndDiffShowWhatABashToolCallDidInAGitProject) {
  start();
  auto client = connect();
  const auto dir = make_dir("git-review");
  git(dir, {"init", "-q"});
  std::ofstream(dir / "tracked.txt") << "line one\n";
  git(dir, {"add", "-A"});
  git(dir, {"commit", "-q", "-m", "initial"});
  const auto id = str(create_project(*client, dir), "project_id");

  execute_ok(
      *client, id,
      R"([[stub:tool command="printf 'line two\n' >> tracked.txt && printf 'fresh\n' > added.txt"]] edit)",
      Json{{"allowed_tools", json::array{"Bash"}}});
  until_idle(*client, 120s);

  const auto changes = client->request(Json{{"type", "project_changes"}, {"project_id", id}});
  ASSERT_EQ(str(changes, "type"), "project_changes_response") << json::serialize(changes);
  EXPECT_EQ(str(data(changes), "source"), "git");
  std::map<std::string, json::object> files;
  for (const auto& f : data(changes).at("files").as_array()) {
    files[str(f.as_object(), "path")] = f.as_object();
  }
  ASSERT_EQ(files.size(), 2u) << json::serialize(changes);
  EXPECT_EQ(str(files["tracked.txt"], "status"), "modified");
  EXPECT_EQ(files["tracked.txt"].at("added").as_int64(), 1);
  EXPECT_EQ(files["tracked.txt"].at("deleted").as_int64(), 0);
  EXPECT_EQ(str(files["added.txt"], "status"), "untracked");
  EXPECT_EQ(files["added.txt"].at("added").as_int64(), 1);

  const auto diff = client->request(Json{{"type", "project_diff"}, {"project_id", id}});
  const std::string text = str(data(diff), "diff");
  EXPECT_NE(text.find(" line one\n+line two\n"), std::string::npos) << text;
  EXPECT_NE(text.find("+++ b/added.txt\n@@ -0,0 +1 @@\n+fresh\n"), std::string::npos) << text;

  const auto read = client->request(
      Json{{"type", "file_read"}, {"project_id", id}, {"data", {{"path", "added.txt"}}}});
  EXPECT_EQ(str(data(read), "content"), "fresh\n");

  // The run is also in the session list, with the cost its result reported.
  const auto sessions = client->request(Json{{"type", "session_list"}, {"project_id", id}});
  const auto& list = data(sessions).at("sessions").as_array();
  ASSERT_EQ(list.size(), 1u) << json::serialize(sessions);
  EXPECT_EQ(list[0].as_object().at("runs").as_int64(), 1);
  EXPECT_EQ(list[0].as_object().at("current"), true);
}

}  // namespace
}  // namespace pa::test
