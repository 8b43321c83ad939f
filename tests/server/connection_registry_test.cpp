// ConnectionRegistry: admission within limits.max_connections, connection ids, the open
// WebSockets (weak: never kept alive) and the close at shutdown.
#include "server/connection_registry.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "server/connection.hpp"

namespace pa::server {
namespace {

using namespace std::chrono_literals;

class FakeConnection : public Connection {
 public:
  explicit FakeConnection(std::uint64_t id) : id_(id) {}
  std::uint64_t id() const override { return id_; }
  const std::string& remote_address() const override { return name_; }
  void send(protocol::SharedText) override { ++sent; }
  void close(std::uint16_t code, std::string) override { closed_with = code; }
  void close_after_queued(std::uint16_t code, std::string reason) override {
    closed_with = code;
    close_reason = std::move(reason);
  }

  int sent = 0;
  std::uint16_t closed_with = 0;
  std::string close_reason;

 private:
  std::uint64_t id_;
  std::string name_ = "test";
};

TEST(ConnectionRegistryTest, AdmitsUpToTheLimitAndAgainAfterARelease) {
  ConnectionRegistry registry(2);
  EXPECT_TRUE(registry.admit());
  EXPECT_TRUE(registry.admit());
  EXPECT_FALSE(registry.admit());
  EXPECT_EQ(registry.admitted(), 2u);
  registry.release();
  EXPECT_EQ(registry.admitted(), 1u);
  EXPECT_TRUE(registry.admit());
  EXPECT_FALSE(registry.admit());
}

TEST(ConnectionRegistryTest, ZeroLimitAdmitsNothing) {
  ConnectionRegistry registry(0);
  EXPECT_FALSE(registry.admit());
  EXPECT_EQ(registry.admitted(), 0u);
}

TEST(ConnectionRegistryTest, ConcurrentAdmissionsNeverPassTheLimit) {
  ConnectionRegistry registry(50);
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) admitted += registry.admit() ? 1 : 0;
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(admitted.load(), 50);
  EXPECT_EQ(registry.admitted(), 50u);
}

TEST(ConnectionRegistryTest, IdsAreUniqueAndStartAtOne) {
  ConnectionRegistry registry(10);
  EXPECT_EQ(registry.next_id(), 1u);
  EXPECT_EQ(registry.next_id(), 2u);
  std::set<std::uint64_t> ids;
  std::mutex mutex;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 250; ++i) {
        const auto id = registry.next_id();
        std::lock_guard lock(mutex);
        ids.insert(id);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(ids.size(), 1000u);
  EXPECT_EQ(*ids.begin(), 3u);
  EXPECT_EQ(*ids.rbegin(), 1002u);
}

TEST(ConnectionRegistryTest, KeepsOpenConnectionsUntilTheyAreRemoved) {
  ConnectionRegistry registry(10);
  auto a = std::make_shared<FakeConnection>(1);
  auto b = std::make_shared<FakeConnection>(2);
  registry.add(a);
  registry.add(b);
  EXPECT_EQ(registry.open_count(), 2u);
  EXPECT_EQ(registry.open_connections().size(), 2u);
  EXPECT_TRUE(registry.remove(1));
  EXPECT_FALSE(registry.remove(1));  // once
  EXPECT_FALSE(registry.remove(42));
  const auto open = registry.open_connections();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open.front().get(), b.get());
  // Admission and the open set are separate counts: an admitted connection may not be open yet.
  EXPECT_EQ(registry.admitted(), 0u);
}

TEST(ConnectionRegistryTest, NeverKeepsAConnectionAlive) {
  ConnectionRegistry registry(10);
  auto a = std::make_shared<FakeConnection>(1);
  std::weak_ptr<FakeConnection> weak = a;
  registry.add(a);
  a.reset();
  EXPECT_TRUE(weak.expired());
  EXPECT_TRUE(registry.open_connections().empty());
  EXPECT_EQ(registry.open_count(), 1u);  // until its close is reported
  EXPECT_TRUE(registry.remove(1));
  EXPECT_EQ(registry.open_count(), 0u);
}

TEST(ConnectionRegistryTest, CloseAllClosesEveryOpenConnectionAfterItsQueue) {
  ConnectionRegistry registry(10);
  auto a = std::make_shared<FakeConnection>(1);
  auto b = std::make_shared<FakeConnection>(2);
  auto c = std::make_shared<FakeConnection>(3);
  registry.add(a);
  registry.add(b);
  registry.add(c);
  registry.remove(3);
  registry.close_all(1001, "server shutting down");
  EXPECT_EQ(a->closed_with, 1001);
  EXPECT_EQ(a->close_reason, "server shutting down");
  EXPECT_EQ(b->closed_with, 1001);
  EXPECT_EQ(c->closed_with, 0);  // no longer open
}

TEST(ConnectionRegistryTest, WaitUntilEmptyReturnsWhenTheLastOneIsRemoved) {
  ConnectionRegistry registry(10);
  EXPECT_TRUE(registry.wait_until_empty(0ms));
  auto a = std::make_shared<FakeConnection>(1);
  auto b = std::make_shared<FakeConnection>(2);
  registry.add(a);
  registry.add(b);
  EXPECT_FALSE(registry.wait_until_empty(10ms));
  std::thread closer([&] {
    std::this_thread::sleep_for(20ms);
    registry.remove(1);
    std::this_thread::sleep_for(20ms);
    registry.remove(2);
  });
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(registry.wait_until_empty(10s));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_EQ(registry.open_count(), 0u);
  closer.join();
}

}  // namespace
}  // namespace pa::server
