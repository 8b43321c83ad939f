// The mirror of another node's project (RemoteFeed): broadcasts reach its subscribers in seq
// order with no gap and no duplicate, whatever order and losses the event stream has.
#include "cluster/remote_feed.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <mutex>

namespace pa::cluster {
namespace {

using namespace std::chrono_literals;

class FakeConnection : public server::Connection {
 public:
  explicit FakeConnection(std::uint64_t id) : id_(id) {}
  std::uint64_t id() const override { return id_; }
  const std::string& remote_address() const override { return address_; }
  void send(protocol::SharedText text) override {
    std::lock_guard lock(mutex_);
    notices.push_back(*text);
  }
  void send_seq(const std::shared_ptr<server::Feed>&, std::uint64_t seq, protocol::SharedText,
                bool) override {
    std::lock_guard lock(mutex_);
    seqs.push_back(seq);
  }
  void deliver_page(const server::Feed*, server::CatchUpPage page) override {
    std::lock_guard lock(mutex_);
    pages.push_back(std::move(page));
  }
  void feed_joined(const std::shared_ptr<server::Feed>&) override { ++joins; }
  void end_feed(const server::Feed*) override { ++ends; }
  void close(std::uint16_t, std::string) override {}
  void close_after_queued(std::uint16_t, std::string) override {}

  std::vector<std::uint64_t> seqs;
  std::vector<std::string> notices;
  std::vector<server::CatchUpPage> pages;
  int joins = 0;
  int ends = 0;

 private:
  std::uint64_t id_;
  std::string address_ = "test";
  std::mutex mutex_;
};

SeqFrame frame(std::uint64_t seq, std::optional<std::uint64_t> prev) {
  return {seq, prev, std::make_shared<const std::string>("{\"type\":\"agent_message\"}")};
}

class RemoteFeedTest : public ::testing::Test {
 protected:
  RemoteFeedTest() {
    RemoteFeed::Owner owner;
    owner.fill = [this](std::uint64_t after) { fills.push_back(after); };
    owner.left = [this](std::uint64_t id) { left.push_back(id); };
    owner.catch_up = [this](const std::shared_ptr<server::Connection>&, std::uint64_t after,
                            std::size_t, std::size_t) { catch_ups.push_back(after); };
    feed = std::make_shared<RemoteFeed>(io.get_executor(), "p1", "b", std::move(owner));
  }
  void run() {
    io.restart();
    io.run();
  }

