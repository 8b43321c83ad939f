// The cluster's lifecycle, heartbeat, node table and directory (cluster_front.cpp: the front;
// cluster_owner.cpp: the owner).
#include "server/cluster_node.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <future>
#include <stdexcept>

#include "cluster/keys.hpp"
#include "server/hub.hpp"
#include "server/project.hpp"
#include "server/remote_client.hpp"
#include "version.hpp"

namespace pa::server {

namespace asio = boost::asio;
namespace json = boost::json;
namespace keys = cluster::keys;

namespace {
constexpr std::size_t kMinSecretBytes = 32;
constexpr std::uint64_t kControlStreamMaxlen = 10000;  // pa:cmd:* and pa:reply:*

bool valid_node_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (const char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-')
      return false;
  }
  return true;
}
}  // namespace

std::string ClusterNode::node_name_of(const config::Config& config) {
  if (!config.cluster.node_name.empty()) return config.cluster.node_name;
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) return "node";
  return host;
}

ClusterNode::ClusterNode(asio::io_context& io, const config::Config& config, Hub& hub)
    : io_(io),
      config_(config),
      hub_(hub),
      name_(node_name_of(config)),
      signer_(config.cluster.secret),
      url_([&] {
        std::string error;
        auto url = redis::RedisUrl::parse(config.cluster.redis_url, error);
        if (!url) throw std::runtime_error("cluster.redis_url: " + error);
        return *url;
      }()),
      shared_(std::make_shared<ClusterShared>(hub, config, signer_)),
      strand_(asio::make_strand(io)),
      tick_timer_(strand_) {
  if (!valid_node_name(name_)) {
    throw std::runtime_error("cluster.node_name \"" + name_.substr(0, 80) +
                             "\" is not a node name: use letters, digits, '.', '_' and '-' (at "
                             "most 64); set it with --cluster-node-name");
  }
  if (config.cluster.secret.size() < kMinSecretBytes) {
    throw std::runtime_error(
        "cluster.secret must be set, the same on every node, and at least 32 characters "
        "(e.g. openssl rand -hex 32) when cluster.redis_url is set");
  }
  // Made once here (it reads the CA file), shared by every connection to Redis.
  if (url_.tls) tls_context_ = redis::make_tls_context(config.cluster.tls_ca_file);
}

ClusterNode::~ClusterNode() = default;

std::shared_ptr<redis::Connection> ClusterNode::make_connection(
    boost::asio::any_io_executor executor) {
  redis::ClientOptions options;
  options.tls_ca_file = config_.cluster.tls_ca_file;
  options.tls_context = tls_context_;
  return redis::Connection::create(std::move(executor), url_, options);
}

void ClusterNode::share_vapid_key() {
  shared_->share_vapid_key(
      [this](boost::asio::any_io_executor executor) { return make_connection(executor); });
}

void ClusterNode::start() {
  auto self = shared_from_this();
  const auto factory = [weak = std::weak_ptr<ClusterNode>(self)] {
    auto node = weak.lock();
    return node ? node->make_connection(node->io_.get_executor()) : nullptr;
  };
  spdlog::info("cluster: node {} joins the cluster on {}", name_, url_.redacted());
  // A reader whose entries go to `handle` of this node (while it lives).
  using Handle = void (ClusterNode::*)(const std::string&, const std::string&, const redis::Reply&);
  const auto reader = [&](const char* name, Handle handle) {
    return std::make_shared<cluster::StreamReader>(
        io_.get_executor(), factory, name,
        [weak = std::weak_ptr<ClusterNode>(self), handle](
            const std::string& stream, const std::string& id, const redis::Reply& fields) {
          if (auto node = weak.lock()) ((*node).*handle)(stream, id, fields);
        });
  };
  link_ = std::make_shared<cluster::RedisLink>(io_.get_executor(), factory, "commands");
  shared_->set_link(link_);
  replies_ = reader("replies", &ClusterNode::on_reply);
  replies_->on_reconnect([weak = std::weak_ptr<ClusterNode>(self)] {
    if (auto node = weak.lock()) node->resync_mirrors();
  });
  commands_ = reader("command group", &ClusterNode::on_command);
  link_->start([weak = std::weak_ptr<ClusterNode>(self)] {
    if (auto node = weak.lock()) node->on_command_link_up();
  });
  commands_->start_group({keys::commands(name_), std::string(keys::kCommandGroup), name_});
  asio::post(strand_, [self] { self->tick(); });
}

