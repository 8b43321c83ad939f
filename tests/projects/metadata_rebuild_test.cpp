// Damaged project.json: moved aside (kept), rebuilt from the project's history, written again.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "history/message_log.hpp"
#include "projects/metadata_rebuild.hpp"
#include "projects/project_info.hpp"
#include "projects/project_store.hpp"
#include "support/server_process.hpp"

namespace pa::projects {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using history::Direction;

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<fs::path> kept_copies(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().rfind("project.json.corrupt-", 0) == 0)
      out.push_back(e.path());
  }
  return out;
}

std::string state_message(const std::string& id, const std::string& path, const char* state,
                          const json::value& session) {
  json::object data{{"id", id},          {"path", path},
                    {"state", state},    {"session_id", session},
                    {"created_at", "x"}, {"last_active", "x"}};
  return json::serialize(json::object{{"type", "project_state"}, {"data", data}});
}

class MetadataRebuild : public ::testing::Test {
 protected:
  void SetUp() override {
    info_.id = random_uuid();
    info_.path = "/home/user/code/my-project";
    info_.session_id = "11111111-aaaa-4bbb-8ccc-000000000002";
    info_.created_at = "2024-01-01T00:00:00.000Z";
    info_.last_active = "2024-01-02T00:00:00.000Z";
    ASSERT_FALSE(store_.save(info_));
  }

  // A history as a create, a run and its CLI lines leave it; returns {first, last} timestamps.
  std::pair<std::string, std::string> write_history(bool with_reset = false) {
    std::vector<std::string> warnings;
    std::error_code ec;
    auto log = history::MessageLog::open(store_.logs_dir(info_.id), {}, warnings, ec);
    EXPECT_FALSE(ec);
    const auto first =
        log->append(Direction::kServer, state_message(info_.id, info_.path, "IDLE", nullptr), ec);
    log->append(Direction::kClient, R"({"type":"execute","data":{"prompt":"hi"}})", ec);
    log->append(Direction::kServer, state_message(info_.id, info_.path, "EXECUTING", nullptr), ec);
    log->append(Direction::kClaude,
                R"({"type":"system","subtype":"init","session_id":")" + *info_.session_id +
                    R"(","cwd":"/x"})",
                ec);
    log->append(Direction::kClaude, R"({"type":"assistant","session_id":"older-one"})", ec);
    auto last = log->append(
        Direction::kClaude,
        R"({"type":"result","subtype":"success","session_id":")" + *info_.session_id + R"("})", ec);
    if (with_reset) {
      last = log->append(Direction::kServer,
                         R"({"type":"session_reset","data":{"previous_session_id":"s"}})", ec);
    }
    EXPECT_FALSE(ec);
    last_seq_ = last.seq;
    return {first.timestamp, last.timestamp};
  }

  fs::path file() const { return store_.project_dir(info_.id) / "project.json"; }

  test::TempDir dir_{"pa-rebuild"};
  ProjectStore store_{dir_.path()};
  ProjectInfo info_;
  std::uint64_t last_seq_ = 0;
};

