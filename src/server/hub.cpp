#include "server/hub.hpp"

#include <spdlog/spdlog.h>

#include <pwd.h>
#include <unistd.h>
#include <boost/asio/post.hpp>
#include <boost/json/array.hpp>
#include <filesystem>
#include <future>
#include <thread>

#include "agent/run_options.hpp"
#include "projects/path_rules.hpp"
#include "server/agent_run.hpp"

#include "protocol/data_reader.hpp"

extern char** environ;

namespace pa::server {

namespace asio = boost::asio;
namespace json = boost::json;
using protocol::ErrorCode;

namespace {
unsigned pool_size() {
  return std::max(2u, std::thread::hardware_concurrency());
}

// The server's private directories (data and certificates) and the user's home, for the
// project path policy. Throws at startup when projects.allowed_roots names a missing directory.
projects::PathPolicy make_path_policy(const config::Config& config) {
  projects::PathPolicy::Settings settings;
  settings.allowed_roots = config.projects.allowed_roots;
  settings.private_dirs.push_back(config.data.dir);
  if (config.tls.enabled) {
    for (const auto& file : {config.tls.cert, config.tls.key}) {
      const auto parent = std::filesystem::path(file).parent_path();
      settings.private_dirs.push_back(parent.empty() ? "." : parent.string());
    }
  }
  std::vector<char> buffer(16384);
  passwd entry{};
  passwd* found = nullptr;
  if (::getpwuid_r(::geteuid(), &entry, buffer.data(), buffer.size(), &found) == 0 && found &&
      found->pw_dir != nullptr) {
    settings.home = found->pw_dir;
  }
  return projects::PathPolicy::make(settings);
}

std::map<std::string, std::string> server_environment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view entry(*e);
    const auto eq = entry.find('=');
    if (eq != std::string_view::npos) env.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return env;
}
}  // namespace

Hub::Hub(asio::io_context& io, config::Config config)
    : io_(io),
      config_(std::move(config)),
      pool_(pool_size()),
      store_(config_.data.dir),
      path_policy_(make_path_policy(config_)),
      scheduler_(std::make_unique<Scheduler>(config_.execution.max_concurrent,
                                             config_.execution.queue_size)),
      sampler_(config_.data.dir),
      claude_probe_(config_.claude.binary,
                    agent::build_cli_env(server_environment(), config_.claude)),
      probe_timer_(io),
      stats_timer_(io) {
  const std::string scratch = (std::filesystem::path(config_.data.dir) / "tmp").string();
  std::error_code ec;
  std::filesystem::remove_all(scratch, ec);  // leftovers of a crashed run
  std::filesystem::create_directories(scratch, ec);
  std::filesystem::permissions(scratch, std::filesystem::perms::owner_all, ec);
  // Every error code's counter exists from the start at 0, so /metrics shows
  // pocket_agent_errors_total before the first error (and rate() sees the first one).
  for (const auto code : protocol::kAllErrorCodes) metrics_.error(protocol::to_string(code));
  run_context_ = std::make_unique<RunContext>(RunContext{
      config_, io_.get_executor(), *scheduler_,
      agent::build_cli_env(server_environment(), config_.claude), scratch, metrics_, path_policy_});
}

Hub::~Hub() {
  stop_blocking_pool();
}

void Hub::stop_blocking_pool() {
  pool_.stop();
  pool_.join();
}

const std::map<std::string, Hub::Handler, std::less<>>& Hub::handlers() {
  static const std::map<std::string, Handler, std::less<>> table = {
      {"project_create", &Hub::handle_project_create},
      {"project_list", &Hub::handle_project_list},
      {"project_delete", &Hub::handle_project_delete},
      {"project_join", &Hub::handle_project_join},
      {"project_leave", &Hub::handle_project_leave},
      {"get_messages", &Hub::handle_get_messages},
      {"health", &Hub::handle_health},
      {"execute", &Hub::handle_execute},
      {"agent_kill", &Hub::handle_agent_kill},
      {"agent_new_session", &Hub::handle_agent_new_session},
      {"agent_interrupt", &Hub::handle_agent_interrupt},
      {"permission_response", &Hub::handle_permission_response},
  };
  return table;
}