void ClusterNode::on_command_link_up() {
  // The first time: the reply stream is read from its end now (what is in it is for an earlier
  // run of this node). Later the reader resumes from the last entry it saw by itself.
  bool first = false;
  {
    std::lock_guard lock(mutex_);
    first = !replies_started_;
    replies_started_ = true;
  }
  if (first) {
    link_->command({"XREVRANGE", keys::replies(name_), "+", "-", "COUNT", "1"},
                   [self = shared_from_this()](std::error_code ec, redis::Reply reply) {
                     self->replies_->add(keys::replies(self->name_),
                                         ec ? "0-0" : cluster::last_entry_id(reply));
                     self->replies_->start_streams();
                   });
  }
  // Broadcasts that could not be written while Redis was away: a marker with the project's
  // last seq makes every node that mirrors it fill in from history.
  std::set<std::string> unsent;
  {
    std::lock_guard lock(mutex_);
    unsent.swap(unsent_events_);
  }
  for (const auto& id : unsent) {
    auto project = hub_.find_project(id);
    if (!project) continue;
    asio::post(project->strand(), [self = shared_from_this(), project] {
      self->publish_event(project->id(), project->last_seq(), std::nullopt, nullptr);
    });
  }
  // Closed connections the owners did not hear of.
  std::set<std::pair<std::string, std::uint64_t>> closes;
  {
    std::lock_guard lock(mutex_);
    closes.swap(unsent_closes_);
  }
  for (const auto& [node, connection_id] : closes) send_closed(node, connection_id);
  // A fill asked while this link was down never left: every mirror asks again.
  resync_mirrors();
  asio::post(strand_, [self = shared_from_this()] { self->tick(); });
}

void ClusterNode::resync_mirrors() {
  // Entries may have been lost with a Redis restart (or a fill never sent): every mirror checks
  // with its owner.
  std::vector<std::shared_ptr<cluster::RemoteFeed>> mirrors;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, slot] : mirrors_) {
      if (slot.reading) mirrors.push_back(slot.feed);
    }
  }
  for (const auto& mirror : mirrors) mirror->resync();
}

void ClusterNode::stop() {
  // Shared: the answer may come after the wait below gave up.
  auto gone = std::make_shared<std::promise<void>>();
  auto future = gone->get_future();
  asio::post(strand_, [self = shared_from_this()] {
    self->stopped_ = true;
    self->tick_timer_.cancel();
  });
  // The heartbeat goes at once, so the other nodes show this one's projects UNAVAILABLE now
  // rather than when its key expires.
  if (link_) {
    link_->command({"DEL", keys::node(name_)},
                   [gone](std::error_code, redis::Reply) { gone->set_value(); });
    future.wait_for(std::chrono::seconds(2));
  }
  if (replies_) replies_->stop();
  if (commands_) commands_->stop();
  if (link_) link_->stop();
}

// --- heartbeat, node table, directory ---------------------------------------------------------

void ClusterNode::schedule_tick() {
  BOOST_ASSERT(strand_.running_in_this_thread());
  if (stopped_) return;
  tick_timer_.expires_after(
      std::chrono::duration_cast<std::chrono::milliseconds>(config_.cluster.heartbeat_ttl) / 4);
  tick_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec) self->tick();
  });
}

