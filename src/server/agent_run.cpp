#include "server/agent_run.hpp"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <filesystem>
#include <optional>
#include <utility>
#include <vector>

#include "agent/process_spawn.hpp"
#include "common/atomic_file.hpp"
#include "ops/logging.hpp"
#include "projects/path_rules.hpp"
#include "protocol/clock.hpp"
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
      wall_timer_(project_->strand()),
      idle_timer_(project_->strand()),
      grace_timer_(project_->strand()) {}

void AgentRun::set_queued(std::size_t position, const Requester* requester) {
  const auto info = project_->update([&](projects::ProjectInfo& p) {
    p.state = projects::State::kQueued;
    p.queue_position = position;
  });
  project_->publish("project_state", projects::to_json(info), requester);
}

void AgentRun::fail(ErrorCode code, std::string message, json::object details) {
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
std::optional<std::pair<std::string, std::string>> directory_problem(
    const projects::PathPolicy& policy, const std::string& project_path,
    const std::vector<std::string>& add_dirs, agent::detail::UniqueFd& project_dir) {
  if (auto reason = policy.refusal(project_path)) return std::pair(project_path, *reason);
  std::error_code ec;
  project_dir.reset(projects::open_directory_no_symlinks(project_path, ec));
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
  cancel_follow_ups("the run could not start");
  json::object fields{{"project_id", project_->id()}, {"reason", reason}};
  if (!correlation_id_.empty()) fields["correlation_id"] = correlation_id_;
  ops::log_event(spdlog::level::warn, "Execution failed to start", fields);
  context_.metrics.execution_not_started();
  context_.scheduler.release();
  finish_idle();
}

void AgentRun::start() {
  if (finished_) {
    // Cancelled while the scheduler was handing it a slot: give the slot back.
    context_.scheduler.release();
    return;
  }
  started_ = true;
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
  project_->publish("project_state", projects::to_json(info), requester);
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
  if (auto problem = directory_problem(context_.path_policy, project_->path(),
                                       request_.options.add_dirs, project_dir)) {
    const auto& [path, reason] = *problem;
    fail(ErrorCode::kInvalidPath, "The directory " + path + " cannot be used: " + reason,
         json::object{{"path", path}, {"reason", reason}});
    abandon_start("the directory " + path + " cannot be used: " + reason);
    return;
  }

  agent::SpawnSpec spec;
  spec.binary = context_.config.claude.binary;
  spec.args = agent::build_cli_args(request_.options, context_.config.claude, info.session_id,
                                    mcp_path_.empty() ? std::nullopt : std::optional(mcp_path_));
  for (const auto& arg : spec.args) {
    if (arg.starts_with("--resume=")) resumed_session_ = arg.substr(9);
  }
  client_permissions_ =
      agent::uses_client_permission_prompt(request_.options, context_.config.claude);
  spec.env = context_.cli_env;
  spec.cwd = project_->path();
  spec.cwd_fd = project_dir.get();

  agent::ChildHandlers handlers;
  handlers.on_stdout_line = [self = shared_from_this()](std::string line) {
    self->on_line(std::move(line));
  };
  handlers.on_line_too_long = [self = shared_from_this()](std::size_t bytes, std::string head) {
    self->on_line_too_long(bytes, head);
  };
  handlers.on_exit = [self = shared_from_this()](agent::ExitStatus status) {
    self->on_exit(status);
  };
  std::error_code ec;
  child_ =
      agent::ChildProcess::spawn(context_.io, project_->strand(), spec,
                                 context_.config.claude.max_line_bytes, std::move(handlers), ec);
  if (!child_) {
    if (ec == std::errc::no_such_file_or_directory || ec == std::errc::permission_denied) {
      fail(ErrorCode::kClaudeNotFound,
           "The Claude CLI '" + spec.binary +
               "' was not found or is not executable; install it "
               "(npm install -g @anthropic-ai/claude-code) or set claude.binary",
           json::object{{"binary", spec.binary}});
    } else {
      fail(ErrorCode::kExecutionFailed, "Could not start the Claude CLI: " + ec.message(),
           json::object{{"binary", spec.binary}});
    }
    abandon_start("could not start " + spec.binary + ": " + ec.message());
    return;
  }
  // Sizes go under "fields", as in the spec's log example.
  json::object fields{{"project_id", project_->id()},
                      {"pid", child_->pid()},
                      {"fields", {{"prompt_length", request_.prompt.size()}}}};
  if (!correlation_id_.empty()) fields["correlation_id"] = correlation_id_;
  if (info.session_id) fields["session_id"] = *info.session_id;
  ops::log_event(spdlog::level::info, "Execution started", fields);
  child_->write_stdin(agent::user_message_line(request_.prompt));
  request_.prompt.clear();
  request_.prompt.shrink_to_fit();

  const auto& timeouts = context_.config.timeouts;
  if (timeouts.execution.count() > 0) {
    wall_deadline_ = std::chrono::steady_clock::now() + timeouts.execution;
    arm_wall_timer();
  }
  arm_idle_timer();
}

void AgentRun::arm_wall_timer() {
  if (finished_ || stop_ != Stop::kNone || !permissions_.empty()) return;
  wall_timer_.expires_at(wall_deadline_);
  wall_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& e) {
    // A paused clock moved the deadline: a wait that completed before the pause is stale.
    if (!e && self->permissions_.empty() &&
        std::chrono::steady_clock::now() >= self->wall_deadline_)
      self->stop(Stop::kTimeout, nullptr);
  });
}

