#include "server/agent_run.hpp"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/assert.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <filesystem>
#include <optional>
#include <utility>
#include <vector>

#include "agent/process_spawn.hpp"
#include "common/atomic_file.hpp"
#include "notify/notifier.hpp"
#include "ops/logging.hpp"
#include "projects/path_rules.hpp"
#include "protocol/clock.hpp"
#include "protocol/json_text.hpp"
#include "protocol/utf8.hpp"

namespace pa::server {

namespace json = boost::json;
using protocol::ErrorCode;

namespace {
constexpr std::size_t kStderrInError = 4096;

// How the CLI says that the session given to --resume cannot be resumed (CLI-BEHAVIOUR.md
// section 1): an unknown UUID, or a value that is not a UUID (nor a session title). 2.1.197
// prints the text on stderr and, in stream-json mode, also as the errors[] of a result line.
bool is_resume_rejection(std::string_view text) {
  return text.find("No conversation found with session ID") != std::string_view::npos ||
         text.find("--resume requires a valid session ID") != std::string_view::npos;
}

std::string describe(const agent::ExitStatus& status) {
  return status.signaled ? "killed by signal " + std::to_string(status.signal)
                         : "exit code " + std::to_string(status.code);
}
}  // namespace

AgentRun::AgentRun(std::shared_ptr<Project> project, RunContext& context, ExecuteRequest request)
    : project_(std::move(project)),
      context_(context),
      request_(std::move(request)),
      retry_timer_(project_->strand()),
      permissions_(*this, project_->strand(), project_->id(),
                   context_.config.claude.permission_timeout) {
  if (request_.requester.connection) by_ = client_who(*request_.requester.connection);
}

json::object AgentRun::state_data(const projects::ProjectInfo& info) const {
  json::object data = projects::to_json(info);
  if (!by_.empty() && info.state != projects::State::kIdle) data["by"] = by_;
  return data;
}

json::object AgentRun::pending_stop() const {
  assert_on_strand();
  return ended() ? json::object{} : stop_request_;
}

void AgentRun::stop_requested(std::string_view how, const Requester& requester) {
  stop_request_ = json::object{{"how", how}, {"by", client_who(*requester.connection)}};
  save_state();
  project_->publish("run_stopping", stop_request_);
}

// Timeouts, shutdown and a lost run say so whoever asked for a stop before; a stop a client
// asked for is that client's; then what the CLI's last result (or an error) says.
json::object AgentRun::ending() const {
  const auto* how = stop_request_.if_contains("how");
  std::string_view reason;
  if (lost_) {
    reason = "lost";
  } else if (stop_ == Stop::kTimeout || stop_ == Stop::kIdleTimeout) {
    reason = "timeout";
  } else if (stop_ == Stop::kShutdown || stop_ == Stop::kForce) {
    reason = "shutdown";
  } else if (how != nullptr && *how == "budget") {
    reason = "budget_exceeded";
  } else if (how != nullptr) {
    reason = *how == "kill" ? "killed" : "interrupted";
  } else if (failed_) {
    reason = "failed";
  } else if (stop_ == Stop::kKill) {
    reason = "killed";  // the supervisor was sent SIGTERM: nobody asked through the server
  } else if (!result_seen_ || result_is_error_) {
    reason = "failed";
  } else {
    reason = "completed";
  }
  json::object ended{{"reason", reason}};
  if (how != nullptr &&
      (reason == "killed" || reason == "interrupted" || reason == "budget_exceeded"))
    ended["by"] = stop_request_.at("by");
  return ended;
}

void AgentRun::assert_on_strand() const {
  BOOST_ASSERT_MSG(project_->strand().running_in_this_thread(),
                   "AgentRun is used on its project's strand only");
}

void AgentRun::set_queued(std::size_t position, const Requester* requester) {
  assert_on_strand();
  if (run_id_.empty()) {
    // On disk while it waits: a restart admits it again, in its order.
    queued_order_ =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
    std::string error;
    if (make_run_dir(error)) {
      save_state();
    } else {
      spdlog::error("project {}: a queued run is not kept across restarts: {}", project_->id(),
                    error);
    }
  }
  const auto info = project_->update([&](projects::ProjectInfo& p) {
    p.state = projects::State::kQueued;
    p.queue_position = position;
  });
  project_->publish("project_state", state_data(info), requester);
}

void AgentRun::fail(ErrorCode code, std::string message, json::object details) {
  failed_ = true;
  summary_.error = message;
  context_.metrics.error(protocol::to_string(code)).inc();
  json::object data =
      protocol::error_data(protocol::make_error(code, std::move(message), std::move(details)));
  project_->publish("error", data);
}

namespace {
// The run happens in the directory that passed the path policy when the project was created:
// check it again (the policy may have changed) and open it without following symlinks, so a
// component swapped for a symlink since then is refused and the child enters exactly the
// directory that was checked (fchdir on `project_dir`, no second path lookup). add_dirs were
// checked when the execute arrived, possibly long before a queued run starts: they must still
// resolve to themselves and pass the policy. Returns {path, reason} for the first problem.
// `internal` is set when the trouble is the server's (out of file descriptors), not the path's.
std::optional<std::pair<std::string, std::string>> directory_problem(
    const projects::PathPolicy& policy, const std::string& project_path,
    const std::vector<std::string>& add_dirs, agent::detail::UniqueFd& project_dir,
    std::optional<protocol::Error>& internal) {
  if (auto reason = policy.refusal(project_path)) return std::pair(project_path, *reason);
  std::error_code ec;
  project_dir.reset(projects::open_directory_no_symlinks(project_path, ec));
  if (!project_dir.valid() && projects::out_of_descriptors(ec)) {
    internal = projects::descriptor_exhaustion("opening the project directory", ec);
    return std::pair(project_path, ec.message());
  }
  if (!project_dir.valid()) {
    return std::pair(
        project_path,
        ec == std::errc::too_many_symbolic_link_levels || ec == std::errc::not_a_directory
            ? std::string("a part of it is no longer a directory (replaced by a "
                          "symlink or a file?); delete the project and create it "
                          "again")
            : "it cannot be opened: " + ec.message());
  }
  for (const auto& dir : add_dirs) {
    const auto now = std::filesystem::canonical(dir, ec);
    if (ec && projects::out_of_descriptors(ec)) {
      internal = projects::descriptor_exhaustion("resolving add_dirs", ec);
      return std::pair(dir, ec.message());
    }
    if (ec || now.string() != dir) {
      return std::pair(
          dir, ec ? "it cannot be resolved any more: " + ec.message()
                  : "it changed since the request (it now resolves to " + now.string() + ")");
    }
    if (auto reason = policy.refusal(dir)) return std::pair(dir, *reason);
  }
  return std::nullopt;
}
}  // namespace

// The run could not start: undo what start() did and leave the project idle.
void AgentRun::abandon_start(std::string_view reason) {
  std::error_code ec;
  if (!mcp_path_.empty()) std::filesystem::remove(mcp_path_, ec);
  publish_dequeued(follow_ups_.cancel_all("the run could not start"));
  json::object fields{{"project_id", project_->id()}, {"reason", reason}};
  if (!correlation_id_.empty()) fields["correlation_id"] = correlation_id_;
  ops::log_event(spdlog::level::warn, "Execution failed to start", fields);
  context_.metrics.execution_not_started();
  context_.scheduler.release();
  finish_idle();
  cleanup_run_dir();
}

void AgentRun::start() {
  assert_on_strand();
  if (ended()) {
    // Cancelled (or left to the next server) while the scheduler was handing it a slot: give
    // the slot back.
    context_.scheduler.release();
    return;
  }
  // A queued execute may find the day's budget spent by the time its slot comes.
  if (auto reached = context_.spend.budget_reached(project_->id(), project_->snapshot().spend,
                                                   std::chrono::system_clock::now(),
                                                   "The queued execute is not started")) {
    fail(reached->code, reached->message, reached->details);
    abandon_start("a daily budget is reached");
    return;
  }
  phase_ = Phase::kRunning;
  prompt_length_ = request_.prompt.size();
  if (request_.requester.request_id) correlation_id_ = *request_.requester.request_id;
  started_at_ = std::chrono::steady_clock::now();
  const auto info = project_->update([](projects::ProjectInfo& p) {
    p.state = projects::State::kExecuting;
    p.queue_position = 0;
    p.last_active = protocol::now_rfc3339();
  });
  // The requester gets EXECUTING as the direct reply to its execute, unless it was queued first
  // (then it already had its reply and sees EXECUTING as a broadcast).
  const Requester* requester = request_.requester.connection ? &request_.requester : nullptr;
  project_->publish("project_state", state_data(info), requester);
  request_.requester = {};

  if (request_.options.mcp_config_json) {
    mcp_path_ = context_.scratch_dir + "/mcp-" + projects::random_uuid() + ".json";
    if (auto ec =
            common::write_file_atomically(mcp_path_, *request_.options.mcp_config_json, 0600)) {
      fail(ErrorCode::kInternalError, "Could not write the MCP configuration file: " + ec.message(),
           {});
      mcp_path_.clear();
      abandon_start("could not write the MCP configuration file: " + ec.message());
      return;
    }
  }

  agent::detail::UniqueFd project_dir;
  std::optional<protocol::Error> internal;
  if (auto problem = directory_problem(context_.path_policy, project_->path(),
                                       request_.options.add_dirs, project_dir, internal)) {
    if (internal) {
      fail(internal->code, internal->message, internal->details);
      abandon_start("out of file descriptors");
      return;
    }
    const auto& [path, reason] = *problem;
    fail(ErrorCode::kInvalidPath, "The directory " + path + " cannot be used: " + reason,
         json::object{{"path", path}, {"reason", reason}});
    abandon_start("the directory " + path + " cannot be used: " + reason);
    return;
  }

  agent::SupervisorSpec spec;
  spec.cli.binary = context_.config.claude.binary;
  const agent::RunOptions options = options_at_start();
  // options.session_id (a past session from session_list) wins over the project's stored one.
  const auto resume = options.session_id ? options.session_id : info.session_id;
  auto args = agent::build_cli_args(options, context_.config.claude, resume,
                                    mcp_path_.empty() ? std::nullopt : std::optional(mcp_path_));
  resumed_session_ = args.resumed_session;
  spec.cli.args = std::move(static_cast<std::vector<std::string>&>(args));
  client_permissions_ = agent::uses_client_permission_prompt(options, context_.config.claude);
  spec.cli.env = context_.cli_env;
  spec.cli.cwd = project_->path();
  spec.max_line_bytes = context_.config.claude.max_line_bytes;
  spec.execution = context_.config.timeouts.execution;
  spec.execution_idle = context_.config.timeouts.execution_idle;
  spec.kill_grace = context_.config.timeouts.kill_grace;
  spec.term_grace = context_.config.timeouts.term_grace;
  spec.fsync_interval = context_.config.log_rotation.fsync_interval;

  std::error_code ec;
  std::string error;
  agent::Launched launched;
  if (!run_id_.empty() || make_run_dir(error)) {  // a queued run has its directory already
    // No longer queued: a restart from here on takes it for started (lost, if it never was),
    // never starts it a second time.
    save_state();
    launched =
        agent::launch_supervisor(context_.self_exe, paths_, spec, project_dir.get(), ec, error);
  } else {
    ec = std::make_error_code(std::errc::io_error);
  }
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory || ec == std::errc::permission_denied) {
      fail(ErrorCode::kClaudeNotFound,
           "The Claude CLI '" + spec.cli.binary +
               "' was not found or is not executable; install it "
               "(npm install -g @anthropic-ai/claude-code) or set claude.binary",
           json::object{{"binary", spec.cli.binary}});
    } else if (projects::out_of_descriptors(ec)) {
      // The server's limit (the supervisor and the CLI inherit it), not the CLI's fault.
      const auto e = projects::descriptor_exhaustion("starting the run's supervisor", ec);
      fail(e.code, e.message, e.details);
    } else {
      fail(ErrorCode::kExecutionFailed, "Could not start the Claude CLI: " + error,
           json::object{{"binary", spec.cli.binary}});
    }
    cleanup_run_dir();
    abandon_start("could not start " + spec.cli.binary + ": " + error);
    return;
  }
  supervisor_pid_ = launched.supervisor_pid;
  supervisor_start_ = launched.supervisor_start;
  cli_pid_ = launched.cli_pid;
  started_at_text_ = protocol::now_rfc3339();
  first_seq_ = project_->last_seq();
  save_state();
  if (!attach_link(0)) {
    // The supervisor answered and then could not be reached: it cannot be steered, so stop it.
    ::kill(supervisor_pid_, SIGTERM);
    fail(ErrorCode::kExecutionFailed,
         "Could not reach the run's supervisor (" + paths_.socket() + ")",
         json::object{{"binary", spec.cli.binary}});
    cleanup_run_dir();
    abandon_start("could not reach the supervisor");
    return;
  }
  // Sizes go under "fields", as in the spec's log example.
  json::object fields{{"project_id", project_->id()},
                      {"pid", cli_pid_},
                      {"run_id", run_id_},
                      {"fields", {{"prompt_length", request_.prompt.size()}}}};
  if (!correlation_id_.empty()) fields["correlation_id"] = correlation_id_;
  if (info.session_id) fields["session_id"] = *info.session_id;
  ops::log_event(spdlog::level::info, "Execution started", fields);
  if (request_.attachments.empty()) {
    send_tagged("prompt", agent::user_message_line(request_.prompt));
  } else {
    send_tagged("prompt", agent::user_message_line(
                              user_content_blocks(request_.prompt, request_.attachments)));
  }
  request_.prompt.clear();
  request_.prompt.shrink_to_fit();
  request_.attachments.clear();
  request_.attachments.shrink_to_fit();
  save_state();
}

