#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "projects/path_rules.hpp"
#include "projects/project_info.hpp"
#include "projects/project_store.hpp"
#include "support/server_process.hpp"

namespace pa::projects {
namespace {

namespace fs = std::filesystem;

TEST(ProjectInfo, UuidsAreV4AndUnique) {
  std::set<std::string> seen;
  const std::regex v4("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  for (int i = 0; i < 1000; ++i) {
    const auto id = random_uuid();
    EXPECT_TRUE(std::regex_match(id, v4)) << id;
    EXPECT_TRUE(looks_like_uuid(id));
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
  EXPECT_FALSE(looks_like_uuid("../../etc"));
}

TEST(PathRules, Nesting) {
  EXPECT_TRUE(paths_nest("/a/b", "/a/b"));
  EXPECT_TRUE(paths_nest("/a/b", "/a/b/c"));
  EXPECT_TRUE(paths_nest("/a/b/c", "/a/b"));
  EXPECT_FALSE(paths_nest("/a/b", "/a/bc"));
  EXPECT_FALSE(paths_nest("/a/bc", "/a/b"));
  EXPECT_TRUE(paths_nest("/", "/anything"));
}

TEST(PathRules, Canonicalization) {
  test::TempDir dir("pa-paths");
  fs::create_directories(dir.path() / "real" / "sub");
  fs::create_directory_symlink(dir.path() / "real", dir.path() / "link");
  const auto canonical = fs::canonical(dir.path() / "real").string();
  EXPECT_EQ(std::get<std::string>(canonical_project_path((dir.path() / "link").string())),
            canonical);
  EXPECT_EQ(std::get<std::string>(canonical_project_path((dir.path() / "real/sub/..").string())),
            canonical);
  for (const std::string& bad :
       {std::string(""), std::string("relative"), (dir.path() / "missing").string()}) {
    auto r = canonical_project_path(bad);
    ASSERT_TRUE(std::holds_alternative<protocol::Error>(r)) << bad;
    EXPECT_EQ(std::get<protocol::Error>(r).code, protocol::ErrorCode::kInvalidPath);
  }
  std::ofstream(dir.path() / "file") << "x";
  EXPECT_TRUE(std::holds_alternative<protocol::Error>(
      canonical_project_path((dir.path() / "file").string())));
}

TEST(ProjectStore, SaveLoadRemove) {
  test::TempDir dir("pa-store");
  ProjectStore store(dir.path());
  ProjectInfo info;
  info.id = random_uuid();
  info.path = "/some/where";
  info.state = State::kExecuting;
  info.session_id = "sess-1";
  info.created_at = "2024-01-01T00:00:00.000Z";
  info.last_active = "2024-01-02T00:00:00.000Z";
  ASSERT_FALSE(store.save(info));
  EXPECT_EQ(fs::status(store.project_dir(info.id) / "project.json").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);

  // Junk beside it is skipped with a warning.
  fs::create_directories(dir.path() / "projects" / "not-a-project");
  std::ofstream(dir.path() / "projects" / "not-a-project" / "project.json") << "{}";

  std::vector<std::string> warnings;
  const auto loaded = store.load_all(warnings);
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_EQ(loaded[0].id, info.id);
  EXPECT_EQ(loaded[0].path, info.path);
  EXPECT_EQ(loaded[0].session_id, info.session_id);
  EXPECT_EQ(loaded[0].state, State::kIdle) << "nothing executes after a restart";
  EXPECT_EQ(loaded[0].created_at, info.created_at);
  EXPECT_EQ(loaded[0].last_active, info.last_active);
  EXPECT_EQ(warnings.size(), 1u);

  ASSERT_FALSE(store.remove(info.id));
  EXPECT_FALSE(fs::exists(store.project_dir(info.id)));
}

TEST(ProjectStore, CreateIsOneRenameAndLeftoversAreRemoved) {
  test::TempDir dir("pa-store");
  ProjectStore store(dir.path());
  ProjectInfo info;
  info.id = random_uuid();
  info.path = "/some/where";
  info.created_at = info.last_active = "2024-01-01T00:00:00.000Z";
  ASSERT_FALSE(store.create(info));
  const auto root = dir.path() / "projects";
  // Only the finished project is there: no staging directory, no temporary file.
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(root)) names.push_back(e.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{info.id});
  names.clear();
  for (const auto& e : fs::directory_iterator(store.project_dir(info.id)))
    names.push_back(e.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"project.json"});
  EXPECT_EQ(fs::status(store.project_dir(info.id)).permissions() & fs::perms::all,
            fs::perms::owner_all);
  // Creating the same id twice is refused rather than overwriting.
  EXPECT_TRUE(store.create(info));

  // What interrupted writes leave behind.
  const std::string empty_id = random_uuid();
  const std::string history_id = random_uuid();
  fs::create_directories(root / (".creating-" + random_uuid()));
  fs::create_directories(root / (".deleting-" + random_uuid()) / "logs");
  fs::create_directories(root / empty_id);
  std::ofstream(root / empty_id / ".project.json.tmp.a1B2c3") << "{";
  std::ofstream(store.project_dir(info.id) / ".project.json.tmp.XyZ987") << "{";
  std::ofstream(store.project_dir(info.id) / "notes.tmp.txt") << "kept: not ours";
  fs::create_directories(root / history_id / "logs");
  std::ofstream(root / history_id / "logs" / "messages_2024-01-01_00-00-00.jsonl") << "\n";

  std::vector<std::string> notes;
  store.remove_leftovers(notes);
  EXPECT_EQ(notes.size(), 5u);  // 2 directories, 2 temp files, 1 emptied project directory
  std::set<std::string> left;
  for (const auto& e : fs::directory_iterator(root)) left.insert(e.path().filename().string());
  EXPECT_EQ(left, (std::set<std::string>{info.id, history_id}));
  EXPECT_FALSE(fs::exists(store.project_dir(info.id) / ".project.json.tmp.XyZ987"));
  EXPECT_TRUE(fs::exists(store.project_dir(info.id) / "notes.tmp.txt"));
  // The project, and the directory with history but no metadata (rebuilt: never a silent loss).
  std::vector<std::string> warnings;
  EXPECT_EQ(store.load_all(warnings).size(), 2u);

  // Removal goes through .deleting-<id>: nothing of the project is left.
  ASSERT_FALSE(store.remove(info.id));
  left.clear();
  for (const auto& e : fs::directory_iterator(root)) left.insert(e.path().filename().string());
  EXPECT_EQ(left, (std::set<std::string>{history_id}));
}

}  // namespace
}  // namespace pa::projects
