#include "notify/channels.hpp"

#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>

#include "common/hex.hpp"
#include "notify/base64url.hpp"
#include "notify/digest.hpp"
#include "notify/web_push_crypto.hpp"

namespace pa::notify {

namespace {
constexpr auto kVapidLifetime = std::chrono::hours(12);  // RFC 8292: at most 24 h

// scheme://host[:port] of an https URL: the JWT's audience.
std::optional<std::string> https_origin(const std::string& url) {
  const auto parsed = boost::urls::parse_absolute_uri(url);
  if (!parsed || parsed->scheme() != "https" || parsed->encoded_host().empty()) return std::nullopt;
  std::string origin = "https://" + std::string(parsed->encoded_host());
  if (parsed->has_port()) origin += ":" + std::string(parsed->port());
  return origin;
}
// A header value from event text: control characters (a CR LF would start a header of its own)
// become spaces.
std::string header_safe(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  return out;
}
}  // namespace

std::string push_topic(std::string_view tag) {
  return base64url_encode(sha256(tag)).substr(0, 32);
}

std::optional<HttpPost> web_push_request(const Event& event, const WebPushSubscription& to,
                                         const Vapid& vapid,
                                         std::chrono::system_clock::time_point now,
                                         std::string& error) {
  const auto origin = https_origin(to.endpoint);
  if (!origin) {
    error = "the subscription's endpoint is not an https URL";
    return std::nullopt;
  }
  const auto subscriber = P256Key::from_public(to.p256dh);
  if (!subscriber) {
    error = "the subscription's p256dh is not a P-256 public key";
    return std::nullopt;
  }
  const std::string payload = boost::json::serialize(to_json(event));
  auto body = encrypt_push(payload, *subscriber, to.auth);
  if (!body) {
    error = payload.size() > kMaxPushPlaintext
                ? "the notification does not fit one push message"
                : "the subscription's auth secret is not 16 bytes, or encryption failed";
    return std::nullopt;
  }
  const auto authorization =
      vapid.key == nullptr
          ? std::nullopt
          : vapid_authorization(*vapid.key, *origin, vapid.subject, now + kVapidLifetime);
  if (!authorization) {
    error = "cannot sign the VAPID token";
    return std::nullopt;
  }
  HttpPost post;
  post.url = to.endpoint;
  post.body = std::move(*body);
  post.headers = {
      {"Content-Type", "application/octet-stream"},
      {"Content-Encoding", "aes128gcm"},
      {"TTL", std::to_string(event.urgent ? kUrgentTtlSeconds : kNormalTtlSeconds)},
      {"Urgency", event.urgent ? "high" : "normal"},
      {"Authorization", *authorization},
  };
  if (!event.tag.empty()) post.headers.emplace_back("Topic", push_topic(event.tag));
  return post;
}

HttpPost ntfy_request(const Event& event, const std::string& url, const std::string& token) {
  HttpPost post;
  post.url = url;
  post.body = event.body.empty() ? event.title : event.body;
  post.headers = {
      {"Content-Type", "text/plain; charset=utf-8"},
      {"Title", header_safe(event.title)},
      {"Priority", event.urgent ? "5" : "3"},
      {"Tags", header_safe(event.event)},
  };
  // A relative link (no notify.console_url) means nothing in the ntfy app.
  if (event.url.starts_with("https://") || event.url.starts_with("http://"))
    post.headers.emplace_back("Click", header_safe(event.url));
  if (!token.empty()) post.headers.emplace_back("Authorization", "Bearer " + header_safe(token));
  return post;
}

std::string webhook_signature(std::string_view body, std::string_view secret) {
  const auto mac = hmac_sha256(secret, body);
  return mac ? "sha256=" + common::to_hex(*mac) : std::string();
}

HttpPost webhook_request(const Event& event, const std::string& url, const std::string& secret) {
  HttpPost post;
  post.url = url;
  post.body = boost::json::serialize(to_json(event));
  post.headers = {{"Content-Type", "application/json"}};
  if (!secret.empty())
    post.headers.emplace_back("X-Pocket-Agent-Signature", webhook_signature(post.body, secret));
  return post;
}

}  // namespace pa::notify