// Written into the history entry of each record: which run and how far in its spool. The last
// entry of a run (its final project_state) is marked final.
std::string AgentRun::trailer(std::uint64_t offset, bool final) const {
  return ",\"run\":{\"id\":\"" + run_id_ + "\",\"offset\":" + std::to_string(offset) +
         (final ? ",\"final\":true}" : "}");
}

// One record of the spool, in order. A record whose effects on the run's state were applied
// before (at or below effects_through_: before a restart, or before its history append failed)
// is only published.
bool AgentRun::on_record(const agent::SpoolRecord& record) {
  if (ended()) return true;
  const Apply mode = record.end_offset <= effects_through_ ? Apply::kPublishOnly : Apply::kFull;
  if (!apply_record(record, mode)) return hold_for_storage();
  if (held_since_) {
    held_since_.reset();
    retry_delay_ = std::chrono::milliseconds(100);
    spdlog::info("project {}: history writable again; run {} goes on", project_->id(), run_id_);
  }
  return true;
}

bool AgentRun::apply_record(const agent::SpoolRecord& record, Apply mode) {
  const bool effects = mode != Apply::kPublishOnly;
  bool applied = true;
  switch (record.kind) {
    case agent::RecordKind::kLine:
      applied = on_line(std::string(record.payload), record.end_offset, mode);
      break;
    case agent::RecordKind::kOversized:
      applied = on_line_too_long(record.payload, record.end_offset, mode);
      break;
    case agent::RecordKind::kInput:
      on_input_confirmed(record.payload);
      break;
    case agent::RecordKind::kStop:
      if (effects) on_supervisor_stop(record.payload);
      break;
    case agent::RecordKind::kExit:
      if (mode == Apply::kEffectsOnly) return true;  // handled by the caller
      applied = on_exit_record(record.payload);
      break;
    case agent::RecordKind::kNotice:
      on_notice(record.payload);
      return true;  // notices take no offset
  }
  if (!applied) return false;
  if (ended()) return true;
  if (effects && record.end_offset > effects_through_) {
    effects_through_ = record.end_offset;
    if (state_dirty_) save_state();
  }
  applied_offset_ = record.end_offset;
  return true;
}

