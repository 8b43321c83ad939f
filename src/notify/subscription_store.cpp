#include "notify/subscription_store.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>

#include "common/atomic_file.hpp"
#include "notify/base64url.hpp"
#include "notify/event.hpp"
#include "protocol/clock.hpp"

namespace pa::notify {

namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

const json::string* string_at(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? &v->get_string() : nullptr;
}

bool parse_events(const json::value* v, std::vector<std::string>& out, std::string& error) {
  out.clear();
  if (v == nullptr || v->is_null()) {
    out.assign(kEventNames.begin(), kEventNames.end());
    return true;
  }
  if (!v->is_array()) {
    error = "events must be a list of event names";
    return false;
  }
  for (const auto& e : v->get_array()) {
    if (!e.is_string() || !is_event_name(e.get_string())) {
      error =
          "events: unknown event name; known are permission_request, run_succeeded, "
          "run_failed, run_timeout, run_lost, queue_drained, server_problem";
      return false;
    }
    const std::string name(e.get_string());
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  }
  return true;
}

}  // namespace

json::object subscription_json(const StoredSubscription& s) {
  json::array events;
  for (const auto& e : s.events) events.emplace_back(e);
  return {{"endpoint", s.keys.endpoint},
          {"p256dh", base64url_encode(s.keys.p256dh)},
          {"auth", base64url_encode(s.keys.auth)},
          {"events", std::move(events)},
          {"client_name", s.client_name},
          {"created_at", s.created_at},
          {"device_id", s.device_id.empty() ? json::value(nullptr) : json::value(s.device_id)}};
}

std::optional<StoredSubscription> subscription_from_json(const json::object& entry) {
  const auto* o = &entry;
  const auto* endpoint = string_at(*o, "endpoint");
  const auto* p256dh = string_at(*o, "p256dh");
  const auto* auth = string_at(*o, "auth");
  const json::value subscription{
      {"subscription",
       {{"endpoint", endpoint != nullptr ? json::value(*endpoint) : json::value()},
        {"keys",
         {{"p256dh", p256dh != nullptr ? json::value(*p256dh) : json::value()},
          {"auth", auth != nullptr ? json::value(*auth) : json::value()}}}}},
      {"events", o->contains("events") ? o->at("events") : json::value()}};
  std::string error;
  auto parsed = parse_subscribe(subscription, error);
  if (!parsed) return std::nullopt;
  if (const auto* name = string_at(*o, "client_name")) parsed->client_name = *name;
  if (const auto* at = string_at(*o, "created_at")) parsed->created_at = *at;
  // Files from before devices have no device_id: those subscriptions are the master token's.
  if (const auto* device = string_at(*o, "device_id")) parsed->device_id = *device;
  return parsed;
}

std::optional<StoredSubscription> parse_subscribe(const json::value& data, std::string& error) {
  const auto* d = data.if_object();
  const auto* sub = d != nullptr ? d->if_contains("subscription") : nullptr;
  if (sub == nullptr || !sub->is_object()) {
    error = "data.subscription must be the browser's PushSubscription (its toJSON())";
    return std::nullopt;
  }
  const auto* endpoint = string_at(sub->get_object(), "endpoint");
  if (endpoint == nullptr || endpoint->empty() || endpoint->size() > kMaxEndpointBytes) {
    error = "subscription.endpoint must be the push service's https URL (at most 2048 bytes)";
    return std::nullopt;
  }
  const auto url = boost::urls::parse_absolute_uri(*endpoint);
  if (!url || url->scheme() != "https" || url->encoded_host().empty()) {
    error = "subscription.endpoint must be an https URL";
    return std::nullopt;
  }
  const auto* keys = sub->get_object().if_contains("keys");
  const auto* p256dh =
      keys != nullptr && keys->is_object() ? string_at(keys->get_object(), "p256dh") : nullptr;
  const auto* auth =
      keys != nullptr && keys->is_object() ? string_at(keys->get_object(), "auth") : nullptr;
  const auto point = p256dh != nullptr ? base64url_decode(*p256dh) : std::nullopt;
  if (!point || !P256Key::from_public(*point)) {
    error = "subscription.keys.p256dh must be a base64url P-256 public key (65 bytes)";
    return std::nullopt;
  }
  const auto secret = auth != nullptr ? base64url_decode(*auth) : std::nullopt;
  if (!secret || secret->size() != 16) {
    error = "subscription.keys.auth must be a base64url 16-byte secret";
    return std::nullopt;
  }
  StoredSubscription out;
  out.keys = {std::string(*endpoint), *point, *secret};
  if (!parse_events(d->if_contains("events"), out.events, error)) return std::nullopt;
  out.created_at = protocol::now_rfc3339();
  return out;
}

