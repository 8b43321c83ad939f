// Wall-clock timestamps as the protocol and the history write them: RFC 3339, UTC, millisecond
// precision. Self-contained (no dependency on other libraries) so any code can reuse it.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace pa::protocol {

using SystemTime = std::chrono::system_clock::time_point;

// "2024-01-01T12:00:00.123Z" (always 24 characters for years 0000-9999).
std::string format_rfc3339(SystemTime t);
// format_rfc3339(system_clock::now()).
std::string now_rfc3339();
// RFC 3339 date-time: "Z" or "+hh:mm"/"-hh:mm" offset, optional fractional seconds (any number of
// digits, kept to nanoseconds). 't'/'z' accepted in lower case. nullopt when malformed. Dates
// beyond what SystemTime holds (before 1677-09-22 or after 2262-04-11) give its min() or max().
std::optional<SystemTime> parse_rfc3339(std::string_view text);
// "2024-01-01_12-00-00" (UTC, whole seconds): the stamp used in log file names.
std::string format_file_stamp(SystemTime t);

}  // namespace pa::protocol
