// Notifications in a cluster: every node pushes with the same Web Push (VAPID) key and knows
// every subscription, so a permission request or a run's end on any node reaches a phone that
// subscribed through any node.
//
// The key: the first node to start puts its key in Redis (pa:vapid, signed); every other node
// takes that one at start (its own file is replaced, before any push). Subscriptions: Redis hash
// pa:push (SHA-256 of the endpoint -> the subscription, signed) and pa:push:gone (removals),
// made to agree with each node's store every heartbeat, and at once on a change here.
#include <openssl/sha.h>
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/json/serialize.hpp>

#include "cluster/body.hpp"
#include "cluster/keys.hpp"
#include "common/atomic_file.hpp"
#include "common/hex.hpp"
#include "common/private_file.hpp"
#include "notify/notifier.hpp"
#include "notify/vapid_key_file.hpp"
#include "protocol/clock.hpp"
#include "server/cluster_shared.hpp"
#include "server/hub.hpp"

namespace pa::server {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {
constexpr std::string_view kVapid = cluster::keys::kVapidKey;
constexpr std::string_view kPush = cluster::keys::kPushSubscriptions;
constexpr std::string_view kPushGone = cluster::keys::kPushRemoved;

std::string endpoint_id(const std::string& endpoint) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(endpoint.data()), endpoint.size(), digest);
  return common::to_hex(std::string_view(reinterpret_cast<const char*>(digest), sizeof digest));
}

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
    text.pop_back();
  return text;
}
}  // namespace

ClusterShared::ClusterShared(Hub& hub, const config::Config& config,
                             const cluster::NodeSigner& signer)
    : hub_(hub), config_(config), signer_(signer) {}

void ClusterShared::sync() {
  sync_devices();
  sync_subscriptions();
}

void ClusterShared::refuse(std::string_view key, const std::string& why) {
  spdlog::warn("cluster: refused an entry on {}: {}", key, why);
}

std::string ClusterShared::signed_value(std::string_view key, const std::string& text) const {
  return json::serialize(json::object{{"v", text}, {"mac", signer_.sign(key, text)}});
}

std::optional<std::string> ClusterShared::open_value(std::string_view key,
                                                     const std::string& value) const {
  auto outer = cluster::parse_body(value, 64u << 10);
  const auto text = outer ? cluster::get_string(*outer, "v", 32u << 10) : std::nullopt;
  const auto mac = outer ? cluster::get_string(*outer, "mac", 128) : std::nullopt;
  if (!text || !mac || !signer_.verify(key, *text, *mac)) return std::nullopt;
  return text;
}

void ClusterShared::share_vapid_key(const ConnectionFactory& connect) {
  // Start-up, before the notifier reads the key and before the I/O threads run: one exchange
  // with Redis on an io_context of its own.
  bool created = false;
  notify::load_or_create_vapid_key(config_.data.dir, created);
  const auto path = notify::vapid_key_path(config_.data.dir);
  const std::string local = trimmed(common::read_private_file(path, 4096));
  asio::io_context io;
  auto connection = connect(io.get_executor());
  std::optional<std::string> shared;
  bool forged = false;
  connection->connect([&](std::error_code ec) {
    if (ec) return;
    // SET NX GET: ours becomes the cluster's unless one is there, which comes back.
    connection->command({"SET", std::string(kVapid), signed_value(kVapid, local), "NX", "GET"},
                        [&](std::error_code ec2, redis::Reply reply) {
                          connection->close();
                          if (ec2 || reply.is_error()) return;
                          if (reply.is_nil()) {
                            shared = local;
                            return;
                          }
                          shared = open_value(kVapid, reply.str);
                          forged = !shared;
                        });
  });
  io.run_for(std::chrono::seconds(10));
  if (forged) {
    spdlog::error(
        "cluster: {} in Redis is not signed with this cluster's secret; this node "
        "keeps its own Web Push key (a node with another secret, or a forgery)",
        kVapid);
    return;
  }
  if (!shared) {
    spdlog::warn(
        "cluster: Redis not reachable at start: this node keeps its own Web Push key "
        "for now (subscriptions made through it may not reach phones from other "
        "nodes until it restarts with Redis up)");
    return;
  }
  if (*shared == local) return;
  if (const auto ec = common::write_file_atomically(path, *shared + "\n", 0600)) {
    throw std::runtime_error("cannot write " + path.string() + ": " + ec.message());
  }
  spdlog::warn(
      "cluster: this node now pushes with the cluster's Web Push (VAPID) key; "
      "subscriptions made with its old key (if any) have to be made again");
}