// The supervisor cannot write the spool (it holds the CLI's output meanwhile), or can again.
void AgentRun::on_notice(std::string_view payload) {
  boost::system::error_code ec;
  const json::value notice = json::parse(payload, ec);
  const json::value* storage =
      !ec && notice.is_object() ? notice.get_object().if_contains("storage") : nullptr;
  if (storage == nullptr) return;
  if (!storage->is_object()) {
    project_->report_storage_recovered(paths_.spool());
    return;
  }
  const auto& o = storage->get_object();
  int err = EIO;
  if (const auto* e = o.if_contains("errno"); e != nullptr && e->is_int64())
    err = static_cast<int>(e->get_int64());
  project_->report_storage_failure("spool", paths_.spool(),
                                   std::error_code(err, std::generic_category()));
}

bool AgentRun::on_line(const std::string& line, std::uint64_t offset, Apply mode) {
  const bool effects = mode != Apply::kPublishOnly;
  const bool publish = mode != Apply::kEffectsOnly;
  const auto parsed = agent::inspect_cli_line(line);
  if (effects) {
    ++lines_;
    response_bytes_ += line.size();
  }
  if (parsed.type == "control_request" || parsed.type == "control_cancel_request") {
    // Rare lines, parsed again in full: a question for the host (can_use_tool) is answered by
    // clients and not shown as a CLI line; a cancel closes the question it names.
    boost::system::error_code ec;
    json::parse_options options;
    options.max_depth = 1024;
    const json::value value = json::parse(line, ec, {}, options);
    if (!ec && value.is_object()) {
      if (auto request = agent::parse_control_request(value.get_object())) {
        if (effects) {
          on_control_request(line, *request);
          // On disk before it is announced: a restart must find this permission_id and its
          // deadline, never make a new one for the same question.
          if (request->ask) {
            effects_through_ = offset;
            save_state();
          }
        }
        if (request->ask) {
          // In history as the permission_request, marked with this record's offset.
          if (!publish) return true;
          if (const auto* announced = permissions_.announced_for(request->ask->cli_request_id)) {
            if (project_->try_publish_marked("permission_request", *announced, {}, trailer(offset))
                    .seq == 0)
              return false;
            context_.notifier.raise(permission_event(project_->snapshot(), *announced,
                                                     context_.config.notify.console_url));
            return true;
          }
          return true;  // refused at once, or already answered: nothing to show
        }
      } else if (auto id = agent::parse_control_cancel(value.get_object())) {
        // The CLI withdrew its ask (it was interrupted, or its turn ended).
        if (effects)
          permissions_.cancel_ask(*id,
                                  phase_ == Phase::kInterrupting ? "interrupted" : "run_ended");
      }
    }
  }
  if (!parsed.is_json_object) {
    if (!publish) return true;
    spdlog::warn("project {}: the CLI printed a non-JSON line ({} bytes)", project_->id(),
                 line.size());
    const std::string raw = protocol::to_json_text(
        json::object{{"type", "raw"}, {"text", protocol::sanitize_utf8(line)}});
    return project_
               ->try_publish_raw_marked(history::Direction::kClaude, raw, "agent_message", raw,
                                        trailer(offset))
               .seq != 0;
  }
  if (effects) {
    // A rejected resume's result carries an id of its own (a fresh one for a non-UUID value):
    // it names no conversation, so it is not taken as the project's session.
    const bool resume_rejected =
        parsed.is_result && resumed_session_ &&
        std::any_of(parsed.errors.begin(), parsed.errors.end(),
                    [](const std::string& e) { return is_resume_rejection(e); });
    if (resume_rejected) session_not_found_ = true;
    if (parsed.session_id && !resume_rejected &&
        (parsed.type == "result" || (parsed.type == "system" && parsed.subtype == "init"))) {
      const auto current = project_->snapshot().session_id;
      if (current != parsed.session_id) {
        project_->update([&](projects::ProjectInfo& p) { p.session_id = parsed.session_id; });
      }
    }
  }
  // The line goes to history (and out) before the effects of its turn's end are published. A
  // line with a fraction or an exponent is stored and sent with its numbers by the rule
  // (protocol/json_text.hpp); the others, most lines, as the CLI wrote them.
  std::string normalized;
  std::string_view message = line;
  if (publish && parsed.has_double) {
    normalized = line;
    if (protocol::normalize_json_numbers(normalized)) message = normalized;
  }
  if (publish && project_->try_publish_raw_marked(history::Direction::kClaude, message,
                                                  "agent_message", message, trailer(offset))
                         .seq == 0) {
    return false;  // the effects above are idempotent: applying them on the retry is harmless
  }
  if (parsed.is_result && effects) {
    result_seen_ = true;
    result_is_error_ = parsed.is_error;
    summary_.cost_usd = parsed.total_cost_usd;
    summary_.duration_ms = parsed.duration_ms;
    summary_.num_turns = parsed.num_turns;
    summary_.result_text = parsed.result_text;
    count_spend(parsed, offset, mode);
    on_turn_end();
    state_dirty_ = true;
  }
  return true;
}

