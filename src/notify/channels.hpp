// The HTTP request each notification channel sends for an event (issue 17): a Web Push message
// to a subscription's push service, an ntfy-style POST, a signed webhook. Pure: the sending,
// queueing and retrying are the dispatcher's.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "notify/event.hpp"
#include "notify/http_post.hpp"
#include "notify/p256_key.hpp"

namespace pa::notify {

struct WebPushSubscription {
  std::string endpoint;  // https URL of the push service
  std::string p256dh;    // the browser's public key, 65 raw bytes
  std::string auth;      // the browser's auth secret, 16 raw bytes
};

struct Vapid {
  const P256Key* key = nullptr;  // the server's (vapid_key_file.hpp)
  std::string subject;           // "mailto:…" or an https URL: who push services can contact
};

// Seconds a push service keeps an undelivered message: a permission request is moot once it
// times out; a run's outcome is still news tomorrow.
inline constexpr int kUrgentTtlSeconds = 300;
inline constexpr int kNormalTtlSeconds = 24 * 3600;

// The encrypted message with VAPID, TTL, Urgency and Topic headers; nullopt (and `error`) when
// the subscription's keys or endpoint are unusable or the payload does not fit one record.
std::optional<HttpPost> web_push_request(const Event& event, const WebPushSubscription& to,
                                         const Vapid& vapid,
                                         std::chrono::system_clock::time_point now,
                                         std::string& error);

// ntfy: the body is the text; Title, Priority (5 urgent, 3 otherwise), Click and Tags headers;
// `Authorization: Bearer <token>` when a token is set.
HttpPost ntfy_request(const Event& event, const std::string& url, const std::string& token);

// A webhook: the event's JSON, signed with `X-Pocket-Agent-Signature: sha256=<hex HMAC-SHA256
// of the body>` when a secret is set.
HttpPost webhook_request(const Event& event, const std::string& url, const std::string& secret);
std::string webhook_signature(std::string_view body, std::string_view secret);

// RFC 8030 Topic for a tag: at most 32 characters of the base64url alphabet, equal for equal tags
// (a later message with the same topic replaces an undelivered one).
std::string push_topic(std::string_view tag);

}  // namespace pa::notify
