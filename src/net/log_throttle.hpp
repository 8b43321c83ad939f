// At most one log line per interval for an event that can repeat thousands of times (accept
// failing with EMFILE): the first is logged, the rest are counted and reported with the next line.
// Not thread-safe: the listener uses it from its accept chain only.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

namespace pa::net {

class LogThrottle {
 public:
  using Clock = std::chrono::steady_clock;

  explicit LogThrottle(Clock::duration interval) : interval_(interval) {}

  struct Decision {
    bool log = false;              // write a line for this event now
    std::uint64_t suppressed = 0;  // events not logged since the last line (when log)
  };

  // An event at `now`: logged when no line was written within the interval.
  Decision note(Clock::time_point now) {
    if (!last_ || now - *last_ >= interval_) {
      last_ = now;
      const Decision d{true, pending_};
      pending_ = 0;
      return d;
    }
    ++pending_;
    return {};
  }

  // Events not logged yet, cleared (for a line written at the end of the interval); a line
  // written now starts a new interval.
  std::uint64_t flush(Clock::time_point now) {
    const std::uint64_t n = pending_;
    pending_ = 0;
    if (n != 0) last_ = now;
    return n;
  }

  std::uint64_t pending() const { return pending_; }
  // When the interval that started with the last line ends.
  Clock::time_point next_line_at() const { return last_.value_or(Clock::time_point{}) + interval_; }

 private:
  const Clock::duration interval_;
  std::optional<Clock::time_point> last_;
  std::uint64_t pending_ = 0;
};

}  // namespace pa::net
