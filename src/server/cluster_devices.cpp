// What every node of a cluster shares besides projects: the paired devices (their tokens'
// hashes, names and roles) and their revocations. A device paired on one node signs in on any;
// one revoked on any node is refused by all, and its connections there are closed.
//
// Redis keeps them in two hashes, each value signed with the cluster secret (so whoever can
// write to Redis cannot add a device or revoke one): pa:devices (device id -> the device) and
// pa:devices:revoked (device id -> when). Every heartbeat each node makes its store and Redis
// agree: revoked devices go, devices of others are taken, its own that Redis lacks (paired while
// Redis was away) are published. Last-seen times stay each node's own.
#include <openssl/sha.h>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/json/serialize.hpp>
#include <future>

#include "cluster/body.hpp"
#include "cluster/keys.hpp"
#include "common/hex.hpp"
#include "protocol/clock.hpp"
#include "server/cluster_shared.hpp"
#include "server/hub.hpp"

namespace pa::server {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {
using cluster::keys::kDevices;
constexpr std::string_view kRevoked = cluster::keys::kRevokedDevices;

// The signed value of a shared device, and back.
json::object device_value(const devices::StoredDevice& stored) {
  return json::object{
      {"device_id", stored.device.device_id},
      {"name", stored.device.name},
      {"role", devices::role_name(stored.device.role)},
      {"created_at", protocol::format_rfc3339(stored.device.created_at)},
      {"token_sha256", stored.token_sha256},
  };
}

std::optional<devices::StoredDevice> device_of(const json::object& value) {
  const auto id = cluster::get_string(value, "device_id", 64);
  const auto name = cluster::get_string(value, "name", devices::kMaxDeviceNameBytes);
  const auto role_name = cluster::get_string(value, "role", 16);
  const auto created = cluster::get_string(value, "created_at", 64);
  const auto hash = cluster::get_string(value, "token_sha256", 64);
  const auto role = role_name ? devices::parse_role(*role_name) : std::nullopt;
  const auto created_at = created ? protocol::parse_rfc3339(*created) : std::nullopt;
  if (!id || !name || !role || !created_at || !hash) return std::nullopt;
  return devices::StoredDevice{devices::Device{*id, *name, *role, *created_at, std::nullopt},
                               *hash};
}
}  // namespace

void ClusterShared::device_changed() {
  asio::post(hub_.pool_, [self = shared_from_this()] {
    for (const auto& stored : self->hub_.devices_.stored()) self->publish_device(stored);
  });
}

void ClusterShared::publish_device(const devices::StoredDevice& stored) {
  const std::string text = json::serialize(device_value(stored));
  const std::string key = std::string(kDevices) + ":" + stored.device.device_id;
  link_->command({"HSET", std::string(kDevices), stored.device.device_id, signed_value(key, text)},
                 [](std::error_code, redis::Reply) {});
}

void ClusterShared::device_revoked(const std::string& device_id) {
  const std::string text = json::serialize(
      json::object{{"device_id", device_id},
                   {"revoked_at", protocol::format_rfc3339(std::chrono::system_clock::now())}});
  const std::string key = std::string(kRevoked) + ":" + device_id;
  link_->command({"HSET", std::string(kRevoked), device_id, signed_value(key, text)},
                 [](std::error_code, redis::Reply) {});
  link_->command({"HDEL", std::string(kDevices), device_id}, [](std::error_code, redis::Reply) {});
}

void ClusterShared::sync_devices() {
  // Both hashes in one pipeline; then the store is changed on the blocking pool (file writes).
  auto shared = std::make_shared<redis::Reply>();
  link_->command({"HGETALL", std::string(kDevices)},
                 [shared](std::error_code ec, redis::Reply reply) {
                   if (!ec) *shared = std::move(reply);
                 });
  link_->command({"HGETALL", std::string(kRevoked)}, [self = shared_from_this(), shared](
                                                         std::error_code ec, redis::Reply reply) {
    if (ec || reply.type != redis::Reply::Type::kArray ||
        shared->type != redis::Reply::Type::kArray)
      return;
    // Each value's signature is checked against its own key: a value moved to another id or
    // from one hash to the other does not verify.
    const auto open = [&](std::string_view hash, const std::string& id,
                          const std::string& value) -> std::optional<json::object> {
      const auto text = self->open_value(std::string(hash) + ":" + id, value);
      if (!text) {
        self->refuse(std::string(hash), "the value of " + id.substr(0, 64) +
                                            " is not signed with this cluster's secret");
        return std::nullopt;
      }
      auto inner = cluster::parse_body(*text);
      if (!inner || cluster::get_string(*inner, "device_id", 64) != id) return std::nullopt;
      return inner;
    };
    std::set<std::string> revoked;
    for (std::size_t i = 0; i + 1 < reply.elements.size(); i += 2) {
      if (open(kRevoked, reply.elements[i].str, reply.elements[i + 1].str))
        revoked.insert(reply.elements[i].str);
    }
    std::vector<devices::StoredDevice> devices;
    for (std::size_t i = 0; i + 1 < shared->elements.size(); i += 2) {
      const auto value = open(kDevices, shared->elements[i].str, shared->elements[i + 1].str);
      if (auto device = value ? device_of(*value) : std::nullopt) devices.push_back(*device);
    }
    asio::post(self->hub_.pool_,
               [self, devices = std::move(devices), revoked = std::move(revoked)]() mutable {
                 self->apply_devices(std::move(devices), std::move(revoked));
               });
  });
}

void ClusterShared::apply_devices(std::vector<devices::StoredDevice> shared,
                                  std::set<std::string> revoked) {
  auto& store = hub_.devices_;
  for (const auto& id : revoked) {
    const auto device = store.find(id);
    if (!device) continue;
    std::error_code ec;
    store.revoke(id, ec);
    if (ec) spdlog::error("cannot write {}: {}", store.path().string(), ec.message());
    spdlog::info("cluster: device {} ({}) was revoked on another node", id, device->name);
    hub_.end_device(*device, nullptr);
  }
  std::set<std::string> known;
  for (const auto& device : shared) {
    known.insert(device.device.device_id);
    if (revoked.count(device.device.device_id)) continue;
    std::error_code ec;
    if (store.adopt(device, ec)) {
      spdlog::info("cluster: device {} ({}) taken from the cluster", device.device.device_id,
                   device.device.name);
    } else if (ec) {
      spdlog::error("cannot write {}: {}", store.path().string(), ec.message());
    }
  }
  // Ours that Redis does not have (paired before cluster mode, or while Redis was away).
  for (const auto& stored : store.stored()) {
    if (!known.count(stored.device.device_id) && !revoked.count(stored.device.device_id))
      publish_device(stored);
  }
}

}  // namespace pa::server

