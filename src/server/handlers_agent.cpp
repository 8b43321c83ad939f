// execute (with follow-ups queued by mode "queue"), agent_kill, agent_interrupt,
// agent_new_session, permission_response.
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/json/serialize.hpp>

#include "agent/permissions.hpp"
#include "protocol/data_reader.hpp"
#include "server/agent_run.hpp"
#include "server/hub.hpp"
#include "server/request.hpp"
#include "server/scheduler.hpp"

namespace pa::server {

namespace asio = boost::asio;
namespace json = boost::json;
using protocol::ErrorCode;

namespace {
protocol::Error busy_error(const Project& project, std::string_view what) {
  return protocol::make_error(
      ErrorCode::kProcessActive,
      "Project " + project.id() + " has a run executing or queued; " + std::string(what),
      json::object{{"project_id", project.id()},
                   {"state", projects::to_string(project.snapshot().state)}});
}
// A permission_response that matches no pending request: say what became of it.
protocol::Error permission_not_found(const Project& project, const std::string& permission_id) {
  json::object details{{"project_id", project.id()}, {"permission_id", permission_id}};
  const ClosedPermission* closed = project.closed_permission(permission_id);
  if (closed == nullptr) {
    details["status"] = "unknown";
    return protocol::make_error(
        ErrorCode::kPermissionNotFound,
        "Project " + project.id() + " has no permission request " + permission_id +
            " (it never existed, or ended before a server restart); pending requests are "
            "listed in project_joined.data.pending_permissions",
        std::move(details));
  }
  details["status"] = closed->status;
  const auto& resolution = closed->resolution;
  for (std::string_view key : {"decision", "reason", "by", "at"}) {
    if (const auto* v = resolution.if_contains(key)) details[key] = *v;
  }
  const std::string at(resolution.at("at").as_string());
  std::string message = "Permission request " + permission_id;
  if (closed->status == "resolved" && resolution.at("reason") == "no_client") {
    message += " was denied at " + at +
               " without asking: no subscriber had declared \"permissions\" in hello";
  } else if (closed->status == "resolved") {
    message += " was already answered (" + std::string(resolution.at("decision").as_string()) +
               ") at " + at + "; nothing to do";
  } else if (closed->status == "expired") {
    message += " expired at " + at + " (no answer within claude.permission_timeout) and was denied";
  } else {
    message += " was cancelled at " + at + " (" + std::string(resolution.at("reason").as_string()) +
               "); nothing to answer";
  }
  return protocol::make_error(ErrorCode::kPermissionNotFound, std::move(message),
                              std::move(details));
}
bool is_pending(const AgentRun& run, const std::string& permission_id) {
  for (const auto& pending : run.pending_permissions()) {
    const auto* id = pending.as_object().if_contains("permission_id");
    if (id != nullptr && id->is_string() && id->get_string() == permission_id) return true;
  }
  return false;
}
}  // namespace

void Hub::handle_execute(Request request) {
  std::optional<std::string> key;
  if (auto error = take_idempotency_key(request.message.data, key)) {
    request.fail(*error);
    return;
  }
  protocol::DataReader reader(request.message.data);
  reader.allow_only({"prompt", "options", "mode", "attachments"});
  auto prompt = reader.string("prompt", true, config_.limits.prompt_size);
  const json::object* options_json = reader.object("options", false);
  const auto mode = reader.string("mode", false, 16);
  if (!reader.ok()) {
    request.fail(reader.error());
    return;
  }
  const bool queue_mode = mode.has_value();
  if (queue_mode && *mode != "queue") {
    request.fail(protocol::make_error(ErrorCode::kInvalidMessage,
                                      "data.mode must be \"queue\" (or absent)",
                                      json::object{{"field", "data.mode"}}));
    return;
  }
  if (queue_mode && options_json != nullptr) {
    // A follow-up is the next user message to the CLI process already running, whose flags
    // were fixed when it started.
    request.fail(protocol::make_error(
        ErrorCode::kInvalidMessage,
        "data.options is not allowed with mode \"queue\": a follow-up runs in the current CLI "
        "process with that run's options",
        json::object{{"field", "data.options"}}));
    return;
  }
  if (prompt->find_first_not_of(" \t\r\n") == std::string::npos) {
    request.fail(protocol::make_error(ErrorCode::kInvalidMessage, "data.prompt must not be empty",
                                      json::object{{"field", "data.prompt"}}));
    return;
  }
  // Options touch the disk (add_dirs are canonicalized) and attachments are decoded and hashed:
  // validate off the I/O thread.
  asio::post(pool_, [self = shared_from_this(), request = std::move(request),
                     prompt = std::move(*prompt),
                     options_copy =
                         options_json ? std::optional<json::object>(*options_json) : std::nullopt,
                     queue_mode, key = std::move(key)]() mutable {
    agent::Policy policy;
    policy.allow_dangerous = self->config_.claude.allow_dangerous;
    policy.max_prompt_bytes = self->config_.limits.prompt_size;
    policy.paths = &self->path_policy_;
    auto parsed = agent::parse_run_options(options_copy ? &*options_copy : nullptr, policy);
    if (auto* error = std::get_if<protocol::Error>(&parsed)) {
      if (error->code == ErrorCode::kForbidden) {
        spdlog::warn("refused execute from {}: {}", request.connection->remote_address(),
                     error->message);
      }
      request.fail(*error);
      return;
    }
    std::vector<Attachment> attachments;
    if (const auto* list = request.message.data.if_contains("attachments");
        list != nullptr && !list->is_null()) {
      const AttachmentLimits limits{self->config_.limits.attachment_bytes,
                                    self->config_.limits.attachments_per_prompt};
      auto checked = parse_attachments(*list, limits);
      if (auto* error = std::get_if<protocol::Error>(&checked)) {
        request.fail(*error);
        return;
      }
      attachments = std::get<std::vector<Attachment>>(std::move(checked));
    }
    ExecuteRequest execute{std::move(prompt),
                           std::get<agent::RunOptions>(std::move(parsed)),
                           {},
                           options_copy ? *options_copy : json::object{},
                           std::move(attachments)};
    json::object recorded_data{{"prompt", execute.prompt}};
    if (options_copy) recorded_data["options"] = *options_copy;
    // History keeps references to the stored files, never their bytes.
    if (!execute.attachments.empty()) {
      json::array refs;
      for (const auto& a : execute.attachments) refs.push_back(a.ref());
      recorded_data["attachments"] = std::move(refs);
    }
    if (queue_mode) recorded_data["mode"] = "queue";
    // `by`: which client sent it, so every client can tell its own prompts from others'.
    const std::string recorded =
        json::serialize(json::object{{"type", "execute"},
                                     {"data", std::move(recorded_data)},
                                     {"by", client_who(*request.connection)}});
    self->with_project(std::move(request), [self, execute = std::move(execute), recorded,
                                            queue_mode, key](Request& r, Project& project) mutable {
      // A resend of an execute already carried out: the project's state now, and nothing else
      // (no run, no follow-up, no history entry). Checked and recorded on this strand, where
      // the run is made, so two copies arriving at once start one run.
      const IdempotencyScope scope{"execute", project.id(), key ? *key : std::string_view()};
      if (key && self->idempotency_.find(scope)) {
        spdlog::info(
            "execute for project {} from connection {}: duplicate idempotency key, not "
            "run again",
            project.id(), r.connection->id());
        project.subscribe(r.connection);
        auto state = projects::to_json(project.snapshot());
        state["duplicate"] = true;
        r.reply("project_state", state);
        return;
      }
      // Checked on the project strand: a run admitted before shutdown began is seen (and
      // stopped) by stop_all_runs, which posts to this same strand after setting stopping_.
      if (self->stopping_) {
        r.fail(protocol::make_error(
            ErrorCode::kShuttingDown,
            "The server is shutting down and starts no new run; send the prompt again once it "
            "is back (history and the session are kept)",
            json::object{{"project_id", project.id()}}));
        return;
      }
      if (auto reached = self->spend_.budget_reached(project.id(), project.snapshot().spend,
                                                     std::chrono::system_clock::now(),
                                                     "The execute is refused")) {
        r.fail(*reached);
        return;
      }
      if (project.busy() && queue_mode && project.run) {
        self->queue_follow_up(r, project, std::move(execute.prompt), std::move(execute.attachments),
                              recorded, key);
        return;
      }
      if (project.busy()) {
        r.fail(busy_error(project,
                          "wait for it to finish, send the prompt with data.mode \"queue\" to run "
                          "it next in the same session, or stop the run with agent_kill"));
        return;
      }
      // Stored (this strand runs on the blocking pool) only once the execute is going to be
      // taken, so a refused one leaves nothing behind.
      if (!execute.attachments.empty()) {
        if (const auto ec = self->attachments_.add(project.id(), execute.attachments)) {
          spdlog::error("execute for project {}: cannot store its attachments: {}", project.id(),
                        ec.message());
          r.fail(attachment_storage_error(ec));
          return;
        }
      }
      project.subscribe(r.connection);
      execute.requester = r.requester();
      auto shared_project = project.shared_from_this();
      auto run =
          std::make_shared<AgentRun>(shared_project, *self->run_context_, std::move(execute));
      Scheduler::Ticket ticket = make_ticket(shared_project, run);
      // The key is on disk before the run can start (and before the reply): a crash after
      // the reply cannot make a resend run again. Refused after all (queue full): forgotten.
      if (key) {
        if (const auto ec = self->idempotency_.record(scope, "")) {
          spdlog::error("execute for project {}: cannot record its idempotency key: {}",
                        project.id(), ec.message());
          r.fail(idempotency_storage_error(ec));
          return;
        }
      }
      std::size_t position = 0;
      const auto admitted = self->scheduler_->admit(std::move(ticket), position);
      if (admitted == Scheduler::Admit::kFull && key) {
        if (const auto ec = self->idempotency_.forget(scope)) {
          spdlog::error("execute for project {}: cannot forget its idempotency key: {}",
                        project.id(), ec.message());
        }
      }
      // History gets the execute only once it is admitted, and before the state it causes (a
      // refused one is answered to the sender alone and leaves no trace in history). A ticket
      // started from the queue meanwhile runs on this strand, after this handler.
      if (admitted != Scheduler::Admit::kFull)
        project.record(history::Direction::kClient, recorded);
      switch (admitted) {
        case Scheduler::Admit::kFull:
          r.fail(protocol::make_error(
              ErrorCode::kResourceLimit,
              "The run queue is full (" + std::to_string(self->config_.execution.queue_size) +
                  " waiting, " + std::to_string(self->config_.execution.max_concurrent) +
                  " running); try again when a run finishes",
              json::object{{"max_concurrent", self->config_.execution.max_concurrent},
                           {"queue_size", self->config_.execution.queue_size}}));
          return;
        case Scheduler::Admit::kQueued: {
          project.run = run;
          const auto requester = r.requester();
          run->set_queued(position, &requester);
          return;
        }
        case Scheduler::Admit::kStartNow:
          project.run = run;
          run->start();
          return;
      }
    });
  });
}

// agent_kill and agent_interrupt: `stop` the run if there is one (the reply is the final IDLE),
// else answer the unchanged IDLE state at once.
void Hub::stop_run(Request request, std::string_view what,
                   void (*stop)(AgentRun& run, const Requester& requester)) {
  if (!request.expect_no_data()) return;
  with_project(std::move(request), [what, stop](Request& r, Project& project) {
    if (auto run = project.run) {
      spdlog::info("{} for project {} from connection {}", what, project.id(), r.connection->id());
      stop(*run, r.requester());
      return;
    }
    r.reply("project_state", projects::to_json(project.snapshot()));
  });
}

void Hub::handle_agent_kill(Request request) {
  stop_run(std::move(request), "agent_kill", [](AgentRun& run, const Requester& requester) {
    run.stop(AgentRun::Stop::kKill, &requester);
  });
}

void Hub::handle_agent_interrupt(Request request) {
  stop_run(std::move(request), "agent_interrupt",
           [](AgentRun& run, const Requester& requester) { run.interrupt(&requester); });
}

// strand: execute mode "queue" while a run is active.
void Hub::queue_follow_up(Request& r, Project& project, std::string prompt,
                          std::vector<Attachment> attachments, const std::string& recorded,
                          const std::optional<std::string>& key) {
  if (!attachments.empty()) {
    if (const auto ec = attachments_.add(project.id(), attachments)) {
      spdlog::error("follow-up for project {}: cannot store its attachments: {}", project.id(),
                    ec.message());
      r.fail(attachment_storage_error(ec));
      return;
    }
  }
  project.subscribe(r.connection);
  const IdempotencyScope scope{"execute", project.id(), key ? *key : std::string_view()};
  if (key) {
    if (const auto ec = idempotency_.record(scope, "")) {
      spdlog::error("execute for project {}: cannot record its idempotency key: {}", project.id(),
                    ec.message());
      r.fail(idempotency_storage_error(ec));
      return;
    }
  }
  const auto outcome =
      project.run->enqueue_follow_up(std::move(prompt), std::move(attachments), r.requester());
  if (outcome != AgentRun::Enqueue::kQueued && key) {
    if (const auto ec = idempotency_.forget(scope)) {
      spdlog::error("execute for project {}: cannot forget its idempotency key: {}", project.id(),
                    ec.message());
    }
  }
  switch (outcome) {
    case AgentRun::Enqueue::kQueued:
      project.record(history::Direction::kClient, recorded);
      return;
    case AgentRun::Enqueue::kFull:
      r.fail(protocol::make_error(
          ErrorCode::kResourceLimit,
          "This run already has " + std::to_string(AgentRun::kMaxFollowUps) +
              " follow-ups queued; wait for one to start",
          json::object{{"project_id", project.id()}, {"max_queued", AgentRun::kMaxFollowUps}}));
      return;
    case AgentRun::Enqueue::kStopping:
      r.fail(busy_error(project, "it is being stopped; send the prompt again when it is IDLE"));
      return;
  }
}

void Hub::handle_permission_response(Request request) {
  std::optional<std::string> key;
  if (auto error = take_idempotency_key(request.message.data, key)) {
    request.fail(*error);
    return;
  }
  auto parsed = agent::parse_permission_response(request.message.data);
  if (auto* error = std::get_if<protocol::Error>(&parsed)) {
    request.fail(*error);
    return;
  }
  with_project(std::move(request), [self = shared_from_this(),
                                    answer = std::get<agent::PermissionAnswer>(std::move(parsed)),
                                    key = std::move(key)](Request& r, Project& project) {
    if (!key) {
      if (project.run && project.run->answer_permission(answer, r.requester())) return;
      r.fail(permission_not_found(project, answer.permission_id));
      return;
    }
    // A resend of an answer already carried out gets what a late answer gets now, marked
    // duplicate; the CLI hears nothing more.
    const IdempotencyScope scope{"permission_response", project.id(), *key};
    if (const auto answered = self->idempotency_.find(scope)) {
      auto error =
          permission_not_found(project, answered->empty() ? answer.permission_id : *answered);
      error.message =
          "This answer was already received (same data.idempotency_key) and is not "
          "sent to the agent again. " +
          error.message;
      r.fail(error, true);
      return;
    }
    // Recorded (on disk) only when the answer will be taken, and before its reply is sent.
    if (project.run && is_pending(*project.run, answer.permission_id)) {
      if (const auto ec = self->idempotency_.record(scope, answer.permission_id)) {
        spdlog::error("permission_response for project {}: cannot record its idempotency key: {}",
                      project.id(), ec.message());
        r.fail(idempotency_storage_error(ec));
        return;
      }
      if (project.run->answer_permission(answer, r.requester())) return;
      (void)self->idempotency_.forget(scope);
    }
    r.fail(permission_not_found(project, answer.permission_id));
  });
}

void Hub::handle_agent_new_session(Request request) {
  if (!request.expect_no_data()) return;
  with_project(std::move(request), [](Request& r, Project& project) {
    if (project.busy()) {
      r.fail(busy_error(project, "stop it with agent_kill before starting a new session"));
      return;
    }
    const auto previous = project.snapshot().session_id;
    project.update([](projects::ProjectInfo& p) { p.session_id.reset(); });
    json::object data{{"project_id", project.id()}};
    data["previous_session_id"] = previous ? json::value(*previous) : json::value(nullptr);
    const auto requester = r.requester();
    project.publish("session_reset", data, &requester);
  });
}

}  // namespace pa::server
