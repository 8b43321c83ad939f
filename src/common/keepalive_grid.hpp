// When keep-alive work happens: on grids of the steady clock that every connection shares, so
// that thousands of idle connections make the server wake a few times, not once each.
//
// - Deadlines (pong awaited, idleness, write progress) are rounded up to a 250 ms grain: met at
//   most 250 ms late.
// - Pings go out on the server_stats beat: a ping is sent at the last stats tick at or before its
//   due time (never late, at most one beat early; a pong heard just after a ping on the beat puts
//   the next one exactly ping_interval later when that is a multiple of the beat), so the ping,
//   the stats frame and the pong that answers it all happen in the one wake-up of that tick
//   (docs/benchmarks.md, "Idle CPU: the kernel's floor"). Without stats, or with stats less
//   often than pings (or more often than the grain), a ping is a deadline like the others.
#pragma once

#include <chrono>

namespace pa::common::keepalive {

using Clock = std::chrono::steady_clock;

inline constexpr std::chrono::milliseconds kGrain{250};

// `t` rounded up to a multiple of `step` since the clock's epoch (`t` itself when on it).
Clock::time_point round_up(Clock::time_point t, Clock::duration step);

// The first multiple of `beat` strictly after `now`: when the server_stats tick fires.
Clock::time_point next_beat(Clock::time_point now, Clock::duration beat);

// The beat pings follow: `stats_interval` when it is between the grain and `ping_interval`,
// else none (zero).
Clock::duration ping_beat(Clock::duration stats_interval, Clock::duration ping_interval);

// When a ping due at `due` goes out: the last multiple of `beat` at or before it (`due` without
// a beat).
Clock::time_point ping_time(Clock::time_point due, Clock::duration beat);

}  // namespace pa::common::keepalive
