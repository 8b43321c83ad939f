// The cluster's owner side: requests other nodes forward for their clients on this node's
// projects, carried out through a RemoteClient per client exactly as a local client's, and this
// node's broadcasts written to each project's event stream.
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/json/serialize.hpp>

#include "cluster/body.hpp"
#include "cluster/keys.hpp"
#include "server/catch_up_frames.hpp"
#include "server/cluster_node.hpp"
#include "server/hub.hpp"
#include "server/project.hpp"
#include "server/remote_client.hpp"

namespace pa::server {

namespace asio = boost::asio;
namespace json = boost::json;
namespace keys = cluster::keys;

namespace {
constexpr std::size_t kMaxIdBytes = 128;
constexpr std::size_t kFillEntries = 500;     // history entries per fill answer
constexpr std::size_t kFillBytes = 4u << 20;  // and about this many bytes
constexpr std::size_t kMaxPageFrames = 1000;  // a forwarded catch-up page's bounds
// Pages travel as one reply stream entry each: kept small, since the stream is trimmed by
// entries, not bytes (most catch-ups are served by the front's own window, RemoteFeed).
constexpr std::size_t kMaxPageBytes = 1u << 20;
// Commands older than the request timeout plus this are not carried out: their sender gave up.
constexpr std::chrono::seconds kCommandSlack{5};

std::string client_key(const std::string& node, std::uint64_t connection) {
  return node + "/" + std::to_string(connection);
}
}  // namespace

void ClusterNode::attach(Project& project) {
  // On the project's strand, after each broadcast went to the local subscribers (and a remote
  // requester's own copy to its node): once to the stream, for every other node.
  project.set_feed_hook([weak = std::weak_ptr<ClusterNode>(shared_from_this()), id = project.id(),
                         prev = std::optional<std::uint64_t>()](
                            std::uint64_t seq, const protocol::SharedText& text) mutable {
    if (auto self = weak.lock()) self->publish_event(id, seq, prev, text);
    prev = seq;
  });
}

void ClusterNode::publish_event(const std::string& project_id, std::uint64_t seq,
                                std::optional<std::uint64_t> prev,
                                const protocol::SharedText& frame) {
  if (!link_) return;
  json::object body{{"seq", seq}};
  if (prev) body["prev"] = *prev;
  send(keys::events(project_id),
       {"ev", {}, {}, 0, json::serialize(body), frame ? *frame : std::string(), {}},
       config_.cluster.stream_maxlen,
       [weak = std::weak_ptr<ClusterNode>(shared_from_this()), project_id](bool ok) {
         if (ok) return;
         // Sent again as a marker when Redis is back: the mirrors fill in from history.
         if (auto self = weak.lock()) {
           std::lock_guard lock(self->mutex_);
           self->unsent_events_.insert(project_id);
         }
       });
}

void ClusterNode::on_command(const std::string& stream, const std::string& /*id*/,
                             const redis::Reply& fields) {
  std::string why;
  auto message = signer_.open(stream, fields, why);
  if (!message) return refuse(nullptr, stream, why);
  const auto age = std::chrono::milliseconds(cluster::unix_ms_now() - message->ts_ms);
  if (age > config_.cluster.request_timeout + kCommandSlack ||
      age < -(config_.cluster.request_timeout + kCommandSlack)) {
    // Its sender gave up long ago (or the clocks disagree by more than the timeout).
    return refuse(&*message, stream,
                  "a stale command (" + std::to_string(age.count() / 1000) + " s old)");
  }
  auto body = cluster::parse_body(message->body);
  if (!body) return refuse(&*message, stream, "the body is not a JSON object");
  handle_command(*message, std::move(*body));
}

std::shared_ptr<RemoteClient> ClusterNode::client_for(const cluster::NodeMessage& message,
                                                      const json::object& who) {
  const auto conn = cluster::get_u64(who, "conn");
  const auto role_name = cluster::get_string(who, "role", 16);
  const auto role = role_name ? devices::parse_role(*role_name) : std::nullopt;
  const auto device_id = cluster::get_string(who, "device_id", kMaxIdBytes);
  const auto device_name = cluster::get_string(who, "device_name", 256);
  const auto client_name = cluster::get_string(who, "client_name", 256);
  const auto* caps = who.if_contains("caps");
  if (!conn || !role || !device_id || !device_name || !client_name || !caps || !caps->is_array() ||
      caps->as_array().size() > 32)
    return nullptr;
  std::vector<std::string> capabilities;
  for (const auto& cap : caps->as_array()) {
    if (!cap.is_string() || cap.as_string().size() > 64) return nullptr;
    capabilities.emplace_back(cap.as_string());
  }
  const std::string key = client_key(message.from, *conn);
  std::shared_ptr<RemoteClient> stale;
  {
    std::lock_guard lock(mutex_);
    const auto it = clients_.find(key);
    if (it != clients_.end()) {
      if (it->second->boot() == message.boot) return it->second;
      stale = it->second;  // a client of the node's earlier run
      clients_.erase(it);
    }
  }
  if (stale) stale->leave_all();
  auto client = std::make_shared<RemoteClient>(weak_from_this(), hub_.next_connection_id(),
                                               message.from, message.boot, *conn, *client_name,
                                               devices::Identity{*role, *device_id, *device_name});
  client->profile().accept_hello(*client_name, std::move(capabilities));
  std::lock_guard lock(mutex_);
  return clients_.try_emplace(key, client).first->second;
}

std::shared_ptr<RemoteClient> ClusterNode::find_client(const std::string& node,
                                                       std::uint64_t connection) {
  std::lock_guard lock(mutex_);
  const auto it = clients_.find(client_key(node, connection));
  return it == clients_.end() ? nullptr : it->second;
}

void ClusterNode::drop_clients_of(const std::string& node, const std::string& except_boot) {
  std::vector<std::shared_ptr<RemoteClient>> dropped;
  {
    std::lock_guard lock(mutex_);
    for (auto it = clients_.begin(); it != clients_.end();) {
      if (it->second->node() == node && it->second->boot() != except_boot) {
        dropped.push_back(it->second);
        it = clients_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (const auto& client : dropped) client->leave_all();
}

void ClusterNode::handle_command(const cluster::NodeMessage& message, json::object body) {
  const std::string stream = keys::commands(name_);
  const std::string& kind = message.kind;
  if (kind == "fill") return answer_fill(message, body);
  if (kind == "closed") {
    const auto conn = cluster::get_u64(body, "conn");
    if (!conn) return refuse(&message, stream, "closed without conn");
    std::shared_ptr<RemoteClient> client;
    {
      std::lock_guard lock(mutex_);
      const auto it = clients_.find(client_key(message.from, *conn));
      if (it == clients_.end()) return;
      client = it->second;
      clients_.erase(it);
    }
    client->leave_all();
    return;
  }
  const auto project_id = cluster::get_string(body, "project", kMaxIdBytes);
  if (kind == "leave") {
    const auto conn = cluster::get_u64(body, "conn");
    if (!conn || !project_id) return refuse(&message, stream, "a malformed leave");
    if (auto client = find_client(message.from, *conn)) {
      if (auto feed = client->joined(*project_id)) feed->leave(client->id());
    }
    return;
  }
  const auto* who = body.if_contains("who");
  auto client = who && who->is_object() ? client_for(message, who->as_object()) : nullptr;
  if (!client) return refuse(&message, stream, kind + " without a valid sender");
  if (kind == "req") {
    const auto rid = cluster::get_string(body, "rid", 64);
    const auto text = cluster::get_string(body, "text", config_.limits.message_size);
    if (!rid || !text) return refuse(&message, stream, "a malformed request");
    // Exactly as if the client were this node's own: parsed, checked and answered the same way.
    hub_.on_message(
        client, *text,
        [weak = weak_from_this(), node = message.from, boot = message.boot, rid = *rid] {
          if (auto self = weak.lock())
            self->send_reply(node, boot, "done", json::object{{"rid", rid}});
        });
    return;
  }
  auto project = project_id ? hub_.find_project(*project_id) : nullptr;
  if (kind == "resub") {
    if (!project_id) return refuse(&message, stream, "resub without project");
    if (!project) {
      client->end_feed_of(*project_id);
      return;
    }
    asio::post(project->strand(), [project, client] {
      if (!project->deleted()) project->subscribe(client);
    });
    return;
  }
  if (kind == "catch_up") {
    const auto after = cluster::get_u64(body, "after");
    const auto max_frames = cluster::get_u64(body, "max_frames");
    const auto max_bytes = cluster::get_u64(body, "max_bytes");
    if (!project_id || !after || !max_frames || !max_bytes)
      return refuse(&message, stream, "a malformed catch_up");
    if (!project) {
      client->end_feed_of(*project_id);
      return;
    }
    project->request_catch_up(client, *after, std::min<std::uint64_t>(*max_frames, kMaxPageFrames),
                              std::min<std::uint64_t>(*max_bytes, kMaxPageBytes));
    return;
  }
  refuse(&message, stream, "unknown kind '" + kind.substr(0, 32) + "'");
}

void ClusterNode::answer_fill(const cluster::NodeMessage& message, const json::object& body) {
  const auto project_id = cluster::get_string(body, "project", kMaxIdBytes);
  const auto after = cluster::get_u64(body, "after");
  if (!project_id || !after) return refuse(&message, keys::commands(name_), "a malformed fill");
  auto project = hub_.find_project(*project_id);
  const auto answer = [weak = weak_from_this(), node = message.from, boot = message.boot,
                       id = *project_id](json::array frames, std::uint64_t last, bool more) {
    if (auto self = weak.lock())
      self->send_reply(
          node, boot, "filled",
          json::object{
              {"project", id}, {"last", last}, {"more", more}, {"frames", std::move(frames)}});
  };
  if (!project) return answer({}, 0, false);
  // History is read on the project's strand (the blocking pool), in seq order with its appends.
  asio::post(project->strand(), [project, after = *after, answer] {
    history::Query query;
    query.after_seq = after;
    query.limit = kFillEntries;
    query.max_bytes = kFillBytes;
    const auto page = project->read_history(query);
    json::array frames;
    for (const auto& entry : page.entries) {
      auto rebuilt = frame_from_history_entry(entry, project->id());
      if (rebuilt.seq != 0 && rebuilt.frame)
        frames.push_back(json::array{rebuilt.seq, json::string(*rebuilt.frame)});
    }
    answer(std::move(frames), project->last_seq(), page.has_more);
  });
}

}  // namespace pa::server
