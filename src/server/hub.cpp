#include "server/hub.hpp"

#include "server/cluster_node.hpp"

#include <spdlog/spdlog.h>

#include <pwd.h>
#include <unistd.h>
#include <boost/asio/post.hpp>
#include <boost/json/array.hpp>
#include <filesystem>
#include <future>
#include <thread>

#include "agent/run_options.hpp"
#include "agent/supervisor.hpp"
#include "common/keepalive_grid.hpp"
#include "notify/notifier.hpp"
#include "ops/logging.hpp"
#include "projects/path_rules.hpp"
#include "protocol/clock.hpp"
#include "search/indexer.hpp"
#include "search/searcher.hpp"
#include "server/agent_run.hpp"
#include "server/cluster_node.hpp"
#include "server/connection.hpp"
#include "server/notify_events.hpp"
#include "server/project.hpp"
#include "server/request.hpp"
#include "server/run_state.hpp"
#include "server/scheduler.hpp"
#include "server/search_source.hpp"

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

IdempotencyStore::Options idempotency_options(const config::Config& config) {
  IdempotencyStore::Options options;
  options.file = std::filesystem::path(config.data.dir) / "idempotency.jsonl";
  return options;
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
      attachments_(std::filesystem::path(config_.data.dir) / "attachments"),
      path_policy_(make_path_policy(config_)),
      scheduler_(std::make_unique<Scheduler>(config_.execution.max_concurrent,
                                             config_.execution.queue_size)),
      sampler_(config_.data.dir),
      claude_probe_(config_.claude.binary,
                    agent::build_cli_env(server_environment(), config_.claude)),
      probe_timer_(io),
      stats_timer_(io),
      idempotency_(idempotency_options(config_)),
      create_strand_(asio::make_strand(pool_.get_executor())),
      devices_(config_.data.dir),
      pairing_(devices::PairingOptions{.max_failures = config_.auth.max_failures}),
      connections_(config_.limits.max_connections) {
  if (!config_.cluster.redis_url.empty())
    cluster_ = std::make_shared<ClusterNode>(io_, config_, *this);
  const std::string scratch = (std::filesystem::path(config_.data.dir) / "tmp").string();
  std::error_code ec;
  std::filesystem::remove_all(scratch, ec);  // leftovers of a crashed run
  std::filesystem::create_directories(scratch, ec);
  std::filesystem::permissions(scratch, std::filesystem::perms::owner_all, ec);
  // Every error code's counter exists from the start at 0, so /metrics shows
  // pocket_agent_errors_total before the first error (and rate() sees the first one).
  for (const auto code : protocol::kAllErrorCodes) metrics_.error(protocol::to_string(code));
  // Likewise every role's request counter.
  for (const auto role : {devices::Role::kViewer, devices::Role::kOperator,
                          devices::Role::kApprover, devices::Role::kAdmin})
    requests_by_role_[static_cast<std::size_t>(role)] =
        &metrics_.requests.with(devices::role_name(role));
  // One directory per active run (spool, socket, run.json): kept across restarts, since the
  // runs in it may outlive this process.
  const std::string runs = (std::filesystem::path(config_.data.dir) / "runs").string();
  std::filesystem::create_directories(runs, ec);
  std::filesystem::permissions(runs, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::replace, ec);
  std::string self_exe = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  std::vector<std::string> notes;
  if (cluster_) cluster_->share_vapid_key();  // every node pushes with the same key (start-up)
  notifier_ =
      notify::Notifier::create(io_.get_executor(), pool_.get_executor(), config_, metrics_, notes);
  if (cluster_) cluster_->shared().watch_subscriptions();
  for (const auto& note : notes) spdlog::info("notifications: {}", note);
  storage_problems_.on_first_failure(
      [notifier = notifier_, url = config_.notify.console_url](const ops::StorageProblem& problem) {
        notifier->raise(server_problem_event(problem, url));
      });
  search_source_ = std::make_unique<ProjectsEntrySource>(projects_);
  indexer_ = std::make_unique<search::Indexer>(
      std::filesystem::path(config_.data.dir) / "search" / "index.sqlite3", *search_source_);
  searcher_ = std::make_unique<search::Searcher>(*indexer_);
  run_context_ = std::make_unique<RunContext>(RunContext{
      config_, io_.get_executor(), *scheduler_,
      agent::build_cli_env(server_environment(), config_.claude), scratch, metrics_, path_policy_,
      std::move(self_exe), runs, *notifier_, devices_, attachments_, spend_});
  // Spend by project (issue 19), read from the projects' ledgers at each scrape: one series
  // per live project (limits.max_projects bounds them; a deleted project's go with it).
  metrics_.registry.counter_callback_family(
      "pocket_agent_cost_usd_total", "What the CLI reported its runs cost, by project (USD)",
      {"project_id"}, [this] {
        ops::Registry::LabelledValues out;
        for (const auto& project : projects_.all())
          out.push_back({{project->id(), {}}, project->snapshot().spend.totals.cost_usd});
        return out;
      });
  metrics_.registry.counter_callback_family(
      "pocket_agent_tokens_total", "Tokens the CLI reported, by project and kind",
      {"project_id", "kind"}, [this] {
        ops::Registry::LabelledValues out;
        for (const auto& project : projects_.all()) {
          const auto t = project->snapshot().spend.totals;
          for (const auto& [kind, n] :
               {std::pair<const char*, std::uint64_t>{"cache_creation", t.cache_creation_tokens},
                {"cache_read", t.cache_read_tokens},
                {"input", t.input_tokens},
                {"output", t.output_tokens}})
            out.push_back({{project->id(), kind}, static_cast<double>(n)});
        }
        return out;
      });
}

Hub::~Hub() {
  stop_blocking_pool();
}

void Hub::stop_blocking_pool() {
  // The indexer's thread may wait for a history read on a project's strand (the pool).
  if (indexer_) indexer_->stop();
  pool_.stop();
  pool_.join();
}

const std::map<std::string, Hub::Handler, std::less<>>& Hub::handlers() {
  static const std::map<std::string, Handler, std::less<>> table = {
      {"hello", &Hub::handle_hello},
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
      {"push_info", &Hub::handle_push_info},
      {"push_subscribe", &Hub::handle_push_subscribe},
      {"push_unsubscribe", &Hub::handle_push_unsubscribe},
      {"push_test", &Hub::handle_push_test},
      {"client_focus", &Hub::handle_client_focus},
      {"project_changes", &Hub::handle_project_changes},
      {"project_diff", &Hub::handle_project_diff},
      {"file_read", &Hub::handle_file_read},
      {"file_list", &Hub::handle_file_list},
      {"session_list", &Hub::handle_session_list},
      {"device_pair", &Hub::handle_device_pair},
      {"device_list", &Hub::handle_device_list},
      {"device_rename", &Hub::handle_device_rename},
      {"device_revoke", &Hub::handle_device_revoke},
      {"get_attachment", &Hub::handle_get_attachment},
      {"search_messages", &Hub::handle_search_messages},
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
      config_.log_rotation.fsync_interval, metrics_.history_bytes_written, storage_problems_,
      metrics_.error(protocol::to_string(ErrorCode::kStorageFailed)));
  project->set_append_hook([indexer = indexer_.get(), id = project->id()](
                               std::uint64_t seq, std::string_view timestamp,
                               history::Direction direction, std::string_view message_json) {
    // Server notices hold nothing searchable: only their seq is passed on.
    const bool text = direction != history::Direction::kServer;
    indexer->appended(id, seq, timestamp, history::to_string(direction),
                      text ? message_json : std::string_view());
  });
  if (cluster_) cluster_->attach(*project);
  // Entries a killed server left above the stored mark: the log synced them, store the mark.
  project->persist_seq_mark();  // not shared yet: no strand needed
  return project;
}

void Hub::load_projects(std::vector<std::string>& warnings) {
  if (const auto ec = idempotency_.open(warnings)) {
    // Requests with an idempotency key are then refused with STORAGE_FAILED; others work.
    warnings.push_back("cannot open " + idempotency_options(config_).file.string() + ": " +
                       ec.message() + "; requests with data.idempotency_key will be refused");
  }
  spend_.load(warnings);
  std::vector<std::string> notes;
  store_.remove_leftovers(notes);
  for (const auto& note : notes) spdlog::info("{}", note);
  std::vector<projects::MetadataRecovery> recoveries;
  auto infos = store_.load_all(warnings, &recoveries);
  // Damaged metadata is never silent: an ERROR line each, and health.warnings while this
  // process runs (a project still without a path is reported again at every start).
  for (const auto& recovery : recoveries) {
    const std::string message = recovery.message();
    json::object fields{{"project_id", recovery.id}, {"problem", recovery.problem}};
    if (!recovery.kept_as.empty()) fields["kept_as"] = recovery.kept_as.string();
    fields["path_source"] =
        recovery.path_source.empty() ? json::value(nullptr) : json::value(recovery.path_source);
    ops::log_event(spdlog::level::err, message, fields);
    add_health_warning(recovery.id, message);
  }
  std::vector<std::pair<std::string, std::string>> loaded;  // {id, path}
  for (auto& info : infos) {
    const std::string id = info.id;
    for (const auto& [other_id, other_path] : loaded) {
      if (info.path.empty() || other_path.empty()) continue;  // path unknown: nests nothing
      if (projects::paths_nest(other_path, info.path)) {
        warnings.push_back("project " + id + " (" + info.path + ") nests with project " + other_id +
                           "; loaded anyway, fix by deleting one of them");
      }
    }
    if (info.path.empty()) {
      // Reported above (recoveries).
    } else if (auto reason = path_policy_.refusal(info.path)) {
      warnings.push_back("project " + id + " (" + info.path + ") is refused by the path policy: " +
                         *reason + "; its history stays readable but it cannot run");
    }
    std::error_code ec;
    std::vector<std::string> log_warnings;
    auto project = open_project(std::move(info), log_warnings, ec);
    for (auto& w : log_warnings) warnings.push_back("project " + id + ": " + w);
    if (!project) {
      // Not silent either: an error line and a health warning until the next start.
      const std::string message = "skipping project " + id + ": cannot open its history in " +
                                  store_.logs_dir(id).string() + ": " + ec.message();
      ops::log_event(spdlog::level::err, message, json::object{{"project_id", id}});
      add_health_warning(id, message);
      continue;
    }
    if (projects_.add(project)) loaded.emplace_back(id, project->path());
  }
  restore_runs(warnings);
}

void Hub::add_health_warning(std::string project_id, std::string text) {
  std::lock_guard lock(warnings_mutex_);
  health_warnings_.emplace_back(std::move(project_id), std::move(text));
}

void Hub::forget_health_warnings(const std::string& project_id) {
  std::lock_guard lock(warnings_mutex_);
  std::erase_if(health_warnings_, [&](const auto& w) { return w.first == project_id; });
}

// Runs that went on while no server was there (a crash, a restart, an upgrade): each project
// is EXECUTING again before the listener opens, and its run is taken over on its strand.
void Hub::restore_runs(std::vector<std::string>& warnings) {
  std::error_code ec;
  std::vector<std::pair<std::shared_ptr<Project>, RunState>> queued;
  for (const auto& entry : std::filesystem::directory_iterator(run_context_->runs_dir, ec)) {
    if (!entry.is_directory()) continue;
    const std::string dir = entry.path().string();
    std::string error;
    auto state = load_run_state(dir + "/run.json", error);
    if (!state) {
      warnings.push_back("run directory " + dir + " has no usable run.json (" + error +
                         "); removed");
      std::error_code ignored;
      std::filesystem::remove_all(entry.path(), ignored);
      continue;
    }
    auto project = projects_.find(state->project_id);
    if (!project || project->run) {
      warnings.push_back("run " + state->run_id + " belongs to no loaded project (" +
                         state->project_id + "); its directory is kept: " + dir);
      continue;
    }
    if (state->queued) {
      queued.emplace_back(project, std::move(*state));
      continue;
    }
    const bool alive = agent::supervisor_alive(state->supervisor_pid, state->supervisor_start);
    auto run = AgentRun::restore(project, *run_context_, std::move(*state));
    if (run->ended_in_history()) continue;  // nothing to take over: never shown as running
    project->run = run;
    scheduler_->occupy();
    if (!alive) {
      // Gone with the host (or killed): apply its spool and report it lost now, before the
      // listener opens, so no client ever sees it running. Nothing else uses the project yet.
      run->reattach();
      continue;
    }
    project->update([](projects::ProjectInfo& p) {
      p.state = projects::State::kExecuting;
      p.queue_position = 0;
    });
    asio::post(project->strand(), [run] { run->reattach(); });
  }
  // Executes that waited for a slot wait again, in the order they were queued, behind the
  // runs taken over above.
  std::sort(queued.begin(), queued.end(), [](const auto& a, const auto& b) {
    return a.second.queued_order < b.second.queued_order;
  });
  for (auto& [project, state] : queued) {
    if (project->run) continue;
    const std::string dir = run_context_->runs_dir + "/" + state.run_id;
    protocol::Error error;
    auto run = AgentRun::restore_queued(project, *run_context_, std::move(state), error);
    if (!run) {
      warnings.push_back("a queued execute of project " + project->id() +
                         " cannot run any more: " + error.message);
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
      continue;
    }
    project->run = run;
    std::size_t position = 0;
    switch (scheduler_->admit(make_ticket(project, run), position)) {
      case Scheduler::Admit::kStartNow:
        asio::post(project->strand(), [run] { run->start(); });
        break;
      case Scheduler::Admit::kQueued:
        project->update([&](projects::ProjectInfo& p) {
          p.state = projects::State::kQueued;
          p.queue_position = position;
        });
        asio::post(project->strand(), [run, position] { run->set_queued(position, nullptr); });
        break;
      case Scheduler::Admit::kFull:
        warnings.push_back("a queued execute of project " + project->id() +
                           " no longer fits the run queue (execution.queue_size); dropped");
        project->run.reset();
        std::error_code ignored;
        std::filesystem::remove_all(dir, ignored);
        break;
    }
  }
}

void Hub::start() {
  // Catches the index up with every project loaded (a missing index is rebuilt) in the background.
  indexer_->start();
  if (cluster_) cluster_->start();
  schedule_probe();
  schedule_stats();
}

void Hub::refresh_gauges() {
  metrics_.executions_active.set(static_cast<double>(scheduler_->active()));
  metrics_.executions_queued.set(static_cast<double>(scheduler_->queued()));
  metrics_.projects.set(static_cast<double>(projects_.size()));
}

std::string Hub::render_metrics() {
  refresh_gauges();
  return metrics_.render();
}

void Hub::schedule_stats() {
  if (config_.stats.interval.count() <= 0 || stopping_) return;
  // On the beat of the steady clock, which the connections' pings follow too
  // (common/keepalive_grid.hpp): one wake-up sends both.
  stats_timer_.expires_at(
      common::keepalive::next_beat(std::chrono::steady_clock::now(), config_.stats.interval));
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
  const std::size_t project_count = projects_.size();
  const auto uptime =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_)
          .count();
  const json::object data{
      {"connections", connections_.admitted()},
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
      {"uptime", uptime},
      {"today", spend::to_json(spend_.today(std::chrono::system_clock::now()))}};
  auto text = std::make_shared<const std::string>(
      protocol::serialize(protocol::Outgoing{"server_stats", {}, {}, {}, {}}, data));
  for (auto& c : connections_.open_connections()) c->send(text);
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
  if (stopping_ || !connections_.admit()) return false;
  metrics_.connections_active.add(1);
  return true;
}

