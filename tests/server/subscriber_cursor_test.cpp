// The cursor switch live → behind → history pages → live at every boundary: no gap, no
// duplicate, replies kept, stale pages ignored.
#include "server/subscriber_cursor.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace pa::server {
namespace {

using Verdict = SubscriberCursor::Verdict;
using State = SubscriberCursor::State;

protocol::SharedText text(std::string s) {
  return std::make_shared<const std::string>(std::move(s));
}

CatchUpPage page(std::initializer_list<std::uint64_t> seqs, std::uint64_t through, bool live) {
  CatchUpPage p;
  for (auto seq : seqs) p.frames.emplace_back(seq, text("h" + std::to_string(seq)));
  p.through_seq = through;
  p.live = live;
  return p;
}

std::vector<std::string> strings(const std::vector<protocol::SharedText>& frames) {
  std::vector<std::string> out;
  for (const auto& f : frames) out.push_back(*f);
  return out;
}

TEST(SubscriberCursorTest, KeepsUpWhileThereIsRoom) {
  SubscriberCursor c;
  EXPECT_EQ(c.on_live(7, true), Verdict::kQueue);  // the first frame seen starts it
  EXPECT_EQ(c.on_live(8, true), Verdict::kQueue);
  EXPECT_EQ(c.on_live(10, true), Verdict::kQueue);  // 9 was a client's record: not a gap
  EXPECT_EQ(c.position(), 10u);
  EXPECT_EQ(c.state(), State::kLive);
  EXPECT_EQ(c.on_live(10, true), Verdict::kDuplicate);
}

TEST(SubscriberCursorTest, FirstFrameDeclinedIsOwedFromHistory) {
  SubscriberCursor c;
  EXPECT_EQ(c.on_live(5, false), Verdict::kDeclined);
  EXPECT_EQ(c.state(), State::kBehind);
  EXPECT_EQ(c.position(), 4u);  // the page starts after 4: 5 comes from history
  ASSERT_TRUE(c.take_page_request(true));
  EXPECT_EQ(strings(c.on_page(page({5}, 5, true))), std::vector<std::string>{"h5"});
  EXPECT_EQ(c.state(), State::kLive);
}

TEST(SubscriberCursorTest, LiveToHistoryToLiveWithoutGapOrDuplicate) {
  SubscriberCursor c;
  ASSERT_EQ(c.on_live(1, true), Verdict::kQueue);
  ASSERT_EQ(c.on_live(2, true), Verdict::kQueue);
  // Full: 3 is declined, and so is everything after it until history catches up, even when
  // there is room again (a frame let through would overtake 3).
  EXPECT_EQ(c.on_live(3, false), Verdict::kDeclined);
  EXPECT_EQ(c.on_live(4, true), Verdict::kDeclined);
  EXPECT_EQ(c.position(), 2u);
  // No page while the queue is above its low-water mark.
  EXPECT_FALSE(c.take_page_request(false));
  EXPECT_EQ(c.state(), State::kBehind);
  ASSERT_TRUE(c.take_page_request(true));
  EXPECT_EQ(c.state(), State::kFetching);
  EXPECT_FALSE(c.take_page_request(true)) << "one page at a time";
  // Frames arriving while the page is read are declined: the page (read later) holds them.
  EXPECT_EQ(c.on_live(5, true), Verdict::kDeclined);
  // A page that does not reach the end: still behind, next page after its last seq.
  EXPECT_EQ(strings(c.on_page(page({3, 4}, 4, false))), (std::vector<std::string>{"h3", "h4"}));
  EXPECT_EQ(c.state(), State::kBehind);
  EXPECT_EQ(c.position(), 4u);
  ASSERT_TRUE(c.take_page_request(true));
  // The last page reaches the project's last seq (6, a client's record, has no frame).
  EXPECT_EQ(strings(c.on_page(page({5}, 6, true))), std::vector<std::string>{"h5"});
  EXPECT_EQ(c.state(), State::kLive);
  EXPECT_EQ(c.position(), 6u);
  // Live again exactly after it.
  EXPECT_EQ(c.on_live(6, true), Verdict::kDuplicate);
  EXPECT_EQ(c.on_live(7, true), Verdict::kQueue);
}

TEST(SubscriberCursorTest, PageFramesAtOrBelowThePositionAreDropped) {
  SubscriberCursor c;
  ASSERT_EQ(c.on_live(10, true), Verdict::kQueue);
  ASSERT_EQ(c.on_live(11, false), Verdict::kDeclined);
  ASSERT_TRUE(c.take_page_request(true));
  EXPECT_EQ(strings(c.on_page(page({9, 10, 11, 12}, 12, true))),
            (std::vector<std::string>{"h11", "h12"}));
}

TEST(SubscriberCursorTest, FramesBeyondThroughSeqAreNotTaken) {
  SubscriberCursor c;
  ASSERT_EQ(c.on_live(1, false), Verdict::kDeclined);
  ASSERT_TRUE(c.take_page_request(true));
  EXPECT_EQ(strings(c.on_page(page({1, 2, 3}, 2, false))), (std::vector<std::string>{"h1", "h2"}));
  EXPECT_EQ(c.position(), 2u);
}

TEST(SubscriberCursorTest, EmptyLivePageSwitchesBackAtTheLastSeq) {
  SubscriberCursor c;
  ASSERT_EQ(c.on_live(3, true), Verdict::kQueue);
  ASSERT_EQ(c.on_live(4, false), Verdict::kDeclined);
  ASSERT_TRUE(c.take_page_request(true));
  // History lost 4 (files deleted): the page is empty but reaches the last seq.
  EXPECT_TRUE(c.on_page(page({}, 4, true)).empty());
  EXPECT_EQ(c.state(), State::kLive);
  EXPECT_EQ(c.on_live(5, true), Verdict::kQueue);
}

TEST(SubscriberCursorTest, PageNotAskedForIsIgnored) {
  SubscriberCursor c;
  ASSERT_EQ(c.on_live(1, true), Verdict::kQueue);
  EXPECT_TRUE(c.on_page(page({2, 3}, 3, true)).empty());
  EXPECT_EQ(c.position(), 1u);
  EXPECT_EQ(c.on_live(2, true), Verdict::kQueue);
}

TEST(SubscriberCursorTest, DeclinedReplyReplacesItsHistoryFrame) {
  SubscriberCursor c;
  ASSERT_EQ(c.on_live(1, true), Verdict::kQueue);
  ASSERT_EQ(c.on_live(2, false), Verdict::kDeclined);
  EXPECT_EQ(c.on_live(3, true, text("reply3"), /*reply=*/true), Verdict::kDeclined);
  EXPECT_EQ(c.kept_replies(), 1u);
  ASSERT_TRUE(c.take_page_request(true));
  EXPECT_EQ(strings(c.on_page(page({2, 3, 4}, 4, true))),
            (std::vector<std::string>{"h2", "reply3", "h4"}));
  EXPECT_EQ(c.kept_replies(), 0u);
}

TEST(SubscriberCursorTest, ReplyQueuedLiveIsNotKept) {
  SubscriberCursor c;
  EXPECT_EQ(c.on_live(1, true, text("reply1"), true), Verdict::kQueue);
  EXPECT_EQ(c.kept_replies(), 0u);
}

}  // namespace
}  // namespace pa::server
