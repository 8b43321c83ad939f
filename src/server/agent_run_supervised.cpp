// AgentRun and its supervisor: the link, tagged writes, run.json, holding on storage trouble,
// and taking a run over after a server restart (or finding it lost). All on the project strand.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <filesystem>

#include "ops/logging.hpp"
#include "protocol/clock.hpp"
#include "server/agent_run.hpp"

namespace pa::server {

namespace json = boost::json;
using protocol::ErrorCode;
using namespace std::chrono_literals;

namespace {
constexpr auto kRetryMax = 5s;
}  // namespace

// ---- the link ----

bool AgentRun::attach_link(std::uint64_t offset) {
  agent::LinkHandlers handlers;
  handlers.on_record = [self = shared_from_this()](const agent::SpoolRecord& r) {
    return self->on_record(r);
  };
  handlers.on_disconnect = [self = shared_from_this()](std::error_code ec) {
    self->on_disconnect(ec);
  };
  std::error_code ec;
  // Records at most max_line_bytes plus the kind byte; an oversized notice is small.
  // The socket is read on the project's strand itself (supervisor.hpp): one thread hop less
  // per record than reading on an I/O thread and posting here.
  link_ = agent::SupervisorLink::attach(project_->strand(), project_->strand(), paths_, offset,
                                        context_.config.claude.max_line_bytes + 1024,
                                        std::move(handlers), ec);
  if (!link_) {
    spdlog::warn("project {}: cannot reach the supervisor of run {}: {}", project_->id(), run_id_,
                 ec.message());
    return false;
  }
  if (link_->cli_pid() > 0) cli_pid_ = link_->cli_pid();
  return true;
}

void AgentRun::send_tagged(std::string tag, std::string data) {
  in_flight_[tag] = data;
  state_dirty_ = true;
  if (!link_) return;
  if (tag == "close") {
    link_->close_stdin();
  } else {
    link_->write(std::move(data), std::move(tag));
  }
}

// The socket ended before the exit record: the supervisor is gone (killed, or the host is
// going down), or its socket failed while it lives on.
void AgentRun::on_disconnect(std::error_code ec) {
  if (ended()) return;
  if (agent::supervisor_alive(supervisor_pid_, supervisor_start_)) {
    spdlog::warn("project {}: lost the socket of run {} ({}); reconnecting", project_->id(),
                 run_id_, ec.message());
    retry_timer_.expires_after(retry_delay_);
    retry_delay_ = std::min<std::chrono::milliseconds>(retry_delay_ * 2, kRetryMax);
    retry_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& e) {
      if (e || self->ended()) return;
      if (self->attach_link(self->applied_offset_)) {
        for (const auto& [tag, data] : self->in_flight_) {
          if (tag == "close") {
            self->link_->close_stdin();
          } else {
            self->link_->write(data, tag);
          }
        }
      } else {
        self->on_disconnect(std::make_error_code(std::errc::connection_refused));
      }
    });
    return;
  }
  apply_remaining_spool_and_end();
}

// The supervisor is gone: what it spooled is still on disk. Apply it; a run whose spool ends
// without an exit record is lost.
void AgentRun::apply_remaining_spool_and_end() {
  if (link_) {
    link_->detach();
    link_.reset();
  }
  std::error_code ec;
  bool held = false;
  agent::read_spool_file(
      paths_.spool(), applied_offset_, context_.config.claude.max_line_bytes + 1024,
      [&](const agent::SpoolRecord& r) {
        if (held || ended()) return;
        if (r.end_offset <= applied_offset_) return;
        if (!on_record(r)) held = true;
      },
      ec);
  if (ended()) return;
  if (held) {
    // History cannot take it now: come back when it can.
    retry_timer_.expires_after(retry_delay_);
    retry_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& e) {
      if (!e && !self->ended()) self->apply_remaining_spool_and_end();
    });
    return;
  }
  on_lost();
}

