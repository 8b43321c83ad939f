// ProjectRegistry (find, the pending paths of project_create, the limit and the nesting rule)
// and the one home of subscriptions: Project::subscribe / unsubscribe / leave and what they tell
// the connection (feed_joined, end_feed).
#include "server/project_registry.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <vector>

#include "server/project.hpp"
#include "server/project_harness.hpp"

namespace pa::server {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Outcome = ProjectRegistry::Reservation::Outcome;

// Records what a project tells it about its feeds.
class FeedWatcher : public Connection {
 public:
  explicit FeedWatcher(std::uint64_t id) : id_(id) {}
  std::uint64_t id() const override { return id_; }
  const std::string& remote_address() const override { return name_; }
  void send(protocol::SharedText) override {}
  void feed_joined(const std::shared_ptr<Feed>& feed) override {
    std::lock_guard lock(mutex_);
    joined.push_back(feed.get());
  }
  void end_feed(const Feed* feed) override {
    std::lock_guard lock(mutex_);
    ended.push_back(feed);
  }
  void close(std::uint16_t, std::string) override {}
  void close_after_queued(std::uint16_t, std::string) override {}

  std::mutex mutex_;
  std::vector<const Feed*> joined;
  std::vector<const Feed*> ended;

 private:
  std::uint64_t id_;
  std::string name_ = "test";
};

class ProjectRegistryTest : public ::testing::Test {
 protected:
  std::shared_ptr<Project> make_project(const std::string& path) {
    return projects_.make_project(path);
  }
  template <class Fn>
  auto on_strand(Project& project, Fn fn) -> decltype(fn()) {
    return projects_.on_strand(project, std::move(fn));
  }

