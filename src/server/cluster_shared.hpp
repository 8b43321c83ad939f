// What every node of a cluster shares besides projects (issue 20): paired devices and their
// revocations, pairing codes, the Web Push (VAPID) key and the push subscriptions. Each is kept
// in Redis as a value signed with the cluster secret (whoever can write to Redis cannot add a
// device, revoke one or plant a key) and made to agree with this node's own stores at every
// heartbeat (sync) and at once on a change made here. Keys: cluster/keys.hpp.
//   cluster_devices.cpp: devices, revocations, pairing codes;
//   cluster_notify.cpp: the VAPID key and the subscriptions.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "cluster/node_message.hpp"
#include "cluster/redis_link.hpp"
#include "config/config.hpp"
#include "devices/device_store.hpp"
#include "devices/pairing.hpp"
#include "notify/subscription_store.hpp"

namespace pa::server {

class Hub;

class ClusterShared : public std::enable_shared_from_this<ClusterShared> {
 public:
  // A new connection to the cluster's Redis on `executor` (for the start-up exchange).
  using ConnectionFactory =
      std::function<std::shared_ptr<redis::Connection>(boost::asio::any_io_executor executor)>;

  ClusterShared(Hub& hub, const config::Config& config, const cluster::NodeSigner& signer);

  // The connection everything goes through, once the node starts (before sync or a change).
  void set_link(std::shared_ptr<cluster::RedisLink> link) { link_ = std::move(link); }
  // Every heartbeat: devices and subscriptions made the same here and in Redis.
  void sync();

  // A device was paired or renamed here: the others take it now (and at every heartbeat).
  void device_changed();
  // A device was revoked here: every node refuses its token from its next heartbeat on.
  void device_revoked(const std::string& device_id);
  // A pairing code made here may be redeemed on any node (once, on one of them).
  void share_pairing_code(const std::string& code, devices::Role role, const std::string& name,
                          std::chrono::system_clock::time_point expires_at);
  // POST /pair's answer with the cluster's say (blocking, on the blocking pool; waits for Redis
  // at most 2 s): a code this node does not know may be another node's; a code it redeemed
  // must not have been used on another node meanwhile.
  std::variant<devices::Redeemed, devices::Refusal> redeem_pairing_code(
      const std::string& code, std::variant<devices::Redeemed, devices::Refusal> local);

  // Start-up, blocking, before the notifier is made and before the I/O threads run: this node
  // takes the cluster's Web Push key (or gives it its own, if it is the first).
  void share_vapid_key(const ConnectionFactory& connect);
  // After the notifier is made: its subscriptions become the cluster's.
  void watch_subscriptions();

 private:
  void sync_devices();
  void apply_devices(std::vector<devices::StoredDevice> shared, std::set<std::string> revoked);
  void publish_device(const devices::StoredDevice& device);
  void sync_subscriptions();
  void publish_subscription(const notify::StoredSubscription& subscription);
  void subscription_removed(const std::string& endpoint);
  // A value kept in Redis under `key` with its MAC, and its text back if the MAC is right.
  std::string signed_value(std::string_view key, const std::string& text) const;
  std::optional<std::string> open_value(std::string_view key, const std::string& value) const;
  static void refuse(std::string_view key, const std::string& why);

  Hub& hub_;
  const config::Config& config_;
  const cluster::NodeSigner& signer_;
  std::shared_ptr<cluster::RedisLink> link_;

  std::mutex mutex_;
  std::set<std::string> shared_codes_;  // keys of pairing codes made here and put in Redis
};

}  // namespace pa::server
