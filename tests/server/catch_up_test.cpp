// A lagging subscriber's catch-up from history (issue 15): every way Project broadcasts a message
// rebuilds from its history entry to the exact bytes sent live, and request_catch_up pages are
// bounded, skip what was never broadcast, and say when they reach the live stream.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <vector>

#include "protocol/json_text.hpp"
#include "server/catch_up_frames.hpp"
#include "server/project.hpp"
#include "server/project_harness.hpp"
#include "server/recent_frames.hpp"

namespace pa::server {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

// Keeps every frame as sent (bytes), and what the feed answered.
class RecordingConnection : public Connection {
 public:
  explicit RecordingConnection(std::uint64_t id) : id_(id) {}
  std::uint64_t id() const override { return id_; }
  const std::string& remote_address() const override { return name_; }
  void send(protocol::SharedText text) override {
    std::lock_guard lock(mutex_);
    plain_.push_back(*text);
  }
  void send_seq(const std::shared_ptr<Feed>&, std::uint64_t seq, protocol::SharedText text,
                bool reply) override {
    std::lock_guard lock(mutex_);
    live_.emplace_back(seq, *text);
    replies_ += reply ? 1 : 0;
  }
  void deliver_page(const Feed*, CatchUpPage page) override {
    std::lock_guard lock(mutex_);
    pages_.push_back(std::move(page));
    cv_.notify_all();
  }
  void end_feed(const Feed*) override {
    std::lock_guard lock(mutex_);
    ++ended_;
    cv_.notify_all();
  }
  void close(std::uint16_t, std::string) override {}
  void close_after_queued(std::uint16_t, std::string) override {}

  bool wait_answers(std::size_t n) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, 10s, [&] { return pages_.size() + ended_ >= n; });
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::pair<std::uint64_t, std::string>> live_;
  std::vector<std::string> plain_;
  std::vector<CatchUpPage> pages_;
  int replies_ = 0;
  int ended_ = 0;

 private:
  std::uint64_t id_;
  std::string name_ = "test";
};

class CatchUpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    project_ = projects_.make_project();
    subscriber_ = std::make_shared<RecordingConnection>(1);
    on_strand([&] { project_->subscribe(subscriber_); });
  }
  template <class Fn>
  auto on_strand(Fn fn) -> decltype(fn()) {
    return projects_.on_strand(*project_, std::move(fn));
  }
  std::vector<std::string> history_entries() {
    return on_strand([&] {
      history::Query q;
      q.after_seq = 0;
      return project_->read_history(q).entries;
    });
  }

  test::ProjectHarness projects_;
  std::shared_ptr<Project> project_;
  std::shared_ptr<RecordingConnection> subscriber_;
};

TEST_F(CatchUpTest, EveryBroadcastRebuildsFromHistoryToTheBytesSentLive) {
  const std::string line =
      R"({"type":"assistant","message":{"content":[{"type":"text","text":"caf\u00e9 é 1.50e3 \"q\""}]},"n":1.0})";
  const std::string raw = json::serialize(json::object{{"type", "raw"}, {"text", "not json {"}});
  const std::string notice =
      R"({"type":"oversized_line","bytes":99999999,"limit":10,"line_type":null})";
  const std::string trailer = R"(,"run":{"id":"r-1","offset":42})";
  const std::string final_trailer = R"(,"run":{"id":"r-1","offset":43,"final":true})";
  auto requester = std::make_shared<RecordingConnection>(2);
  on_strand([&] {
    project_->publish("project_state", json::object{{"state", "EXECUTING"}, {"x", 1.5}});
    Requester r{requester, std::string("req-1")};
    project_->publish("execution_started", json::object{{"prompt", "hi \"there\""}}, &r);
    project_->record(history::Direction::kClient, R"({"type":"execute","data":{"prompt":"p"}})");
    // As AgentRun publishes a CLI line holding a fraction: its numbers by the rule (1.0 -> 1).
    std::string sent = line;
    EXPECT_TRUE(protocol::normalize_json_numbers(sent));
    project_->publish_raw(history::Direction::kClaude, sent, "agent_message", sent);
    project_->try_publish_raw_marked(history::Direction::kClaude, raw, "agent_message", raw,
                                     trailer);
    project_->try_publish_raw_marked(history::Direction::kServer, notice, "agent_message", notice,
                                     trailer);
    project_->try_publish_marked("permission_request", json::object{{"tool", "Bash"}}, {},
                                 final_trailer);
    project_->try_publish("prompt_queued", json::object{{"position", 1}});
  });
  const auto live = subscriber_->live_;
  ASSERT_EQ(live.size(), 7u);
  const auto entries = history_entries();
  ASSERT_EQ(entries.size(), 8u);
  std::size_t next_live = 0;
  for (const auto& entry : entries) {
    const auto rebuilt = frame_from_history_entry(entry, project_->id());
    ASSERT_NE(rebuilt.seq, 0u) << entry;
    if (entry.find("\"direction\":\"client\"") != std::string::npos) {
      EXPECT_FALSE(rebuilt.frame) << "a client's message was never broadcast";
      continue;
    }
    ASSERT_LT(next_live, live.size());
    EXPECT_EQ(rebuilt.seq, live[next_live].first);
    ASSERT_TRUE(rebuilt.frame) << entry;
    EXPECT_EQ(*rebuilt.frame, live[next_live].second) << entry;
    ++next_live;
  }
  EXPECT_EQ(next_live, live.size());
  // The requester (not subscribed) got its own copy, with its request_id, outside any feed.
  ASSERT_EQ(requester->plain_.size(), 1u);
  EXPECT_NE(requester->plain_[0].find("\"request_id\":\"req-1\""), std::string::npos);
}

