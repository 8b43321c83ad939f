// This server as one node of a cluster (issue 20; docs/architecture.md, "The cluster"). Off
// unless cluster.redis_url is set: then the hub makes one, and
//  - as an owner, it publishes its projects in the directory (pa:projects), its heartbeat
//    (pa:node:<name>), every broadcast of its projects to their event streams (pa:ev:<id>), and
//    carries out the requests other nodes forward to it (pa:cmd:<name>) for their clients, each
//    through a RemoteClient standing for that client;
//  - as a front, it lists every node's projects, forwards its clients' requests on another
//    node's projects to that node and passes the answers back (pa:reply:<name>), and feeds its
//    clients that joined such a project from a RemoteFeed reading the project's event stream.
// What every node shares besides projects (devices, pairing codes, push) is ClusterShared's.
// Every node-to-node message is signed with the cluster secret (NodeSigner); what fails the
// check is refused and logged. Commands are checked like client input (the owner parses the
// forwarded message exactly as if its own client had sent it).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cluster/node_message.hpp"
#include "cluster/redis_link.hpp"
#include "cluster/remote_feed.hpp"
#include "cluster/stream_reader.hpp"
#include "config/config.hpp"
#include "projects/project_info.hpp"
#include "server/cluster_shared.hpp"
#include "server/remote_client.hpp"
#include "server/request.hpp"

namespace pa::server {

class Hub;
class Project;
class RemoteClient;

class ClusterNode : public std::enable_shared_from_this<ClusterNode> {
 public:
  // Checks the cluster settings (URL, secret, node name); throws std::runtime_error with a
  // one-line message for the operator (start-up only).
  ClusterNode(boost::asio::io_context& io, const config::Config& config, Hub& hub);
  ~ClusterNode();

  // cluster.node_name, else the host name; letters, digits, '.', '_', '-' (at most 64).
  static std::string node_name_of(const config::Config& config);
  const std::string& name() const { return name_; }

  void start();  // connects to Redis (in the background) and starts the heartbeat
  void stop();   // shutdown: the heartbeat key goes at once, so others see this node leave

  // --- the front: requests of this node's clients -----------------------------------------
  // Takes the request when its project is not one of this node's: forwards it to the owner
  // (or answers PROJECT_NOT_FOUND / NODE_UNAVAILABLE). False: handle it here.
  bool route(Request& request, const std::string& text);
  // project_create with data.node naming another node (or an idempotency key another node
  // already used): forwarded there.
  void forward_create(Request request, std::string text, std::string node);
  // project_create with an idempotency key: the node that first took the key creates the
  // project, so a resend through another node finds it (calls `here` when that is this node).
  void claim_create_key(Request request, std::string text, const std::string& key,
                        std::function<void(Request)> here);
  // project_list: this node's projects (`local`, each gets `node`) and the others' from the
  // directory, each node's UNAVAILABLE while it is.
  void list_projects(Request request, boost::json::array local);
  // A client connection of this node closed: the owners it used drop what stood for it.
  void connection_closed(std::uint64_t connection_id);
  void send_closed(const std::string& node, std::uint64_t connection_id);
  // Whether `connection` stands for another node's client (its requests are not routed on).
  static bool from_other_node(const Connection& connection);

  // --- the owner: this node's projects ----------------------------------------------------
  // Called when a project is opened or created here: its broadcasts go to its event stream.
  void attach(Project& project);
  void project_changed(const projects::ProjectInfo& info);
  void project_removed(const std::string& project_id);

  // What every node shares besides projects: devices, pairing codes, push (cluster_shared.hpp).
  ClusterShared& shared() { return *shared_; }
  // Start-up, blocking, before the notifier is made: ClusterShared::share_vapid_key.
  void share_vapid_key();

  // For health: {"node", "redis": "up"|"down", "nodes": [{name, state}]}.
  boost::json::object health() const;

 private:
  friend class RemoteClient;
  struct Pending;  // a forwarded request waiting for its owner's `done`
  struct MirrorSlot {
    std::shared_ptr<cluster::RemoteFeed> feed;
    bool reading = false;  // its stream is read; until then joins wait in `waiting`
    std::vector<std::function<void(std::shared_ptr<cluster::RemoteFeed>)>> waiting;
    std::optional<std::chrono::steady_clock::time_point> idle_since;  // no subscriber since
  };
  struct NodeState {
    std::string boot;
    bool live = false;
  };
  using Who = boost::json::object;  // who a forwarded request is from (see who_of)