namespace {
// The value of the first "type" key in the head of a JSON line (the CLI writes it first).
std::string line_type_from_head(const std::string& head) {
  constexpr std::string_view kKey = "\"type\":\"";
  const auto start = head.find(kKey);
  if (start == std::string::npos) return {};
  const auto value = start + kKey.size();
  const auto end = head.find('"', value);
  if (end == std::string::npos || end - value > 64) return {};
  return protocol::sanitize_utf8(head.substr(value, end - value));
}
}  // namespace

bool AgentRun::on_line_too_long(std::string_view payload, std::uint64_t offset, Apply mode) {
  std::size_t bytes = 0;
  std::string head;
  boost::system::error_code ec;
  const json::value value = json::parse(payload, ec);
  if (!ec && value.is_object()) {
    const auto& o = value.get_object();
    if (const auto* b = o.if_contains("bytes"); b != nullptr && b->is_number())
      bytes = static_cast<std::size_t>(b->to_number<double>());
    if (const auto* h = o.if_contains("head"); h != nullptr && h->is_string())
      head = std::string(h->get_string());
  }
  const std::string line_type = line_type_from_head(head);
  if (mode != Apply::kEffectsOnly) {
    spdlog::warn(
        "project {}: dropped a CLI line of {} bytes (type {}; claude.max_line_bytes is {})",
        project_->id(), bytes, line_type.empty() ? "unknown" : line_type,
        context_.config.claude.max_line_bytes);
    json::object notice{{"type", "oversized_line"},
                        {"bytes", bytes},
                        {"limit", context_.config.claude.max_line_bytes}};
    notice["line_type"] = line_type.empty() ? json::value(nullptr) : json::value(line_type);
    const std::string text = protocol::to_json_text(notice);
    if (project_
            ->try_publish_raw_marked(history::Direction::kServer, text, "agent_message", text,
                                     trailer(offset))
            .seq == 0)
      return false;
  }
  if (line_type == "result" && mode != Apply::kPublishOnly) {
    // A huge final answer makes a huge result line: the turn is still over.
    result_seen_ = true;
    result_is_error_ = head.find("\"is_error\":true") != std::string::npos;
    on_turn_end();
    state_dirty_ = true;
  }
  return true;
}