void AgentRun::arm_idle_timer() {
  const auto idle = context_.config.timeouts.execution_idle;
  if (idle.count() <= 0 || finished_ || stop_ != Stop::kNone || !permissions_.empty()) return;
  idle_timer_.expires_after(idle);
  idle_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& e) {
    if (!e && self->permissions_.empty()) self->stop(Stop::kIdleTimeout, nullptr);
  });
}

void AgentRun::on_line(std::string line) {
  if (finished_) return;
  ++lines_;
  response_bytes_ += line.size();
  arm_idle_timer();
  const auto parsed = agent::inspect_cli_line(line);
  if (parsed.type == "control_request" || parsed.type == "control_cancel_request") {
    // Rare lines, parsed again in full: a question for the host (can_use_tool) is answered by
    // clients and not shown as a CLI line; a cancel closes the question it names.
    boost::system::error_code ec;
    json::parse_options options;
    options.max_depth = 1024;
    const json::value value = json::parse(line, ec, {}, options);
    if (!ec && value.is_object()) {
      if (auto request = agent::parse_control_request(value.get_object())) {
        on_control_request(line, *request);
        if (request->ask) return;  // others are refused, and still shown as CLI lines
      } else if (auto id = agent::parse_control_cancel(value.get_object())) {
        on_control_cancel(*id);
      }
    }
  }
  if (!parsed.is_json_object) {
    spdlog::warn("project {}: the CLI printed a non-JSON line ({} bytes)", project_->id(),
                 line.size());
    const std::string raw =
        json::serialize(json::object{{"type", "raw"}, {"text", protocol::sanitize_utf8(line)}});
    project_->publish_raw(history::Direction::kClaude, raw, "agent_message", raw);
    return;
  }
  project_->publish_raw(history::Direction::kClaude, line, "agent_message", line);

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
  if (parsed.is_result) {
    result_seen_ = true;
    result_is_error_ = parsed.is_error;
    on_turn_end();
  }
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

void AgentRun::on_line_too_long(std::size_t bytes, const std::string& head) {
  if (finished_) return;
  arm_idle_timer();
  const std::string line_type = line_type_from_head(head);
  spdlog::warn("project {}: dropped a CLI line of {} bytes (type {}; claude.max_line_bytes is {})",
               project_->id(), bytes, line_type.empty() ? "unknown" : line_type,
               context_.config.claude.max_line_bytes);
  json::object notice{{"type", "oversized_line"},
                      {"bytes", bytes},
                      {"limit", context_.config.claude.max_line_bytes}};
  notice["line_type"] = line_type.empty() ? json::value(nullptr) : json::value(line_type);
  const std::string text = json::serialize(notice);
  project_->publish_raw(history::Direction::kServer, text, "agent_message", text);
  if (line_type == "result") {
    // A huge final answer makes a huge result line: the turn is still over.
    result_seen_ = true;
    result_is_error_ = head.find("\"is_error\":true") != std::string::npos;
    on_turn_end();
  }
}

void AgentRun::stop(Stop reason, const Requester* requester) {
  if (finished_) {
    return;
  }
  if (requester != nullptr && requester->connection) waiters_.push_back(*requester);
  if (!started_) {
    // Still queued: leave the queue (if the scheduler is starting it right now, start() will
    // find the project no longer waiting and give the slot back).
    stop_ = reason;
    context_.scheduler.cancel(project_->id());
    cancel_follow_ups("the run was stopped before it started");
    finish_idle();
    return;
  }
  if (stop_ == Stop::kNone) {
    cancel_follow_ups(reason == Stop::kKill ? "the run was stopped (agent_kill)"
                                            : "the run was stopped");
    cancel_permissions(reason == Stop::kKill ? "killed" : "run_ended");
  }
  if (reason == Stop::kForce) {
    if (stop_ == Stop::kNone) stop_ = reason;
    if (child_) child_->kill_tree();
    return;
  }
  if (stop_ != Stop::kNone) return;  // already stopping
  stop_ = reason;
  wall_timer_.cancel();
  idle_timer_.cancel();
  if (!child_) return;
  if (!result_seen_ && !interrupting_) {
    interrupt_id_ = "pa-interrupt-" + projects::random_uuid();
    child_->write_stdin(agent::interrupt_request_line(interrupt_id_));
  }
  grace_timer_.expires_after(context_.config.timeouts.kill_grace);
  grace_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& e) {
    if (!e) self->escalate_to_term();
  });
}

