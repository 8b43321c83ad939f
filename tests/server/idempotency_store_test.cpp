#include "server/idempotency_store.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace pa::server {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using Time = std::chrono::system_clock::time_point;

class IdempotencyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "pa-idem-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::filesystem::path file() const { return dir_ / "idempotency.jsonl"; }

  // A store on the test's file whose clock is `now_` (a "restart" is a new store on the file).
  std::unique_ptr<IdempotencyStore> open_store(std::size_t max_keys = 100'000,
                                               std::size_t compact_min_lines = 1024) {
    IdempotencyStore::Options options;
    options.file = file();
    options.max_keys = max_keys;
    options.compact_min_lines = compact_min_lines;
    options.clock = [this] { return now_; };
    auto store = std::make_unique<IdempotencyStore>(options);
    warnings_.clear();
    EXPECT_FALSE(store->open(warnings_));
    return store;
  }

  std::vector<std::string> file_lines() const {
    std::ifstream in(file());
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }

  std::filesystem::path dir_;
  Time now_ = Time(std::chrono::hours(24 * 20000));  // some fixed wall-clock time
  std::vector<std::string> warnings_;
};

TEST_F(IdempotencyStoreTest, RecordsAreFoundWithTheirResultAndSurviveARestart) {
  {
    auto store = open_store();
    EXPECT_FALSE(store->find({"execute", "p1", "k1"}));
    ASSERT_FALSE(store->record({"execute", "p1", "k1"}, ""));
    ASSERT_FALSE(store->record({"project_create", "", "k2"}, "new-project-id"));
    EXPECT_EQ(store->find({"execute", "p1", "k1"}), std::optional<std::string>(""));
    EXPECT_EQ(store->find({"project_create", "", "k2"}),
              std::optional<std::string>("new-project-id"));
  }
  // Each record is one JSON line, on disk as soon as record() returned.
  const auto lines = file_lines();
  ASSERT_EQ(lines.size(), 2u);
  const auto first = json::parse(lines[0]).as_object();
  EXPECT_EQ(first.at("type"), "execute");
  EXPECT_EQ(first.at("project_id"), "p1");
  EXPECT_EQ(first.at("key"), "k1");
  EXPECT_TRUE(first.at("at").is_int64());
  EXPECT_EQ(std::filesystem::status(file()).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);

  now_ += 1h;
  auto restarted = open_store();
  EXPECT_TRUE(warnings_.empty());
  EXPECT_EQ(restarted->size(), 2u);
  EXPECT_EQ(restarted->find({"execute", "p1", "k1"}), std::optional<std::string>(""));
  EXPECT_EQ(restarted->find({"project_create", "", "k2"}),
            std::optional<std::string>("new-project-id"));
}

TEST_F(IdempotencyStoreTest, KeysAreScopedByTypeAndProject) {
  auto store = open_store();
  ASSERT_FALSE(store->record({"execute", "p1", "same"}, ""));
  EXPECT_TRUE(store->find({"execute", "p1", "same"}));
  EXPECT_FALSE(store->find({"execute", "p2", "same"}));
  EXPECT_FALSE(store->find({"permission_response", "p1", "same"}));
  EXPECT_FALSE(store->find({"project_create", "", "same"}));
  EXPECT_FALSE(store->find({"execute", "p1", "same "}));
  // Parts cannot run into each other.
  ASSERT_FALSE(store->record({"execute", "p1", "p2 k"}, ""));
  EXPECT_FALSE(store->find({"execute", "p1 p2", "k"}));
}