SubscriptionStore::SubscriptionStore(fs::path data_dir)
    : path_(std::move(data_dir) / "push_subscriptions.json") {}

std::string SubscriptionStore::load() {
  std::error_code ec;
  if (!fs::exists(path_, ec)) return {};
  const std::string text = common::read_small_file(path_, ec);
  boost::system::error_code jec;
  const json::value doc = ec ? json::value() : json::parse(text, jec);
  std::vector<StoredSubscription> loaded;
  bool ok = !ec && !jec && doc.is_object() && doc.get_object().contains("subscriptions") &&
            doc.at("subscriptions").is_array();
  if (ok) {
    for (const auto& entry : doc.at("subscriptions").get_array()) {
      auto parsed = entry.is_object() ? subscription_from_json(entry.get_object()) : std::nullopt;
      if (!parsed) {
        ok = false;
        break;
      }
      loaded.push_back(std::move(*parsed));
    }
  }
  std::lock_guard lk(mu_);
  if (ok) {
    subscriptions_ = std::move(loaded);
    return {};
  }
  subscriptions_.clear();
  const fs::path aside = path_.string() + ".bad-" + protocol::now_rfc3339();
  fs::rename(path_, aside, ec);
  return path_.string() + " could not be read; moved it to " + aside.string() +
         " and started with no push subscriptions (devices subscribe again from the console)";
}

bool SubscriptionStore::put(StoredSubscription subscription) {
  std::lock_guard lk(mu_);
  const auto it = std::find_if(subscriptions_.begin(), subscriptions_.end(), [&](const auto& s) {
    return s.keys.endpoint == subscription.keys.endpoint;
  });
  if (it != subscriptions_.end()) {
    *it = std::move(subscription);
    return true;
  }
  if (subscriptions_.size() >= kMaxSubscriptions) return false;
  subscriptions_.push_back(std::move(subscription));
  return true;
}

bool SubscriptionStore::remove(const std::string& endpoint) {
  std::lock_guard lk(mu_);
  return std::erase_if(subscriptions_, [&](const auto& s) { return s.keys.endpoint == endpoint; }) >
         0;
}

std::size_t SubscriptionStore::remove_device(const std::string& device_id) {
  if (device_id.empty()) return 0;
  std::lock_guard lk(mu_);
  return std::erase_if(subscriptions_, [&](const auto& s) { return s.device_id == device_id; });
}

std::vector<StoredSubscription> SubscriptionStore::all() const {
  std::lock_guard lk(mu_);
  return subscriptions_;
}

std::vector<StoredSubscription> SubscriptionStore::receiving(const std::string& event) const {
  std::lock_guard lk(mu_);
  std::vector<StoredSubscription> out;
  for (const auto& s : subscriptions_)
    if (std::find(s.events.begin(), s.events.end(), event) != s.events.end()) out.push_back(s);
  return out;
}

std::error_code SubscriptionStore::save() const {
  std::lock_guard save_lk(save_mu_);
  json::array list;
  {
    std::lock_guard lk(mu_);
    for (const auto& s : subscriptions_) list.emplace_back(subscription_json(s));
  }
  const json::object doc{{"subscriptions", std::move(list)}};
  return common::write_file_atomically(path_, json::serialize(doc) + "\n", 0600);
}

}  // namespace pa::notify
