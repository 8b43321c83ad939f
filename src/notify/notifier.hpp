// The server's notification service (issue 17): it turns events (a permission request, a run's
// end, a drained queue, storage trouble) into Web Push messages for the subscribed browsers and
// requests to the configured ntfy topics and webhooks, and never holds up the caller.
//
//   raise(event) ──post──▶ work executor: per subscription, skip if that device has the project
//                          on screen (focus); encrypt (RFC 8291) and sign (VAPID); per target,
//                          build the ntfy/webhook request
//                ──enqueue─▶ Dispatcher (bounded queue, retries) ──post_http──▶ I/O executor
//
// The VAPID key and the subscriptions live in the data dir (vapid_key_file.hpp,
// subscription_store.hpp). Thread-safe; held by shared_ptr (queued work keeps it alive).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "config/config.hpp"
#include "notify/dispatcher.hpp"
#include "notify/event.hpp"
#include "notify/p256_key.hpp"
#include "notify/subscription_store.hpp"
#include "ops/metrics.hpp"
#include "protocol/envelope.hpp"

namespace pa::notify {

// The payload's event name of the follow-up that withdraws a permission request's notification,
// and of a test the settings panel asks for. Neither can be subscribed to.
inline constexpr std::string_view kWithdrawEvent = "permission_resolved";
inline constexpr std::string_view kTestEvent = "test";

// Shortens `event` until its JSON fits one Web Push record: the body first, then the path.
void fit_for_push(Event& event);

// True when `endpoint` (an https URL) names one of `hosts` or a subdomain of one.
bool endpoint_host_allowed(const std::string& endpoint, const std::vector<std::string>& hosts);

class Notifier : public std::enable_shared_from_this<Notifier> {
 public:
  // Start-up (blocking): loads or makes the VAPID key, loads the subscriptions, makes the TLS
  // client context. Throws std::runtime_error saying what to do. `io` runs the HTTP exchanges,
  // `work` the encryption and the subscription file's writes.
  static std::shared_ptr<Notifier> create(boost::asio::any_io_executor io,
                                          boost::asio::any_io_executor work,
                                          const config::Config& config, ops::ServerMetrics& metrics,
                                          std::vector<std::string>& warnings);
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // Base64url of the 65-byte public point: a browser's applicationServerKey.
  const std::string& vapid_public_key() const { return vapid_public_; }

  // Subscriptions. Blocking (push_subscriptions.json is written): call on the work executor.
  // Each ties `connection` to the endpoint, for focus. `device_id`: the paired device that
  // subscribes (empty for the master token), so that revoking it removes its subscriptions.
  std::variant<StoredSubscription, protocol::Error> subscribe(const boost::json::value& data,
                                                              const std::string& client_name,
                                                              std::uint64_t connection,
                                                              const std::string& device_id = {});
  std::optional<protocol::Error> unsubscribe(const std::string& endpoint);
  // Removes every subscription a revoked device made and saves; how many went (0: nothing
  // written). A failed save is returned in `error` (they are gone from memory already).
  std::size_t forget_device(const std::string& device_id, std::error_code& error);
  // The subscription of `endpoint` (and ties `connection` to it when there is one).
  std::optional<StoredSubscription> find(const std::string& endpoint, std::uint64_t connection);
  // Whether `event` would reach anyone: a target or a subscription that receives it. A
  // permission request that reaches someone waits for them instead of being denied at once.
  // `counts`, when given, says whether a subscription made by that device counts (the device id,
  // empty for the master token): a device whose role may not answer does not.
  bool reaches(std::string_view event,
               const std::function<bool(const std::string& device_id)>& counts = nullptr) const;
  // Cluster mode (issue 20): the subscriptions are the whole cluster's. `listener` hears of each
  // change made here (`now`: the subscription as it is; null: it was removed), on the thread
  // that made it. Set once, before the server serves.
  using ChangeListener =
      std::function<void(const std::string& endpoint, const StoredSubscription* now)>;
  void on_change(ChangeListener listener) { listener_ = std::move(listener); }
  std::vector<StoredSubscription> subscriptions() const { return store_.all(); }
  // Another node's subscription (added or replaced) or removal, saved here. Blocking (the file):
  // on the work executor. False when nothing changed (or the store is full).
  bool adopt(const StoredSubscription& subscription);
  bool drop(const std::string& endpoint);

  // A test notification to that subscription only. False when the endpoint is unknown.
  bool send_test(const std::string& endpoint);

  // What a connection has on screen (nullopt: no project). Events of that project are not
  // pushed to the subscriptions tied to it. Cheap; any thread.
  void set_focus(std::uint64_t connection, std::optional<std::string> project_id);
  void forget_connection(std::uint64_t connection);

  // Never blocks. Events of kEventNames go to the subscriptions and targets that receive them.
  void raise(Event event);
  // The notification with `tag` (a permission request) is moot: the devices that were sent it
  // get a follow-up with the same tag that takes it away. Never blocks.
  void withdraw(const std::string& tag, const std::string& project_id);

  // Drops queued sends (shutdown); sends in flight end on their own.
  void stop();

 private:
  Notifier(boost::asio::any_io_executor work, const config::Config& config,
           ops::ServerMetrics& metrics, P256Key vapid);
  std::optional<StoredSubscription> lookup(const std::string& endpoint) const;
  void tie(std::uint64_t connection, const std::string& endpoint);
  void count(const Delivery& delivery, Dispatcher::Outcome outcome);
  bool in_focus(const std::string& endpoint, const std::string& project_id) const;
  void deliver(const Event& event);  // on the work executor
  void push_to(const Event& event, const StoredSubscription& subscription);
  void remove_gone(const std::string& endpoint);
  void save_subscriptions();

  const boost::asio::any_io_executor work_;
  const config::Config::Notify settings_;
  ops::ServerMetrics& metrics_;
  const P256Key vapid_;
  const std::string vapid_public_;
  std::shared_ptr<boost::asio::ssl::context> tls_;  // shared with the sender
  std::shared_ptr<Dispatcher> dispatcher_;
  SubscriptionStore store_;

  mutable std::mutex mutex_;
  struct Screen {
    std::set<std::string> endpoints;        // the subscriptions this connection is tied to
    std::optional<std::string> project_id;  // what it shows
  };
  std::map<std::uint64_t, Screen> screens_;  // by connection id
  // Permission requests pushed and not yet withdrawn: tag -> endpoints sent to. Bounded.
  std::map<std::string, std::vector<std::string>> pushed_asks_;
  ChangeListener listener_;
  void changed(const std::string& endpoint, const StoredSubscription* now) const {
    if (listener_) listener_(endpoint, now);
  }
};

}  // namespace pa::notify