void Hub::release_connection() {
  connections_.release();
  metrics_.connections_active.sub(1);
}

void Hub::on_open(const std::shared_ptr<Connection>& connection) {
  connections_.add(connection);
  metrics_.connections_accepted.inc();
  const auto& who = connection->identity();
  if (!who.is_device()) return;
  // Revoked between its upgrade and now: device_revoke's sweep may have missed it.
  if (!devices_.find(who.device_id)) {
    connection->close(kRevokedCloseCode, "revoked");
    return;
  }
  if (devices_.touch(who.device_id, std::chrono::system_clock::now())) save_devices_later();
}

void Hub::close_connections() {
  connections_.close_all(1001, "server shutting down");
}

// The connection leaves the projects it joined itself (Connection::feed_joined).
void Hub::on_close(const std::shared_ptr<Connection>& connection) {
  connections_.remove(connection->id());
  notifier_->forget_connection(connection->id());
  if (cluster_) cluster_->connection_closed(connection->id());
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
  requests_by_role_[static_cast<std::size_t>(connection->identity().role)]->inc();
  // A hello is taken only before any other request (docs/protocol.md, "Handshake").
  if (request.message.type != "hello") connection->profile().note_other_request();
  const auto& table = handlers();
  const auto it = table.find(request.message.type);
  if (it != table.end() && !role_allows(request)) return;
  if (it == table.end()) {
    json::array known;
    for (const auto& [name, handler] : table) known.emplace_back(name);
    request.fail(protocol::make_error(
        ErrorCode::kInvalidMessage, "unknown message type '" + request.message.type + "'",
        json::object{{"field", "type"}, {"allowed", std::move(known)}}));
    return;
  }
  // A project of another node: its owner answers (cluster mode).
  if (cluster_ && cluster_->route(request, text)) return;
  (this->*(it->second))(std::move(request));
}

