#include "ops/storage_problems.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace pa::ops {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(StorageProblems, RaiseRegistersAndClearForgets) {
  StorageProblems problems(5s);
  EXPECT_EQ(problems.size(), 0u);
  const auto t0 = Clock::now();
  const auto first =
      problems.raise("history", "/data/projects/a/logs", "No space left on device", "a", t0);
  EXPECT_TRUE(first.first);
  EXPECT_TRUE(first.notify);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_TRUE(problems.has("/data/projects/a/logs"));
  const auto list = problems.list();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].what, "history");
  EXPECT_EQ(list[0].path, "/data/projects/a/logs");
  EXPECT_EQ(list[0].error, "No space left on device");
  EXPECT_EQ(list[0].project_id, "a");
  EXPECT_EQ(list[0].failures, 1u);
  const auto since = list[0].since;

  // Again: the latest error, the first `since`, one more failure; not a new problem.
  const auto again =
      problems.raise("history", "/data/projects/a/logs", "Input/output error", "a", t0 + 1s);
  EXPECT_FALSE(again.first);
  EXPECT_EQ(problems.list()[0].error, "Input/output error");
  EXPECT_EQ(problems.list()[0].since, since);
  EXPECT_EQ(problems.list()[0].failures, 2u);

  EXPECT_TRUE(problems.clear("/data/projects/a/logs"));
  EXPECT_FALSE(problems.clear("/data/projects/a/logs")) << "cleared once";
  EXPECT_EQ(problems.size(), 0u);
  // After a clear the next failure is new again (and told at once).
  const auto later = problems.raise("history", "/data/projects/a/logs", "x", "a", t0 + 2s);
  EXPECT_TRUE(later.first);
  EXPECT_TRUE(later.notify);
}

// The listener (the notifier's server_problem) hears each problem once, when it starts, and again
// only after the target worked in between.
TEST(StorageProblems, TheListenerHearsEachProblemWhenItStarts) {
  StorageProblems problems(0ms);
  std::vector<StorageProblem> heard;
  problems.on_first_failure([&](const StorageProblem& p) { heard.push_back(p); });
  problems.raise("history", "/d/a", "No space left on device", "a");
  problems.raise("history", "/d/a", "No space left on device", "a");
  problems.raise("metadata", "/d/b", "Read-only file system");
  ASSERT_EQ(heard.size(), 2u);
  EXPECT_EQ(heard[0].what, "history");
  EXPECT_EQ(heard[0].project_id, "a");
  EXPECT_EQ(heard[0].error, "No space left on device");
  EXPECT_EQ(heard[1].path, "/d/b");
  problems.clear("/d/a");
  problems.raise("history", "/d/a", "No space left on device", "a");
  EXPECT_EQ(heard.size(), 3u);
}

TEST(StorageProblems, NotifiesOncePerTargetPerInterval) {
  StorageProblems problems(5s);
  const auto t0 = Clock::now();
  EXPECT_TRUE(problems.raise("history", "/p1", "e", {}, t0).notify);
  // A flood of failures of the same target within the interval: not told again.
  for (int i = 1; i < 100; ++i) {
    EXPECT_FALSE(problems.raise("history", "/p1", "e", {}, t0 + i * 10ms).notify) << i;
  }
  // Another target is told independently.
  EXPECT_TRUE(problems.raise("metadata", "/p2", "e", {}, t0 + 1s).notify);
  // Once the interval has passed since the last notice: told again, then quiet again.
  EXPECT_TRUE(problems.raise("history", "/p1", "e", {}, t0 + 5s).notify);
  EXPECT_FALSE(problems.raise("history", "/p1", "e", {}, t0 + 6s).notify);
  EXPECT_TRUE(problems.raise("history", "/p1", "e", {}, t0 + 10s).notify);
  EXPECT_EQ(problems.list().size(), 2u);
}

TEST(StorageProblems, ClearProjectForgetsOnlyThatProject) {
  StorageProblems problems;
  problems.raise("history", "/a/logs", "e", "a");
  problems.raise("metadata", "/a/project.json", "e", "a");
  problems.raise("history", "/b/logs", "e", "b");
  EXPECT_EQ(problems.clear_project("a"), 2u);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems.list()[0].project_id, "b");
}

TEST(StorageProblems, ListIsOrderedBySince) {
  StorageProblems problems;
  for (const char* path : {"/z", "/a", "/m"}) problems.raise("history", path, "e");
  const auto list = problems.list();
  ASSERT_EQ(list.size(), 3u);
  for (std::size_t i = 1; i < list.size(); ++i) EXPECT_LE(list[i - 1].since, list[i].since);
}

TEST(StorageProblems, ThreadSafeUnderConcurrentRaiseClearAndList) {
  StorageProblems problems(0ms);
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const std::string path = "/p" + std::to_string(t % 2);
      for (int i = 0; i < 5000; ++i) {
        problems.raise("history", path, "e" + std::to_string(i), std::to_string(t));
        if (i % 3 == 0) problems.clear(path);
      }
    });
  }
  std::thread reader([&] {
    while (!stop) {
      for (const auto& p : problems.list()) EXPECT_FALSE(p.path.empty());
      (void)problems.size();
    }
  });
  for (auto& th : threads) th.join();
  stop = true;
  reader.join();
  EXPECT_LE(problems.size(), 2u);
}

}  // namespace
}  // namespace pa::ops
