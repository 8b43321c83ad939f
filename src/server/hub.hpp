// The hub routes client requests to their handlers (handlers_*.cpp) and owns the two
// registries: the projects (ProjectRegistry) and the connections (ConnectionRegistry), each
// with its own private lock. Requests arrive on a connection's strand (an I/O thread); anything
// that touches the disk or a project runs on the blocking pool, a project's work on that
// project's strand. A project's subscribers are the project's own (Project::subscribe and
// unsubscribe, on its strand); a connection that closes leaves the projects it joined itself
// (Connection::feed_joined). net/ sees the hub only as a SessionHost.
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "devices/device_store.hpp"
#include "devices/pairing.hpp"
#include "ops/health.hpp"
#include "ops/metrics.hpp"
#include "ops/storage_problems.hpp"
#include "projects/path_policy.hpp"
#include "projects/project_store.hpp"
#include "search/entry_source.hpp"
#include "server/attachment_store.hpp"
#include "server/connection_registry.hpp"
#include "server/idempotency_store.hpp"
#include "server/project_registry.hpp"
#include "server/server_spend.hpp"
#include "server/session_host.hpp"

namespace pa::notify {
class Notifier;
}
namespace pa::search {
class Indexer;
class Searcher;
struct SearchRequest;
}  // namespace pa::search

namespace pa::server {

class AgentRun;
class ClusterNode;
class Connection;
class Project;
class Scheduler;
struct Request;
struct Requester;
struct RunContext;

class Hub final : public SessionHost, public std::enable_shared_from_this<Hub> {
 public:
  Hub(boost::asio::io_context& io, config::Config config);
  ~Hub() override;
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  const config::Config& config() const override { return config_; }
  ops::ServerMetrics& metrics() override { return metrics_; }
  // Prometheus text of every metric (gauges refreshed first).
  std::string render_metrics() override;
  boost::asio::thread_pool& blocking_pool() override { return pool_; }
  const projects::PathPolicy& path_policy() const { return path_policy_; }

  // Start-up (blocking, before the listener opens): loads every project from the data dir, and
  // the idempotency keys (<data_dir>/idempotency.jsonl).
  void load_projects(std::vector<std::string>& warnings);
  // Start-up (blocking, before the listener opens): the paired devices (<data_dir>/devices.json).
  void load_devices(std::vector<std::string>& warnings);
  // The port the listener bound (server.port may be 0): device_pair's URL names it.
  void set_listen_port(std::uint16_t port) { listen_port_ = port; }
  void start();  // background timers (CLI version probe)

  // Connection admission: false when max_connections are open or the server is shutting down
  // (answer 503; stopping() tells which).
  bool admit_connection() override;
  bool stopping() const override { return stopping_; }
  void release_connection() override;
  std::size_t connection_count() const { return connections_.admitted(); }
  std::uint64_t next_connection_id() override { return connections_.next_id(); }
  std::optional<devices::Identity> device_identity(std::string_view token) override;
  PairAnswer pair_device(std::string_view body, std::string_view remote_address) override;

  void on_open(const std::shared_ptr<Connection>& connection) override;
  // `done` runs when the request is fully handled (the connection then reads its next message).
  void on_message(const std::shared_ptr<Connection>& connection, std::string text,
                  std::function<void()> done) override;
  void on_binary_message(const std::shared_ptr<Connection>& connection) override;
  void on_close(const std::shared_ptr<Connection>& connection) override;

  // The health document (blocking: /proc and statvfs). Call off the I/O threads.
  boost::json::object health_data() override;
  // Storage the server cannot write now (history, metadata): health reports it.
  ops::StorageProblems& storage_problems() { return storage_problems_; }

  // Closes every WebSocket with 1001 (going away); part of shutdown.
  void close_connections();
  // First step of shutdown, at once: new runs are refused with SHUTTING_DOWN.
  void begin_shutdown() { stopping_ = true; }
  // Graceful shutdown, blocking (call from a thread that is not an I/O thread; it begins the
  // shutdown if begin_shutdown() was not called): waits for runs up to timeouts.shutdown_grace,
  // stops the rest, closes every connection with 1001 after its queued messages, and fsyncs
  // every history.
  void shutdown();
  // Stops and joins the blocking pool (after shutdown, before the io_context goes away).
  void stop_blocking_pool();
  // A second signal: kill every run now; shutdown() then finishes quickly.
  void force_shutdown();

 private:
  friend class ClusterNode;
  friend class ClusterShared;
  using Handler = void (Hub::*)(Request);
  // Runs the handler of a request whose type and role were checked (on_message, and the
  // cluster for a project it found is not another node's).
  void dispatch(Request request);
  static const std::map<std::string, Handler, std::less<>>& handlers();

