// The indexer against an in-memory history: catching up, live entries, a full queue, deleted
// projects, a damaged file, an index ahead of its log, and a failing index.
#include <gtest/gtest.h>

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include "search/fts_query.hpp"
#include "search/indexer.hpp"
#include "search/searcher.hpp"
#include "support/server_process.hpp"

namespace pa::search {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

// Projects' histories as the logs would hold them; every entry 1 ms after the one before.
class MemorySource final : public EntrySource {
 public:
  struct Appended {
    std::uint64_t seq;
    std::string timestamp;
    std::string message;
  };
  Appended add(const std::string& project, const std::string& prompt) {
    std::lock_guard lock(mutex_);
    auto& log = logs_[project];
    const std::uint64_t seq = log.size() + 1;
    char stamp[32];
    std::snprintf(stamp, sizeof stamp, "2026-01-01T00:%02d:%02d.%03dZ", clock_ / 60000 % 60,
                  clock_ / 1000 % 60, clock_ % 1000);
    ++clock_;
    const std::string message = json::serialize(
        json::object{{"type", "execute"}, {"data", json::object{{"prompt", prompt}}}});
    log.push_back(json::serialize(json::object{{"seq", seq},
                                               {"timestamp", stamp},
                                               {"direction", "client"},
                                               {"message", json::parse(message)}}));
    return {seq, stamp, message};
  }
  void erase(const std::string& project) {
    std::lock_guard lock(mutex_);
    logs_.erase(project);
  }
  std::vector<std::string> project_ids() override {
    std::lock_guard lock(mutex_);
    std::vector<std::string> ids;
    for (const auto& [id, log] : logs_) ids.push_back(id);
    return ids;
  }
  std::optional<SourcePage> read_after(const std::string& project, std::uint64_t after_seq,
                                       std::size_t limit, std::size_t) override {
    std::lock_guard lock(mutex_);
    const auto it = logs_.find(project);
    if (it == logs_.end()) return std::nullopt;
    SourcePage page;
    for (std::uint64_t seq = after_seq + 1; seq <= it->second.size() && page.entries.size() < limit;
         ++seq)
      page.entries.push_back(it->second[seq - 1]);
    page.last_seq = it->second.size();
    page.has_more = after_seq + page.entries.size() < it->second.size();
    return page;
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::vector<std::string>> logs_;
  int clock_ = 0;
};

class IndexerTest : public ::testing::Test {
 protected:
  std::filesystem::path file() const { return dir_.path() / "search" / "index.sqlite3"; }

  // Appends to the source and hands the entry to the indexer, as a project does.
  void append(Indexer& indexer, const std::string& project, const std::string& prompt) {
    const auto e = source_.add(project, prompt);
    indexer.appended(project, e.seq, e.timestamp, "client", e.message);
  }
  static void wait_current(Indexer& indexer) {
    auto done = std::make_shared<std::promise<void>>();
    auto future = done->get_future();
    indexer.when_current([done] { done->set_value(); });
    ASSERT_EQ(future.wait_for(30s), std::future_status::ready) << "the index did not catch up";
  }
  static SearchPage find(Indexer& indexer, const std::string& words,
                         std::optional<std::string> project = std::nullopt,
                         std::size_t limit = 100) {
    Searcher searcher(indexer);
    SearchRequest request;
    request.fts_expression = build_fts_query(words).expression;
    request.project_id = std::move(project);
    request.limit = limit;
    return searcher.search(request);
  }
  static std::vector<std::uint64_t> seqs(const SearchPage& page) {
    std::vector<std::uint64_t> out;
    for (const auto& hit : page.hits) out.push_back(hit.seq);
    return out;
  }

