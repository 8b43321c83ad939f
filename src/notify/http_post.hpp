// One HTTP(S) POST to a notification endpoint (a Web Push service, an ntfy topic, a webhook),
// with a deadline for the whole exchange, certificate and host name verification over HTTPS, and
// a capped response body. Runs on the executor it is given; completion is posted there.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace pa::notify {

struct HttpPost {
  std::string url;  // http:// or https://, with an optional port and path
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::chrono::milliseconds timeout{10'000};
};

struct HttpReply {
  unsigned status = 0;   // 0 when no response arrived
  std::string error;     // why no response arrived (resolve, connect, TLS, timeout...), else empty
  std::string body;      // at most kMaxReplyBody bytes
  std::string location;  // the Location header, if any (a push service names the message)
  std::string retry_after;  // the Retry-After header, if any (429, 503)
};

inline constexpr std::size_t kMaxReplyBody = 16 * 1024;

// A TLS client context that verifies peers against the system's trust store, plus `ca_file`
// when not empty (a local CA, or a test's certificate). Throws std::runtime_error (start-up).
boost::asio::ssl::context make_client_tls_context(const std::string& ca_file);

void post_http(boost::asio::any_io_executor executor, boost::asio::ssl::context& tls,
               HttpPost request, std::function<void(HttpReply)> done);

}  // namespace pa::notify
