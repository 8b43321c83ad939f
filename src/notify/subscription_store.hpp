// The Web Push subscriptions of this server's devices, kept in <data_dir>/push_subscriptions.json
// (mode 0600: an endpoint is a capability to notify that browser) and written crash-safely on
// every change. One entry per endpoint; a device that subscribes again replaces its entry.
// Thread-safe. save() does file I/O (and waits for another save): call it off the I/O threads.
#pragma once

#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <boost/json/value.hpp>

#include "notify/channels.hpp"

namespace pa::notify {

inline constexpr std::size_t kMaxSubscriptions = 100;
inline constexpr std::size_t kMaxEndpointBytes = 2048;

struct StoredSubscription {
  WebPushSubscription keys;         // endpoint, p256dh and auth as raw bytes
  std::vector<std::string> events;  // the event names it receives
  std::string client_name;          // who subscribed, for the settings list (may be empty)
  std::string device_id;            // the paired device that subscribed (empty: master token)
  std::string created_at;           // RFC 3339
};

// A subscription from a client's push_subscribe `data`: {subscription: {endpoint, keys: {p256dh,
// auth}}, events?}. Without `events`, every event. On failure returns nullopt and says in
// `error` which field is wrong and how.
std::optional<StoredSubscription> parse_subscribe(const boost::json::value& data,
                                                  std::string& error);

// A subscription as the file (and a cluster's Redis) keeps it, and back (nullopt: not valid).
boost::json::object subscription_json(const StoredSubscription& subscription);
std::optional<StoredSubscription> subscription_from_json(const boost::json::object& entry);

class SubscriptionStore {
 public:
  explicit SubscriptionStore(std::filesystem::path data_dir);

  // Reads the file (start-up). A file that cannot be parsed is moved aside to
  // push_subscriptions.json.bad-<time> and the store starts empty; the returned text says so.
  std::string load();
  // Adds or replaces (same endpoint). False when kMaxSubscriptions others exist.
  bool put(StoredSubscription subscription);
  bool remove(const std::string& endpoint);
  // Removes every subscription `device_id` made (a revoked device); how many.
  std::size_t remove_device(const std::string& device_id);
  std::vector<StoredSubscription> all() const;
  std::vector<StoredSubscription> receiving(const std::string& event) const;
  std::error_code save() const;

 private:
  std::filesystem::path path_;
  mutable std::mutex mu_;
  mutable std::mutex save_mu_;  // held across snapshot and write: the last save writes the latest
  std::vector<StoredSubscription> subscriptions_;
};

}  // namespace pa::notify