void AgentRun::stop(Stop reason, const Requester* requester) {
  assert_on_strand();
  if (ended()) {
    return;
  }
  if (requester != nullptr && requester->connection) waiters_.push_back(*requester);
  // A client's kill is announced once (also after its interrupt); a queued run just leaves.
  if (reason == Stop::kKill && requester != nullptr && requester->connection &&
      phase_ != Phase::kStopping) {
    if (phase_ == Phase::kQueued) {
      stop_request_ = json::object{{"how", "kill"}, {"by", client_who(*requester->connection)}};
    } else {
      stop_requested("kill", *requester);
    }
  }
  if (phase_ == Phase::kQueued) {
    // Still queued: leave the queue (if the scheduler is starting it right now, start() will
    // find the project no longer waiting and give the slot back).
    stop_ = reason;
    context_.scheduler.cancel(project_->id());
    publish_dequeued(follow_ups_.cancel_all("the run was stopped before it started"));
    finish_idle();
    cleanup_run_dir();
    return;
  }
  const bool stopping = phase_ == Phase::kStopping;
  if (!stopping) {
    publish_dequeued(follow_ups_.cancel_all(
        reason == Stop::kKill ? "the run was stopped (agent_kill)" : "the run was stopped"));
    permissions_.cancel_all(reason == Stop::kKill ? "killed" : "run_ended");
  }
  if (reason == Stop::kForce) {
    if (!stopping) {
      phase_ = Phase::kStopping;
      stop_ = reason;
    }
    if (link_) link_->stop("force");
    save_state();
    return;
  }
  if (stopping) return;  // already stopping
  phase_ = Phase::kStopping;
  stop_ = reason;
  save_state();
  if (link_) link_->stop(reason == Stop::kShutdown ? "shutdown" : "kill");
}