  test::ProjectHarness projects_;
};

TEST_F(ProjectRegistryTest, FindsAddedProjectsUntilTheyAreRemoved) {
  ProjectRegistry registry;
  auto a = make_project("/srv/a");
  auto b = make_project("/srv/b");
  EXPECT_TRUE(registry.add(a));
  EXPECT_TRUE(registry.add(b));
  EXPECT_FALSE(registry.add(a));  // the id is taken
  EXPECT_EQ(registry.size(), 2u);
  EXPECT_EQ(registry.find(a->id()), a);
  EXPECT_EQ(registry.find("no-such-id"), nullptr);
  EXPECT_EQ(registry.all().size(), 2u);
  EXPECT_TRUE(registry.remove(a->id()));
  EXPECT_FALSE(registry.remove(a->id()));
  EXPECT_EQ(registry.find(a->id()), nullptr);
  ASSERT_EQ(registry.all().size(), 1u);
  EXPECT_EQ(registry.all().front(), b);
}

TEST_F(ProjectRegistryTest, PendingPathsCountTowardTheLimit) {
  ProjectRegistry registry;
  registry.add(make_project("/srv/a"));
  EXPECT_EQ(registry.reserve_path("/srv/b", 3).outcome, Outcome::kReserved);
  EXPECT_EQ(registry.reserve_path("/srv/c", 3).outcome, Outcome::kReserved);
  EXPECT_EQ(registry.reserve_path("/srv/d", 3).outcome, Outcome::kLimit);
  registry.release_path("/srv/c");  // its creation failed
  EXPECT_EQ(registry.reserve_path("/srv/d", 3).outcome, Outcome::kReserved);
  EXPECT_EQ(registry.size(), 1u);  // pending paths are not projects
}

TEST_F(ProjectRegistryTest, AReservedPathBecomesItsProject) {
  ProjectRegistry registry;
  ASSERT_EQ(registry.reserve_path("/srv/a", 2).outcome, Outcome::kReserved);
  auto a = make_project("/srv/a");
  registry.add_reserved("/srv/a", a);
  EXPECT_EQ(registry.find(a->id()), a);
  // No longer pending: one slot left, not zero.
  EXPECT_EQ(registry.reserve_path("/srv/b", 2).outcome, Outcome::kReserved);
  EXPECT_EQ(registry.reserve_path("/srv/c", 2).outcome, Outcome::kLimit);
}

TEST_F(ProjectRegistryTest, RefusesPathsThatNestWithAProject) {
  ProjectRegistry registry;
  auto a = make_project("/srv/a");
  registry.add(a);
  for (const std::string path : {"/srv/a", "/srv/a/inner", "/srv"}) {
    const auto r = registry.reserve_path(path, 10);
    EXPECT_EQ(r.outcome, Outcome::kNests) << path;
    EXPECT_EQ(r.other_path, "/srv/a") << path;
    EXPECT_EQ(r.other_id, a->id()) << path;
  }
  EXPECT_EQ(registry.reserve_path("/srv/ab", 10).outcome, Outcome::kReserved);
}

TEST_F(ProjectRegistryTest, RefusesPathsThatNestWithAPendingOne) {
  ProjectRegistry registry;
  ASSERT_EQ(registry.reserve_path("/srv/a", 10).outcome, Outcome::kReserved);
  const auto r = registry.reserve_path("/srv/a/inner", 10);
  EXPECT_EQ(r.outcome, Outcome::kNests);
  EXPECT_EQ(r.other_path, "/srv/a");
  EXPECT_TRUE(r.other_id.empty());
  registry.release_path("/srv/a");
  EXPECT_EQ(registry.reserve_path("/srv/a/inner", 10).outcome, Outcome::kReserved);
}

TEST_F(ProjectRegistryTest, AProjectWithoutAPathNestsWithNothing) {
  ProjectRegistry registry;
  registry.add(make_project(""));
  EXPECT_EQ(registry.reserve_path("/srv/a", 10).outcome, Outcome::kReserved);
}

TEST_F(ProjectRegistryTest, SubscribeTellsTheConnectionOnce) {
  auto project = make_project("/srv/a");
  auto watcher = std::make_shared<FeedWatcher>(7);
  EXPECT_TRUE(on_strand(*project, [&] { return project->subscribe(watcher); }));
  EXPECT_FALSE(on_strand(*project, [&] { return project->subscribe(watcher); }));
  EXPECT_TRUE(on_strand(*project, [&] { return project->subscribed(7); }));
  ASSERT_EQ(watcher->joined.size(), 1u);
  EXPECT_EQ(watcher->joined.front(), project.get());
  EXPECT_TRUE(watcher->ended.empty());
}

TEST_F(ProjectRegistryTest, UnsubscribeEndsTheConnectionsFeed) {
  auto project = make_project("/srv/a");
  auto watcher = std::make_shared<FeedWatcher>(7);
  on_strand(*project, [&] { return project->subscribe(watcher); });
  EXPECT_TRUE(on_strand(*project, [&] { return project->unsubscribe(7); }));
  EXPECT_FALSE(on_strand(*project, [&] { return project->unsubscribe(7); }));
  EXPECT_EQ(on_strand(*project, [&] { return project->subscriber_count(); }), 0u);
  ASSERT_EQ(watcher->ended.size(), 1u);
  EXPECT_EQ(watcher->ended.front(), project.get());
}

TEST_F(ProjectRegistryTest, LeaveUnsubscribesOnTheStrand) {
  // What a closing connection does for every project it joined.
  auto project = make_project("/srv/a");
  auto watcher = std::make_shared<FeedWatcher>(7);
  auto other = std::make_shared<FeedWatcher>(8);
  on_strand(*project, [&] {
    project->subscribe(watcher);
    project->subscribe(other);
  });
  std::shared_ptr<Feed> feed = project;
  feed->leave(7);
  feed->leave(99);  // never joined: nothing happens
  EXPECT_FALSE(on_strand(*project, [&] { return project->subscribed(7); }));
  EXPECT_TRUE(on_strand(*project, [&] { return project->subscribed(8); }));
  EXPECT_EQ(watcher->ended.size(), 1u);
  EXPECT_TRUE(other->ended.empty());
}

TEST_F(ProjectRegistryTest, RemovingAProjectEndsEveryFeed) {
  auto project = make_project("/srv/a");
  auto a = std::make_shared<FeedWatcher>(1);
  auto b = std::make_shared<FeedWatcher>(2);
  on_strand(*project, [&] {
    project->subscribe(a);
    project->subscribe(b);
  });
  on_strand(*project, [&] { return project->remove_from_disk(); });
  EXPECT_EQ(on_strand(*project, [&] { return project->subscriber_count(); }), 0u);
  EXPECT_EQ(a->ended.size(), 1u);
  EXPECT_EQ(b->ended.size(), 1u);
}

}  // namespace
}  // namespace pa::server
