// A connection's cursors and its page requests: one page in flight, the projects it is behind
// on in turn, and cursors that go with their feed.
#include "net/feed_cursors.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace pa::net {
namespace {

class NoFeed : public server::Feed {
 public:
  void request_catch_up(std::shared_ptr<server::Connection>, std::uint64_t, std::size_t,
                        std::size_t) override {}
  void leave(std::uint64_t) override {}
};

protocol::SharedText text(const std::string& s) {
  return std::make_shared<const std::string>(s);
}

server::CatchUpPage live_page(std::uint64_t through) {
  server::CatchUpPage p;
  p.through_seq = through;
  p.live = true;
  return p;
}

TEST(FeedCursorsTest, OnePageInFlightAndTheProjectsInTurn) {
  FeedCursors c;
  auto a = std::make_shared<NoFeed>();
  auto b = std::make_shared<NoFeed>();
  c.joined(a);
  c.joined(b);
  EXPECT_FALSE(c.next_request()) << "nobody is behind";
  EXPECT_EQ(c.on_frame(a, 1, true, text("a1"), false), FeedCursors::Verdict::kQueue);
  EXPECT_EQ(c.on_frame(a, 2, false, text("a2"), false), FeedCursors::Verdict::kDeclined);
  EXPECT_EQ(c.on_frame(b, 7, false, text("b7"), false), FeedCursors::Verdict::kDeclined);

  auto first = c.next_request();
  ASSERT_TRUE(first);
  EXPECT_FALSE(c.next_request()) << "one page in flight per connection";
  EXPECT_TRUE(c.page_in_flight());
  const bool first_is_a = first->feed == a;
  EXPECT_EQ(first->after_seq, first_is_a ? 1u : 6u);
  c.on_page(first->feed.get(), live_page(first_is_a ? 2 : 7));
  EXPECT_FALSE(c.page_in_flight());

  auto second = c.next_request();
  ASSERT_TRUE(second);
  EXPECT_NE(second->feed, first->feed) << "the other project's turn";
  c.on_page(second->feed.get(), live_page(first_is_a ? 7 : 2));
  EXPECT_FALSE(c.next_request()) << "both live again";
  EXPECT_EQ(c.on_frame(a, 3, true, text("a3"), false), FeedCursors::Verdict::kQueue);
  EXPECT_EQ(c.on_frame(b, 8, true, text("b8"), false), FeedCursors::Verdict::kQueue);
}

TEST(FeedCursorsTest, LeavingDropsTheCursorAndThePageItAwaited) {
  FeedCursors c;
  auto a = std::make_shared<NoFeed>();
  c.joined(a);
  ASSERT_EQ(c.on_frame(a, 4, false, text("a4"), false), FeedCursors::Verdict::kDeclined);
  ASSERT_TRUE(c.next_request());
  c.ended(a.get());
  EXPECT_FALSE(c.page_in_flight());
  EXPECT_EQ(c.size(), 0u);
  EXPECT_TRUE(c.on_page(a.get(), live_page(4)).empty()) << "a page after leaving is dropped";
  // Joined again later: a fresh cursor, nothing owed from before.
  c.joined(a);
  EXPECT_EQ(c.on_frame(a, 9, true, text("a9"), false), FeedCursors::Verdict::kQueue);
}

TEST(FeedCursorsTest, AProjectThatIsGoneIsSkippedAndForgotten) {
  FeedCursors c;
  auto gone = std::make_shared<NoFeed>();
  auto kept = std::make_shared<NoFeed>();
  c.joined(gone);
  c.joined(kept);
  ASSERT_EQ(c.on_frame(gone, 1, false, text("g1"), false), FeedCursors::Verdict::kDeclined);
  ASSERT_EQ(c.on_frame(kept, 1, false, text("k1"), false), FeedCursors::Verdict::kDeclined);
  gone.reset();
  auto request = c.next_request();
  ASSERT_TRUE(request);
  EXPECT_EQ(request->feed, kept);
  EXPECT_EQ(c.size(), 1u);
  EXPECT_EQ(c.take_all().size(), 1u);
  EXPECT_EQ(c.size(), 0u);
  EXPECT_FALSE(c.page_in_flight());
}

TEST(FeedCursorsTest, OnlyAGoneProjectBehindGivesNoRequest) {
  FeedCursors c;
  auto gone = std::make_shared<NoFeed>();
  c.joined(gone);
  ASSERT_EQ(c.on_frame(gone, 1, false, text("g1"), false), FeedCursors::Verdict::kDeclined);
  gone.reset();
  EXPECT_FALSE(c.next_request());
  EXPECT_EQ(c.size(), 0u);
}

}  // namespace
}  // namespace pa::net