// Stop reasons by name: in run.json, and in the supervisor's `s` records ("terminated": the
// supervisor itself got SIGTERM, taken as agent_kill).
std::string_view AgentRun::stop_name(Stop stop) {
  switch (stop) {
    case Stop::kNone:
      return "";
    case Stop::kKill:
      return "kill";
    case Stop::kTimeout:
      return "timeout";
    case Stop::kIdleTimeout:
      return "idle_timeout";
    case Stop::kShutdown:
      return "shutdown";
    case Stop::kForce:
      return "force";
  }
  return "";
}

AgentRun::Stop AgentRun::stop_from_name(std::string_view name) {
  for (const Stop stop :
       {Stop::kKill, Stop::kTimeout, Stop::kIdleTimeout, Stop::kShutdown, Stop::kForce}) {
    if (name == stop_name(stop)) return stop;
  }
  return name == "terminated" ? Stop::kKill : Stop::kNone;
}

// The supervisor began stopping the CLI. Its own timeouts are news here; a stop the server
// asked for is already known.
void AgentRun::on_supervisor_stop(std::string_view payload) {
  boost::system::error_code ec;
  const json::value value = json::parse(payload, ec);
  std::string reason;
  if (!ec && value.is_object()) {
    if (const auto* r = value.get_object().if_contains("reason"); r != nullptr && r->is_string())
      reason = std::string(r->get_string());
    if (const auto* step = value.get_object().if_contains("step"); step != nullptr) {
      if (*step == "sigterm") {
        spdlog::info("project {}: CLI still running after interrupt; sending SIGTERM",
                     project_->id());
      } else {
        spdlog::warn("project {}: CLI ignored SIGTERM; killing its process tree", project_->id());
      }
      return;
    }
  }
  if (phase_ == Phase::kStopping) return;
  publish_dequeued(follow_ups_.cancel_all("the run was stopped"));
  permissions_.cancel_all("run_ended");
  phase_ = Phase::kStopping;
  if (reason == "storage") {
    // Held by storage trouble for longer than timeouts.execution_idle: said as what it is.
    const auto idle = context_.config.timeouts.execution_idle;
    fail(ErrorCode::kStorageFailed,
         "The run's output could not be written for longer than timeouts.execution_idle (" +
             std::to_string(idle.count()) +
             "s), so the run was stopped; free space on the data directory's disk and send the "
             "prompt again (the session is kept)",
         json::object{{"what", "spool"}, {"path", paths_.spool()}, {"stopped", true}});
    stop_ = Stop::kKill;
    state_dirty_ = true;
    return;
  }
  stop_ = stop_from_name(reason);
  if (stop_ == Stop::kNone) stop_ = Stop::kKill;
  state_dirty_ = true;
}

