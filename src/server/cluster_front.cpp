// The cluster's front: this node's clients using other nodes' projects. Requests are forwarded to
// the owner (pa:cmd:<owner>) with who sent them; the owner's answers come back on this node's
// reply stream and go to the client's connection; broadcasts come from each project's event
// stream through its mirror (RemoteFeed).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/json/serialize.hpp>

#include "cluster/body.hpp"
#include "cluster/keys.hpp"
#include "protocol/error_codes.hpp"
#include "server/cluster_node.hpp"
#include "server/hub.hpp"

namespace pa::server {

namespace asio = boost::asio;
namespace json = boost::json;
namespace keys = cluster::keys;
using protocol::ErrorCode;

// A forwarded request: the client's next message waits for it (its `done`) until the owner's
// `done` arrives, or the time is up.
struct ClusterNode::Pending {
  Request request;
  std::string node;
  std::string project_id;
  asio::steady_timer timer;
  Pending(Request r, std::string n, std::string p, asio::io_context& io)
      : request(std::move(r)), node(std::move(n)), project_id(std::move(p)), timer(io) {}
};

namespace {
constexpr std::size_t kMaxIdBytes = 128;

protocol::Error unavailable(const std::string& node, const std::string& project_id,
                            const std::string& why) {
  json::object details{{"node", node}};
  if (!project_id.empty()) details["project_id"] = project_id;
  return protocol::make_error(ErrorCode::kNodeUnavailable,
                              "Node " + node + " " + why +
                                  "; its projects come back when it does (project_list shows "
                                  "them UNAVAILABLE meanwhile). Try again later.",
                              std::move(details));
}
}  // namespace

bool ClusterNode::from_other_node(const Connection& connection) {
  return dynamic_cast<const RemoteClient*>(&connection) != nullptr;
}

ClusterNode::Who ClusterNode::who_of(const Connection& connection) const {
  const auto& identity = connection.identity();
  json::array caps;
  for (const auto& cap : connection.profile().capabilities()) caps.emplace_back(cap);
  return json::object{{"conn", connection.id()},
                      {"role", devices::role_name(identity.role)},
                      {"device_id", identity.device_id},
                      {"device_name", identity.device_name},
                      {"client_name", connection.client_name()},
                      {"caps", std::move(caps)}};
}

bool ClusterNode::route(Request& request, const std::string& text) {
  if (from_other_node(*request.connection)) return false;  // the owner answers it itself
  // project_create names its node in data.node; client_focus is about this node's pushes.
  if (!request.message.project_id || request.message.type == "project_create" ||
      request.message.type == "client_focus")
    return false;
  const std::string project_id = *request.message.project_id;
  if (hub_.find_project(project_id)) return false;
  resolve_owner(project_id, [self = shared_from_this(), request = std::move(request), text,
                             project_id](std::optional<std::string> node, bool reachable) mutable {
    if (!node || *node == self->name_) {
      if (!reachable) {
        request.fail(protocol::make_error(
            ErrorCode::kNodeUnavailable,
            "Project " + project_id +
                " is not on this node and the cluster's directory (Redis) cannot be reached "
                "now; try again in a few seconds",
            json::object{{"project_id", project_id}}));
        return;
      }
      self->hub_.dispatch(std::move(request));  // PROJECT_NOT_FOUND, as a single host says
      return;
    }
    self->forward(std::move(request), text, *node, project_id);
  });
  return true;
}

void ClusterNode::resolve_owner(const std::string& project_id,
                                std::function<void(std::optional<std::string>, bool)> done) {
  {
    std::lock_guard lock(mutex_);
    const auto it = directory_.find(project_id);
    if (it != directory_.end()) {
      if (const auto node = cluster::get_string(it->second, "node", 64)) {
        auto answer = *node;
        // Answer outside the lock.
        asio::post(io_, [done = std::move(done), answer] { done(answer, true); });
        return;
      }
    }
  }
  link_->command({"HGET", std::string(keys::kProjects), project_id},
                 [self = shared_from_this(), project_id, done = std::move(done)](
                     std::error_code ec, redis::Reply reply) {
                   if (ec || reply.is_error()) return done(std::nullopt, false);
                   if (reply.type != redis::Reply::Type::kString) return done(std::nullopt, true);
                   auto entry = cluster::parse_body(reply.str, 1u << 20);
                   auto node = entry ? cluster::get_string(*entry, "node", 64) : std::nullopt;
                   if (entry && node) {
                     std::lock_guard lock(self->mutex_);
                     self->directory_[project_id] = std::move(*entry);
                   }
                   done(node, true);
                 });
}

void ClusterNode::forward(Request request, const std::string& text, const std::string& node,
                          const std::string& project_id) {
  if (!node_live(node)) {
    request.fail(unavailable(node, project_id, "is unavailable (no heartbeat)"));
    return;
  }
  const std::string rid = cluster::random_id();
  const auto connection_id = request.connection->id();
  json::object body{{"rid", rid}, {"who", who_of(*request.connection)}, {"text", text}};
  auto pending = std::make_shared<Pending>(std::move(request), node, project_id, io_);
  {
    std::lock_guard lock(mutex_);
    pending_[rid] = pending;
    used_nodes_[connection_id].insert(node);
  }
  const auto take = [weak = std::weak_ptr<ClusterNode>(shared_from_this()),
                     rid]() -> std::shared_ptr<Pending> {
    auto self = weak.lock();
    if (!self) return nullptr;
    std::lock_guard lock(self->mutex_);
    const auto it = self->pending_.find(rid);
    if (it == self->pending_.end()) return nullptr;
    auto found = it->second;
    self->pending_.erase(it);
    return found;
  };
  pending->timer.expires_after(config_.cluster.request_timeout);
  pending->timer.async_wait(
      [take, node, project_id,
       seconds = config_.cluster.request_timeout.count()](boost::system::error_code ec) {
        if (ec) return;
        if (auto timed_out = take()) {
          timed_out->request.fail(
              unavailable(node, project_id, "did not answer in " + std::to_string(seconds) + " s"));
        }
      });
  send_command(node, "req", std::move(body), [take, node, project_id](bool ok) {
    if (ok) return;
    if (auto failed = take()) {
      failed->timer.cancel();
      failed->request.fail(unavailable(node, project_id, "cannot be reached (Redis is down)"));
    }
  });
}

void ClusterNode::fail_pending_of(const std::string& node) {
  std::vector<std::shared_ptr<Pending>> failed;
  {
    std::lock_guard lock(mutex_);
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->second->node == node) {
        failed.push_back(it->second);
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (const auto& pending : failed) {
    pending->timer.cancel();
    pending->request.fail(unavailable(node, pending->project_id, "stopped answering"));
  }
}

void ClusterNode::forward_create(Request request, std::string text, std::string node) {
  bool known = false;
  {
    std::lock_guard lock(mutex_);
    known = nodes_.count(node) != 0;
  }
  if (!known) {
    json::array names;
    {
      std::lock_guard lock(mutex_);
      names.emplace_back(name_);
      for (const auto& [name, state] : nodes_) names.emplace_back(name);
    }
    request.fail(protocol::make_error(
        ErrorCode::kInvalidMessage, "data.node: no node named '" + node + "' in this cluster",
        json::object{{"field", "data.node"}, {"allowed", std::move(names)}}));
    return;
  }
  forward(std::move(request), text, node, {});
}

void ClusterNode::claim_create_key(Request request, std::string text, const std::string& key,
                                   std::function<void(Request)> here) {
  // The first node to take the key creates the project; a resend through another node goes
  // there and finds it in that node's idempotency keys.
  const std::string scope = keys::idempotency("project_create:" + key);
  link_->command({"SET", scope, name_, "NX", "GET", "EX", "86400"},
                 [self = shared_from_this(), request = std::move(request), text = std::move(text),
                  here = std::move(here)](std::error_code ec, redis::Reply reply) mutable {
                   const bool claimed = !ec && reply.is_nil();
                   if (ec || reply.is_error() || claimed || reply.str == self->name_) {
                     // Redis away: this node decides alone (as a single host would).
                     here(std::move(request));
                     return;
                   }
                   self->forward_create(std::move(request), std::move(text), reply.str);
                 });
}

void ClusterNode::list_projects(Request request, json::array local) {
  for (auto& entry : local) entry.as_object()["node"] = name_;
  link_->command({"HGETALL", std::string(keys::kProjects)},
                 [self = shared_from_this(), request = std::move(request),
                  local = std::move(local)](std::error_code ec, redis::Reply reply) mutable {
                   bool partial = ec || reply.type != redis::Reply::Type::kArray;
                   if (!partial) {
                     std::lock_guard lock(self->mutex_);
                     for (std::size_t i = 0; i + 1 < reply.elements.size(); i += 2) {
                       auto entry = cluster::parse_body(reply.elements[i + 1].str, 1u << 20);
                       if (!entry) continue;
                       const auto node = cluster::get_string(*entry, "node", 64);
                       if (!node || *node == self->name_)
                         continue;  // ours are listed as they are now
                       self->directory_[reply.elements[i].str] = *entry;
                       const auto state = self->nodes_.find(*node);
                       if (state == self->nodes_.end() || !state->second.live)
                         (*entry)["state"] = "UNAVAILABLE";
                       local.push_back(std::move(*entry));
                     }
                   }
                   std::sort(local.begin(), local.end(),
                             [](const json::value& a, const json::value& b) {
                               const auto* x = a.as_object().if_contains("created_at");
                               const auto* y = b.as_object().if_contains("created_at");
                               if (!x || !y || !x->is_string() || !y->is_string())
                                 return x != nullptr && y == nullptr;
                               return x->get_string() < y->get_string();
                             });
                   json::object data{{"projects", std::move(local)}};
                   if (partial) data["partial"] = true;  // Redis away: only this node's projects
                   request.reply("project_list_response", data);
                 });
}

void ClusterNode::connection_closed(std::uint64_t connection_id) {
  std::set<std::string> nodes;
  {
    std::lock_guard lock(mutex_);
    const auto it = used_nodes_.find(connection_id);
    if (it == used_nodes_.end()) return;
    nodes = std::move(it->second);
    used_nodes_.erase(it);
  }
  for (const auto& node : nodes) send_closed(node, connection_id);
}

void ClusterNode::send_closed(const std::string& node, std::uint64_t connection_id) {
  // Not sent (Redis away): sent when the link is back, or the owner would keep what stood for
  // the client (its subscriptions, a permission request waiting for it) until this node's
  // heartbeat ends.
  send_command(node, "closed", json::object{{"conn", connection_id}},
               [weak = weak_from_this(), node, connection_id](bool ok) {
                 auto self = weak.lock();
                 if (ok || !self) return;
                 std::lock_guard lock(self->mutex_);
                 self->unsent_closes_.emplace(node, connection_id);
               });
}

// --- mirrors ----------------------------------------------------------------------------------

std::shared_ptr<cluster::RemoteFeed> ClusterNode::mirror_of(const std::string& project_id) const {
  std::lock_guard lock(mutex_);
  const auto it = mirrors_.find(project_id);
  return it == mirrors_.end() ? nullptr : it->second.feed;
}

void ClusterNode::ensure_mirror(const std::string& project_id, const std::string& node,
                                std::function<void(std::shared_ptr<cluster::RemoteFeed>)> ready) {
  std::shared_ptr<cluster::RemoteFeed> feed;
  {
    std::lock_guard lock(mutex_);
    auto it = mirrors_.find(project_id);
    if (it != mirrors_.end() && it->second.feed->node() == node) {
      if (!it->second.reading) {
        it->second.waiting.push_back(std::move(ready));
        return;
      }
      feed = it->second.feed;
    }
  }
  if (feed) {
    ready(feed);
    return;
  }
  std::weak_ptr<ClusterNode> weak = shared_from_this();
  cluster::RemoteFeed::Owner owner;
  owner.catch_up = [weak, node, project_id](const std::shared_ptr<Connection>& connection,
                                            std::uint64_t after, std::size_t max_frames,
                                            std::size_t max_bytes) {
    if (auto self = weak.lock())
      self->send_command(node, "catch_up",
                         json::object{{"who", self->who_of(*connection)},
                                      {"project", project_id},
                                      {"after", after},
                                      {"max_frames", max_frames},
                                      {"max_bytes", max_bytes}});
  };
  owner.left = [weak, node, project_id](std::uint64_t connection_id) {
    if (auto self = weak.lock())
      self->send_command(node, "leave",
                         json::object{{"conn", connection_id}, {"project", project_id}});
  };
  auto mirror = std::make_shared<cluster::RemoteFeed>(io_.get_executor(), project_id, node,
                                                      cluster::RemoteFeed::Owner{});
  owner.fill = [weak,
                mirror_weak = std::weak_ptr<cluster::RemoteFeed>(mirror)](std::uint64_t after) {
    auto self = weak.lock();
    auto remote = mirror_weak.lock();
    if (self && remote) self->fill(remote, after);
  };
  mirror->set_owner(std::move(owner));
  {
    std::lock_guard lock(mutex_);
    auto& slot = mirrors_[project_id];
    slot = MirrorSlot{};
    slot.feed = mirror;
    slot.waiting.push_back(std::move(ready));
  }
  // Read the stream from its end now; the fill after the first join covers what came before.
  link_->command({"XREVRANGE", keys::events(project_id), "+", "-", "COUNT", "1"},
                 [weak, project_id, mirror](std::error_code ec, redis::Reply reply) {
                   auto self = weak.lock();
                   if (!self) return;
                   self->replies_->add(keys::events(project_id),
                                       ec ? "0-0" : cluster::last_entry_id(reply));
                   // Wake the read in flight so it takes the new stream.
                   self->send_reply(self->name_, self->boot_, "wake", {});
                   std::vector<std::function<void(std::shared_ptr<cluster::RemoteFeed>)>> waiting;
                   {
                     std::lock_guard lock(self->mutex_);
                     auto it = self->mirrors_.find(project_id);
                     if (it == self->mirrors_.end() || it->second.feed != mirror) return;
                     it->second.reading = true;
                     waiting.swap(it->second.waiting);
                   }
                   for (auto& callback : waiting) callback(mirror);
                   mirror->resync();
                 });
}

void ClusterNode::fill(const std::shared_ptr<cluster::RemoteFeed>& mirror, std::uint64_t after) {
  // Not sent (Redis away): the mirror asks again when Redis is back (resync).
  send_command(mirror->node(), "fill",
               json::object{{"project", mirror->project_id()}, {"after", after}});
}

void ClusterNode::drop_idle_mirrors() {
  std::vector<std::string> dropped;
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mutex_);
    for (auto it = mirrors_.begin(); it != mirrors_.end();) {
      auto& slot = it->second;
      if (!slot.reading || slot.feed->subscriber_count() != 0) {
        slot.idle_since.reset();
        ++it;
        continue;
      }
      if (!slot.idle_since) slot.idle_since = now;
      if (now - *slot.idle_since < std::chrono::minutes(1)) {
        ++it;
        continue;
      }
      dropped.push_back(it->first);
      it = mirrors_.erase(it);
    }
  }
  for (const auto& id : dropped) replies_->remove(keys::events(id));
}

