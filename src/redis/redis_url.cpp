// redis:// and rediss:// URLs, as redis-cli reads them (-u): redis://[[user]:password@]host
// [:port][/db]. A userinfo without ':' is a password (redis-cli's reading). User and password
// are percent-decoded, so a password may hold '@', ':' or '/'.
#include <arpa/inet.h>

#include <cctype>
#include <charconv>
#include <limits>

#include "redis/redis_client.hpp"

namespace pa::redis {

namespace {

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
  }
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    const int hi = hex_value(in[i + 1]);
    const int lo = hex_value(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

bool is_unreserved(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '.' || c == '_' ||
         c == '~';
}

std::string percent_encode(std::string_view in) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : in) {
    if (is_unreserved(c)) {
      out.push_back(c);
    } else {
      const auto byte = static_cast<unsigned char>(c);
      out += {'%', kHex[byte >> 4], kHex[byte & 15]};
    }
  }
  return out;
}

// Letters, digits, '-', '_' and '.' (host names and IPv4 addresses), at most 253 characters.
bool valid_host_name(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  for (const char c : host) {
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '-' && c != '_' && c != '.')
      return false;
  }
  return true;
}

bool valid_ipv6(const std::string& text) {
  in6_addr addr{};
  return ::inet_pton(AF_INET6, text.c_str(), &addr) == 1;
}

template <typename Number>
bool parse_digits(std::string_view text, Number max, Number& out) {
  if (text.empty() || text.size() > 10) return false;
  for (const char c : text) {
    if (c < '0' || c > '9') return false;
  }
  unsigned long long value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  if (value > max) return false;
  out = static_cast<Number>(value);
  return true;
}

}  // namespace

std::optional<RedisUrl> RedisUrl::parse(std::string_view text, std::string& error) {
  auto fail = [&](std::string why) -> std::optional<RedisUrl> {
    error = "invalid Redis URL: " + std::move(why) +
            " (expected redis://[[user]:password@]host[:port][/db] or rediss://...)";
    return std::nullopt;
  };
  for (const char c : text) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f)
      return fail("it holds a space or a control character (percent-encode them)");
  }
  RedisUrl url;
  if (starts_with_nocase(text, "rediss://")) {
    url.tls = true;
    text.remove_prefix(9);
  } else if (starts_with_nocase(text, "redis://")) {
    text.remove_prefix(8);
  } else {
    return fail("the scheme must be redis:// or rediss://");
  }
  if (text.find_first_of("?#") != std::string_view::npos)
    return fail("query strings and fragments are not supported");

  const auto slash = text.find('/');
  const std::string_view authority = text.substr(0, slash);
  const std::string_view path =
      slash == std::string_view::npos ? std::string_view{} : text.substr(slash + 1);
  if (!path.empty() &&
      !parse_digits(path, static_cast<unsigned>(std::numeric_limits<int>::max()), url.db))
    return fail("the database after '/' must be a number");

  std::string_view host_port = authority;
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = authority.substr(0, at);
    host_port = authority.substr(at + 1);
    const auto colon = userinfo.find(':');
    const std::string_view user =
        colon == std::string_view::npos ? std::string_view{} : userinfo.substr(0, colon);
    const std::string_view password =
        colon == std::string_view::npos ? userinfo : userinfo.substr(colon + 1);
    if (!percent_decode(user, url.user) || !percent_decode(password, url.password))
      return fail("a '%' in the user or password is not followed by two hex digits");
    if (url.password.empty()) return fail("the part before '@' has no password");
  }

  std::string_view port;
  if (!host_port.empty() && host_port.front() == '[') {
    const auto close = host_port.find(']');
    if (close == std::string_view::npos) return fail("an IPv6 address lacks its ']'");
    url.host = std::string(host_port.substr(1, close - 1));
    if (!valid_ipv6(url.host)) return fail("'" + url.host + "' is not an IPv6 address");
    const std::string_view rest = host_port.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return fail("unexpected text after the IPv6 address");
      port = rest.substr(1);
      if (port.empty()) return fail("the port after ':' is empty");
    }
  } else {
    const auto colon = host_port.find(':');
    url.host = std::string(host_port.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = host_port.substr(colon + 1);
      if (port.empty()) return fail("the port after ':' is empty");
    }
    if (url.host.empty()) return fail("the host is missing");
    if (!valid_host_name(url.host)) return fail("'" + url.host + "' is not a host name");
  }
  if (!port.empty() && (!parse_digits(port, std::uint16_t{65535}, url.port) || url.port == 0))
    return fail("the port must be a number from 1 to 65535");
  error.clear();
  return url;
}

std::string RedisUrl::redacted() const {
  std::string out = tls ? "rediss://" : "redis://";
  if (!password.empty()) out += percent_encode(user) + ":***@";
  out += host.find(':') != std::string::npos ? "[" + host + "]" : host;
  out += ":" + std::to_string(port);
  if (db != 0) out += "/" + std::to_string(db);
  return out;
}

}  // namespace pa::redis