void AgentRun::escalate_to_term() {
  if (finished_ || !child_) return;
  spdlog::info("project {}: CLI still running after interrupt; sending SIGTERM", project_->id());
  child_->close_stdin();
  child_->signal_group(SIGTERM);
  grace_timer_.expires_after(context_.config.timeouts.term_grace);
  grace_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& e) {
    if (!e) self->escalate_to_kill();
  });
}

void AgentRun::escalate_to_kill() {
  if (finished_ || !child_) return;
  spdlog::warn("project {}: CLI ignored SIGTERM; killing its process tree", project_->id());
  child_->kill_tree();
}

void AgentRun::on_exit(agent::ExitStatus status) {
  if (finished_) return;
  cancel_permissions("run_ended");
  cancel_follow_ups(result_seen_ ? "the CLI exited before it could be sent"
                                 : "the run ended before it could be sent");
  wall_timer_.cancel();
  idle_timer_.cancel();
  grace_timer_.cancel();
  // Tools start their own sessions; after a stop, whatever the CLI left behind goes too.
  if (stop_ != Stop::kNone) child_->kill_tree();

  const auto duration = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started_at_);
  const auto& timeouts = context_.config.timeouts;
  std::string stderr_tail = child_->stderr_tail();
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
  } else if (stop_ != Stop::kNone || interrupting_) {
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
  finish_idle();
}

void AgentRun::finish_idle() {
  finished_ = true;
  const auto info = project_->update([](projects::ProjectInfo& p) {
    p.state = projects::State::kIdle;
    p.queue_position = 0;
    p.last_active = protocol::now_rfc3339();
  });
  if (project_->run.get() == this) project_->run.reset();
  project_->publish("project_state", projects::to_json(info), waiters_);
  waiters_.clear();
}

}  // namespace pa::server
