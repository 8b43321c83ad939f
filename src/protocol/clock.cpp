#include "protocol/clock.hpp"

#include <cstddef>

namespace pa::protocol {

namespace {

struct Civil {
  int year;
  unsigned month, day;
  int hour, minute, second, millis;
};

Civil to_civil(SystemTime t) {
  using namespace std::chrono;
  const auto ms = floor<milliseconds>(t);
  const auto day_start = floor<days>(ms);
  const year_month_day ymd{day_start};
  const hh_mm_ss<milliseconds> hms{ms - day_start};
  return Civil{static_cast<int>(ymd.year()),
               static_cast<unsigned>(ymd.month()),
               static_cast<unsigned>(ymd.day()),
               static_cast<int>(hms.hours().count()),
               static_cast<int>(hms.minutes().count()),
               static_cast<int>(hms.seconds().count()),
               static_cast<int>(hms.subseconds().count())};
}

// Writes `value` as exactly `width` decimal digits (value is taken modulo 10^width).
char* put_digits(char* out, long long value, int width) {
  if (value < 0) value = -value;
  for (int i = width - 1; i >= 0; --i) {
    out[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  return out + width;
}

bool read_digits(std::string_view s, std::size_t pos, std::size_t len, int& out) {
  if (pos + len > s.size()) return false;
  int value = 0;
  for (std::size_t i = pos; i < pos + len; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    value = value * 10 + (s[i] - '0');
  }
  out = value;
  return true;
}

}  // namespace

std::string format_rfc3339(SystemTime t) {
  const Civil c = to_civil(t);
  char buf[24];
  char* p = put_digits(buf, c.year, 4);
  *p++ = '-';
  p = put_digits(p, c.month, 2);
  *p++ = '-';
  p = put_digits(p, c.day, 2);
  *p++ = 'T';
  p = put_digits(p, c.hour, 2);
  *p++ = ':';
  p = put_digits(p, c.minute, 2);
  *p++ = ':';
  p = put_digits(p, c.second, 2);
  *p++ = '.';
  p = put_digits(p, c.millis, 3);
  *p++ = 'Z';
  return std::string(buf, static_cast<std::size_t>(p - buf));
}

std::string now_rfc3339() {
  return format_rfc3339(std::chrono::system_clock::now());
}

std::string format_file_stamp(SystemTime t) {
  const Civil c = to_civil(t);
  char buf[19];
  char* p = put_digits(buf, c.year, 4);
  *p++ = '-';
  p = put_digits(p, c.month, 2);
  *p++ = '-';
  p = put_digits(p, c.day, 2);
  *p++ = '_';
  p = put_digits(p, c.hour, 2);
  *p++ = '-';
  p = put_digits(p, c.minute, 2);
  *p++ = '-';
  p = put_digits(p, c.second, 2);
  return std::string(buf, static_cast<std::size_t>(p - buf));
}

std::optional<SystemTime> parse_rfc3339(std::string_view s) {
  using namespace std::chrono;
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
      s[13] != ':' || s[16] != ':')
    return std::nullopt;
  if (!read_digits(s, 0, 4, y) || !read_digits(s, 5, 2, mo) || !read_digits(s, 8, 2, d) ||
      !read_digits(s, 11, 2, h) || !read_digits(s, 14, 2, mi) || !read_digits(s, 17, 2, sec))
    return std::nullopt;
  const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)},
                           day{static_cast<unsigned>(d)}};
  // Second 60 is a leap second; it is folded onto the next minute like most clocks do.
  if (!ymd.ok() || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  std::size_t pos = 19;
  nanoseconds frac{0};
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    long long value = 0;
    int digits = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (digits < 9) {
        value = value * 10 + (s[pos] - '0');
        ++digits;
      }
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    for (int i = digits; i < 9; ++i) value *= 10;
    frac = nanoseconds{value};
  }
  if (pos >= s.size()) return std::nullopt;
  minutes offset{0};
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    int oh = 0, om = 0;
    if (pos + 6 != s.size() || s[pos + 3] != ':' || !read_digits(s, pos + 1, 2, oh) ||
        !read_digits(s, pos + 4, 2, om) || oh > 23 || om > 59)
      return std::nullopt;
    offset = minutes{oh * 60 + om};
    if (s[pos] == '-') offset = -offset;
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  // In whole seconds first: system_clock counts nanoseconds in 64 bits (years 1677 to 2262), so
  // adding a later or earlier date to the fraction would overflow. Such dates clamp to the ends.
  const sys_seconds whole = sys_days{ymd} + hours{h} + minutes{mi} + seconds{sec} - offset;
  constexpr sys_seconds kFirst = ceil<seconds>(SystemTime::min());
  constexpr sys_seconds kLast = floor<seconds>(SystemTime::max()) - seconds{1};
  if (whole < kFirst) return SystemTime::min();
  if (whole > kLast) return SystemTime::max();
  return time_point_cast<system_clock::duration>(whole) +
         duration_cast<system_clock::duration>(frac);
}

}  // namespace pa::protocol