// --- what comes back --------------------------------------------------------------------------

void ClusterNode::on_reply(const std::string& stream, const std::string& /*id*/,
                           const redis::Reply& fields) {
  if (stream.rfind(keys::kEventsPrefix, 0) == 0) {
    on_event(stream, fields);
    return;
  }
  std::string why;
  auto message = signer_.open(stream, fields, why);
  if (!message) {
    refuse(nullptr, stream, why);
    return;
  }
  auto body = cluster::parse_body(message->body.empty() ? "{}" : message->body);
  if (!body) {
    refuse(&*message, stream, "the body is not a JSON object");
    return;
  }
  if (cluster::get_string(*body, "to", 64) != boot_) return;  // for an earlier run of this node
  handle_reply(*message, *body);
}

void ClusterNode::handle_reply(const cluster::NodeMessage& message, const json::object& body) {
  const std::string& kind = message.kind;
  const std::string stream = keys::replies(name_);
  if (kind == "wake") return;
  if (kind == "done") {
    const auto rid = cluster::get_string(body, "rid", 64);
    if (!rid) return refuse(&message, stream, "done without rid");
    std::shared_ptr<Pending> pending;
    {
      std::lock_guard lock(mutex_);
      const auto it = pending_.find(*rid);
      if (it == pending_.end()) return;  // timed out already
      pending = it->second;
      pending_.erase(it);
    }
    pending->timer.cancel();
    // Dropping the request releases the client's next message (its `done`).
    return;
  }
  const auto project = cluster::get_string(body, "project", kMaxIdBytes);
  if (kind == "filled") {
    const auto last = cluster::get_u64(body, "last");
    const auto more = cluster::get_bool(body, "more");
    auto frames = cluster::seq_frames(body.if_contains("frames"));
    auto mirror = project ? mirror_of(*project) : nullptr;
    if (!project || !last || !more || !frames) return refuse(&message, stream, "a malformed fill");
    if (!mirror || mirror->node() != message.from) return;
    std::vector<cluster::SeqFrame> list;
    for (auto& [seq, text] : *frames) list.push_back({seq, std::nullopt, std::move(text)});
    mirror->on_fill(std::move(list), *last, *more);
    return;
  }
  const auto conn = cluster::get_u64(body, "conn");
  if (!conn) return refuse(&message, stream, kind + " without conn");
  auto connection = hub_.connections_.find(*conn);
  if (!connection) return;  // closed meanwhile
  if (kind == "frame" || kind == "seq") {
    if (!cluster::is_client_frame(message.frame))
      return refuse(&message, stream, "a frame that is not a JSON message");
    auto text = std::make_shared<const std::string>(message.frame);
    const auto seq = cluster::get_u64(body, "seq");
    auto mirror = project ? mirror_of(*project) : nullptr;
    if (kind == "seq" && seq && mirror) {
      connection->send_seq(mirror, *seq, std::move(text), true);
    } else {
      connection->send(std::move(text));
    }
    return;
  }
  if (kind == "joined") {
    const auto last_seq = cluster::get_u64(body, "last_seq");
    if (!project || !last_seq) return refuse(&message, stream, "a malformed join");
    {
      std::lock_guard lock(mutex_);
      auto& entry = directory_[*project];
      entry["node"] = message.from;
    }
    ensure_mirror(*project, message.from,
                  [connection, last_seq = *last_seq](std::shared_ptr<cluster::RemoteFeed> mirror) {
                    mirror->subscribe(connection, last_seq);
                  });
    return;
  }
  if (kind == "end") {
    if (!project) return refuse(&message, stream, "end without project");
    if (auto mirror = mirror_of(*project)) mirror->drop(*conn);
    return;
  }
  if (kind == "page") {
    const auto through = cluster::get_u64(body, "through");
    const auto live = cluster::get_bool(body, "live");
    auto frames = cluster::seq_frames(body.if_contains("frames"));
    auto mirror = project ? mirror_of(*project) : nullptr;
    if (!project || !through || !live || !frames)
      return refuse(&message, stream, "a malformed page");
    if (!mirror) return;
    CatchUpPage page;
    page.through_seq = *through;
    page.live = *live;
    page.frames = std::move(*frames);
    connection->deliver_page(mirror.get(), std::move(page));
    mirror->after_page(connection, *through, *live);
    return;
  }
  if (kind == "close") {
    const auto code = cluster::get_u64(body, "code");
    const auto reason = cluster::get_string(body, "reason", 123);
    if (!code || *code < 1000 || *code > 4999 || !reason)
      return refuse(&message, stream, "a malformed close");
    connection->close(static_cast<std::uint16_t>(*code), *reason);
    return;
  }
  refuse(&message, stream, "unknown kind '" + kind.substr(0, 32) + "'");
}

void ClusterNode::on_event(const std::string& stream, const redis::Reply& fields) {
  const std::string project_id = stream.substr(keys::kEventsPrefix.size());
  auto mirror = mirror_of(project_id);
  if (!mirror) return;
  std::string why;
  auto message = signer_.open(stream, fields, why);
  if (!message) return refuse(nullptr, stream, why);
  if (message->from != mirror->node())
    return refuse(&*message, stream, "an event from a node that does not own the project");
  auto body = cluster::parse_body(message->body, 4096);
  const auto seq = body ? cluster::get_u64(*body, "seq") : std::nullopt;
  if (message->kind != "ev" || !seq) return refuse(&*message, stream, "a malformed event");
  cluster::SeqFrame frame;
  frame.seq = *seq;
  frame.prev = cluster::get_u64(*body, "prev");
  if (!message->frame.empty()) {
    if (!cluster::is_client_frame(message->frame))
      return refuse(&*message, stream, "an event that is not a JSON message");
    frame.text = std::make_shared<const std::string>(std::move(message->frame));
  }
  mirror->on_event(std::move(frame));
}

}  // namespace pa::server
