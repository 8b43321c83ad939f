// What the cluster keeps in Redis, by key (docs/architecture.md, "The cluster"). One place, so
// every node names the same things.
#pragma once

#include <string>
#include <string_view>

namespace pa::cluster::keys {

// pa:node:<name>: a node's heartbeat ({boot, started, version}), a key with a TTL.
inline std::string node(std::string_view name) {
  return "pa:node:" + std::string(name);
}
// pa:nodes: the set of node names ever seen (their liveness is their heartbeat key).
inline constexpr std::string_view kNodes = "pa:nodes";
// pa:projects: hash of project id -> its directory entry (owner node, path, state, totals).
inline constexpr std::string_view kProjects = "pa:projects";
// pa:ev:<project id>: the project's broadcasts in seq order (a stream, MAXLEN ~).
inline constexpr std::string_view kEventsPrefix = "pa:ev:";
inline std::string events(std::string_view project_id) {
  return std::string(kEventsPrefix) + std::string(project_id);
}
// pa:cmd:<node>: requests for a node's projects (a stream read by the node's consumer group).
inline std::string commands(std::string_view node_name) {
  return "pa:cmd:" + std::string(node_name);
}
inline constexpr std::string_view kCommandGroup = "owner";
// pa:reply:<node>: what owners send back to a node for its clients (a stream).
inline std::string replies(std::string_view node_name) {
  return "pa:reply:" + std::string(node_name);
}
// What every node shares (server/cluster_devices.cpp, cluster_notify.cpp), each value signed:
// devices (id -> device), their revocations (id -> when), pairing codes (pa:pair:<SHA-256 of
// the code>, with a TTL), the Web Push key, push subscriptions (SHA-256 of the endpoint ->
// subscription) and their removals.
inline constexpr std::string_view kDevices = "pa:devices";
inline constexpr std::string_view kRevokedDevices = "pa:devices:revoked";
inline constexpr std::string_view kPairingCodePrefix = "pa:pair:";
inline constexpr std::string_view kVapidKey = "pa:vapid";
inline constexpr std::string_view kPushSubscriptions = "pa:push";
inline constexpr std::string_view kPushRemoved = "pa:push:gone";
// pa:idem:<scope>: an idempotency key of project_create shared by every node (SET NX).
inline std::string idempotency(std::string_view scope) {
  return "pa:idem:" + std::string(scope);
}

}  // namespace pa::cluster::keys
