// A message between nodes, as one Redis stream entry, signed with the cluster secret.
//
// Fields: k (kind), from (node name), boot (the sender's boot id), ts (unix ms), b (a JSON body,
// may be empty), f (a frame for clients, may be empty), m (the MAC). The MAC is HMAC-SHA256 over
// the stream's key and every other field, so an entry cannot be forged without the secret, nor
// moved to another stream (a command for node B replayed to node C). Whoever can write to Redis
// but lacks the secret can only make entries that are refused (and logged).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "redis/redis_client.hpp"

namespace pa::cluster {

struct NodeMessage {
  std::string kind;
  std::string from;
  std::string boot;
  std::int64_t ts_ms = 0;
  std::string body;   // JSON text (validated by the receiver like client input)
  std::string frame;  // a message for clients, passed on as is after the MAC check
  std::string id;     // the stream entry's id (set when read)
};

class NodeSigner {
 public:
  explicit NodeSigner(std::string secret) : secret_(std::move(secret)) {}

  // XADD <stream> [MAXLEN ~ <maxlen>] * <fields...> for `message` (ts is set to now).
  std::vector<std::string> xadd(std::string_view stream, NodeMessage message,
                                std::uint64_t maxlen = 0) const;
  // The message in one stream entry's field list, if it is well formed and its MAC is right;
  // else nullopt and `why` says what was wrong (for the log).
  std::optional<NodeMessage> open(std::string_view stream, const redis::Reply& fields,
                                  std::string& why) const;

  std::string mac(std::string_view stream, const NodeMessage& message) const;
  // The MAC of a value kept in Redis under `key` (a shared device, a revocation), and its check.
  std::string sign(std::string_view key, std::string_view text) const;
  bool verify(std::string_view key, std::string_view text, std::string_view mac) const;

 private:
  std::string secret_;
};

// The entries of an XREAD/XREADGROUP reply: [[stream, [[id, [field, value, ...]], ...]], ...].
struct StreamEntry {
  std::string stream;
  std::string id;
  const redis::Reply* fields = nullptr;  // points into the reply
};
std::vector<StreamEntry> stream_entries(const redis::Reply& reply);
// The id of the entry an XREVRANGE <key> + - COUNT 1 returned, or "0-0" for an empty stream.
std::string last_entry_id(const redis::Reply& reply);

std::int64_t unix_ms_now();
// A fresh random id (hex), e.g. a boot id.
std::string random_id(std::size_t bytes = 8);

}  // namespace pa::cluster
