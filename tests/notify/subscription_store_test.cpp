#include "notify/subscription_store.hpp"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>

#include "notify/base64url.hpp"
#include "support/server_process.hpp"

namespace pa::notify {
namespace {

namespace json = boost::json;

constexpr const char* kP256dh =
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
constexpr const char* kAuth = "BTBZMqHH6r4Tts7J_aSIgg";

json::value subscribe(const std::string& endpoint, json::value events = nullptr) {
  json::object data{
      {"subscription", {{"endpoint", endpoint}, {"keys", {{"p256dh", kP256dh}, {"auth", kAuth}}}}}};
  if (!events.is_null()) data["events"] = std::move(events);
  return data;
}

StoredSubscription parsed(const std::string& endpoint, json::value events = nullptr) {
  std::string error;
  auto s = parse_subscribe(subscribe(endpoint, std::move(events)), error);
  EXPECT_TRUE(s) << error;
  return s.value_or(StoredSubscription{});
}

TEST(SubscriptionStore, ParsesTheBrowsersSubscriptionWithAllEventsByDefault) {
  const auto s = parsed("https://fcm.googleapis.com/fcm/send/abc");
  EXPECT_EQ(s.keys.endpoint, "https://fcm.googleapis.com/fcm/send/abc");
  EXPECT_EQ(base64url_encode(s.keys.p256dh), kP256dh);
  EXPECT_EQ(s.keys.auth.size(), 16u);
  EXPECT_EQ(s.events.size(), kEventNames.size());
  EXPECT_FALSE(s.created_at.empty());
  const auto some = parsed("https://push.example/x", json::array{"run_failed", "run_failed"});
  EXPECT_EQ(some.events, std::vector<std::string>{"run_failed"});
}

TEST(SubscriptionStore, RefusesEachBadFieldSayingWhich) {
  auto refuse = [](const json::value& data, const std::string& field) {
    std::string error;
    EXPECT_FALSE(parse_subscribe(data, error)) << json::serialize(data);
    EXPECT_NE(error.find(field), std::string::npos) << error;
  };
  refuse(json::object{}, "data.subscription");
  refuse(subscribe("http://push.example/x"), "https");
  refuse(subscribe("https://push.example/" + std::string(3000, 'a')), "endpoint");
  refuse(subscribe("not a url"), "endpoint");
  auto bad_key = subscribe("https://push.example/x");
  bad_key.at("subscription").at("keys").at("p256dh") = "AAAA";
  refuse(bad_key, "p256dh");
  auto bad_auth = subscribe("https://push.example/x");
  bad_auth.at("subscription").at("keys").at("auth") = "c2hvcnQ";
  refuse(bad_auth, "auth");
  refuse(subscribe("https://push.example/x", json::array{"everything"}), "events");
  refuse(subscribe("https://push.example/x", "run_failed"), "events");
}

TEST(SubscriptionStore, OneEntryPerEndpointAtMostTheCapAndEventFilters) {
  test::TempDir dir("pa-subs");
  SubscriptionStore store(dir.path());
  EXPECT_TRUE(store.put(parsed("https://push.example/a", json::array{"run_failed"})));
  EXPECT_TRUE(store.put(parsed("https://push.example/a", json::array{"permission_request"})));
  EXPECT_EQ(store.all().size(), 1u);
  EXPECT_EQ(store.receiving("permission_request").size(), 1u);
  EXPECT_TRUE(store.receiving("run_failed").empty());
  for (std::size_t i = 1; i < kMaxSubscriptions; ++i)
    EXPECT_TRUE(store.put(parsed("https://push.example/" + std::to_string(i))));
  EXPECT_FALSE(store.put(parsed("https://push.example/one-too-many")));
  EXPECT_TRUE(store.remove("https://push.example/a"));
  EXPECT_FALSE(store.remove("https://push.example/a"));
  EXPECT_TRUE(store.put(parsed("https://push.example/one-too-many")));
}

TEST(SubscriptionStore, SavedPrivatelyAndLoadedAfterARestart) {
  test::TempDir dir("pa-subs");
  {
    SubscriptionStore store(dir.path());
    auto s = parsed("https://push.example/a", json::array{"run_failed", "queue_drained"});
    s.client_name = "Pixel 7";
    store.put(std::move(s));
    ASSERT_FALSE(store.save());
  }
  struct stat st {};
  ASSERT_EQ(::stat((dir / "push_subscriptions.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  SubscriptionStore again(dir.path());
  EXPECT_EQ(again.load(), "");
  const auto all = again.all();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].keys.endpoint, "https://push.example/a");
  EXPECT_EQ(all[0].client_name, "Pixel 7");
  EXPECT_EQ(all[0].events, (std::vector<std::string>{"run_failed", "queue_drained"}));
  EXPECT_EQ(base64url_encode(all[0].keys.p256dh), kP256dh);
}

// A revoked device's subscriptions go, and only its own; the device id survives a restart, and
// a file from before devices (no device_id) loads as the master token's subscriptions.
TEST(SubscriptionStore, ADevicesSubscriptionsAreRemovedTogether) {
  test::TempDir dir("pa-subs");
  {
    SubscriptionStore store(dir.path());
    for (const auto& [endpoint, device] :
         std::vector<std::pair<std::string, std::string>>{{"https://push.example/a", "dev-1"},
                                                          {"https://push.example/b", "dev-1"},
                                                          {"https://push.example/c", "dev-2"},
                                                          {"https://push.example/d", ""}}) {
      auto s = parsed(endpoint);
      s.device_id = device;
      store.put(std::move(s));
    }
    ASSERT_FALSE(store.save());
  }
  SubscriptionStore again(dir.path());
  ASSERT_EQ(again.load(), "");
  EXPECT_EQ(again.remove_device(""), 0u) << "the master token is no device";
  EXPECT_EQ(again.remove_device("dev-9"), 0u);
  EXPECT_EQ(again.remove_device("dev-1"), 2u);
  const auto left = again.all();
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(left[0].device_id, "dev-2");
  EXPECT_EQ(left[1].device_id, "");
}

TEST(SubscriptionStore, AFileFromBeforeDevicesLoads) {
  test::TempDir dir("pa-subs");
  std::ofstream(dir / "push_subscriptions.json")
      << R"({"subscriptions":[{"endpoint":"https://push.example/a","p256dh":")" << kP256dh
      << R"(","auth":")" << kAuth
      << R"(","events":["run_failed"],"client_name":"Pixel 7","created_at":"2026-01-01T00:00:00.000Z"}]})";
  SubscriptionStore store(dir.path());
  EXPECT_EQ(store.load(), "");
  const auto all = store.all();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].device_id, "");
  EXPECT_EQ(all[0].client_name, "Pixel 7");
}

TEST(SubscriptionStore, AnUnreadableFileIsMovedAsideAndTheStoreStartsEmpty) {
  test::TempDir dir("pa-subs");
  std::ofstream(dir / "push_subscriptions.json") << "{\"subscriptions\": [{\"endpoint\": 5}]}";
  SubscriptionStore store(dir.path());
  const std::string said = store.load();
  EXPECT_NE(said.find("moved it to"), std::string::npos) << said;
  EXPECT_TRUE(store.all().empty());
  int aside = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    aside += e.path().filename().string().rfind("push_subscriptions.json.bad-", 0) == 0;
  EXPECT_EQ(aside, 1);
}

}  // namespace
}  // namespace pa::notify