  // Handlers, one per client message type (handlers_*.cpp).
  void handle_hello(Request request);
  void handle_project_create(Request request);
  void handle_project_list(Request request);
  void handle_project_delete(Request request);
  void handle_project_join(Request request);
  void handle_project_leave(Request request);
  void handle_get_messages(Request request);
  void handle_health(Request request);
  void handle_execute(Request request);
  void handle_agent_kill(Request request);
  void handle_agent_new_session(Request request);
  void handle_agent_interrupt(Request request);
  void handle_permission_response(Request request);
  // Reviewing a project (handlers_review.cpp).
  void handle_project_changes(Request request);
  void handle_project_diff(Request request);
  void handle_file_read(Request request);
  void handle_file_list(Request request);
  void handle_session_list(Request request);
  // Notifications (handlers_notify.cpp).
  void handle_push_info(Request request);
  void handle_push_subscribe(Request request);
  void handle_push_unsubscribe(Request request);
  void handle_push_test(Request request);
  void handle_client_focus(Request request);
  // Paired devices (handlers_devices.cpp), admin only.
  void handle_device_pair(Request request);
  void handle_device_list(Request request);
  void handle_device_rename(Request request);
  void handle_device_revoke(Request request);
  // Attachments (handlers_attachments.cpp, issue 19).
  void handle_get_attachment(Request request);
  // welcome.limits: the sizes a client checks before sending (handlers_hello.cpp).
  boost::json::object client_limits() const;
  // Search over every project's history (handlers_search.cpp).
  void handle_search_messages(Request request);
  void run_search(Request request, search::SearchRequest query, bool waited_out);
  // Whether the sender's role may send this message; else FORBIDDEN (the connection stays).
  bool role_allows(const Request& request);
  // The base of a pairing URL: notify.console_url, else this machine's name and port.
  std::string pair_base_url() const;
  // A revoked device's open connections and push subscriptions go (on the blocking pool).
  // `by_device_id`: who revoked it (null: the master token, or another node).
  void end_device(const devices::Device& device, boost::json::value by_device_id);
  // A device's last-seen time is due to be saved: on the blocking pool.
  void save_devices_later();
  // A deleted project's attachment refs, and the files no other project refers to: on the pool.
  void forget_attachments(const std::string& project_id);
  void queue_follow_up(Request& r, Project& project, std::string prompt,
                       std::vector<Attachment> attachments, const std::string& recorded,
                       const std::optional<std::string>& key);
  // project_create's fields were checked and it is this node's to carry out.
  void start_create(Request request, std::string requested, std::optional<std::string> key);
  void create_project(Request request, std::string requested, std::optional<std::string> key);
  void stop_run(Request request, std::string_view what,
                void (*stop)(AgentRun& run, const Requester& requester));

  // Runs `fn(project)` on the project's strand, or fails the request with PROJECT_NOT_FOUND.
  void with_project(Request request, std::function<void(Request&, Project&)> fn);
  std::shared_ptr<Project> find_project(const std::string& id) const;
  std::shared_ptr<Project> open_project(projects::ProjectInfo info,
                                        std::vector<std::string>& warnings, std::error_code& ec);
  void add_health_warning(std::string project_id, std::string text);
  void forget_health_warnings(const std::string& project_id);  // the project was deleted
  void schedule_probe();
  void schedule_stats();
  void broadcast_stats();
  void refresh_gauges();
  // Stops every run and queued execute as shutdown does (`force`: as a second signal does).
  void stop_all_runs(bool force);
  void restore_runs(std::vector<std::string>& warnings);

  boost::asio::io_context& io_;
  const config::Config config_;
  boost::asio::thread_pool pool_;
  projects::ProjectStore store_;
  AttachmentStore attachments_;  // <data_dir>/attachments (issue 19)
  const projects::PathPolicy path_policy_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<struct RunContext> run_context_;
  ops::ServerMetrics metrics_;
  ops::StorageProblems storage_problems_;
  // Web Push, ntfy and webhooks (issue 17); made before the runs' context, which uses it.
  std::shared_ptr<notify::Notifier> notifier_;
  // Lasting notes for health.warnings: damaged metadata found at start-up (load_projects).
  mutable std::mutex warnings_mutex_;
  std::vector<std::pair<std::string, std::string>> health_warnings_;  // {project id, text}
  ops::ResourceSampler sampler_;
  ops::ClaudeProbe claude_probe_;
  boost::asio::steady_timer probe_timer_;
  boost::asio::steady_timer stats_timer_;
  // Keys of requests already carried out (execute, permission_response, project_create).
  IdempotencyStore idempotency_;
  // project_create with an idempotency key runs here, so that two copies of one request
  // arriving at once are checked and recorded one after the other (one project, not two).
  boost::asio::strand<boost::asio::thread_pool::executor_type> create_strand_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();

  // Paired devices and their one-time pairing codes (issue 18).
  devices::DeviceStore devices_;
  devices::Pairing pairing_;
  std::atomic<std::uint16_t> listen_port_{0};
  // pocket_agent_requests_total{role}, indexed by devices::Role.
  std::array<ops::Counter*, 4> requests_by_role_{};

  ProjectRegistry projects_;
  // The day's spend of the whole server and the daily budgets (issue 19).
  ServerSpend spend_{config_.data.dir, projects_, config_.budgets};
  ConnectionRegistry connections_;
  // The search index over every project's history (issue 19): fed by each project's appends,
  // caught up from the logs (source_), queried by search_messages.
  std::unique_ptr<search::EntrySource> search_source_;
  std::unique_ptr<search::Indexer> indexer_;
  std::unique_ptr<search::Searcher> searcher_;
  // Cluster mode (issue 20): null on a single host (cluster.redis_url empty).
  std::shared_ptr<ClusterNode> cluster_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> forced_{false};
};

}  // namespace pa::server
