#include "net/descriptor_plan.hpp"

#include <gtest/gtest.h>

#include <limits>

#include "net/log_throttle.hpp"
#include "net/socket_slots.hpp"

namespace pa::net {
namespace {

using namespace std::chrono_literals;

DescriptorInputs two_cores(std::uint64_t limit, std::uint64_t max_connections) {
  DescriptorInputs in;
  in.open_file_limit = limit;
  in.configured_max_connections = max_connections;
  in.max_concurrent_runs = 10;
  in.worker_threads = 2;
  in.history_files = 64;
  in.listeners = 1;
  return in;
}

TEST(DescriptorPlan, ReserveIsTheDocumentedSum) {
  const auto p = plan_descriptors(two_cores(256, 400));
  // fixed 16 + 2 per listener + 64 history + 8 per worker + 1 per run + margin 16
  EXPECT_EQ(p.reserve, 16u + 2 + 64 + 2 * 8 + 10 * 1 + 16);
  EXPECT_EQ(p.reserve, 124u);
  auto more = two_cores(256, 400);
  more.listeners = 2;
  more.worker_threads = 4;
  more.max_concurrent_runs = 20;
  EXPECT_EQ(plan_descriptors(more).reserve, 124u + 2 + 2 * 8 + 10);
}

TEST(DescriptorPlan, ALowLimitCapsMaxConnections) {
  const auto p = plan_descriptors(two_cores(256, 400));
  EXPECT_EQ(p.sockets, 256u - 124);         // 132
  EXPECT_EQ(p.handshake_slots, 16u);        // an eighth of the sockets
  EXPECT_EQ(p.max_connections, 132u - 16);  // 116
  EXPECT_EQ(p.max_pending_sockets, 16u);    // what the connections leave
  EXPECT_TRUE(p.capped());
  // Connections and sockets in their handshake together never pass the limit.
  EXPECT_LE(p.reserve + p.max_connections + p.max_pending_sockets, 256u);
  EXPECT_NE(p.warning().find("limits.max_connections 400 does not fit the open file limit 256"),
            std::string::npos)
      << p.warning();
  EXPECT_NE(p.warning().find("at most 116 connections"), std::string::npos) << p.warning();
}

TEST(DescriptorPlan, AValueThatFitsIsKeptAndLeavesTheRestToHandshakes) {
  const auto p = plan_descriptors(two_cores(65536, 100));
  EXPECT_FALSE(p.capped());
  EXPECT_EQ(p.max_connections, 100u);
  EXPECT_EQ(p.max_pending_sockets, 65536u - 124 - 100);
  EXPECT_LE(p.reserve + p.max_connections + p.max_pending_sockets, 65536u);
}

TEST(DescriptorPlan, AnUnlimitedLimitDoesNotOverflow) {
  const auto p = plan_descriptors(two_cores(std::numeric_limits<std::uint64_t>::max(), 20000));
  EXPECT_FALSE(p.capped());
  EXPECT_EQ(p.max_connections, 20000u);
  EXPECT_GT(p.max_pending_sockets, 20000u);
}

TEST(DescriptorPlan, ALimitBelowTheReserveStillAdmitsOne) {
  const auto p = plan_descriptors(two_cores(64, 100));
  EXPECT_EQ(p.sockets, 0u);
  EXPECT_EQ(p.max_connections, 1u);
  EXPECT_EQ(p.max_pending_sockets, DescriptorPlan::kMinHandshakeSlots);
  EXPECT_TRUE(p.capped());
}

TEST(DescriptorPlan, LimitNeededIsTheSmallestThatFits) {
  for (const std::uint64_t wanted : {2u, 7u, 100u, 400u, 1000u, 20000u}) {
    const auto capped = plan_descriptors(two_cores(200, wanted));
    const std::uint64_t needed = capped.limit_needed();
    EXPECT_EQ(plan_descriptors(two_cores(needed, wanted)).max_connections, wanted) << wanted;
    EXPECT_LT(plan_descriptors(two_cores(needed - 1, wanted)).max_connections, wanted) << wanted;
  }
}

TEST(SocketSlots, TakenUntilTheTokenGoesAndWaitersAreWoken) {
  auto slots = SocketSlots::create(2);
  int woken = 0;
  auto a = slots->take([&] { ++woken; });
  auto b = slots->take([&] { ++woken; });
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  EXPECT_EQ(slots->in_use(), 2u);
  auto c = slots->take([&] { ++woken; });
  EXPECT_FALSE(c);
  EXPECT_EQ(woken, 0);
  auto copy = a;  // a session may hold copies: the slot goes with the last
  a.reset();
  EXPECT_EQ(woken, 0);
  copy.reset();
  EXPECT_EQ(woken, 1);
  EXPECT_EQ(slots->in_use(), 1u);
  auto d = slots->take([&] { ++woken; });
  EXPECT_TRUE(d);
  b.reset();
  d.reset();
  EXPECT_EQ(woken, 1);  // a waiter runs once
  EXPECT_EQ(slots->in_use(), 0u);
}

TEST(LogThrottle, OneLinePerIntervalWithTheCountOfTheRest) {
  LogThrottle throttle(10s);
  const LogThrottle::Clock::time_point t0{};
  auto d = throttle.note(t0 + 1s);
  EXPECT_TRUE(d.log);
  EXPECT_EQ(d.suppressed, 0u);
  for (int i = 0; i < 693; ++i) EXPECT_FALSE(throttle.note(t0 + 2s).log);
  EXPECT_EQ(throttle.pending(), 693u);
  EXPECT_EQ(throttle.next_line_at(), t0 + 11s);
  d = throttle.note(t0 + 11s);
  EXPECT_TRUE(d.log);
  EXPECT_EQ(d.suppressed, 693u);
  EXPECT_FALSE(throttle.note(t0 + 12s).log);
  EXPECT_EQ(throttle.flush(t0 + 21s), 1u);  // reported by the listener's timer
  EXPECT_EQ(throttle.flush(t0 + 22s), 0u);
  EXPECT_FALSE(throttle.note(t0 + 25s).log);  // the flushed line started a new interval
}

}  // namespace
}  // namespace pa::net