TEST_F(IdempotencyStoreTest, RecordsExpireAfterTheWindowAndAreDroppedAtLoad) {
  {
    auto store = open_store();
    ASSERT_FALSE(store->record({"execute", "p1", "old"}, ""));
    now_ += 23h;
    ASSERT_FALSE(store->record({"execute", "p1", "young"}, ""));
    now_ += 1h - 1ms;
    EXPECT_TRUE(store->find({"execute", "p1", "old"}));  // 24 h less 1 ms
    now_ += 1ms;
    EXPECT_FALSE(store->find({"execute", "p1", "old"}));  // 24 h: gone
    EXPECT_TRUE(store->find({"execute", "p1", "young"}));
  }
  ASSERT_EQ(file_lines().size(), 2u);
  // At load the expired record is dropped and the file rewritten without it.
  auto store = open_store();
  EXPECT_EQ(store->size(), 1u);
  EXPECT_FALSE(store->find({"execute", "p1", "old"}));
  EXPECT_TRUE(store->find({"execute", "p1", "young"}));
  const auto lines = file_lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(json::parse(lines[0]).at("key"), "young");
  EXPECT_EQ(store->file_lines(), 1u);
  // Appending still works after the rewrite (the new file, not the replaced one).
  ASSERT_FALSE(store->record({"execute", "p1", "after"}, ""));
  EXPECT_EQ(file_lines().size(), 2u);
}