std::shared_ptr<Project> Hub::open_project(projects::ProjectInfo info,
                                           std::vector<std::string>& warnings,
                                           std::error_code& ec) {
  history::Options options;
  options.rotate_bytes = config_.log_rotation.size;
  options.rotate_count = config_.log_rotation.count;
  options.fsync_interval = config_.log_rotation.fsync_interval;
  options.seq_floor = info.seq_mark;
  auto log = history::MessageLog::open(store_.logs_dir(info.id), options, warnings, ec);
  if (ec) return nullptr;
  auto project = std::make_shared<Project>(
      std::move(info), asio::make_strand(pool_.get_executor()), std::move(log), store_,
      config_.log_rotation.fsync_interval, metrics_.history_bytes_written);
  // Entries a killed server left above the stored mark: the log synced them, store the mark.
  project->persist_seq_mark();  // not shared yet: no strand needed
  return project;
}

void Hub::load_projects(std::vector<std::string>& warnings) {
  std::vector<std::string> notes;
  store_.remove_leftovers(notes);
  for (const auto& note : notes) spdlog::info("{}", note);
  auto infos = store_.load_all(warnings);
  std::lock_guard lock(projects_mutex_);
  for (auto& info : infos) {
    const std::string id = info.id;
    for (const auto& [other_id, other] : projects_) {
      if (projects::paths_nest(other->path(), info.path)) {
        warnings.push_back("project " + id + " (" + info.path + ") nests with project " + other_id +
                           "; loaded anyway, fix by deleting one of them");
      }
    }
    if (auto reason = path_policy_.refusal(info.path)) {
      warnings.push_back("project " + id + " (" + info.path + ") is refused by the path policy: " +
                         *reason + "; its history stays readable but it cannot run");
    }
    std::error_code ec;
    std::vector<std::string> log_warnings;
    auto project = open_project(std::move(info), log_warnings, ec);
    for (auto& w : log_warnings) warnings.push_back("project " + id + ": " + w);
    if (!project) {
      warnings.push_back("skipping project " + id + ": cannot open its history: " + ec.message());
      continue;
    }
    projects_.emplace(id, std::move(project));
  }
}

void Hub::start() {
  schedule_probe();
  schedule_stats();
}

void Hub::refresh_gauges() {
  metrics_.executions_active.set(static_cast<double>(scheduler_->active()));
  metrics_.executions_queued.set(static_cast<double>(scheduler_->queued()));
  std::lock_guard lock(projects_mutex_);
  metrics_.projects.set(static_cast<double>(projects_.size()));
}

std::string Hub::render_metrics() {
  refresh_gauges();
  return metrics_.render();
}

void Hub::schedule_stats() {
  if (config_.stats.interval.count() <= 0 || stopping_) return;
  stats_timer_.expires_after(config_.stats.interval);
  stats_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec || self->stopping_) return;
    self->broadcast_stats();
    self->schedule_stats();
  });
}

// server_stats to every open connection (the spec's shape); not kept in any history.
void Hub::broadcast_stats() {
  refresh_gauges();
  const auto s = metrics_.stats_snapshot();
  std::size_t project_count = 0;
  {
    std::lock_guard lock(projects_mutex_);
    project_count = projects_.size();
  }
  const auto uptime =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_)
          .count();
  const json::object data{
      {"connections", connections_open_.load()},
      {"projects", project_count},
      {"executions",
       {{"active", s.executions_active},
        {"queued", s.executions_queued},
        {"total", s.executions_total},
        {"success", s.executions_success},
        {"failed", s.executions_failed + s.executions_timeout + s.executions_killed},
        {"avg_duration_ms", s.avg_duration_ms}}},
      {"messages",
       {{"sent", s.messages_sent},
        {"received", s.messages_received},
        {"rate_per_sec", s.messages_rate_per_sec}}},
      {"uptime", uptime}};
  auto text = std::make_shared<const std::string>(
      protocol::serialize(protocol::Outgoing{"server_stats", {}, {}, {}, {}}, data));
  std::vector<std::shared_ptr<Connection>> open;
  {
    std::lock_guard lock(connections_mutex_);
    for (auto& [id, entry] : connections_) {
      if (auto c = entry.connection.lock()) open.push_back(std::move(c));
    }
  }
  for (auto& c : open) c->send(text);
}

void Hub::schedule_probe() {
  asio::post(pool_, [self = shared_from_this()] {
    self->claude_probe_.refresh();
    if (self->stopping_) return;
    self->probe_timer_.expires_after(std::chrono::seconds(60));
    self->probe_timer_.async_wait([self](const boost::system::error_code& ec) {
      if (!ec && !self->stopping_) self->schedule_probe();
    });
  });
}