void ClusterNode::tick() {
  BOOST_ASSERT(strand_.running_in_this_thread());
  if (stopped_) return;
  tick_timer_.cancel();
  const auto ttl_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(config_.cluster.heartbeat_ttl).count();
  const json::object heartbeat{{"boot", boot_}, {"version", pa::kVersion}};
  link_->command(
      {"SET", keys::node(name_), json::serialize(heartbeat), "PX", std::to_string(ttl_ms)},
      [](std::error_code, redis::Reply) {});
  link_->command({"SADD", std::string(keys::kNodes), name_}, [](std::error_code, redis::Reply) {});
  publish_directory();
  shared_->sync();
  check_nodes();
  drop_idle_mirrors();
  schedule_tick();
}

void ClusterNode::check_nodes() {
  link_->command({"SMEMBERS", std::string(keys::kNodes)}, [self = shared_from_this()](
                                                              std::error_code ec,
                                                              redis::Reply names) {
    if (ec || names.type != redis::Reply::Type::kArray) return;
    std::vector<std::string> argv{"MGET"};
    std::vector<std::string> listed;
    for (const auto& name : names.elements) {
      if (name.type != redis::Reply::Type::kString || !valid_node_name(name.str)) continue;
      listed.push_back(name.str);
      argv.push_back(keys::node(name.str));
    }
    if (listed.empty()) return;
    self->link_->command(std::move(argv), [self, listed](std::error_code ec2, redis::Reply beats) {
      if (ec2 || beats.type != redis::Reply::Type::kArray || beats.elements.size() != listed.size())
        return;
      std::map<std::string, std::string> boots;
      for (std::size_t i = 0; i < listed.size(); ++i) {
        std::string boot;
        if (beats.elements[i].type == redis::Reply::Type::kString) {
          boost::system::error_code jec;
          const auto value = json::parse(beats.elements[i].str, jec);
          if (!jec && value.is_object()) {
            if (const auto* b = value.as_object().if_contains("boot"); b && b->is_string())
              boot = std::string(b->as_string());
          }
        }
        boots[listed[i]] = boot;
      }
      asio::post(self->strand_,
                 [self, boots = std::move(boots)]() mutable { self->on_nodes(std::move(boots)); });
    });
  });
}

void ClusterNode::on_nodes(std::map<std::string, std::string> boots) {
  BOOST_ASSERT(strand_.running_in_this_thread());
  std::vector<std::string> down, up;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [name, boot] : boots) {
      if (name == name_) continue;
      auto [it, added] = nodes_.try_emplace(name);
      NodeState& state = it->second;
      const bool live = !boot.empty();
      if (added) {
        state = {boot, live};
        continue;
      }
      if (state.live && (!live || boot != state.boot)) down.push_back(name);
      if (live && (!state.live || boot != state.boot)) up.push_back(name);
      state = {boot, live};
    }
  }
  for (const auto& name : down) node_went_down(name);
  for (const auto& name : up) node_came_up(name);
}

bool ClusterNode::node_live(const std::string& node) const {
  std::lock_guard lock(mutex_);
  const auto it = nodes_.find(node);
  return it != nodes_.end() && it->second.live;
}

void ClusterNode::node_went_down(const std::string& node) {
  spdlog::warn(
      "cluster: node {} stopped answering (no heartbeat for {} s): its projects are "
      "UNAVAILABLE until it returns",
      node, config_.cluster.heartbeat_ttl.count());
  std::vector<std::shared_ptr<cluster::RemoteFeed>> mirrors;
  std::map<std::string, json::object> entries;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, slot] : mirrors_) {
      if (slot.feed->node() != node) continue;
      mirrors.push_back(slot.feed);
      const auto entry = directory_.find(id);
      entries[id] = entry != directory_.end() ? entry->second : json::object{{"id", id}};
    }
  }
  for (const auto& mirror : mirrors) {
    json::object data = entries[mirror->project_id()];
    data["state"] = "UNAVAILABLE";
    data["node"] = node;
    mirror->notice(std::make_shared<const std::string>(protocol::serialize(
        protocol::Outgoing{"project_state", mirror->project_id(), std::nullopt, std::nullopt, {}},
        data)));
  }
  fail_pending_of(node);
  drop_clients_of(node, {});
}

