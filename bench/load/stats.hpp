// Measurements for pocket-agent-bench: latency samples, the server's /proc figures, and the
// result of one scenario (printed as a table or as one JSON object).
#pragma once

#include <sys/types.h>

#include <boost/json/object.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pa::bench {

using Clock = std::chrono::steady_clock;

std::int64_t now_us_since_epoch();  // system clock, as the fake CLI stamps lines
double seconds_since(Clock::time_point start);

// Latency samples in microseconds.
class Samples {
 public:
  void add(std::int64_t us) { values_.push_back(us < 0 ? 0 : us); }
  void merge(const Samples& other);
  std::size_t count() const { return values_.size(); }
  // Sorts on first use; p in [0, 100].
  double percentile(double p);
  double max();
  // {"n", "p50_ms", "p99_ms", "p999_ms", "max_ms"}
  boost::json::object summary_ms();

 private:
  std::vector<std::int64_t> values_;
  bool sorted_ = false;
};

// The server process as seen in /proc/<pid>.
struct ProcSample {
  std::uint64_t rss_bytes = 0;
  std::uint64_t cpu_ticks = 0;  // utime + stime
  Clock::time_point at;
};
std::optional<ProcSample> read_proc(pid_t pid);
// CPU use between two samples in percent of one core.
double cpu_percent(const ProcSample& a, const ProcSample& b);
double server_cpu_seconds(const ProcSample& a, const ProcSample& b);

// One scenario's result: ordered key/values, printed as "name  key=value ..." or JSON.
struct Result {
  std::string scenario;
  boost::json::object fields;
};
void print_result(const Result& r, bool json);

// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft limit.
std::uint64_t raise_fd_limit();

}  // namespace pa::bench