void AgentRun::on_input_confirmed(std::string_view payload) {
  boost::system::error_code ec;
  const json::value value = json::parse(payload, ec);
  if (ec || !value.is_object()) return;
  const auto* tag = value.get_object().if_contains("tag");
  if (tag == nullptr || !tag->is_string()) return;
  if (in_flight_.erase(std::string(tag->get_string())) > 0) state_dirty_ = true;
}

bool AgentRun::on_exit_record(std::string_view payload) {
  agent::ExitStatus status;
  std::string stderr_tail;
  boost::system::error_code ec;
  const json::value value = json::parse(payload, ec);
  if (!ec && value.is_object()) {
    const auto& o = value.get_object();
    if (const auto* v = o.if_contains("signaled"); v != nullptr && v->is_bool())
      status.signaled = v->get_bool();
    if (const auto* v = o.if_contains("code"); v != nullptr && v->is_int64())
      status.code = static_cast<int>(v->get_int64());
    if (const auto* v = o.if_contains("signal"); v != nullptr && v->is_int64())
      status.signal = static_cast<int>(v->get_int64());
    if (const auto* v = o.if_contains("stderr"); v != nullptr && v->is_string())
      stderr_tail = std::string(v->get_string());
  }
  on_exit(status, std::move(stderr_tail));
  return true;
}

