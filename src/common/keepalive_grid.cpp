#include "common/keepalive_grid.hpp"

namespace pa::common::keepalive {

Clock::time_point round_up(Clock::time_point t, Clock::duration step) {
  if (step <= Clock::duration::zero()) return t;
  const auto rest = t.time_since_epoch() % step;
  return rest == Clock::duration::zero() ? t : t + (step - rest);
}

Clock::time_point next_beat(Clock::time_point now, Clock::duration beat) {
  return round_up(now + Clock::duration(1), beat);
}

Clock::duration ping_beat(Clock::duration stats_interval, Clock::duration ping_interval) {
  const auto grain = std::chrono::duration_cast<Clock::duration>(kGrain);
  if (stats_interval < grain || stats_interval > ping_interval) return Clock::duration::zero();
  return stats_interval;
}

Clock::time_point ping_time(Clock::time_point due, Clock::duration beat) {
  if (beat <= Clock::duration::zero()) return due;
  return due - due.time_since_epoch() % beat;
}

}  // namespace pa::common::keepalive