TEST_F(MetadataRebuild, TruncatedFileIsKeptAsideAndRebuiltFromHistory) {
  const auto [first_ts, last_ts] = write_history();
  const std::string original = read_text(file());
  const std::string truncated = original.substr(0, 20);  // {"id":"<part of it>
  std::ofstream(file(), std::ios::trunc) << truncated;

  std::vector<std::string> warnings;
  std::vector<MetadataRecovery> recoveries;
  const auto loaded = store_.load_all(warnings, &recoveries);
  ASSERT_EQ(loaded.size(), 1u) << "the project must not vanish";
  EXPECT_EQ(loaded[0].id, info_.id);
  EXPECT_EQ(loaded[0].path, info_.path);
  EXPECT_EQ(loaded[0].session_id, info_.session_id) << "the last init/result line's session";
  EXPECT_EQ(loaded[0].created_at, first_ts) << "the first history entry's time";
  EXPECT_EQ(loaded[0].last_active, last_ts) << "the last history entry's time";
  EXPECT_EQ(loaded[0].seq_mark, last_seq_);

  ASSERT_EQ(recoveries.size(), 1u);
  EXPECT_EQ(recoveries[0].id, info_.id);
  EXPECT_EQ(recoveries[0].path_source, "history");
  EXPECT_TRUE(recoveries[0].saved);
  EXPECT_NE(recoveries[0].message().find("does not parse"), std::string::npos)
      << recoveries[0].message();
  // The damaged file is kept, byte for byte, beside the rebuilt one.
  const auto kept = kept_copies(store_.project_dir(info_.id));
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0], recoveries[0].kept_as);
  EXPECT_EQ(read_text(kept[0]), truncated);
  EXPECT_NE(recoveries[0].message().find(kept[0].string()), std::string::npos);

  // The rebuilt project.json is valid: a second load takes it as it is, with nothing to report.
  std::vector<std::string> warnings2;
  std::vector<MetadataRecovery> recoveries2;
  const auto again = store_.load_all(warnings2, &recoveries2);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_TRUE(recoveries2.empty());
  EXPECT_EQ(again[0].path, info_.path);
  EXPECT_EQ(again[0].session_id, info_.session_id);
  EXPECT_EQ(again[0].seq_mark, last_seq_);
  EXPECT_EQ(kept_copies(store_.project_dir(info_.id)).size(), 1u);
}

TEST_F(MetadataRebuild, GarbageAndMissingFieldsAndMissingFileAreRebuilt) {
  write_history();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {std::string("\x00\xff\x13garbage\x01", 11), "does not parse"},
      {"", "is empty"},
      {"[1,2,3]", "is not a JSON object"},
      {R"({"id":")" + info_.id + R"(","created_at":"x","last_active":"y"})", "'path'"},
      {R"({"id":"00000000-0000-4000-8000-000000000000","path":"/a","created_at":"x",)"
       R"("last_active":"y"})",
       "another project id"},
  };
  for (const auto& [content, problem] : cases) {
    std::ofstream(file(), std::ios::trunc | std::ios::binary) << content;
    std::vector<std::string> warnings;
    std::vector<MetadataRecovery> recoveries;
    const auto loaded = store_.load_all(warnings, &recoveries);
    ASSERT_EQ(loaded.size(), 1u) << problem;
    EXPECT_EQ(loaded[0].id, info_.id) << problem;
    EXPECT_EQ(loaded[0].path, info_.path) << problem;
    ASSERT_EQ(recoveries.size(), 1u) << problem;
    EXPECT_NE(recoveries[0].problem.find(problem), std::string::npos) << recoveries[0].problem;
    EXPECT_EQ(read_text(recoveries[0].kept_as), content) << problem;
  }
  // Missing altogether (history still there): rebuilt, nothing to keep aside.
  fs::remove(file());
  std::vector<std::string> warnings;
  std::vector<MetadataRecovery> recoveries;
  const auto loaded = store_.load_all(warnings, &recoveries);
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_EQ(loaded[0].path, info_.path);
  ASSERT_EQ(recoveries.size(), 1u);
  EXPECT_EQ(recoveries[0].problem, "is missing");
  EXPECT_TRUE(recoveries[0].kept_as.empty());
  EXPECT_TRUE(fs::exists(file()));
}

TEST_F(MetadataRebuild, SessionResetInHistoryMeansNoSession) {
  write_history(/*with_reset=*/true);
  std::ofstream(file(), std::ios::trunc) << "{";
  std::vector<std::string> warnings;
  const auto loaded = store_.load_all(warnings);
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_EQ(loaded[0].path, info_.path);
  EXPECT_FALSE(loaded[0].session_id.has_value());
  // Without a recoveries list the note goes into the warnings.
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find(info_.id), std::string::npos);
}