  test::TempDir dir_;
  MemorySource source_;
};

TEST_F(IndexerTest, CatchesUpExistingHistoryAndAnswersNewestFirst) {
  for (int i = 0; i < 5; ++i) source_.add("a", "alpha entry " + std::to_string(i));
  source_.add("b", "alpha from b");
  source_.add("b", "only beta");
  Indexer indexer(file(), source_);
  indexer.start();
  wait_current(indexer);
  const auto all = find(indexer, "alpha");
  ASSERT_TRUE(all.error.empty()) << all.error;
  ASSERT_EQ(all.hits.size(), 6u);
  EXPECT_EQ(all.hits[0].project_id, "b");  // added last: newest
  for (std::size_t i = 1; i < all.hits.size(); ++i)
    EXPECT_LT(all.hits[i].cursor, all.hits[i - 1].cursor);
  EXPECT_EQ(seqs(find(indexer, "alpha", "a")), (std::vector<std::uint64_t>{5, 4, 3, 2, 1}));
  EXPECT_TRUE(find(indexer, "alpha", "nobody").hits.empty());
  EXPECT_EQ(all.hits[0].marked_snippet,
            "\x01"
            "alpha\x02 from b");
}

TEST_F(IndexerTest, PagesWithTheLastCursor) {
  for (int i = 0; i < 7; ++i) source_.add("a", "paged word");
  Indexer indexer(file(), source_);
  indexer.start();
  wait_current(indexer);
  Searcher searcher(indexer);
  SearchRequest request;
  request.fts_expression = build_fts_query("paged").expression;
  request.limit = 3;
  std::vector<std::uint64_t> got;
  for (int page_no = 0; page_no < 5; ++page_no) {
    const auto page = searcher.search(request);
    for (const auto& hit : page.hits) got.push_back(hit.seq);
    if (!page.has_more) break;
    request.before = page.hits.back().cursor;
  }
  EXPECT_EQ(got, (std::vector<std::uint64_t>{7, 6, 5, 4, 3, 2, 1}));
}

TEST_F(IndexerTest, LiveEntriesAndAFullQueueLoseNothing) {
  IndexerOptions options;
  options.queue_items = 2;  // most of the burst below is dropped and read from the log
  Indexer indexer(file(), source_, options);
  indexer.start();
  for (int i = 0; i < 200; ++i) append(indexer, "a", "burst number" + std::to_string(i));
  wait_current(indexer);
  const auto page = find(indexer, "burst", std::nullopt, 1000);
  ASSERT_EQ(page.hits.size(), 200u);
  for (std::size_t i = 0; i < page.hits.size(); ++i) EXPECT_EQ(page.hits[i].seq, 200 - i);
  EXPECT_EQ(find(indexer, "number117").hits.size(), 1u);
}

TEST_F(IndexerTest, RemovedProjectLeavesTheIndex) {
  source_.add("a", "doomed words");
  source_.add("b", "kept words");
  Indexer indexer(file(), source_);
  indexer.start();
  wait_current(indexer);
  ASSERT_EQ(find(indexer, "words").hits.size(), 2u);
  source_.erase("a");
  indexer.removed("a");
  wait_current(indexer);
  const auto page = find(indexer, "words");
  ASSERT_EQ(page.hits.size(), 1u);
  EXPECT_EQ(page.hits[0].project_id, "b");
  indexer.stop();
  // A project deleted while no server ran leaves at the next start.
  source_.erase("b");
  Indexer again(file(), source_);
  again.start();
  wait_current(again);
  EXPECT_TRUE(find(again, "words").hits.empty());
}

TEST_F(IndexerTest, DamagedFileIsMadeAnewFromTheHistory) {
  source_.add("a", "survivor text");
  std::filesystem::create_directories(file().parent_path());
  {
    std::ofstream garbage(file());
    garbage << std::string(8192, 'x');
  }
  Indexer indexer(file(), source_);
  indexer.start();
  wait_current(indexer);
  EXPECT_EQ(indexer.generation(), 1u);
  EXPECT_EQ(find(indexer, "survivor").hits.size(), 1u);
}

TEST_F(IndexerTest, IndexAheadOfItsLogStartsThatProjectOver) {
  for (int i = 0; i < 5; ++i) source_.add("a", "old" + std::to_string(i));
  {
    Indexer indexer(file(), source_);
    indexer.start();
    wait_current(indexer);
  }
  // The log is replaced by a shorter one (restored from an older copy).
  source_.erase("a");
  source_.add("a", "fresh");
  Indexer indexer(file(), source_);
  indexer.start();
  wait_current(indexer);
  EXPECT_TRUE(find(indexer, "old0").hits.empty());
  EXPECT_EQ(find(indexer, "fresh").hits.size(), 1u);
}

TEST_F(IndexerTest, FailingIndexNeitherBlocksNorLosesEntries) {
  // A directory where the file should be: SQLite cannot open it, nor can it be removed.
  std::filesystem::create_directories(file() / "blocker");
  IndexerOptions options;
  options.retry_after = 50ms;
  Indexer indexer(file(), source_, options);
  indexer.start();
  for (int i = 0; i < 20; ++i) append(indexer, "a", "while failing");
  wait_current(indexer);  // answers at once while failing
  EXPECT_FALSE(find(indexer, "failing").error.empty());
  std::filesystem::remove_all(file());
  const auto until = std::chrono::steady_clock::now() + 30s;
  while (!indexer.current() && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(10ms);  // the retry is timed (retry_after): nothing to wait on
  wait_current(indexer);
  EXPECT_EQ(find(indexer, "failing").hits.size(), 20u);
}

TEST_F(IndexerTest, RebuildWithoutAThread) {
  for (int i = 0; i < 30; ++i) source_.add(i % 2 ? "a" : "b", "rebuilt words");
  Indexer indexer(file(), source_);
  std::string error;
  const auto entries = indexer.rebuild(error);
  ASSERT_TRUE(entries) << error;
  EXPECT_EQ(*entries, 30u);
  EXPECT_EQ(find(indexer, "rebuilt").hits.size(), 30u);
}

}  // namespace
}  // namespace pa::search
