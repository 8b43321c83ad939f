// The outbound queue's bounds: a count of messages, and the bytes waiting behind the one being
// written (one message of any size fits when none waits).
#include "net/outbound_queue.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace pa::net {
namespace {

protocol::SharedText bytes(std::size_t n) {
  return std::make_shared<const std::string>(std::string(n, 'x'));
}

TEST(OutboundQueueTest, CountBound) {
  OutboundQueue q(3, 1u << 20);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(q.has_room(10));
    q.push(bytes(10));
  }
  EXPECT_FALSE(q.has_room(10));
  EXPECT_TRUE(q.has_room(10, 2)) << "twice the bounds for frames that are not a feed's";
  q.start_write();
  EXPECT_FALSE(q.has_room(1)) << "the message in flight counts";
  EXPECT_EQ(q.finish_write(), 10u);
  EXPECT_TRUE(q.has_room(10));
  EXPECT_EQ(q.size(), 2u);
}

TEST(OutboundQueueTest, ByteBoundIsOnWhatWaitsBehindTheWrite) {
  OutboundQueue q(100, 1000);
  // One message larger than the byte bound fits when nothing waits.
  ASSERT_TRUE(q.has_room(5000));
  q.push(bytes(5000));
  q.start_write();
  EXPECT_EQ(q.waiting_bytes(), 0u);
  // Behind it: up to 1000 bytes.
  EXPECT_TRUE(q.has_room(5000)) << "nothing waits yet: any one message fits";
  q.push(bytes(600));
  EXPECT_EQ(q.waiting_bytes(), 600u);
  EXPECT_TRUE(q.has_room(400));
  EXPECT_FALSE(q.has_room(401));
  EXPECT_TRUE(q.has_room(1400, 2));
  EXPECT_FALSE(q.has_room(1401, 2));
  EXPECT_EQ(q.bytes(), 5600u);
}

TEST(OutboundQueueTest, LowWaterAndPageBudget) {
  OutboundQueue q(10, 1000);
  EXPECT_TRUE(q.below_low_water());
  EXPECT_EQ(q.free_messages(), 10u);
  EXPECT_EQ(q.free_bytes(), 1000u);
  for (int i = 0; i < 6; ++i) q.push(bytes(10));
  EXPECT_FALSE(q.below_low_water()) << "6 of 10 messages";
  q.start_write();
  q.finish_write();
  EXPECT_TRUE(q.below_low_water());
  EXPECT_EQ(q.free_messages(), 5u);
  q.push(bytes(600));
  EXPECT_FALSE(q.below_low_water()) << "650 of 1000 bytes wait";
  EXPECT_EQ(q.free_bytes(), 350u);
  for (int i = 0; i < 10; ++i) q.push(bytes(1000));
  EXPECT_EQ(q.free_messages(), 1u) << "a page always may hold one";
  EXPECT_EQ(q.free_bytes(), 1u);
}

TEST(OutboundQueueTest, DropWaitingKeepsOnlyTheWriteInFlight) {
  OutboundQueue q(10, 1000);
  q.push(bytes(10));
  q.push(bytes(20));
  q.push(bytes(30));
  q.start_write();
  q.drop_waiting();
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.bytes(), 10u);
  q.finish_write();
  EXPECT_TRUE(q.empty());
  q.push(bytes(5));
  q.drop_waiting();  // nothing in flight: nothing kept
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.bytes(), 0u);
}

}  // namespace
}  // namespace pa::net
