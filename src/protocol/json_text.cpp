#include "protocol/json_text.hpp"

#include <boost/json/serialize.hpp>
#include <charconv>
#include <cmath>
#include <cstring>

namespace pa::protocol {

namespace json = boost::json;

namespace {

constexpr double kMaxExactInteger = 9007199254740992.0;  // 2^53

// Longest fixed form of a finite double: 5e-324 is "0." and 323 zeros and a 5 (327 bytes),
// -1.7976931348623157e308 is 310 bytes.
constexpr std::size_t kNumberBuffer = 400;

std::size_t format_number(char* buf, double number) {
  if (number == 0) {
    buf[0] = '0';
    return 1;
  }
  if (std::fabs(number) <= kMaxExactInteger && std::trunc(number) == number) {
    const auto r = std::to_chars(buf, buf + kNumberBuffer, static_cast<std::int64_t>(number));
    return static_cast<std::size_t>(r.ptr - buf);
  }
  const auto r = std::to_chars(buf, buf + kNumberBuffer, number, std::chars_format::fixed);
  return static_cast<std::size_t>(r.ptr - buf);
}

bool is_number_char(char c) {
  return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

// The position just past the string that starts at text[i] == '"' (text.size() if unterminated).
std::size_t skip_string(std::string_view text, std::size_t i) {
  ++i;
  while (i < text.size()) {
    const char* p = static_cast<const char*>(std::memchr(text.data() + i, '"', text.size() - i));
    if (p == nullptr) return text.size();
    std::size_t q = static_cast<std::size_t>(p - text.data());
    // An odd run of backslashes before the quote escapes it.
    std::size_t slashes = 0;
    while (q - slashes > i && text[q - slashes - 1] == '\\') ++slashes;
    if (slashes % 2 == 0) return q + 1;
    i = q + 1;
  }
  return text.size();
}

// The rule's form of the token when it differs from the token (empty otherwise).
std::string_view rewrite(std::string_view token, char* buf) {
  if (token.find_first_of(".eE") == std::string_view::npos) return {};  // an integer
  double number = 0;
  const char* first = token.data();
  const char* last = token.data() + token.size();
  // from_chars takes no '+' mantissa sign; JSON has none either, so such a token is not JSON.
  const auto r = std::from_chars(first, last, number, std::chars_format::general);
  if (r.ec != std::errc() || r.ptr != last || !std::isfinite(number)) return {};
  const std::size_t n = format_number(buf, number);
  const std::string_view formatted(buf, n);
  if (formatted == token) return {};
  return formatted;
}

bool contains_double_in(const json::array& array);

bool contains_double_in(const json::object& object) {
  for (const auto& kv : object) {
    if (contains_double(kv.value())) return true;
  }
  return false;
}

bool contains_double_in(const json::array& array) {
  for (const auto& v : array) {
    if (contains_double(v)) return true;
  }
  return false;
}

}  // namespace

void append_json_number(std::string& out, double number) {
  if (!std::isfinite(number)) {
    out += "null";
    return;
  }
  char buf[kNumberBuffer];
  out.append(buf, format_number(buf, number));
}

bool contains_double(const json::value& value) {
  switch (value.kind()) {
    case json::kind::double_:
      return true;
    case json::kind::object:
      return contains_double_in(value.get_object());
    case json::kind::array:
      return contains_double_in(value.get_array());
    default:
      return false;
  }
}

bool contains_double(const json::object& object) {
  return contains_double_in(object);
}

bool normalize_json_numbers(std::string& text) {
  const std::string_view in(text);
  std::string out;  // built from the first token that changes
  std::size_t copied = 0;
  char buf[kNumberBuffer];
  std::size_t i = 0;
  while (i < in.size()) {
    const char c = in[i];
    if (c == '"') {
      i = skip_string(in, i);
      continue;
    }
    if (c != '-' && (c < '0' || c > '9')) {
      ++i;
      continue;
    }
    std::size_t end = i + 1;
    while (end < in.size() && is_number_char(in[end])) ++end;
    const std::string_view token = in.substr(i, end - i);
    if (const auto formatted = rewrite(token, buf); !formatted.empty()) {
      if (out.empty()) out.reserve(in.size() + 64);
      out.append(in.substr(copied, i - copied));
      out.append(formatted);
      copied = end;
    }
    i = end;
  }
  if (copied == 0) return false;
  out.append(in.substr(copied));
  text = std::move(out);
  return true;
}

std::string to_json_text(const json::value& value) {
  std::string text = json::serialize(value);
  if (contains_double(value)) normalize_json_numbers(text);
  return text;
}

std::string to_json_text(const json::object& object) {
  std::string text = json::serialize(object);
  if (contains_double_in(object)) normalize_json_numbers(text);
  return text;
}

}  // namespace pa::protocol