TEST_F(CatchUpTest, ASubscribedRequestersCopyIsPartOfItsFeed) {
  on_strand([&] {
    Requester r{subscriber_, std::string("req-9")};
    project_->publish("execution_started", json::object{{"prompt", "p"}}, &r);
  });
  ASSERT_EQ(subscriber_->live_.size(), 1u);
  EXPECT_EQ(subscriber_->replies_, 1);
  EXPECT_NE(subscriber_->live_[0].second.find("\"request_id\":\"req-9\""), std::string::npos);
  EXPECT_TRUE(subscriber_->plain_.empty());
}

TEST_F(CatchUpTest, PagesFromHistoryAreBoundedSkipRecordsAndReachTheLiveStream) {
  // Published while nobody was subscribed: not among the recent frames, so read from history.
  on_strand([&] {
    project_->unsubscribe(subscriber_->id());
    for (int i = 1; i <= 5; ++i) {
      project_->publish("note", json::object{{"i", i}});
      project_->record(history::Direction::kClient, R"({"type":"execute"})");
    }
    project_->subscribe(subscriber_);
  });  // seqs 1..10: odd ones broadcast, even ones records
  {
    std::lock_guard lock(subscriber_->mutex_);
    subscriber_->ended_ = 0;  // the unsubscribe above ended its feed: not an answer
  }
  project_->request_catch_up(subscriber_, 2, 4, 1u << 20);
  ASSERT_TRUE(subscriber_->wait_answers(1));
  {
    const auto& p = subscriber_->pages_.at(0);
    ASSERT_EQ(p.frames.size(), 2u);  // entries 3..6: broadcasts 3 and 5
    EXPECT_EQ(p.frames[0].first, 3u);
    EXPECT_EQ(p.frames[1].first, 5u);
    EXPECT_EQ(p.through_seq, 6u);
    EXPECT_FALSE(p.live);
  }
  project_->request_catch_up(subscriber_, 6, 100, 1u << 20);
  ASSERT_TRUE(subscriber_->wait_answers(2));
  {
    const auto& p = subscriber_->pages_.at(1);
    ASSERT_EQ(p.frames.size(), 2u);
    EXPECT_EQ(p.frames[0].first, 7u);
    EXPECT_EQ(p.frames[1].first, 9u);
    EXPECT_EQ(p.through_seq, 10u) << "reaches the last seq, a record";
    EXPECT_TRUE(p.live);
  }
  // Bytes bound: one entry at least, then has_more.
  project_->request_catch_up(subscriber_, 0, 100, 1);
  ASSERT_TRUE(subscriber_->wait_answers(3));
  EXPECT_EQ(subscriber_->pages_.at(2).frames.size(), 1u);
  EXPECT_EQ(subscriber_->pages_.at(2).through_seq, 1u);
  EXPECT_FALSE(subscriber_->pages_.at(2).live);
  // Caught up already: an empty page that is live.
  project_->request_catch_up(subscriber_, 10, 100, 1u << 20);
  ASSERT_TRUE(subscriber_->wait_answers(4));
  EXPECT_TRUE(subscriber_->pages_.at(3).frames.empty());
  EXPECT_EQ(subscriber_->pages_.at(3).through_seq, 10u);
  EXPECT_TRUE(subscriber_->pages_.at(3).live);
}

// Broadcast while subscribed: pages are the very frames sent live (shared, not re-read), and
// history is read only for what the bounded window no longer holds.
TEST_F(CatchUpTest, PagesOfRecentBroadcastsAreTheFramesSentLive) {
  on_strand([&] {
    for (int i = 1; i <= 5; ++i) {
      project_->publish("note", json::object{{"i", i}});
      project_->record(history::Direction::kClient, R"({"type":"execute"})");
    }
  });
  project_->request_catch_up(subscriber_, 2, 2, 1u << 20);
  ASSERT_TRUE(subscriber_->wait_answers(1));
  {
    const auto& p = subscriber_->pages_.at(0);
    ASSERT_EQ(p.frames.size(), 2u);
    EXPECT_EQ(p.frames[0].first, 3u);
    EXPECT_EQ(p.frames[1].first, 5u);
    EXPECT_EQ(p.through_seq, 5u);
    EXPECT_FALSE(p.live);
    EXPECT_EQ(*p.frames[0].second, subscriber_->live_.at(1).second);
  }
  project_->request_catch_up(subscriber_, 5, 100, 1u << 20);
  ASSERT_TRUE(subscriber_->wait_answers(2));
  {
    const auto& p = subscriber_->pages_.at(1);
    ASSERT_EQ(p.frames.size(), 2u);
    EXPECT_EQ(p.frames[1].first, 9u);
    EXPECT_EQ(p.through_seq, 10u) << "reaches the last seq, a record";
    EXPECT_TRUE(p.live);
  }
}