void ClusterShared::watch_subscriptions() {
  hub_.notifier_->on_change([weak = weak_from_this()](const std::string& endpoint,
                                                      const notify::StoredSubscription* now) {
    auto self = weak.lock();
    if (!self) return;
    if (now) {
      self->publish_subscription(*now);
    } else {
      self->subscription_removed(endpoint);
    }
  });
}

void ClusterShared::publish_subscription(const notify::StoredSubscription& subscription) {
  const std::string id = endpoint_id(subscription.keys.endpoint);
  const std::string key = std::string(kPush) + ":" + id;
  link_->command({"HSET", std::string(kPush), id,
                  signed_value(key, json::serialize(notify::subscription_json(subscription)))},
                 [](std::error_code, redis::Reply) {});
  // Subscribed again after an unsubscribe: no longer gone.
  link_->command({"HDEL", std::string(kPushGone), id}, [](std::error_code, redis::Reply) {});
}

void ClusterShared::subscription_removed(const std::string& endpoint) {
  const std::string id = endpoint_id(endpoint);
  const std::string key = std::string(kPushGone) + ":" + id;
  const std::string text = json::serialize(
      json::object{{"endpoint_sha256", id}, {"removed_at", protocol::now_rfc3339()}});
  link_->command({"HSET", std::string(kPushGone), id, signed_value(key, text)},
                 [](std::error_code, redis::Reply) {});
  link_->command({"HDEL", std::string(kPush), id}, [](std::error_code, redis::Reply) {});
}

void ClusterShared::sync_subscriptions() {
  auto shared = std::make_shared<redis::Reply>();
  link_->command({"HGETALL", std::string(kPush)}, [shared](std::error_code ec, redis::Reply reply) {
    if (!ec) *shared = std::move(reply);
  });
  link_->command({"HGETALL", std::string(kPushGone)}, [self = shared_from_this(), shared](
                                                          std::error_code ec, redis::Reply gone) {
    if (ec || gone.type != redis::Reply::Type::kArray || shared->type != redis::Reply::Type::kArray)
      return;
    std::set<std::string> removed;
    for (std::size_t i = 0; i + 1 < gone.elements.size(); i += 2) {
      const auto& id = gone.elements[i].str;
      if (self->open_value(std::string(kPushGone) + ":" + id, gone.elements[i + 1].str)) {
        removed.insert(id);
      } else {
        self->refuse(std::string(kPushGone), "a value not signed with this cluster's secret");
      }
    }
    std::map<std::string, notify::StoredSubscription> subscriptions;
    for (std::size_t i = 0; i + 1 < shared->elements.size(); i += 2) {
      const auto& id = shared->elements[i].str;
      const auto text =
          self->open_value(std::string(kPush) + ":" + id, shared->elements[i + 1].str);
      auto entry = text ? cluster::parse_body(*text) : std::nullopt;
      auto subscription = entry ? notify::subscription_from_json(*entry) : std::nullopt;
      if (!subscription || endpoint_id(subscription->keys.endpoint) != id) {
        self->refuse(std::string(kPush), "a subscription not signed with this cluster's secret");
        continue;
      }
      subscriptions.emplace(id, std::move(*subscription));
    }
    asio::post(self->hub_.pool_,
               [self, subscriptions = std::move(subscriptions), removed = std::move(removed)] {
                 auto& notifier = *self->hub_.notifier_;
                 for (const auto& local : notifier.subscriptions()) {
                   const auto id = endpoint_id(local.keys.endpoint);
                   if (removed.count(id)) {
                     notifier.drop(local.keys.endpoint);
                   } else if (!subscriptions.count(id)) {
                     self->publish_subscription(local);  // made here while Redis was away
                   }
                 }
                 for (const auto& [id, subscription] : subscriptions) {
                   if (!removed.count(id)) notifier.adopt(subscription);
                 }
               });
  });
}

}  // namespace pa::server
