#include "protocol/clock.hpp"

#include <gtest/gtest.h>

#include <regex>

namespace pa::protocol {
namespace {

TEST(Clock, FormatsAndParses) {
  using namespace std::chrono;
  const SystemTime t = sys_days{2024y / 1 / 2} + 3h + 4min + 5s + 678ms;
  EXPECT_EQ(format_rfc3339(t), "2024-01-02T03:04:05.678Z");
  EXPECT_EQ(format_file_stamp(t), "2024-01-02_03-04-05");
  EXPECT_EQ(parse_rfc3339("2024-01-02T03:04:05.678Z"), t);
  EXPECT_EQ(parse_rfc3339("2024-01-02T04:04:05.678+01:00"), t);
  EXPECT_EQ(parse_rfc3339("2024-01-02T03:04:05.678000001Z"), t + 1ns);
  EXPECT_EQ(parse_rfc3339("2024-01-02T03:04:05Z"), t - 678ms);
  EXPECT_EQ(parse_rfc3339("2024-01-01T23:04:05-04:00"), t - 678ms);
  EXPECT_FALSE(parse_rfc3339("2024-01-02T03:04:05"));
  // Outside system_clock's nanosecond range: clamped, not overflowed (found by fuzz_envelope).
  EXPECT_EQ(parse_rfc3339("4048-01-01T12:00:00.123+02:00"), SystemTime::max());
  EXPECT_EQ(parse_rfc3339("9999-12-31T23:59:60.999999999Z"), SystemTime::max());
  EXPECT_EQ(parse_rfc3339("0000-01-01T00:00:00-23:59"), SystemTime::min());
  EXPECT_EQ(parse_rfc3339("2262-04-11T23:47:15Z"), sys_days{2262y / 4 / 11} + 23h + 47min + 15s);
  EXPECT_FALSE(parse_rfc3339("2024-13-02T03:04:05Z"));
  EXPECT_FALSE(parse_rfc3339("yesterday"));
  EXPECT_FALSE(parse_rfc3339("2024-01-02T03:04:05.Z"));
  const std::string now = now_rfc3339();
  EXPECT_TRUE(std::regex_match(now, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")))
      << now;
}

}  // namespace
}  // namespace pa::protocol