void AgentRun::on_lost() {
  spdlog::error(
      "project {}: run {} was lost: its supervisor (pid {}) is gone without an exit record",
      project_->id(), run_id_, supervisor_pid_);
  lost_ = true;
  permissions_.cancel_all("run_ended");
  publish_dequeued(follow_ups_.cancel_all("the run was lost"));
  // Whatever the CLI may have left (a host reboot leaves nothing; a killed supervisor may).
  if (cli_pid_ > 0) ::kill(-cli_pid_, SIGKILL);
  const auto session = project_->snapshot().session_id;
  fail(ErrorCode::kExecutionFailed,
       "The run was lost: its supervisor process is gone (the host restarted, or it was "
       "killed) before the CLI finished. Its output up to then is in history; the session is "
       "kept, so the next execute resumes the conversation",
       json::object{{"reason", "lost"},
                    {"run_id", run_id_},
                    {"session_id", session ? json::value(*session) : json::value(nullptr)}});
  json::object fields{{"project_id", project_->id()}, {"run_id", run_id_}, {"reason", "lost"}};
  if (!correlation_id_.empty()) fields["correlation_id"] = correlation_id_;
  ops::log_event(spdlog::level::warn, "Execution lost", fields);
  context_.metrics.execution_finished(ops::ExecutionOutcome::kFailed, 0);
  context_.scheduler.release();
  finish_idle(true);
  cleanup_run_dir();
}

// ---- storage ----

// A record could not be applied (its history append failed): the link holds; try the same
// record again with backoff. Held longer than timeouts.execution_idle (if set), the run stops.
bool AgentRun::hold_for_storage() {
  // (The project reported the failed append: health, log, metrics, STORAGE_FAILED to clients.)
  const auto now = std::chrono::steady_clock::now();
  if (!held_since_) held_since_ = now;
  const auto idle = context_.config.timeouts.execution_idle;
  if (idle.count() > 0 && now - *held_since_ > idle && phase_ != Phase::kStopping) {
    fail(ErrorCode::kStorageFailed,
         "History could not be written for longer than timeouts.execution_idle (" +
             std::to_string(idle.count()) + "s); the run was stopped",
         json::object{{"what", "history"}, {"path", project_->history_path()}});
    stop(Stop::kKill, nullptr);
  }
  retry_timer_.expires_after(retry_delay_);
  retry_delay_ = std::min<std::chrono::milliseconds>(retry_delay_ * 2, kRetryMax);
  retry_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& e) {
    if (!e && self->link_) self->link_->resume();
  });
  return false;
}

// ---- run.json ----

RunState AgentRun::make_state() const {
  RunState s;
  s.run_id = run_id_;
  s.project_id = project_->id();
  s.supervisor_pid = supervisor_pid_;
  s.supervisor_start = supervisor_start_;
  s.cli_pid = cli_pid_;
  s.started_at = started_at_text_;
  s.first_seq = first_seq_;
  s.correlation_id = correlation_id_;
  s.resumed_session = resumed_session_;
  s.client_permissions = client_permissions_;
  s.mcp_path = mcp_path_;
  s.prompt_length = prompt_length_;
  s.state_offset = effects_through_;
  s.stop = std::string(stop_name(stop_));
  s.interrupting = phase_ == Phase::kInterrupting;
  s.by = by_;
  s.stop_request = stop_request_;
  s.result_seen = result_seen_;
  s.result_is_error = result_is_error_;
  s.session_not_found = session_not_found_;
  permissions_.save(s);
  follow_ups_.save(s);
  s.in_flight = in_flight_;
  if (phase_ == Phase::kQueued) {
    s.queued = true;
    s.queued_order = queued_order_;
    s.prompt = request_.prompt;
    s.options = request_.options_json;
    for (const auto& a : request_.attachments) s.attachments.push_back(a.ref());
  }
  return s;
}

void AgentRun::save_state() {
  state_dirty_ = false;
  if (run_id_.empty() || ended()) return;
  if (auto ec = save_run_state(paths_.dir + "/run.json", make_state())) {
    spdlog::error("project {}: cannot save the state of run {}: {}", project_->id(), run_id_,
                  ec.message());
    state_dirty_ = true;
  }
}

bool AgentRun::make_run_dir(std::string& error) {
  run_id_ = projects::random_uuid().substr(0, 8) + projects::random_uuid().substr(0, 8);
  paths_ = agent::RunPaths{context_.runs_dir + "/" + run_id_};
  std::error_code ec;
  std::filesystem::create_directory(paths_.dir, ec);
  if (!ec) {
    std::filesystem::permissions(paths_.dir, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::replace, ec);
  }
  if (!ec) return true;
  error = "cannot make the run directory " + paths_.dir + ": " + ec.message();
  return false;
}