  // Redis
  std::shared_ptr<redis::Connection> make_connection(boost::asio::any_io_executor executor);
  void on_command_link_up();
  // After a Redis connection came back: every mirror asks its owner for what it may have missed.
  void resync_mirrors();
  void send(const std::string& stream, cluster::NodeMessage message, std::uint64_t maxlen,
            std::function<void(bool ok)> done = {});
  void send_command(const std::string& node, std::string kind, boost::json::object body,
                    std::function<void(bool ok)> done = {});
  // To `node`'s reply stream, for its run `to_boot` (what an earlier run gets is dropped).
  void send_reply(const std::string& node, const std::string& to_boot, std::string kind,
                  boost::json::object body, std::string frame = {});

  // Heartbeat, liveness and the directory
  void tick();
  void schedule_tick();
  void check_nodes();
  void on_nodes(std::map<std::string, std::string> boots);
  void node_went_down(const std::string& node);
  void node_came_up(const std::string& node);
  bool node_live(const std::string& node) const;
  void publish_directory();
  std::string directory_entry(const projects::ProjectInfo& info) const;

  // The front
  void forward(Request request, const std::string& text, const std::string& node,
               const std::string& project_id);
  // The node that owns a project (the directory, cached); `reachable` false: Redis is away.
  void resolve_owner(const std::string& project_id,
                     std::function<void(std::optional<std::string> node, bool reachable)> done);
  Who who_of(const Connection& connection) const;
  void on_reply(const std::string& stream, const std::string& id, const redis::Reply& fields);
  void handle_reply(const cluster::NodeMessage& message, const boost::json::object& body);
  std::shared_ptr<cluster::RemoteFeed> mirror_of(const std::string& project_id) const;
  // The mirror of a project of `node`, made (and its stream read) if new; `ready` gets it once
  // it reads its stream.
  void ensure_mirror(const std::string& project_id, const std::string& node,
                     std::function<void(std::shared_ptr<cluster::RemoteFeed>)> ready);
  void on_event(const std::string& stream, const redis::Reply& fields);
  void fill(const std::shared_ptr<cluster::RemoteFeed>& mirror, std::uint64_t after_seq);
  void drop_idle_mirrors();
  void fail_pending_of(const std::string& node);

  // The owner
  void on_command(const std::string& stream, const std::string& id, const redis::Reply& fields);
  void handle_command(const cluster::NodeMessage& message, boost::json::object body);
  std::shared_ptr<RemoteClient> client_for(const cluster::NodeMessage& message,
                                           const boost::json::object& who);
  std::shared_ptr<RemoteClient> find_client(const std::string& node, std::uint64_t connection);
  void drop_clients_of(const std::string& node, const std::string& except_boot);
  void answer_fill(const cluster::NodeMessage& message, const boost::json::object& body);
  void publish_event(const std::string& project_id, std::uint64_t seq,
                     std::optional<std::uint64_t> prev, const protocol::SharedText& frame);

  void refuse(const cluster::NodeMessage* message, const std::string& stream,
              const std::string& why);

  boost::asio::io_context& io_;
  const config::Config& config_;
  Hub& hub_;
  const std::string name_;
  const std::string boot_ = cluster::random_id();
  const cluster::NodeSigner signer_;
  const redis::RedisUrl url_;
  std::shared_ptr<boost::asio::ssl::context> tls_context_;  // rediss:// only
  const std::shared_ptr<ClusterShared> shared_;

  std::shared_ptr<cluster::RedisLink> link_;         // ordinary commands
  std::shared_ptr<cluster::StreamReader> replies_;   // pa:reply:<name> + mirrored events
  std::shared_ptr<cluster::StreamReader> commands_;  // pa:cmd:<name> (consumer group)
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;  // timers, node table
  boost::asio::steady_timer tick_timer_;
  bool stopped_ = false;

  mutable std::mutex mutex_;                // everything below
  std::map<std::string, NodeState> nodes_;  // by name, this one included
  // Other nodes' projects as the directory last said (each with its "node"): a cache.
  std::map<std::string, boost::json::object> directory_;
  std::map<std::string, MirrorSlot> mirrors_;                     // by project id
  std::map<std::string, std::shared_ptr<Pending>> pending_;       // by request id
  std::map<std::uint64_t, std::set<std::string>> used_nodes_;     // connection id -> owners used
  std::map<std::string, std::shared_ptr<RemoteClient>> clients_;  // "<node>/<conn id>"
  std::set<std::string> unsent_events_;  // projects whose event could not be written
  std::set<std::pair<std::string, std::uint64_t>> unsent_closes_;  // {owner, connection id}
  bool replies_started_ = false;
};

}  // namespace pa::server