namespace pa::server {

namespace {
// pa:pair:<SHA-256 of the code>: never the code itself, which is a bearer secret until used.
// Pairing codes are few (at most 20 outstanding per node, 10 minutes each): a full set is stale.
constexpr std::size_t kMaxSharedCodes = 1000;

std::string pairing_key(const std::string& code) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(code.data()), code.size(), digest);
  return std::string(cluster::keys::kPairingCodePrefix) +
         common::to_hex(std::string_view(reinterpret_cast<const char*>(digest), sizeof digest));
}
}  // namespace

void ClusterShared::share_pairing_code(const std::string& code, devices::Role role,
                                       const std::string& name,
                                       std::chrono::system_clock::time_point expires_at) {
  const auto ttl = std::chrono::duration_cast<std::chrono::milliseconds>(
      expires_at - std::chrono::system_clock::now());
  if (ttl.count() <= 0) return;
  const std::string key = pairing_key(code);
  const std::string text =
      json::serialize(json::object{{"role", devices::role_name(role)}, {"name", name}});
  link_->command({"SET", key, signed_value(key, text), "PX", std::to_string(ttl.count())},
                 [self = shared_from_this(), key](std::error_code ec, redis::Reply reply) {
                   if (ec || reply.is_error()) return;  // this node's alone, as on one host
                   std::lock_guard lock(self->mutex_);
                   if (self->shared_codes_.size() >= kMaxSharedCodes) self->shared_codes_.clear();
                   self->shared_codes_.insert(key);
                 });
}

std::variant<devices::Redeemed, devices::Refusal> ClusterShared::redeem_pairing_code(
    const std::string& code, std::variant<devices::Redeemed, devices::Refusal> local) {
  const auto* refusal = std::get_if<devices::Refusal>(&local);
  // Only a code this node redeemed, or one it does not know, is the cluster's business.
  if (refusal && refusal->reason != "unknown_code") return local;
  const std::string key = pairing_key(code);
  if (!refusal) {
    // Redeemed here: if the cluster has it too, it must still be there (not used elsewhere).
    std::lock_guard lock(mutex_);
    if (shared_codes_.erase(key) == 0) return local;
  }
  auto answer = std::make_shared<std::promise<std::optional<redis::Reply>>>();
  auto future = answer->get_future();
  // GETDEL: whichever node takes it first has it; every other one finds nothing.
  link_->command({"GETDEL", key}, [answer](std::error_code ec, redis::Reply reply) {
    answer->set_value(ec || reply.is_error() ? std::nullopt : std::optional(std::move(reply)));
  });
  if (future.wait_for(std::chrono::seconds(2)) != std::future_status::ready) return local;
  const auto reply = future.get();
  if (!reply) return local;  // Redis away: this node decides alone
  if (!refusal) {
    if (reply->is_nil()) {
      // Another node redeemed it first.
      return devices::Refusal{410, "used", std::chrono::seconds(0)};
    }
    return local;
  }
  if (reply->type != redis::Reply::Type::kString) return local;
  const auto text = open_value(key, reply->str);
  if (!text) {
    refuse(std::string(cluster::keys::kPairingCodePrefix) + "*",
           "a pairing code not signed with this cluster's secret");
    return local;
  }
  auto inner = cluster::parse_body(*text);
  const auto role_name = inner ? cluster::get_string(*inner, "role", 16) : std::nullopt;
  const auto role = role_name ? devices::parse_role(*role_name) : std::nullopt;
  const auto name = inner ? cluster::get_string(*inner, "name", 256) : std::nullopt;
  if (!role || !name) return local;
  spdlog::info("cluster: a pairing code made on another node was redeemed here");
  return devices::Redeemed{*role, *name};
}

}  // namespace pa::server