  boost::asio::io_context io;
  std::shared_ptr<RemoteFeed> feed;
  std::vector<std::uint64_t> fills, left, catch_ups;
};

TEST_F(RemoteFeedTest, BroadcastsInOrderReachEverySubscriberOnce) {
  auto one = std::make_shared<FakeConnection>(1);
  auto two = std::make_shared<FakeConnection>(2);
  feed->subscribe(one, 3);
  feed->subscribe(two, 3);
  feed->on_event(frame(4, 2));  // entry 3 was not a broadcast (a client's execute)
  feed->on_event(frame(5, 4));
  feed->on_event(frame(5, 4));  // the same entry read twice
  feed->on_event(frame(3, 2));  // before the subscribers' start
  run();
  EXPECT_EQ(one->seqs, (std::vector<std::uint64_t>{4, 5}));
  EXPECT_EQ(two->seqs, (std::vector<std::uint64_t>{4, 5}));
  EXPECT_EQ(one->joins, 1);
  EXPECT_TRUE(fills.empty());
}

TEST_F(RemoteFeedTest, AGapIsFilledFromTheOwnersHistoryBeforeLaterBroadcasts) {
  auto one = std::make_shared<FakeConnection>(1);
  feed->subscribe(one, 1);
  feed->on_event(frame(2, 1));
  feed->on_event(frame(6, 5));  // 3..5 went missing
  feed->on_event(frame(7, 6));  // held while the fill is out
  run();
  ASSERT_EQ(fills, (std::vector<std::uint64_t>{2}));
  EXPECT_EQ(one->seqs, (std::vector<std::uint64_t>{2}));
  // The owner's history: 3, 5, 6 were broadcasts (4 was not); its last seq then was 6.
  feed->on_fill({frame(3, std::nullopt), frame(5, std::nullopt), frame(6, std::nullopt)}, 6, false);
  run();
  EXPECT_EQ(one->seqs, (std::vector<std::uint64_t>{2, 3, 5, 6, 7}));
}

TEST_F(RemoteFeedTest, AFillInPagesAsksAgainFromWhereItStopped) {
  auto one = std::make_shared<FakeConnection>(1);
  feed->subscribe(one, 0);
  feed->on_event(frame(9, 8));
  run();
  ASSERT_EQ(fills, (std::vector<std::uint64_t>{0}));
  feed->on_fill({frame(1, std::nullopt), frame(2, std::nullopt)}, 9, true);
  run();
  ASSERT_EQ(fills, (std::vector<std::uint64_t>{0, 2}));
  feed->on_fill({frame(8, std::nullopt), frame(9, std::nullopt)}, 9, false);
  run();
  EXPECT_EQ(one->seqs, (std::vector<std::uint64_t>{1, 2, 8, 9}));  // 9 once
}

TEST_F(RemoteFeedTest, AnOwnerThatRestartedIsCheckedAgainstItsHistory) {
  auto one = std::make_shared<FakeConnection>(1);
  feed->subscribe(one, 4);
  feed->on_event(frame(6, std::nullopt));  // the owner does not know its previous broadcast
  run();
  ASSERT_EQ(fills, (std::vector<std::uint64_t>{4}));
  feed->on_fill({frame(5, std::nullopt), frame(6, std::nullopt)}, 6, false);
  run();
  EXPECT_EQ(one->seqs, (std::vector<std::uint64_t>{5, 6}));
  // A marker (no frame) below what the mirror has asks for nothing; above it, it fills.
  feed->on_event({6, std::nullopt, nullptr});
  feed->on_event({8, std::nullopt, nullptr});
  run();
  EXPECT_EQ(fills, (std::vector<std::uint64_t>{4, 6}));
}

TEST_F(RemoteFeedTest, TheFirstSubscriberGetsWhatArrivedAfterItsJoin) {
  // Broadcasts read from the stream before the owner's join answer came.
  feed->on_event(frame(3, 2));
  feed->on_event(frame(4, 3));
  feed->on_event(frame(5, 4));
  run();
  auto one = std::make_shared<FakeConnection>(1);
  feed->subscribe(one, 3);  // the owner subscribed it when its last seq was 3
  run();
  EXPECT_EQ(one->seqs, (std::vector<std::uint64_t>{4, 5}));
  EXPECT_TRUE(fills.empty());
  // A later subscriber that started further back gets what the mirror still has.
  auto two = std::make_shared<FakeConnection>(2);
  feed->subscribe(two, 4);
  run();
  EXPECT_EQ(two->seqs, (std::vector<std::uint64_t>{5}));
}

TEST_F(RemoteFeedTest, LeavingTellsTheOwnerAndDroppingEndsTheFeed) {
  auto one = std::make_shared<FakeConnection>(1);
  auto two = std::make_shared<FakeConnection>(2);
  feed->subscribe(one, 0);
  feed->subscribe(two, 0);
  run();
  feed->leave(1);
  feed->drop(2);
  run();
  EXPECT_EQ(left, (std::vector<std::uint64_t>{1}));
  EXPECT_EQ(two->ends, 1);
  EXPECT_EQ(feed->subscriber_count(), 0u);
  // A catch-up request of a connection no longer subscribed ends its feed instead.
  feed->request_catch_up(one, 0, 10, 1000);
  run();
  EXPECT_EQ(one->ends, 1);
  EXPECT_TRUE(catch_ups.empty());
}

// A subscriber that fell behind is fed from the mirror's own window when it reaches back far
// enough (no round trip to the owner), in pages; from further back, the owner answers.
TEST_F(RemoteFeedTest, CatchUpComesFromTheMirrorsWindowWhenItReachesBack) {
  auto one = std::make_shared<FakeConnection>(1);
  feed->subscribe(one, 2);
  for (std::uint64_t seq = 3; seq <= 7; ++seq) feed->on_event(frame(seq, seq - 1));
  run();
  feed->request_catch_up(one, 4, 10, 1 << 20);
  feed->request_catch_up(one, 2, 2, 1 << 20);
  feed->request_catch_up(one, 1, 10, 1 << 20);  // before the window: the owner's
  run();
  ASSERT_EQ(one->pages.size(), 2u);
  const auto& whole = one->pages[0];
  ASSERT_EQ(whole.frames.size(), 3u);
  EXPECT_EQ(whole.frames[0].first, 5u);
  EXPECT_EQ(whole.through_seq, 7u);
  EXPECT_TRUE(whole.live);
  const auto& first_two = one->pages[1];
  ASSERT_EQ(first_two.frames.size(), 2u);
  EXPECT_EQ(first_two.frames[1].first, 4u);
  EXPECT_EQ(first_two.through_seq, 4u);
  EXPECT_FALSE(first_two.live);
  EXPECT_EQ(catch_ups, (std::vector<std::uint64_t>{1}));

  // The owner's page may be lost (a Redis restart): a resync asks for it again, until it came.
  feed->resync();
  run();
  EXPECT_EQ(catch_ups, (std::vector<std::uint64_t>{1, 1}));
  feed->after_page(one, 7, true);
  feed->resync();
  run();
  EXPECT_EQ(catch_ups, (std::vector<std::uint64_t>{1, 1}));
}

TEST_F(RemoteFeedTest, NoticesGoToEverySubscriber) {
  auto one = std::make_shared<FakeConnection>(1);
  feed->subscribe(one, 0);
  feed->notice(std::make_shared<const std::string>("{\"type\":\"project_state\"}"));
  run();
  ASSERT_EQ(one->notices.size(), 1u);
}

}  // namespace
}  // namespace pa::cluster
