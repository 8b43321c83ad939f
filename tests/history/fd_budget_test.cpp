// The budget of open history files (issue 21): least recently used out, busy members skipped,
// and MessageLogs that lose their descriptor reopen it without losing or renumbering entries.
#include "history/fd_budget.hpp"

#include <gtest/gtest.h>
#include <chrono>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "history/message_log.hpp"

namespace pa::history {
namespace {

namespace fs = std::filesystem;

// A member that only records whether it "holds" a descriptor.
class FakeMember final : public FdBudget::Member {
 public:
  explicit FakeMember(FdBudget& budget) : budget_(budget) {}
  ~FakeMember() override { budget_.closed(*this); }
  void open() {
    std::lock_guard lock(descriptor_mutex());
    open_ = true;
    budget_.opened(*this);
  }
  void use() {
    std::lock_guard lock(descriptor_mutex());
    budget_.used(*this);
  }
  bool is_open() {
    std::lock_guard lock(descriptor_mutex());
    return open_;
  }
  int releases = 0;

 private:
  void release_descriptor() override {
    open_ = false;
    ++releases;
  }
  FdBudget& budget_;
  bool open_ = false;
};

TEST(FdBudget, ClosesTheLeastRecentlyUsedBeyondTheLimit) {
  FdBudget budget(3);
  std::vector<std::unique_ptr<FakeMember>> m;
  for (int i = 0; i < 5; ++i) m.push_back(std::make_unique<FakeMember>(budget));
  m[0]->open();
  m[1]->open();
  m[2]->open();
  EXPECT_EQ(budget.open_count(), 3u);
  m[0]->use();  // 1 is now the least recently used
  m[3]->open();
  EXPECT_EQ(budget.open_count(), 3u);
  EXPECT_TRUE(m[0]->is_open());
  EXPECT_FALSE(m[1]->is_open());
  EXPECT_TRUE(m[2]->is_open());
  EXPECT_TRUE(m[3]->is_open());
  m[4]->open();  // 2 goes
  EXPECT_FALSE(m[2]->is_open());
  EXPECT_EQ(budget.evictions(), 2u);
  // A closed member reopens and pushes out the next oldest (0).
  m[1]->open();
  EXPECT_TRUE(m[1]->is_open());
  EXPECT_FALSE(m[0]->is_open());
  EXPECT_EQ(budget.open_count(), 3u);
  // A member going away leaves the list.
  m[4].reset();
  EXPECT_EQ(budget.open_count(), 2u);
}

TEST(FdBudget, SkipsAMemberInUseInsteadOfWaitingForIt) {
  FdBudget budget(2);
  FakeMember a(budget), b(budget), c(budget);
  a.open();
  b.open();
  {
    // `a` (the oldest) is busy on another thread: the budget passes over it and closes `b`.
    std::unique_lock busy(a.descriptor_mutex());
    std::thread other([&] { c.open(); });
    other.join();
    EXPECT_EQ(a.releases, 0);
  }
  EXPECT_TRUE(a.is_open());
  EXPECT_FALSE(b.is_open());
  EXPECT_TRUE(c.is_open());
}

TEST(FdBudget, ProcessBudgetHasTheDocumentedLimit) {
  EXPECT_EQ(FdBudget::process().limit(), 64u);
}

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = fs::temp_directory_path() / ("pa_fd_budget_test_" + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::size_t open_descriptors() {
  std::size_t n = 0;
  for (const auto& entry : fs::directory_iterator("/proc/self/fd")) {
    (void)entry;
    ++n;
  }
  return n;
}

TEST(FdBudget, MessageLogsShareTheBudgetAndReopenTheirFiles) {
  TempDir dir;
  FdBudget budget(4);
  Options options;
  options.fd_budget = &budget;
  options.fsync_interval = std::chrono::hours(1);  // only the budget's close makes them durable
  std::vector<std::string> warnings;
  std::vector<std::unique_ptr<MessageLog>> logs;
  const std::size_t before = open_descriptors();
  for (int i = 0; i < 20; ++i) {
    std::error_code ec;
    logs.push_back(MessageLog::open(dir.path() / std::to_string(i), options, warnings, ec));
    ASSERT_FALSE(ec) << ec.message();
    logs.back()->append(Direction::kServer, "{\"n\":" + std::to_string(i) + "}", ec);
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_LE(budget.open_count(), 4u);
    EXPECT_LE(open_descriptors(), before + 4);
  }
  // A log closed by the budget made its entry durable first.
  EXPECT_FALSE(logs[0]->needs_sync());
  EXPECT_EQ(logs[0]->durable_seq(), 1u);
  EXPECT_TRUE(logs[19]->needs_sync());

  // Appending again reopens the same file: seq goes on, both entries are read back.
  for (int round = 0; round < 2; ++round) {
    for (auto& log : logs) {
      std::error_code ec;
      const auto result = log->append(Direction::kClaude, "{\"again\":true}", ec);
      ASSERT_FALSE(ec) << ec.message();
      EXPECT_EQ(result.seq, 2u + static_cast<unsigned>(round));
      EXPECT_EQ(log->file_count(), 1u);  // reopened, not a new file
    }
  }
  EXPECT_LE(open_descriptors(), before + 4);
  for (auto& log : logs) {
    const auto page = log->read(Query{}, warnings);
    ASSERT_EQ(page.entries.size(), 3u);
    EXPECT_NE(page.entries[2].find("\"seq\":3"), std::string::npos);
  }
  EXPECT_TRUE(warnings.empty());
  logs.clear();
  EXPECT_EQ(budget.open_count(), 0u);
  EXPECT_EQ(open_descriptors(), before);
}

// Logs on several threads (as project strands on the blocking pool) evicting one another.
TEST(FdBudget, ConcurrentAppendsAcrossManyLogs) {
  TempDir dir;
  FdBudget budget(3);
  Options options;
  options.fd_budget = &budget;
  std::vector<std::string> warnings;
  std::vector<std::unique_ptr<MessageLog>> logs;
  for (int i = 0; i < 12; ++i) {
    std::error_code ec;
    logs.push_back(MessageLog::open(dir.path() / std::to_string(i), options, warnings, ec));
    ASSERT_FALSE(ec);
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < 200; ++k) {
        for (int i = t; i < 12; i += 4) {
          std::error_code ec;
          logs[static_cast<std::size_t>(i)]->append(Direction::kServer, "{}", ec);
          EXPECT_FALSE(ec);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  // Busy members may be skipped, never more than one per thread beyond the limit.
  EXPECT_LE(budget.open_count(), 3u + 4u);
  for (auto& log : logs) {
    EXPECT_EQ(log->last_seq(), 200u);
    Query q;
    q.limit = 1000;
    EXPECT_EQ(log->read(q, warnings).entries.size(), 200u);
  }
}

}  // namespace
}  // namespace pa::history
