#include "common/keepalive_grid.hpp"

#include <gtest/gtest.h>

namespace pa::common::keepalive {
namespace {

using namespace std::chrono_literals;

Clock::time_point at(Clock::duration since_epoch) {
  return Clock::time_point(since_epoch);
}

TEST(KeepaliveGrid, RoundUpKeepsPointsOnTheGridAndMovesOthersToTheNext) {
  EXPECT_EQ(round_up(at(1000ms), 250ms), at(1000ms));
  EXPECT_EQ(round_up(at(1001ms), 250ms), at(1250ms));
  EXPECT_EQ(round_up(at(1249ms), 250ms), at(1250ms));
  EXPECT_EQ(round_up(at(7ms), 0ms), at(7ms));  // no grid: unchanged
}

TEST(KeepaliveGrid, NextBeatIsStrictlyLater) {
  EXPECT_EQ(next_beat(at(20s), 10s), at(30s));
  EXPECT_EQ(next_beat(at(20s + 1ns), 10s), at(30s));
  EXPECT_EQ(next_beat(at(29s + 999ms), 10s), at(30s));
}

TEST(KeepaliveGrid, PingsFollowTheStatsBeatOnlyWhenItIsOnAndNotSlower) {
  EXPECT_EQ(ping_beat(10s, 30s), Clock::duration(10s));
  EXPECT_EQ(ping_beat(30s, 30s), Clock::duration(30s));
  EXPECT_EQ(ping_beat(0s, 30s), Clock::duration::zero());     // stats off
  EXPECT_EQ(ping_beat(60s, 30s), Clock::duration::zero());    // stats rarer than pings
  EXPECT_EQ(ping_beat(100ms, 30s), Clock::duration::zero());  // finer than the grain
}

TEST(KeepaliveGrid, APingGoesOutAtTheLastBeatBeforeItIsDue) {
  EXPECT_EQ(ping_time(at(40s), 10s), at(40s));
  EXPECT_EQ(ping_time(at(40s + 1ns), 10s), at(40s));
  EXPECT_EQ(ping_time(at(49s + 999ms), 10s), at(40s));  // up to one beat early, never late
  EXPECT_EQ(ping_time(at(7s), 0s), at(7s));             // no beat: when due
}

TEST(KeepaliveGrid, PingsAreNeverFurtherApartThanTheirInterval) {
  // A connection that hears each pong 2 ms after its ping: the gaps between its pings.
  for (const auto interval : {Clock::duration(30s), Clock::duration(25s)}) {
    const auto beat = ping_beat(10s, interval);
    Clock::time_point heard = at(3s + 123ms);  // connected off the beat
    Clock::time_point previous = ping_time(heard + interval, beat);
    EXPECT_GT(previous, heard);
    for (int round = 0; round < 100; ++round) {
      heard = previous + 2ms;
      const auto next = ping_time(heard + interval, beat);
      EXPECT_LE(next - previous, interval);
      EXPECT_GT(next - previous, interval - beat);
      EXPECT_EQ(next.time_since_epoch() % beat, Clock::duration::zero());  // on the stats tick
      previous = next;
    }
  }
}

}  // namespace
}  // namespace pa::common::keepalive
