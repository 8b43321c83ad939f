// Health's resource readings: real values, and at most one reading per kMinInterval (a burst of
// health requests does not read /proc and statvfs each time).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include "ops/health.hpp"

namespace pa::ops {
namespace {

TEST(ResourceSamplerTest, ReadsRealValuesAndAtMostOncePerInterval) {
  ResourceSampler sampler(std::filesystem::temp_directory_path());
  const auto t0 = std::chrono::steady_clock::now();
  const auto first = sampler.sample();
  EXPECT_GT(first.memory_mb, 0);
  EXPECT_GE(first.threads, 1u);
  EXPECT_GT(first.disk_free_gb, 0);
  // Burn some CPU: a fresh reading would now show this thread busy.
  volatile std::uint64_t spin = 0;
  while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(50)) spin = spin + 1;
  const auto second = sampler.sample();
  if (std::chrono::steady_clock::now() - t0 < ResourceSampler::kMinInterval) {
    EXPECT_EQ(second.cpu_percent, first.cpu_percent) << "read again within the interval";
    EXPECT_EQ(second.memory_mb, first.memory_mb);
  }
}

}  // namespace
}  // namespace pa::ops
