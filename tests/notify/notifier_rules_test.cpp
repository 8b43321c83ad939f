// The notifier's pure rules: which push endpoints it may post to, and how an event is made to
// fit one Web Push record.
#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>

#include "notify/notifier.hpp"
#include "notify/web_push_crypto.hpp"

namespace pa::notify {
namespace {

const std::vector<std::string> kHosts = {"fcm.googleapis.com", "push.apple.com",
                                         "push.services.mozilla.com"};

TEST(EndpointHostAllowed, TheListedHostsAndTheirSubdomains) {
  EXPECT_TRUE(endpoint_host_allowed("https://fcm.googleapis.com/fcm/send/abc", kHosts));
  EXPECT_TRUE(endpoint_host_allowed("https://web.push.apple.com/QGx", kHosts));
  EXPECT_TRUE(
      endpoint_host_allowed("https://updates.push.services.mozilla.com/wpush/v2/x", kHosts));
  EXPECT_TRUE(endpoint_host_allowed("https://FCM.GoogleAPIs.com/x", kHosts));
}

TEST(EndpointHostAllowed, AnythingElseIsRefused) {
  EXPECT_FALSE(endpoint_host_allowed("https://evil.example/x", kHosts));
  EXPECT_FALSE(endpoint_host_allowed("https://notpush.apple.com/x", kHosts));  // not a subdomain
  EXPECT_FALSE(endpoint_host_allowed("https://push.apple.com.evil.example/x", kHosts));
  EXPECT_FALSE(endpoint_host_allowed("http://fcm.googleapis.com/x", kHosts));  // not https
  EXPECT_FALSE(endpoint_host_allowed("https://user@127.0.0.1/x", kHosts));
  EXPECT_FALSE(endpoint_host_allowed("not a url", kHosts));
  EXPECT_FALSE(endpoint_host_allowed("https://fcm.googleapis.com/x", {}));
}

TEST(FitForPush, ASmallEventIsLeftAlone) {
  Event e{.event = "run_succeeded",
          .project_id = "p",
          .project_path = "/a",
          .title = "Done",
          .body = "ok",
          .url = "/#/p/p",
          .tag = "run:p",
          .at = "2026-01-01T00:00:00.000Z"};
  const Event before = e;
  fit_for_push(e);
  EXPECT_EQ(e.body, before.body);
  EXPECT_EQ(e.project_path, before.project_path);
}

TEST(FitForPush, AHugeBodyAndPathAreCutToOneRecord) {
  Event e{.event = "run_failed",
          .project_id = "p",
          .project_path = "/" + std::string(4000, 'd'),
          .title = std::string(500, 't'),
          .body = std::string(5000, 'b'),
          .url = "/#/p/p",
          .tag = "run:p",
          .at = "2026-01-01T00:00:00.000Z"};
  fit_for_push(e);
  EXPECT_LE(boost::json::serialize(to_json(e)).size(), kMaxPushPlaintext);
  EXPECT_LE(e.title.size(), 200u);
  EXPECT_FALSE(e.body.empty());
  EXPECT_FALSE(e.project_path.empty());
}

}  // namespace
}  // namespace pa::notify