void Hub::dispatch(Request request) {
  const auto it = handlers().find(request.message.type);
  if (it != handlers().end()) (this->*(it->second))(std::move(request));
}

std::shared_ptr<Project> Hub::find_project(const std::string& id) const {
  return projects_.find(id);
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
  const auto all = projects_.all();
  const std::size_t count = all.size();
  std::size_t executing = 0;
  for (const auto& project : all) executing += project->executing() ? 1 : 0;
  const auto uptime =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_)
          .count();
  // Why the server is not healthy, one line each (empty when it is).
  json::array reasons;
  if (!claude.available) reasons.emplace_back("the Claude CLI is unavailable");
  if (resources.disk_free_gb < 1.0) {
    reasons.emplace_back("less than 1 GB free in the data directory's file system");
  }
  json::array storage;
  for (const auto& problem : storage_problems_.list()) {
    json::object entry{{"what", problem.what},
                       {"path", problem.path},
                       {"error", problem.error},
                       {"since", protocol::format_rfc3339(problem.since)},
                       {"failures", problem.failures}};
    std::string reason =
        problem.what + " cannot be written: " + problem.path + ": " + problem.error;
    if (!problem.project_id.empty()) {
      entry["project_id"] = problem.project_id;
      reason = "the " + problem.what + " of project " + problem.project_id +
               " cannot be written: " + problem.path + ": " + problem.error;
    }
    reasons.emplace_back(reason);
    storage.push_back(std::move(entry));
  }
  json::array warnings;
  {
    std::lock_guard lock(warnings_mutex_);
    for (const auto& [project_id, w] : health_warnings_) warnings.emplace_back(w);
  }
  std::string status = reasons.empty() ? "healthy" : "degraded";
  if (stopping_) {
    status = "unhealthy";
    reasons.emplace_back("the server is shutting down");
  }

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
       {{"active", connections_.admitted()}, {"limit", config_.limits.max_connections}}},
      {"projects",
       {{"count", count}, {"limit", config_.limits.max_projects}, {"executing", executing}}},
      {"resources",
       {{"cpu_percent", resources.cpu_percent},
        {"memory_mb", resources.memory_mb},
        {"threads", resources.threads},
        {"disk_free_gb", resources.disk_free_gb}}},
      {"claude", std::move(claude_json)},
      {"reasons", std::move(reasons)},
      {"storage_problems", std::move(storage)},
      {"warnings", std::move(warnings)},
      {"today", spend::to_json(spend_.today(std::chrono::system_clock::now()))},
      {"cluster", cluster_ ? json::value(cluster_->health()) : json::value(nullptr)},
  };
}

