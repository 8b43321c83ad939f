// execute, agent_kill, agent_new_session.
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/json/serialize.hpp>

#include "protocol/data_reader.hpp"
#include "server/agent_run.hpp"
#include "server/hub.hpp"

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
}  // namespace

void Hub::handle_execute(Request request) {
  protocol::DataReader reader(request.message.data);
  reader.allow_only({"prompt", "options"});
  auto prompt = reader.string("prompt", true, config_.limits.prompt_size);
  const json::object* options_json = reader.object("options", false);
  if (!reader.ok()) {
    request.fail(reader.error());
    return;
  }
  if (prompt->find_first_not_of(" \t\r\n") == std::string::npos) {
    request.fail(protocol::make_error(ErrorCode::kInvalidMessage, "data.prompt must not be empty",
                                      json::object{{"field", "data.prompt"}}));
    return;
  }
  // Options touch the disk (add_dirs are canonicalized): validate off the I/O thread.
  asio::post(pool_, [self = shared_from_this(), request = std::move(request),
                     prompt = std::move(*prompt),
                     options_copy = options_json ? std::optional<json::object>(*options_json)
                                                 : std::nullopt]() mutable {
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
    ExecuteRequest execute{std::move(prompt), std::get<agent::RunOptions>(std::move(parsed)), {}};
    json::object recorded_data{{"prompt", execute.prompt}};
    if (options_copy) recorded_data["options"] = *options_copy;
    const std::string recorded =
        json::serialize(json::object{{"type", "execute"}, {"data", std::move(recorded_data)}});
    self->with_project(std::move(request), [self, execute = std::move(execute), recorded](
                                               Request& r, Project& project) mutable {
      if (project.busy()) {
        r.fail(busy_error(project, "wait for it to finish or stop it with agent_kill"));
        return;
      }
      if (project.subscribe(r.connection))
        self->note_joined(r.connection->id(), project.id(), true);
      project.record(history::Direction::kClient, recorded);
      execute.requester = r.requester();
      auto shared_project = project.shared_from_this();
      auto run =
          std::make_shared<AgentRun>(shared_project, *self->run_context_, std::move(execute));
      std::weak_ptr<AgentRun> weak_run = run;
      Scheduler::Ticket ticket;
      ticket.project_id = project.id();
      ticket.start = [shared_project, weak_run] {
        asio::post(shared_project->strand(), [weak_run, shared_project] {
          if (auto queued = weak_run.lock()) {
            queued->start();
          } else {
            shared_project->run.reset();
          }
        });
      };
      ticket.moved = [shared_project, weak_run](std::size_t position) {
        asio::post(shared_project->strand(), [weak_run, position] {
          if (auto queued = weak_run.lock(); queued && !queued->started()) {
            queued->set_queued(position, nullptr);
          }
        });
      };
      std::size_t position = 0;
      switch (self->scheduler_->admit(std::move(ticket), position)) {
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

void Hub::handle_agent_kill(Request request) {
  if (!request.expect_no_data()) return;
  with_project(std::move(request), [](Request& r, Project& project) {
    if (auto run = project.run) {
      const auto requester = r.requester();
      spdlog::info("agent_kill for project {} from connection {}", project.id(),
                   r.connection->id());
      run->stop(AgentRun::Stop::kKill, &requester);
      return;
    }
    // Nothing running: the answer is the (unchanged) IDLE state.
    r.reply("project_state", projects::to_json(project.snapshot()));
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