void ClusterNode::node_came_up(const std::string& node) {
  spdlog::info("cluster: node {} is up", node);
  std::string boot;
  std::vector<std::shared_ptr<cluster::RemoteFeed>> mirrors;
  {
    std::lock_guard lock(mutex_);
    boot = nodes_[node].boot;
    for (const auto& [id, slot] : mirrors_) {
      if (slot.feed->node() == node) mirrors.push_back(slot.feed);
    }
  }
  drop_clients_of(node, boot);  // those of its earlier run
  // A restarted owner no longer knows this node's subscribers: they join again, then each mirror
  // fills in what it missed meanwhile.
  for (const auto& mirror : mirrors) {
    for (const auto& connection : mirror->subscribers()) {
      json::object body{{"who", who_of(*connection)}, {"project", mirror->project_id()}};
      send_command(node, "resub", std::move(body));
    }
    mirror->resync();
  }
}

std::string ClusterNode::directory_entry(const projects::ProjectInfo& info) const {
  json::object entry = projects::to_json(info);
  entry["node"] = name_;
  return json::serialize(entry);
}

void ClusterNode::publish_directory() {
  std::vector<std::string> argv{"HSET", std::string(keys::kProjects)};
  for (const auto& project : hub_.projects_.all()) {
    argv.push_back(project->id());
    argv.push_back(directory_entry(project->snapshot()));
  }
  if (argv.size() > 2) link_->command(std::move(argv), [](std::error_code, redis::Reply) {});
}

void ClusterNode::project_changed(const projects::ProjectInfo& info) {
  if (!link_) return;
  link_->command({"HSET", std::string(keys::kProjects), info.id, directory_entry(info)},
                 [](std::error_code, redis::Reply) {});
}

void ClusterNode::project_removed(const std::string& project_id) {
  if (!link_) return;
  link_->command({"HDEL", std::string(keys::kProjects), project_id},
                 [](std::error_code, redis::Reply) {});
  link_->command({"DEL", keys::events(project_id)}, [](std::error_code, redis::Reply) {});
}

json::object ClusterNode::health() const {
  json::array nodes;
  std::lock_guard lock(mutex_);
  nodes.push_back(json::object{{"name", name_}, {"state", "up"}, {"self", true}});
  for (const auto& [name, state] : nodes_) {
    nodes.push_back(json::object{{"name", name}, {"state", state.live ? "up" : "unavailable"}});
  }
  return json::object{{"node", name_},
                      {"redis", link_ && link_->up() ? "up" : "down"},
                      {"nodes", std::move(nodes)}};
}

// --- sending ----------------------------------------------------------------------------------

void ClusterNode::send(const std::string& stream, cluster::NodeMessage message,
                       std::uint64_t maxlen, std::function<void(bool)> done) {
  message.from = name_;
  message.boot = boot_;
  link_->command(signer_.xadd(stream, std::move(message), maxlen),
                 [done = std::move(done)](std::error_code ec, redis::Reply reply) {
                   if (done) done(!ec && !reply.is_error());
                 });
}

void ClusterNode::send_command(const std::string& node, std::string kind, json::object body,
                               std::function<void(bool)> done) {
  send(keys::commands(node), {std::move(kind), {}, {}, 0, json::serialize(body), {}, {}},
       kControlStreamMaxlen, std::move(done));
}

void ClusterNode::send_reply(const std::string& node, const std::string& to_boot, std::string kind,
                             json::object body, std::string frame) {
  body["to"] = to_boot;
  send(keys::replies(node),
       {std::move(kind), {}, {}, 0, json::serialize(body), std::move(frame), {}},
       kControlStreamMaxlen);
}

void ClusterNode::refuse(const cluster::NodeMessage* message, const std::string& stream,
                         const std::string& why) {
  spdlog::warn("cluster: refused an entry on {}{}: {}", stream,
               message ? " from node " + message->from.substr(0, 64) : std::string(), why);
}

}  // namespace pa::server