void Hub::stop_all_runs(bool force) {
  const auto reason = force ? AgentRun::Stop::kForce : AgentRun::Stop::kShutdown;
  for (const auto& project : projects_.all()) {
    asio::post(project->strand(), [project, reason] {
      if (auto run = project->run) run->stop(reason, nullptr);
    });
  }
}

void Hub::force_shutdown() {
  if (forced_.exchange(true)) return;
  if (config_.shutdown.runs == "detach") return;  // runs are left running, not killed
  spdlog::warn("second signal: killing every run now");
  stop_all_runs(true);
  scheduler_->wake_waiters();
}

void Hub::shutdown() {
  stopping_ = true;
  if (cluster_) cluster_->stop();
  notifier_->stop();
  // Last-seen times not yet saved (touch saves at most once a minute per device).
  if (!devices_.list().empty()) {
    if (const auto ec = devices_.save())
      spdlog::warn("cannot save {}: {}", devices_.path().string(), ec.message());
  }
  asio::post(io_, [self = shared_from_this()] {
    self->probe_timer_.cancel();
    self->stats_timer_.cancel();
  });
  // A `claude --version` probe still running must end while the I/O threads (and with them the
  // child reaper that sees its exit) still run.
  claude_probe_.stop();
  if (config_.shutdown.runs == "detach") {
    // Runs go on under their supervisors; the next server start takes them over.
    const auto all = projects_.all();
    std::size_t detached = 0;
    for (const auto& project : all) {
      std::promise<void> done;
      asio::post(project->strand(), [&] {
        if (auto run = project->run) {  // started or queued: both wait for the next start
          run->detach();
          ++detached;
        }
        project->flush_history();
        done.set_value();
      });
      done.get_future().wait();
    }
    spdlog::info("shutdown: {} runs left running for the next start (shutdown.runs: detach)",
                 detached);
    close_connections();
    connections_.wait_until_empty(std::chrono::seconds(5));
    return;
  }
  // Runs get timeouts.shutdown_grace to finish on their own while clients still watch them;
  // then they are stopped as agent_kill does (or at once after a second signal).
  bool idle = scheduler_->wait_until_idle(config_.timeouts.shutdown_grace);
  if (!idle && !forced_) {
    spdlog::info("shutdown: stopping {} running and {} queued runs", scheduler_->active(),
                 scheduler_->queued());
    stop_all_runs(false);
    idle = scheduler_->wait_until_idle(config_.timeouts.kill_grace + config_.timeouts.term_grace +
                                       std::chrono::seconds(5));
  }
  if (!idle && forced_) idle = scheduler_->wait_until_idle(std::chrono::seconds(5));
  if (!idle) spdlog::error("shutdown: runs did not stop in time");

  const auto all = projects_.all();
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
  connections_.wait_until_empty(std::chrono::seconds(5));
  spdlog::info("shutdown: history flushed, {} projects saved", all.size());
}

}  // namespace pa::server