void AgentRun::cleanup_run_dir() {
  if (paths_.dir.empty()) return;
  // The supervisor may remove its socket at the same moment: a file that vanished is fine.
  std::error_code ec;
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::filesystem::remove_all(paths_.dir, ec);
    if (!ec || !std::filesystem::exists(paths_.dir)) return;
  }
  spdlog::warn("cannot remove the run directory {}: {}", paths_.dir, ec.message());
}

// ---- restart ----

std::shared_ptr<AgentRun> AgentRun::restore(std::shared_ptr<Project> project, RunContext& context,
                                            RunState state) {
  auto run = std::make_shared<AgentRun>(project, context, ExecuteRequest{});
  run->run_id_ = state.run_id;
  run->paths_ = agent::RunPaths{context.runs_dir + "/" + state.run_id};
  run->supervisor_pid_ = state.supervisor_pid;
  run->supervisor_start_ = state.supervisor_start;
  run->cli_pid_ = state.cli_pid;
  run->started_at_text_ = state.started_at;
  run->first_seq_ = state.first_seq;
  run->correlation_id_ = state.correlation_id;
  run->resumed_session_ = state.resumed_session;
  run->client_permissions_ = state.client_permissions;
  run->mcp_path_ = state.mcp_path;
  run->prompt_length_ = state.prompt_length;
  run->effects_through_ = state.state_offset;
  run->stop_ = stop_from_name(state.stop);
  run->by_ = state.by;
  run->stop_request_ = state.stop_request;
  // A stopping run that had been interrupted first is stopping.
  run->phase_ = run->stop_ != Stop::kNone ? Phase::kStopping
                : state.interrupting      ? Phase::kInterrupting
                                          : Phase::kRunning;
  run->result_seen_ = state.result_seen;
  run->result_is_error_ = state.result_is_error;
  run->session_not_found_ = state.session_not_found;
  run->in_flight_ = state.in_flight;
  run->started_at_ = std::chrono::steady_clock::now();
  if (auto started = protocol::parse_rfc3339(state.started_at)) {
    run->started_at_ -= std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::system_clock::now() - *started);
  }
  run->follow_ups_.restore(state, &context.attachments);
  run->permissions_.restore(state);
  return run;
}

std::shared_ptr<AgentRun> AgentRun::restore_queued(std::shared_ptr<Project> project,
                                                   RunContext& context, RunState state,
                                                   protocol::Error& error) {
  agent::Policy policy;
  policy.allow_dangerous = context.config.claude.allow_dangerous;
  policy.max_prompt_bytes = context.config.limits.prompt_size;
  policy.paths = &context.path_policy;
  auto parsed = agent::parse_run_options(state.options.empty() ? nullptr : &state.options, policy);
  if (auto* e = std::get_if<protocol::Error>(&parsed)) {
    error = *e;
    return nullptr;
  }
  auto attachments = context.attachments.load(state.attachments);
  if (!attachments) {
    error = protocol::make_error(
        protocol::ErrorCode::kInternalError,
        "The queued execute's attachments could not be read back from the data directory; "
        "send the prompt and its files again",
        boost::json::object{{"attachments", state.attachments}});
    return nullptr;
  }
  ExecuteRequest request{std::move(state.prompt),
                         std::get<agent::RunOptions>(std::move(parsed)),
                         {},
                         std::move(state.options),
                         std::move(*attachments)};
  auto run = std::make_shared<AgentRun>(project, context, std::move(request));
  run->run_id_ = state.run_id;
  run->paths_ = agent::RunPaths{context.runs_dir + "/" + state.run_id};
  run->queued_order_ = state.queued_order;
  run->by_ = state.by;
  run->correlation_id_ = state.correlation_id;
  run->follow_ups_.restore(state, &context.attachments);
  return run;
}

Scheduler::Ticket make_ticket(const std::shared_ptr<Project>& project,
                              const std::shared_ptr<AgentRun>& run) {
  std::weak_ptr<AgentRun> weak_run = run;
  Scheduler::Ticket ticket;
  ticket.project_id = project->id();
  ticket.start = [project, weak_run] {
    boost::asio::post(project->strand(), [weak_run, project] {
      if (auto queued = weak_run.lock()) {
        queued->start();
      } else {
        project->run.reset();
      }
    });
  };
  ticket.moved = [project, weak_run](std::size_t position) {
    boost::asio::post(project->strand(), [weak_run, position] {
      if (auto queued = weak_run.lock(); queued && queued->queued()) {
        queued->set_queued(position, nullptr);
      }
    });
  };
  return ticket;
}