TEST_F(IdempotencyStoreTest, RunningStoreCompactsWhenMostLinesAreExpired) {
  auto store = open_store(100'000, 8);
  for (int i = 0; i < 6; ++i) {
    ASSERT_FALSE(store->record({"execute", "p", "old-" + std::to_string(i)}, ""));
  }
  EXPECT_EQ(file_lines().size(), 6u);
  now_ += 25h;
  ASSERT_FALSE(store->record({"execute", "p", "new-1"}, ""));  // 7 lines, 1 live
  EXPECT_EQ(store->file_lines(), 7u);
  ASSERT_FALSE(store->record({"execute", "p", "new-2"}, ""));  // 8 lines, 2 live: compacted
  const auto lines = file_lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(json::parse(lines[0]).at("key"), "new-1");
  EXPECT_EQ(json::parse(lines[1]).at("key"), "new-2");
  EXPECT_EQ(store->file_lines(), 2u);
  ASSERT_FALSE(store->record({"execute", "p", "new-3"}, ""));
  EXPECT_EQ(file_lines().size(), 3u);
  auto restarted = open_store(100'000, 8);
  EXPECT_EQ(restarted->size(), 3u);
  EXPECT_TRUE(restarted->find({"execute", "p", "new-3"}));
  EXPECT_FALSE(restarted->find({"execute", "p", "old-0"}));
}

TEST_F(IdempotencyStoreTest, CountIsBoundedOldestFirstAlsoAcrossRestarts) {
  {
    auto store = open_store(3, 1024);
    for (int i = 1; i <= 4; ++i) {
      ASSERT_FALSE(store->record({"execute", "p", "k" + std::to_string(i)}, ""));
      now_ += 1s;
    }
    EXPECT_EQ(store->size(), 3u);
    EXPECT_FALSE(store->find({"execute", "p", "k1"}));
    EXPECT_TRUE(store->find({"execute", "p", "k2"}));
    EXPECT_TRUE(store->find({"execute", "p", "k4"}));
  }
  // A smaller bound at the next start keeps the newest.
  auto store = open_store(2, 1024);
  EXPECT_EQ(store->size(), 2u);
  EXPECT_FALSE(store->find({"execute", "p", "k2"}));
  EXPECT_TRUE(store->find({"execute", "p", "k3"}));
  EXPECT_TRUE(store->find({"execute", "p", "k4"}));
  EXPECT_EQ(file_lines().size(), 2u);
}

TEST_F(IdempotencyStoreTest, ForgetRemovesARecordDurably) {
  {
    auto store = open_store();
    ASSERT_FALSE(store->record({"execute", "p", "refused"}, ""));
    ASSERT_FALSE(store->record({"execute", "p", "kept"}, ""));
    ASSERT_FALSE(store->forget({"execute", "p", "refused"}));
    EXPECT_FALSE(store->find({"execute", "p", "refused"}));
    ASSERT_FALSE(store->forget({"execute", "p", "never"}));  // nothing to do, nothing written
    EXPECT_EQ(file_lines().size(), 3u);
    // Recorded again later: found again.
    ASSERT_FALSE(store->record({"execute", "p", "again"}, ""));
  }
  auto store = open_store();
  EXPECT_FALSE(store->find({"execute", "p", "refused"}));
  EXPECT_TRUE(store->find({"execute", "p", "kept"}));
  EXPECT_TRUE(store->find({"execute", "p", "again"}));
  EXPECT_EQ(file_lines().size(), 2u);  // the tombstone and its record compacted away
}

TEST_F(IdempotencyStoreTest, TornAndCorruptLinesAreSkippedAndCutAtLoad) {
  {
    auto store = open_store();
    ASSERT_FALSE(store->record({"execute", "p", "good"}, ""));
  }
  {
    std::ofstream out(file(), std::ios::app);
    out << "this is not json\n";
    out << R"({"at":"soon","type":"execute","project_id":"p","key":"bad"})"
        << "\n";
    out << R"({"at":1,"type":"execute","project_id":"p","ke)";  // a crash mid-append
  }
  auto store = open_store();
  EXPECT_EQ(store->size(), 1u);
  EXPECT_TRUE(store->find({"execute", "p", "good"}));
  ASSERT_EQ(warnings_.size(), 2u);
  EXPECT_NE(warnings_[0].find("torn"), std::string::npos) << warnings_[0];
  EXPECT_NE(warnings_[1].find("2 corrupt"), std::string::npos) << warnings_[1];
  // The rewritten file has only the good line, so the next append starts a line of its own.
  ASSERT_FALSE(store->record({"execute", "p", "next"}, ""));
  const auto lines = file_lines();
  ASSERT_EQ(lines.size(), 2u);
  for (const auto& line : lines) EXPECT_NO_THROW(json::parse(line)) << line;
}

TEST_F(IdempotencyStoreTest, RecordFailsWhenTheFileCannotBeOpened) {
  IdempotencyStore::Options options;
  options.file = dir_ / "missing-dir" / "idempotency.jsonl";
  IdempotencyStore store(options);
  std::vector<std::string> warnings;
  EXPECT_TRUE(store.open(warnings));
  EXPECT_TRUE(store.record({"execute", "p", "k"}, ""));
  EXPECT_FALSE(store.find({"execute", "p", "k"}));
}

TEST(IdempotencyKey, TakenFromDataAndChecked) {
  json::object data{{"prompt", "hi"}, {"idempotency_key", "phone-1 #42 ~"}};
  std::optional<std::string> key;
  EXPECT_FALSE(take_idempotency_key(data, key));
  EXPECT_EQ(key, std::optional<std::string>("phone-1 #42 ~"));
  EXPECT_FALSE(data.contains("idempotency_key"));  // the message's own checks see the rest
  EXPECT_TRUE(data.contains("prompt"));

  json::object absent{{"prompt", "hi"}};
  EXPECT_FALSE(take_idempotency_key(absent, key));
  EXPECT_FALSE(key);
  json::object null_key{{"idempotency_key", nullptr}};
  EXPECT_FALSE(take_idempotency_key(null_key, key));
  EXPECT_FALSE(key);
  EXPECT_FALSE(null_key.contains("idempotency_key"));

  json::object longest{{"idempotency_key", std::string(128, 'k')}};
  EXPECT_FALSE(take_idempotency_key(longest, key));
  EXPECT_EQ(key->size(), 128u);

  const std::vector<json::value> bad = {
      json::value(""),          json::value(std::string(129, 'k')), json::value("tab\there"),
      json::value("new\nline"), json::value("caf\xc3\xa9"),         json::value("del\x7f"),
      json::value(42),          json::value(json::array{"k"}),      json::value(true)};
  for (const auto& value : bad) {
    json::object d{{"idempotency_key", value}};
    const auto error = take_idempotency_key(d, key);
    ASSERT_TRUE(error) << json::serialize(value);
    EXPECT_EQ(error->code, protocol::ErrorCode::kInvalidMessage);
    EXPECT_EQ(error->details.at("field"), "data.idempotency_key");
    EXPECT_NE(error->message.find("data.idempotency_key"), std::string::npos);
    EXPECT_FALSE(key);
  }
}

}  // namespace
}  // namespace pa::server