bool Hub::admit_connection() {
  std::size_t current = connections_open_.load();
  do {
    if (current >= config_.limits.max_connections || stopping_) return false;
  } while (!connections_open_.compare_exchange_weak(current, current + 1));
  metrics_.connections_active.add(1);
  return true;
}

void Hub::release_connection() {
  --connections_open_;
  metrics_.connections_active.sub(1);
}

void Hub::on_open(const std::shared_ptr<Connection>& connection) {
  std::lock_guard lock(connections_mutex_);
  connections_.emplace(connection->id(), OpenConnection{connection, {}});
  metrics_.connections_accepted.inc();
}

void Hub::close_connections() {
  std::vector<std::shared_ptr<Connection>> open;
  {
    std::lock_guard lock(connections_mutex_);
    for (auto& [id, entry] : connections_) {
      if (auto c = entry.connection.lock()) open.push_back(std::move(c));
    }
  }
  for (auto& c : open) c->close_after_queued(1001, "server shutting down");
}

void Hub::on_close(const std::shared_ptr<Connection>& connection) {
  std::set<std::string> joined;
  {
    std::lock_guard lock(connections_mutex_);
    auto it = connections_.find(connection->id());
    if (it == connections_.end()) return;
    joined = std::move(it->second.joined);
    connections_.erase(it);
    if (connections_.empty()) connections_closed_.notify_all();
  }
  for (const auto& id : joined) {
    if (auto project = find_project(id)) {
      asio::post(project->strand(),
                 [project, cid = connection->id()] { project->unsubscribe(cid); });
    }
  }
}

void Hub::note_joined(std::uint64_t connection_id, const std::string& project_id, bool joined) {
  std::lock_guard lock(connections_mutex_);
  auto it = connections_.find(connection_id);
  if (it == connections_.end()) return;
  if (joined) {
    it->second.joined.insert(project_id);
  } else {
    it->second.joined.erase(project_id);
  }
}

void Hub::forget_project_subscriptions(const std::string& project_id) {
  std::lock_guard lock(connections_mutex_);
  for (auto& [connection_id, entry] : connections_) entry.joined.erase(project_id);
}

void Hub::on_binary_message(const std::shared_ptr<Connection>& connection) {
  metrics_.messages_received.inc();
  metrics_.error("INVALID_MESSAGE").inc();
  connection->send(std::make_shared<const std::string>(protocol::serialize_error(
      protocol::make_error(ErrorCode::kInvalidMessage,
                           "binary frames are not accepted; send JSON as a text frame",
                           json::object{{"field", "$"}}),
      std::nullopt, std::nullopt)));
}

void Hub::on_message(const std::shared_ptr<Connection>& connection, std::string text,
                     std::function<void()> done) {
  metrics_.messages_received.inc();
  auto parsed = protocol::parse_client_message(text);
  if (!parsed.message) {
    metrics_.error(protocol::to_string(parsed.error.code)).inc();
    std::optional<std::string_view> project_id;
    std::optional<std::string_view> request_id;
    if (parsed.project_id) project_id = *parsed.project_id;
    if (parsed.request_id) request_id = *parsed.request_id;
    connection->send(std::make_shared<const std::string>(
        protocol::serialize_error(parsed.error, project_id, request_id)));
    done();
    return;
  }
  Request request{connection, std::move(*parsed.message), make_done(std::move(done)), &metrics_};
  const auto& table = handlers();
  const auto it = table.find(request.message.type);
  if (it == table.end()) {
    json::array known;
    for (const auto& [name, handler] : table) known.emplace_back(name);
    request.fail(protocol::make_error(
        ErrorCode::kInvalidMessage, "unknown message type '" + request.message.type + "'",
        json::object{{"field", "type"}, {"allowed", std::move(known)}}));
    return;
  }
  (this->*(it->second))(std::move(request));
}

std::shared_ptr<Project> Hub::find_project(const std::string& id) const {
  std::lock_guard lock(projects_mutex_);
  const auto it = projects_.find(id);
  return it == projects_.end() ? nullptr : it->second;
}

void Hub::with_project(Request request, std::function<void(Request&, Project&)> fn) {
  if (!request.message.project_id) {
    request.fail(protocol::make_error(ErrorCode::kInvalidMessage,
                                      "project_id is required for " + request.message.type,
                                      json::object{{"field", "project_id"}}));
    return;
  }
  const std::string& id = *request.message.project_id;
  auto project = find_project(id);
  const auto not_found = [](const Request& r, const std::string& pid) {
    r.fail(protocol::make_error(ErrorCode::kProjectNotFound, "Project not found: " + pid,
                                json::object{{"project_id", pid}}));
  };
  if (!project) {
    not_found(request, id);
    return;
  }
  asio::post(project->strand(),
             [project, request = std::move(request), fn = std::move(fn), not_found]() mutable {
               if (project->deleted()) {
                 not_found(request, project->id());
                 return;
               }
               fn(request, *project);
             });
}