// The last spool offset this run has in history (0: none), and whether its final entry is.
std::uint64_t AgentRun::applied_offset_in_history(bool& final) const {
  final = false;
  const std::string needle = "\"run\":{\"id\":\"" + run_id_ + "\",\"offset\":";
  std::uint64_t before = project_->last_seq() + 1;
  while (before > first_seq_ + 1) {
    history::Query query;
    query.before_seq = before;
    query.limit = 200;
    const auto page = project_->read_history(query);
    if (page.entries.empty()) break;
    for (auto it = page.entries.rbegin(); it != page.entries.rend(); ++it) {
      const auto at = it->rfind(needle);
      if (at == std::string::npos) continue;
      const char* p = it->data() + at + needle.size();
      std::uint64_t offset = 0;
      while (*p >= '0' && *p <= '9') offset = offset * 10 + static_cast<std::uint64_t>(*p++ - '0');
      final = std::string_view(p).starts_with(",\"final\":true");
      return offset;
    }
    boost::system::error_code ec;
    const json::value first = json::parse(page.entries.front(), ec);
    if (ec || !first.is_object() || !first.get_object().at("seq").is_number()) break;
    before = first.get_object().at("seq").to_number<std::uint64_t>();
  }
  return 0;
}

bool AgentRun::ended_in_history() {
  bool final = false;
  const std::uint64_t in_history = applied_offset_in_history(final);
  if (!final) return false;
  // It ended and its end is in history; only its files were left (the server died between
  // the final state and removing them). Let the supervisor go, if it still waits.
  phase_ = Phase::kFinished;
  if (agent::supervisor_alive(supervisor_pid_, supervisor_start_) && attach_link(in_history)) {
    link_->done();
    link_.reset();
  }
  cleanup_run_dir();
  return true;
}

void AgentRun::reattach() {
  bool final = false;
  const std::uint64_t in_history = applied_offset_in_history(final);
  applied_offset_ = in_history;
  // Records in history whose effects run.json does not have yet (the server died between the
  // two): apply their effects now, without publishing them again.
  if (effects_through_ < in_history) {
    std::error_code ec;
    agent::read_spool_file(
        paths_.spool(), effects_through_, context_.config.claude.max_line_bytes + 1024,
        [&](const agent::SpoolRecord& r) {
          if (r.end_offset > in_history || ended()) return;
          apply_record(r, Apply::kEffectsOnly);
          effects_through_ = r.end_offset;
        },
        ec);
    applied_offset_ = in_history;
  }
  permissions_.arm_all();
  json::object fields{{"project_id", project_->id()},
                      {"run_id", run_id_},
                      {"supervisor_pid", supervisor_pid_},
                      {"offset", applied_offset_}};
  if (!agent::supervisor_alive(supervisor_pid_, supervisor_start_) ||
      !attach_link(applied_offset_)) {
    ops::log_event(spdlog::level::warn, "Run supervisor gone; applying its spool", fields);
    apply_remaining_spool_and_end();
    return;
  }
  ops::log_event(spdlog::level::info, "Run re-attached", fields);
  // Writes that were sent but not confirmed go again (the supervisor carries a tag out once).
  for (const auto& [tag, data] : in_flight_) {
    if (tag == "close") {
      link_->close_stdin();
    } else {
      link_->write(data, tag);
    }
  }
  if (!permissions_.empty()) link_->pause_clocks(true);
  if (stop_ != Stop::kNone) link_->stop(stop_ == Stop::kShutdown ? "shutdown" : "kill");
  // A turn that ended while nobody could act on it: send the next follow-up or close stdin.
  if (result_seen_ && in_flight_.empty() && phase_ == Phase::kRunning) on_turn_end();
  save_state();
}

void AgentRun::detach() {
  assert_on_strand();
  if (ended()) return;
  save_state();
  phase_ = Phase::kDetached;
  // The project no longer holds this run (nor the run its project: no cycle to leak).
  if (project_->run.get() == this) project_->run.reset();
  retry_timer_.cancel();
  permissions_.cancel_timers();
  if (link_) {
    link_->detach();
    link_.reset();
  }
}

}  // namespace pa::server