TEST_F(MetadataRebuild, WithoutHistoryThePathIsSalvagedFromTheDamagedFile) {
  std::string original = read_text(file());
  // Cut just after the path (and before last_seq's digits end): path and id are whole.
  const auto at = original.find(info_.path);
  ASSERT_NE(at, std::string::npos);
  std::ofstream(file(), std::ios::trunc) << original.substr(0, at + info_.path.size() + 3);
  std::vector<std::string> warnings;
  std::vector<MetadataRecovery> recoveries;
  const auto loaded = store_.load_all(warnings, &recoveries);
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_EQ(loaded[0].path, info_.path);
  ASSERT_EQ(recoveries.size(), 1u);
  EXPECT_EQ(recoveries[0].path_source, "damaged file");
}

TEST_F(MetadataRebuild, UnknownPathIsStillListedAndReportedAtEveryLoad) {
  std::ofstream(file(), std::ios::trunc) << "{ torn";
  std::vector<std::string> warnings;
  std::vector<MetadataRecovery> recoveries;
  const auto loaded = store_.load_all(warnings, &recoveries);
  ASSERT_EQ(loaded.size(), 1u) << "listed, not dropped";
  EXPECT_EQ(loaded[0].id, info_.id);
  EXPECT_TRUE(loaded[0].path.empty());
  ASSERT_EQ(recoveries.size(), 1u);
  EXPECT_TRUE(recoveries[0].path_source.empty());
  EXPECT_NE(recoveries[0].message().find("cannot run"), std::string::npos);
  // The next start still says so (the rebuilt file has an empty path).
  std::vector<MetadataRecovery> again;
  ASSERT_EQ(store_.load_all(warnings, &again).size(), 1u);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_NE(again[0].message().find("cannot run"), std::string::npos);
}

TEST_F(MetadataRebuild, SeqMarkNeverGoesBackwards) {
  write_history();
  // The damaged file still holds a whole last_seq above what the history files hold (older
  // files archived): seqs must continue above it.
  std::ofstream(file(), std::ios::trunc) << R"({"last_seq": 5000, "path": "/x)";
  std::vector<std::string> warnings;
  const auto loaded = store_.load_all(warnings);
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_EQ(loaded[0].seq_mark, 5000u);
  EXPECT_EQ(loaded[0].path, info_.path) << "the history's path wins";
}

TEST(MetadataSalvage, StringsAndNumbers) {
  EXPECT_EQ(salvage_string(R"({"path": "/a/b\"c", "x)", "path"), "/a/b\"c");
  EXPECT_EQ(salvage_string(R"({"path":"/a/b)", "path"), std::nullopt) << "cut inside the string";
  EXPECT_EQ(salvage_string(R"({"other":1})", "path"), std::nullopt);
  EXPECT_EQ(salvage_string(R"({"path":null})", "path"), std::nullopt);
  EXPECT_EQ(salvage_uint(R"({"last_seq":42,)", "last_seq"), 42u);
  EXPECT_EQ(salvage_uint(R"({"last_seq":42})", "last_seq"), 42u);
  EXPECT_EQ(salvage_uint(R"({"last_seq":42)", "last_seq"), std::nullopt)
      << "a number at the cut may have lost digits";
  EXPECT_EQ(salvage_uint(R"({"last_seq":"42",)", "last_seq"), std::nullopt);
}

TEST(MetadataRebuildSkips, DirectoryWithNeitherMetadataNorHistory) {
  test::TempDir dir("pa-rebuild-empty");
  ProjectStore store(dir.path());
  fs::create_directories(dir.path() / "projects" / random_uuid());
  std::vector<std::string> warnings;
  std::vector<MetadataRecovery> recoveries;
  EXPECT_TRUE(store.load_all(warnings, &recoveries).empty());
  EXPECT_TRUE(recoveries.empty());
  ASSERT_EQ(warnings.size(), 1u) << "skipped, but said";
  EXPECT_NE(warnings[0].find("nothing to list"), std::string::npos);
}

}  // namespace
}  // namespace pa::projects