TEST(RecentFramesTest, BoundedInBytesAndCoversOnlyWhatItHolds) {
  auto frame = [](std::size_t n) { return std::make_shared<const std::string>(n, 'x'); };
  RecentFrames recent(100, 1);
  EXPECT_TRUE(recent.covers(0));
  recent.add(1, frame(40));
  recent.add(3, frame(40));  // 2 was never broadcast
  EXPECT_TRUE(recent.covers(0));
  recent.add(4, frame(40));  // 120 bytes: 1 goes
  EXPECT_EQ(recent.size(), 2u);
  EXPECT_FALSE(recent.covers(0)) << "1 is gone";
  EXPECT_TRUE(recent.covers(1));
  EXPECT_TRUE(recent.covers(2));
  auto slice = recent.after(1, 10, 1000);
  ASSERT_EQ(slice.frames.size(), 2u);
  EXPECT_EQ(slice.frames[0].first, 3u);
  EXPECT_TRUE(slice.rest_empty);
  slice = recent.after(1, 1, 1000);
  EXPECT_EQ(slice.frames.size(), 1u);
  EXPECT_FALSE(slice.rest_empty);
  slice = recent.after(1, 10, 1);  // the byte bound still lets one through
  EXPECT_EQ(slice.frames.size(), 1u);
  EXPECT_FALSE(slice.rest_empty);
  EXPECT_TRUE(recent.after(4, 10, 1000).frames.empty());
  EXPECT_TRUE(recent.after(4, 10, 1000).rest_empty);
  recent.clear(9);
  EXPECT_EQ(recent.bytes(), 0u);
  EXPECT_FALSE(recent.covers(7));
  EXPECT_TRUE(recent.covers(8));
}

TEST_F(CatchUpTest, AConnectionThatLeftGetsEndFeedNotAPage) {
  on_strand([&] { project_->publish("note", json::object{{"i", 1}}); });
  on_strand([&] { EXPECT_TRUE(project_->unsubscribe(subscriber_->id())); });
  EXPECT_EQ(subscriber_->ended_, 1) << "unsubscribing ends its cursor";
  project_->request_catch_up(subscriber_, 0, 100, 1u << 20);
  ASSERT_TRUE(subscriber_->wait_answers(2));
  EXPECT_TRUE(subscriber_->pages_.empty());
  EXPECT_EQ(subscriber_->ended_, 2);
}

TEST(CatchUpFramesTest, UnreadableOrUnknownEntries) {
  EXPECT_EQ(frame_from_history_entry("not json", "p").seq, 0u);
  EXPECT_EQ(frame_from_history_entry(R"({"seq":1})", "p").seq, 0u);
  // Written by hand (another layout): still rebuilt, from the parsed message.
  const auto r = frame_from_history_entry(
      R"({"direction":"server","seq":4,"timestamp":"2024-01-01T00:00:00.000Z","message":{"type":"note","data":{"a":1}}})",
      "p");
  EXPECT_EQ(r.seq, 4u);
  ASSERT_TRUE(r.frame);
  const auto frame = json::parse(*r.frame).as_object();
  EXPECT_EQ(frame.at("type").as_string(), "note");
  EXPECT_EQ(frame.at("seq").as_int64(), 4);
  EXPECT_EQ(frame.at("data").at("a").as_int64(), 1);
  EXPECT_EQ(frame.at("project_id").as_string(), "p");
}

// History written before the number rule holds Boost.JSON's exponent forms (5.07E2); a catch-up
// frame rebuilt from it has plain numbers, as a live frame now has.
TEST(CatchUpFramesTest, EntriesAnOlderServerWroteComeOutByTheNumberRule) {
  const auto server = frame_from_history_entry(
      R"({"seq":5,"timestamp":"2024-01-01T00:00:00.000Z","direction":"server","message":{"type":"execution_completed","data":{"duration_ms":5.07E2,"cost":1.23E-2,"note":"5E1"}}})",
      "p");
  ASSERT_TRUE(server.frame);
  EXPECT_EQ(
      *server.frame,
      R"({"type":"execution_completed","project_id":"p","data":{"duration_ms":507,"cost":0.0123,"note":"5E1"},"seq":5,"timestamp":"2024-01-01T00:00:00.000Z"})");
  const auto claude = frame_from_history_entry(
      R"({"seq":6,"timestamp":"2024-01-01T00:00:00.000Z","direction":"claude","message":{"type":"result","total_cost_usd":1e-7,"n":3},"run":{"id":"r","offset":1}})",
      "p");
  ASSERT_TRUE(claude.frame);
  EXPECT_EQ(
      *claude.frame,
      R"({"type":"agent_message","project_id":"p","data":{"type":"result","total_cost_usd":0.0000001,"n":3},"seq":6,"timestamp":"2024-01-01T00:00:00.000Z"})");
}

}  // namespace
}  // namespace pa::server