void AgentRun::on_exit(agent::ExitStatus status, std::string stderr_tail) {
  if (ended()) return;
  permissions_.cancel_all("run_ended");
  publish_dequeued(follow_ups_.cancel_all(result_seen_ ? "the CLI exited before it could be sent"
                                                       : "the run ended before it could be sent"));
  retry_timer_.cancel();
  // (The supervisor killed whatever the CLI left behind before it wrote the exit record.)

  const auto duration = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started_at_);
  const auto& timeouts = context_.config.timeouts;
  if (stderr_tail.size() > kStderrInError)
    stderr_tail = stderr_tail.substr(stderr_tail.size() - kStderrInError);
  // A CLI that rejects the resume on stderr only (no result line), and exits non-zero.
  if (resumed_session_ && !result_seen_ && stop_ == Stop::kNone &&
      !(status.code == 0 && !status.signaled) && is_resume_rejection(stderr_tail))
    session_not_found_ = true;

  if (stop_ == Stop::kTimeout || stop_ == Stop::kIdleTimeout) {
    const bool wall = stop_ == Stop::kTimeout;
    const auto limit = wall ? timeouts.execution : timeouts.execution_idle;
    fail(ErrorCode::kExecutionTimeout,
         wall ? "The run exceeded timeouts.execution (" + std::to_string(limit.count()) +
                    "s) and was stopped"
              : "The CLI printed nothing for timeouts.execution_idle (" +
                    std::to_string(limit.count()) + "s) and was stopped",
         json::object{{"limit", wall ? "timeouts.execution" : "timeouts.execution_idle"},
                      {"seconds", limit.count()}});
  } else if (session_not_found_) {
    // The id this run resumed (the stored one may have changed since, by a line of this run).
    const std::string stale = resumed_session_.value_or("");
    project_->update([](projects::ProjectInfo& p) { p.session_id.reset(); });
    fail(
        ErrorCode::kExecutionFailed,
        "The CLI no longer knows conversation " + stale +
            "; the stale session id was cleared: send the prompt again to start a new conversation",
        json::object{{"reason", "session_not_found"},
                     {"session_id", stale},
                     {"stderr", protocol::sanitize_utf8(stderr_tail)}});
  } else if (!result_seen_ && stop_ == Stop::kNone) {
    json::object details{{"stderr", protocol::sanitize_utf8(stderr_tail)}};
    if (status.signaled) {
      details["signal"] = status.signal;
    } else {
      details["exit_code"] = status.code;
    }
    fail(ErrorCode::kExecutionFailed,
         "The Claude CLI ended without a result (" + describe(status) + ")" +
             (stderr_tail.empty() ? "" : "; see details.stderr"),
         std::move(details));
  }
  json::object fields{{"project_id", project_->id()},
                      {"duration_ms", duration.count()},
                      {"exit_code", status.signaled ? 128 + status.signal : status.code},
                      {"fields",
                       {{"prompt_length", prompt_length_},
                        {"response_length", response_bytes_},
                        {"lines", lines_}}}};
  if (!correlation_id_.empty()) fields["correlation_id"] = correlation_id_;
  if (const auto session = project_->snapshot().session_id) fields["session_id"] = *session;
  ops::log_event(spdlog::level::info, "Execution completed", fields);
  ops::ExecutionOutcome outcome = ops::ExecutionOutcome::kFailed;
  if (stop_ == Stop::kTimeout || stop_ == Stop::kIdleTimeout) {
    outcome = ops::ExecutionOutcome::kTimeout;
  } else if (winding_down()) {
    outcome = ops::ExecutionOutcome::kKilled;
  } else if (result_seen_ && !result_is_error_) {
    outcome = ops::ExecutionOutcome::kSuccess;
  }
  context_.metrics.execution_finished(outcome, std::chrono::duration<double>(duration).count());
  if (!mcp_path_.empty()) {
    std::error_code ec;
    std::filesystem::remove(mcp_path_, ec);
  }
  // The slot is free before anyone hears IDLE, so an execute sent on IDLE can start at once.
  context_.scheduler.release();
  finish_idle(true);
  if (link_) {
    link_->done();
    link_.reset();  // the link lives on until `done` is written; it holds this run till then
  }
  cleanup_run_dir();
}

// `marked` (a run that had a supervisor): the final state is marked as the run's last entry, so
// a restart right after this does not finish the run a second time.
void AgentRun::finish_idle(bool marked) {
  phase_ = Phase::kFinished;
  const auto info = project_->update([](projects::ProjectInfo& p) {
    p.state = projects::State::kIdle;
    p.queue_position = 0;
    p.last_active = protocol::now_rfc3339();
  });
  if (project_->run.get() == this) project_->run.reset();
  json::object data = projects::to_json(info);
  data["ended"] = ending();
  // What this run cost, when it reported any result (issue 19).
  if (!run_id_.empty() && info.spend.run_id == run_id_)
    data["run_totals"] = spend::to_json(info.spend.run_totals);
  const auto wall_time = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started_at_);
  if (auto event = run_end_event(info, data["ended"].at("reason").as_string(), summary_, wall_time,
                                 context_.config.notify.console_url))
    context_.notifier.raise(std::move(*event));
  if (!marked ||
      project_->try_publish_marked("project_state", data, waiters_, trailer(applied_offset_, true))
              .seq == 0) {
    project_->publish("project_state", data, waiters_);
  }
  waiters_.clear();
}

}  // namespace pa::server
