// project_create, project_list, project_delete, project_join, project_leave.
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/json/array.hpp>

#include "projects/path_rules.hpp"
#include "protocol/clock.hpp"
#include "protocol/data_reader.hpp"
#include "server/agent_run.hpp"
#include "server/hub.hpp"

namespace pa::server {

namespace asio = boost::asio;
namespace json = boost::json;
using protocol::ErrorCode;

namespace {
constexpr std::size_t kMaxPathBytes = 4096;

}  // namespace

void Hub::handle_project_create(Request request) {
  protocol::DataReader reader(request.message.data);
  reader.allow_only({"path"});
  auto requested = reader.string("path", true, kMaxPathBytes);
  if (!reader.ok()) {
    request.fail(reader.error());
    return;
  }
  if (request.message.project_id) {
    request.fail(protocol::make_error(ErrorCode::kInvalidMessage,
                                      "project_create takes no project_id; the server assigns one",
                                      json::object{{"field", "project_id"}}));
    return;
  }
  // Canonicalizing and writing metadata touch the disk: off the I/O thread.
  asio::post(pool_, [self = shared_from_this(), request = std::move(request),
                     requested = std::move(*requested)]() mutable {
    auto canonical = projects::canonical_project_path(requested);
    if (auto* error = std::get_if<protocol::Error>(&canonical)) {
      request.fail(*error);
      return;
    }
    const std::string path = std::get<std::string>(std::move(canonical));
    if (auto reason = self->path_policy_.refusal(path)) {
      spdlog::warn("refused project_create from {}: {} ({})", request.connection->remote_address(),
                   path, *reason);
      request.fail(protocol::make_error(
          ErrorCode::kInvalidPath, "Invalid project path '" + requested + "': " + *reason,
          json::object{{"path", requested}, {"canonical_path", path}, {"reason", *reason}}));
      return;
    }
    {
      std::lock_guard lock(self->projects_mutex_);
      if (self->projects_.size() + self->pending_paths_.size() >=
          self->config_.limits.max_projects) {
        request.fail(
            protocol::make_error(ErrorCode::kProjectLimit,
                                 "Maximum number of projects reached (" +
                                     std::to_string(self->config_.limits.max_projects) +
                                     "); delete a project or raise limits.max_projects",
                                 json::object{{"limit", self->config_.limits.max_projects}}));
        return;
      }
      const auto nests = [&](const std::string& other_path, const std::string& other_id) {
        if (!projects::paths_nest(other_path, path)) return false;
        json::object details{{"path", path}, {"existing_path", other_path}};
        if (!other_id.empty()) details["existing_project_id"] = other_id;
        const char* relation =
            other_path == path ? "is the same as"
            : projects::paths_nest(other_path, path) && other_path.size() < path.size()
                ? "is inside"
                : "contains";
        request.fail(protocol::make_error(ErrorCode::kProjectNesting,
                                          "Path " + path + " " + relation + " existing project " +
                                              other_path + "; projects cannot nest",
                                          std::move(details)));
        return true;
      };
      for (const auto& [id, project] : self->projects_) {
        if (nests(project->path(), id)) return;
      }
      for (const auto& pending : self->pending_paths_) {
        if (nests(pending, "")) return;
      }
      self->pending_paths_.push_back(path);
    }
    const auto release_pending = [&] {
      std::lock_guard lock(self->projects_mutex_);
      auto& pending = self->pending_paths_;
      pending.erase(std::find(pending.begin(), pending.end(), path));
    };

    projects::ProjectInfo info;
    info.id = projects::random_uuid();
    info.path = path;
    info.created_at = protocol::now_rfc3339();
    info.last_active = info.created_at;
    std::error_code ec = self->store_.create(info);
    std::vector<std::string> warnings;
    std::shared_ptr<Project> project;
    if (!ec) project = self->open_project(info, warnings, ec);
    if (!project) {
      release_pending();
      self->store_.remove(info.id);
      spdlog::error("cannot create project for {}: {}", path, ec.message());
      if (projects::out_of_descriptors(ec)) {
        request.fail(projects::descriptor_exhaustion("storing the new project", ec));
        return;
      }
      request.fail(protocol::make_error(
          ErrorCode::kInternalError, "Could not store the project in the data directory: " +
                                         ec.message() + "; check its permissions and free space"));
      return;
    }
    {
      std::lock_guard lock(self->projects_mutex_);
      auto& pending = self->pending_paths_;
      pending.erase(std::find(pending.begin(), pending.end(), path));
      self->projects_.emplace(info.id, project);
    }
    spdlog::info("project created: id={} path={}", info.id, path);
    request.message.project_id = info.id;
    asio::post(project->strand(), [self, project, request = std::move(request)]() mutable {
      project->subscribe(request.connection);
      self->note_joined(request.connection->id(), project->id(), true);
      const auto requester = request.requester();
      project->publish("project_state", projects::to_json(project->snapshot()), &requester);
    });
  });
}

void Hub::handle_project_list(Request request) {
  if (!request.expect_no_data()) return;
  json::array list;
  {
    std::lock_guard lock(projects_mutex_);
    list.reserve(projects_.size());
    for (const auto& [id, project] : projects_)
      list.push_back(projects::to_json(project->snapshot()));
  }
  std::sort(list.begin(), list.end(), [](const json::value& a, const json::value& b) {
    return a.at("created_at").get_string() < b.at("created_at").get_string();
  });
  request.reply("project_list_response", json::object{{"projects", std::move(list)}});
}

void Hub::handle_project_delete(Request request) {
  if (!request.expect_no_data()) return;
  with_project(std::move(request), [self = shared_from_this()](Request& r, Project& project) {
    if (project.busy()) {
      r.fail(protocol::make_error(
          ErrorCode::kProcessActive,
          "Project " + project.id() +
              " has a run executing or queued; stop it with agent_kill, "
              "then delete it",
          json::object{{"project_id", project.id()},
                       {"state", projects::to_string(project.snapshot().state)}}));
      return;
    }
    {
      std::lock_guard lock(self->projects_mutex_);
      self->projects_.erase(project.id());
    }
    // Tell the others first; the requester gets the reply with its request_id.
    auto notice = std::make_shared<const std::string>(protocol::serialize(
        protocol::Outgoing{"project_deleted", project.id(), std::nullopt, std::nullopt, {}},
        json::object{{"project_id", project.id()}}));
    project.send_to_subscribers(notice, r.connection.get());
    self->forget_project_subscriptions(project.id());
    const auto ec = project.remove_from_disk();
    if (ec) spdlog::error("project {}: could not remove its data: {}", project.id(), ec.message());
    spdlog::info("project deleted: id={}", project.id());
    r.reply("project_deleted", json::object{{"project_id", project.id()}});
  });
}

void Hub::handle_project_join(Request request) {
  if (!request.expect_no_data()) return;
  with_project(std::move(request), [self = shared_from_this()](Request& r, Project& project) {
    project.subscribe(r.connection);
    self->note_joined(r.connection->id(), project.id(), true);
    json::object joined{{"project", projects::to_json(project.snapshot())},
                        {"last_seq", project.last_seq()}};
    // What waits for a person: a phone that reconnects sees it at once.
    joined["pending_permissions"] =
        project.run ? project.run->pending_permissions() : json::array();
    joined["queued_prompts"] = project.run ? project.run->queued_prompts() : json::array();
    r.reply("project_joined", joined);
  });
}

void Hub::handle_project_leave(Request request) {
  if (!request.expect_no_data()) return;
  with_project(std::move(request), [self = shared_from_this()](Request& r, Project& project) {
    project.unsubscribe(r.connection->id());
    self->note_joined(r.connection->id(), project.id(), false);
    r.reply("project_left", json::object{{"project_id", project.id()}});
  });
}

}  // namespace pa::server
