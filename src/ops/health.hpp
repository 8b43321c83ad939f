// Inputs of the health document: process resources and the CLI's availability.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

namespace pa::ops {

std::string server_version();

struct Resources {
  double cpu_percent = 0;      // process CPU since the previous sample (100 = one core), 1 decimal
  std::int64_t memory_mb = 0;  // resident set size, rounded to whole MiB
  unsigned threads = 0;
  // Available to the server in the data directory's file system, 1 decimal.
  double disk_free_gb = 0;
};

// Reads /proc/self and statvfs. Thread-safe; blocking (call off the I/O threads). At most one
// reading per kMinInterval: a health request within it gets the last one (at thousands of
// health requests a second the file reads were most of their cost, and a CPU percentage over a
// few microseconds means nothing).
class ResourceSampler {
 public:
  static constexpr std::chrono::milliseconds kMinInterval{1000};
  explicit ResourceSampler(std::filesystem::path data_dir);
  Resources sample();

 private:
  std::filesystem::path data_dir_;
  std::mutex mutex_;
  std::chrono::steady_clock::time_point last_wall_;
  double last_cpu_seconds_ = 0;
  bool sampled_ = false;
  Resources last_;
};

struct ClaudeStatus {
  bool available = false;
  std::string version;  // e.g. "2.1.197 (Claude Code)" -> "2.1.197"
  std::string error;    // why it is unavailable
};

// Runs `<binary> --version` when refreshed (blocking, off the I/O threads) and caches the answer
// so health replies never wait for it.
class ClaudeProbe {
 public:
  ClaudeProbe(std::string binary, std::vector<std::string> env = {});
  void refresh();
  ClaudeStatus status() const;
  // Waits for a refresh in progress and turns later refresh() calls into no-ops. Call while the
  // I/O threads still run: the probe's exit is seen by the child reaper on them, so a probe still
  // running once they have stopped would wait out its whole timeout (and hold up the exit).
  void stop();

 private:
  std::string binary_;
  std::vector<std::string> env_;
  mutable std::mutex mutex_;
  ClaudeStatus status_;
  bool probed_ = false;
  std::mutex run_mutex_;
  std::condition_variable run_cv_;
  bool running_ = false;
  bool stopped_ = false;
};

}  // namespace pa::ops
