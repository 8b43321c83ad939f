#include "notify/channels.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <map>

#include "notify/base64url.hpp"
#include "support/push_decrypt.hpp"

namespace pa::notify {
namespace {

std::map<std::string, std::string> headers_of(const HttpPost& post) {
  std::map<std::string, std::string> out;
  for (const auto& [name, value] : post.headers) out[name] = value;
  return out;
}

Event permission_event() {
  Event e;
  e.event = "permission_request";
  e.project_id = "p1";
  e.project_path = "/home/me/app";
  e.title = "app: Bash wants to run";
  e.body = "npm test";
  e.url = "https://host:8443/#/p/p1?permission=x1";
  e.tag = "permission:x1";
  e.at = "2026-12-07T05:00:00.000Z";
  e.urgent = true;
  return e;
}

// The RFC 8291 receiver keys stand in for a browser's subscription.
struct Browser {
  P256Key key =
      *P256Key::from_private(*base64url_decode("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"));
  std::string auth = *base64url_decode("BTBZMqHH6r4Tts7J_aSIgg");
  WebPushSubscription subscription(const std::string& endpoint) const {
    return {endpoint, key.public_point(), auth};
  }
};

TEST(Channels, AWebPushMessageDecryptsToTheEventAndCarriesItsHeaders) {
  const Browser browser;
  const auto vapid_key = P256Key::generate();
  ASSERT_TRUE(vapid_key);
  std::string error;
  const auto post = web_push_request(
      permission_event(), browser.subscription("https://push.example.net:8443/wp/abc"),
      {&*vapid_key, "mailto:me@example.org"}, std::chrono::system_clock::now(), error);
  ASSERT_TRUE(post) << error;
  EXPECT_EQ(post->url, "https://push.example.net:8443/wp/abc");
  auto h = headers_of(*post);
  EXPECT_EQ(h["Content-Encoding"], "aes128gcm");
  EXPECT_EQ(h["Urgency"], "high");
  EXPECT_EQ(h["TTL"], std::to_string(kUrgentTtlSeconds));
  EXPECT_EQ(h["Topic"], push_topic("permission:x1"));
  EXPECT_EQ(h["Topic"].size(), 32u);
  EXPECT_EQ(h["Authorization"].rfind("vapid t=", 0), 0u);
  const auto plain = test::decrypt_push(post->body, browser.key, browser.auth);
  ASSERT_TRUE(plain);
  const auto payload = boost::json::parse(*plain).as_object();
  EXPECT_EQ(payload, to_json(permission_event()));
  EXPECT_EQ(payload.at("event"), "permission_request");
  EXPECT_EQ(payload.at("url"), "https://host:8443/#/p/p1?permission=x1");

  // The JWT's audience is the push service's origin.
  const std::string jwt = h["Authorization"].substr(8, h["Authorization"].find(',') - 8);
  const auto first = jwt.find('.');
  const auto claims =
      boost::json::parse(*base64url_decode(jwt.substr(first + 1, jwt.rfind('.') - first - 1)));
  EXPECT_EQ(claims.at("aud"), "https://push.example.net:8443");
}

TEST(Channels, ANormalEventKeepsADayAndNoTagMeansNoTopic) {
  const Browser browser;
  const auto vapid_key = P256Key::generate();
  Event e = permission_event();
  e.event = "run_succeeded";
  e.urgent = false;
  e.tag.clear();
  std::string error;
  const auto post = web_push_request(e, browser.subscription("https://push.example.net/x"),
                                     {&*vapid_key, "mailto:me@example.org"},
                                     std::chrono::system_clock::now(), error);
  ASSERT_TRUE(post) << error;
  auto h = headers_of(*post);
  EXPECT_EQ(h["Urgency"], "normal");
  EXPECT_EQ(h["TTL"], std::to_string(kNormalTtlSeconds));
  EXPECT_EQ(h.count("Topic"), 0u);
}

TEST(Channels, UnusableSubscriptionsAreErrors) {
  const Browser browser;
  const auto vapid_key = P256Key::generate();
  const Vapid vapid{&*vapid_key, "mailto:me@example.org"};
  const auto now = std::chrono::system_clock::now();
  std::string error;
  EXPECT_FALSE(web_push_request(permission_event(), browser.subscription("http://push.example/x"),
                                vapid, now, error));
  EXPECT_EQ(error, "the subscription's endpoint is not an https URL");
  auto bad_key = browser.subscription("https://push.example/x");
  bad_key.p256dh = std::string(65, '\x04');
  EXPECT_FALSE(web_push_request(permission_event(), bad_key, vapid, now, error));
  EXPECT_EQ(error, "the subscription's p256dh is not a P-256 public key");
  auto bad_auth = browser.subscription("https://push.example/x");
  bad_auth.auth = "short";
  EXPECT_FALSE(web_push_request(permission_event(), bad_auth, vapid, now, error));
  Event huge = permission_event();
  huge.body.assign(5000, 'x');
  EXPECT_FALSE(
      web_push_request(huge, browser.subscription("https://push.example/x"), vapid, now, error));
  EXPECT_EQ(error, "the notification does not fit one push message");
}

TEST(Channels, NtfyGetsTheTextAndHeadersWithoutControlCharacters) {
  Event e = permission_event();
  e.title = "evil\r\nX-Injected: 1";
  auto post = ntfy_request(e, "https://ntfy.sh/my-topic", "tk_secret");
  auto h = headers_of(post);
  EXPECT_EQ(post.url, "https://ntfy.sh/my-topic");
  EXPECT_EQ(post.body, "npm test");
  EXPECT_EQ(h["Title"], "evil  X-Injected: 1");
  EXPECT_EQ(h["Priority"], "5");
  EXPECT_EQ(h["Click"], e.url);
  EXPECT_EQ(h["Tags"], "permission_request");
  EXPECT_EQ(h["Authorization"], "Bearer tk_secret");
  e.urgent = false;
  post = ntfy_request(e, "https://ntfy.sh/t", "");
  h = headers_of(post);
  EXPECT_EQ(h["Priority"], "3");
  EXPECT_EQ(h.count("Authorization"), 0u);
  e.url = "/#/p/0f8fad5b";  // relative (no notify.console_url): nothing the ntfy app could open
  EXPECT_EQ(headers_of(ntfy_request(e, "https://ntfy.sh/t", "")).count("Click"), 0u);
}

TEST(Channels, WebhookBodyIsTheEventSignedWithHmacSha256) {
  // RFC 4231 test case 2.
  EXPECT_EQ(webhook_signature("what do ya want for nothing?", "Jefe"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  const auto post = webhook_request(permission_event(), "https://hooks.example/x", "s3cret");
  auto h = headers_of(post);
  EXPECT_EQ(boost::json::parse(post.body).as_object(), to_json(permission_event()));
  EXPECT_EQ(h["Content-Type"], "application/json");
  EXPECT_EQ(h["X-Pocket-Agent-Signature"], webhook_signature(post.body, "s3cret"));
  EXPECT_EQ(headers_of(webhook_request(permission_event(), "https://h/x", ""))
                .count("X-Pocket-Agent-Signature"),
            0u);
}

TEST(Channels, ServerEventsHaveNullProjectFields) {
  Event e;
  e.event = "server_problem";
  e.title = "Disk full";
  const auto json = to_json(e);
  EXPECT_TRUE(json.at("project_id").is_null());
  EXPECT_TRUE(json.at("project_path").is_null());
  EXPECT_TRUE(is_event_name("queue_drained"));
  EXPECT_FALSE(is_event_name("everything"));
}

}  // namespace
}  // namespace pa::notify