json::object Hub::health_data() {
  const auto resources = sampler_.sample();
  const auto claude = claude_probe_.status();
  std::size_t count = 0;
  std::size_t executing = 0;
  {
    std::lock_guard lock(projects_mutex_);
    count = projects_.size();
    for (const auto& [id, project] : projects_) executing += project->executing() ? 1 : 0;
  }
  const auto uptime =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_)
          .count();
  std::string status = "healthy";
  if (!claude.available || resources.disk_free_gb < 1.0) status = "degraded";
  if (stopping_) status = "unhealthy";

  json::object claude_json{{"available", claude.available}};
  if (claude.version.empty()) {
    claude_json["version"] = nullptr;
  } else {
    claude_json["version"] = claude.version;
  }
  if (!claude.error.empty()) claude_json["error"] = claude.error;
  return json::object{
      {"status", status},
      {"uptime", uptime},
      {"version", ops::server_version()},
      {"connections",
       {{"active", connections_open_.load()}, {"limit", config_.limits.max_connections}}},
      {"projects",
       {{"count", count}, {"limit", config_.limits.max_projects}, {"executing", executing}}},
      {"resources",
       {{"cpu_percent", resources.cpu_percent},
        {"memory_mb", resources.memory_mb},
        {"threads", resources.threads},
        {"disk_free_gb", resources.disk_free_gb}}},
      {"claude", std::move(claude_json)},
  };
}

void Hub::stop_all_runs(AgentRun::Stop reason) {
  std::vector<std::shared_ptr<Project>> all;
  {
    std::lock_guard lock(projects_mutex_);
    for (const auto& [id, project] : projects_) all.push_back(project);
  }
  for (const auto& project : all) {
    asio::post(project->strand(), [project, reason] {
      if (auto run = project->run) run->stop(reason, nullptr);
    });
  }
}

void Hub::force_shutdown() {
  if (forced_.exchange(true)) return;
  spdlog::warn("second signal: killing every run now");
  stop_all_runs(AgentRun::Stop::kForce);
  scheduler_->wake_waiters();
}

void Hub::shutdown() {
  stopping_ = true;
  asio::post(io_, [self = shared_from_this()] {
    self->probe_timer_.cancel();
    self->stats_timer_.cancel();
  });
  // A `claude --version` probe still running must end while the I/O threads (and with them the
  // child reaper that sees its exit) still run.
  claude_probe_.stop();
  // Runs get timeouts.shutdown_grace to finish on their own while clients still watch them;
  // then they are stopped as agent_kill does (or at once after a second signal).
  bool idle = scheduler_->wait_until_idle(config_.timeouts.shutdown_grace);
  if (!idle && !forced_) {
    spdlog::info("shutdown: stopping {} running and {} queued runs", scheduler_->active(),
                 scheduler_->queued());
    stop_all_runs(AgentRun::Stop::kShutdown);
    idle = scheduler_->wait_until_idle(config_.timeouts.kill_grace + config_.timeouts.term_grace +
                                       std::chrono::seconds(5));
  }
  if (!idle && forced_) idle = scheduler_->wait_until_idle(std::chrono::seconds(5));
  if (!idle) spdlog::error("shutdown: runs did not stop in time");

  std::vector<std::shared_ptr<Project>> all;
  {
    std::lock_guard lock(projects_mutex_);
    for (const auto& [id, project] : projects_) all.push_back(project);
  }
  for (const auto& project : all) {
    std::promise<void> flushed;
    asio::post(project->strand(), [&] {
      project->flush_history();
      flushed.set_value();
    });
    flushed.get_future().wait();
  }
  // The flush above ran on every project strand after its last broadcast, so each final
  // project_state is queued by now: clients get it, then the close 1001.
  close_connections();
  {
    std::unique_lock lock(connections_mutex_);
    connections_closed_.wait_for(lock, std::chrono::seconds(5),
                                 [&] { return connections_.empty(); });
  }
  spdlog::info("shutdown: history flushed, {} projects saved", all.size());
}

}  // namespace pa::server
