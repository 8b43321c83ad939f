// project_create, project_list, project_delete, project_join, project_leave.
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/json/array.hpp>

#include "projects/path_rules.hpp"
#include "protocol/clock.hpp"
#include "protocol/data_reader.hpp"
#include "search/indexer.hpp"
#include "server/agent_run.hpp"
#include "server/cluster_node.hpp"
#include "server/hub.hpp"
#include "server/project.hpp"
#include "server/request.hpp"

namespace pa::server {

namespace asio = boost::asio;
namespace json = boost::json;
using protocol::ErrorCode;

void Hub::handle_project_create(Request request) {
  // As the client sent it, for another node (before the key is taken out of data).
  const std::string text = cluster_ ? request.text() : std::string();
  std::optional<std::string> key;
  if (auto error = take_idempotency_key(request.message.data, key)) {
    request.fail(*error);
    return;
  }
  protocol::DataReader reader(request.message.data);
  reader.allow_only({"path", "node"});
  auto requested = reader.string("path", true, projects::kMaxPathBytes);
  const auto node = reader.string("node", false, 64);
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
  // Cluster mode: the project is made on the node the client names (default: this one) and its
  // path checked by that node's policy. A key another node took first is that node's to answer.
  if (node && !cluster_) {
    request.fail(protocol::make_error(
        ErrorCode::kInvalidMessage,
        "data.node: this server is not part of a cluster (cluster.redis_url is not set); leave "
        "node out",
        json::object{{"field", "data.node"}}));
    return;
  }
  if (cluster_ && !ClusterNode::from_other_node(*request.connection)) {
    if (node && *node != cluster_->name()) {
      cluster_->forward_create(std::move(request), text, *node);
      return;
    }
    if (key) {
      cluster_->claim_create_key(
          std::move(request), text, *key,
          [self = shared_from_this(), requested = *requested, key](Request here) mutable {
            self->start_create(std::move(here), std::move(requested), key);
          });
      return;
    }
  }
  start_create(std::move(request), std::move(*requested), std::move(key));
}

void Hub::start_create(Request request, std::string requested, std::optional<std::string> key) {
  // Canonicalizing and writing metadata touch the disk: off the I/O thread. With an
  // idempotency key, on the create strand: a copy of the request arriving meanwhile waits, then
  // finds the key recorded.
  const bool keyed = key.has_value();
  auto work = [self = shared_from_this(), request = std::move(request),
               requested = std::move(requested), key = std::move(key)]() mutable {
    self->create_project(std::move(request), std::move(requested), std::move(key));
  };
  if (keyed) {
    asio::post(create_strand_, std::move(work));
  } else {
    asio::post(pool_, std::move(work));
  }
}

// pool (the create strand when `key` is set): project_create after its fields were checked.
void Hub::create_project(Request request, std::string requested, std::optional<std::string> key) {
  auto self = shared_from_this();
  const IdempotencyScope scope{"project_create", "", key ? *key : std::string_view()};
  if (key) {
    if (const auto created = idempotency_.find(scope)) {
      // Carried out before: the project it made, as it is now, or PROJECT_NOT_FOUND when it
      // was deleted since (a resend never makes a second project).
      spdlog::info("project_create from connection {}: duplicate idempotency key (project {})",
                   request.connection->id(), *created);
      request.message.project_id = *created;
      const auto gone = [](const Request& r, const std::string& id) {
        const std::string message =
            "This project_create was already carried out (same data.idempotency_key): it made "
            "project " +
            id +
            ", which has been deleted since. Send project_create with a new "
            "idempotency_key to create a project again";
        r.fail(protocol::make_error(ErrorCode::kProjectNotFound, message,
                                    json::object{{"project_id", id}}),
               true);
      };
      auto project = find_project(*created);
      if (!project) {
        gone(request, *created);
        return;
      }
      asio::post(project->strand(), [self, project, request = std::move(request), gone] {
        if (project->deleted()) {
          gone(request, project->id());
          return;
        }
        project->subscribe(request.connection);
        auto state = projects::to_json(project->snapshot());
        state["duplicate"] = true;
        request.reply("project_state", state);
      });
      return;
    }
  }
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
  const auto reservation = self->projects_.reserve_path(path, self->config_.limits.max_projects);
  if (reservation.outcome == ProjectRegistry::Reservation::Outcome::kLimit) {
    request.fail(protocol::make_error(ErrorCode::kProjectLimit,
                                      "Maximum number of projects reached (" +
                                          std::to_string(self->config_.limits.max_projects) +
                                          "); delete a project or raise limits.max_projects",
                                      json::object{{"limit", self->config_.limits.max_projects}}));
    return;
  }
  if (reservation.outcome == ProjectRegistry::Reservation::Outcome::kNests) {
    const std::string& other_path = reservation.other_path;
    json::object details{{"path", path}, {"existing_path", other_path}};
    if (!reservation.other_id.empty()) details["existing_project_id"] = reservation.other_id;
    const char* relation = other_path == path                ? "is the same as"
                           : other_path.size() < path.size() ? "is inside"
                                                             : "contains";
    request.fail(protocol::make_error(ErrorCode::kProjectNesting,
                                      "Path " + path + " " + relation + " existing project " +
                                          other_path + "; projects cannot nest",
                                      std::move(details)));
    return;
  }
  const auto release_pending = [&] { self->projects_.release_path(path); };

  projects::ProjectInfo info;
  info.id = projects::random_uuid();
  info.path = path;
  info.created_at = protocol::now_rfc3339();
  info.last_active = info.created_at;
  // The key (with the new project's id) is on disk before the project is: a resend after a
  // crash at any point from here finds it. Forgotten again if the project cannot be made.
  if (key) {
    if (const auto ec = self->idempotency_.record(scope, info.id)) {
      release_pending();
      spdlog::error("project_create for {}: cannot record its idempotency key: {}", path,
                    ec.message());
      request.fail(idempotency_storage_error(ec));
      return;
    }
  }
  std::error_code ec = self->store_.create(info);
  std::vector<std::string> warnings;
  std::shared_ptr<Project> project;
  if (!ec) project = self->open_project(info, warnings, ec);
  if (!project) {
    release_pending();
    if (key) (void)self->idempotency_.forget(scope);
    self->store_.remove(info.id);
    spdlog::error("cannot create project for {}: {}", path, ec.message());
    if (projects::out_of_descriptors(ec)) {
      request.fail(projects::descriptor_exhaustion("storing the new project", ec));
      return;
    }
    request.fail(
        protocol::make_error(ErrorCode::kStorageFailed,
                             "Could not store the project in the data directory: " + ec.message() +
                                 "; check its permissions and free space",
                             json::object{{"what", "metadata"},
                                          {"path", self->store_.project_dir(info.id).string()},
                                          {"error", ec.message()}}));
    return;
  }
  self->projects_.add_reserved(path, project);
  if (self->cluster_) self->cluster_->project_changed(project->snapshot());
  spdlog::info("project created: id={} path={} by {}", info.id, path,
               request.connection->identity().describe());
  request.message.project_id = info.id;
  asio::post(project->strand(), [project, request = std::move(request)]() mutable {
    project->subscribe(request.connection);
    const auto requester = request.requester();
    project->publish("project_state", projects::to_json(project->snapshot()), &requester);
  });
}

void Hub::handle_project_list(Request request) {
  if (!request.expect_no_data()) return;
  const auto all = projects_.all();
  json::array list;
  list.reserve(all.size());
  for (const auto& project : all) list.push_back(projects::to_json(project->snapshot()));
  if (cluster_) {
    cluster_->list_projects(std::move(request), std::move(list));  // with the other nodes'
    return;
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
    self->projects_.remove(project.id());
    // Its spend of the day still counts toward budgets.server_daily_usd.
    if (const auto ec = self->spend_.project_deleted(project.snapshot().spend,
                                                     std::chrono::system_clock::now()))
      spdlog::error("project {}: cannot keep its spend of the day in spend.json: {}", project.id(),
                    ec.message());
    // Tell the others first; the requester gets the reply with its request_id.
    auto notice = std::make_shared<const std::string>(protocol::serialize(
        protocol::Outgoing{"project_deleted", project.id(), std::nullopt, std::nullopt, {}},
        json::object{{"project_id", project.id()}}));
    project.send_to_subscribers(notice, r.connection.get());
    self->forget_health_warnings(project.id());
    // Unsubscribes everyone (each connection's cursor goes: Connection::end_feed).
    const auto ec = project.remove_from_disk();
    self->indexer_->removed(project.id());
    if (self->cluster_) self->cluster_->project_removed(project.id());
    if (ec) spdlog::error("project {}: could not remove its data: {}", project.id(), ec.message());
    self->forget_attachments(project.id());
    spdlog::info("project deleted: id={} by {}", project.id(), r.connection->identity().describe());
    r.reply("project_deleted", json::object{{"project_id", project.id()}});
  });
}

void Hub::handle_project_join(Request request) {
  if (!request.expect_no_data()) return;
  with_project(std::move(request), [](Request& r, Project& project) {
    project.subscribe(r.connection);
    json::object joined{{"project", projects::to_json(project.snapshot())},
                        {"last_seq", project.last_seq()},
                        // The joiner's own id, to tell its own prompts (`by`) from others'.
                        {"connection_id", r.connection->id()}};
    // What waits for a person: a phone that reconnects sees it at once.
    joined["pending_permissions"] =
        project.run ? project.run->pending_permissions() : json::array();
    joined["queued_prompts"] = project.run ? project.run->queued_prompts() : json::array();
    if (project.run) {
      if (auto stop = project.run->pending_stop(); !stop.empty()) joined["stopping"] = stop;
    }
    r.reply("project_joined", joined);
  });
}

void Hub::handle_project_leave(Request request) {
  if (!request.expect_no_data()) return;
  with_project(std::move(request), [](Request& r, Project& project) {
    project.unsubscribe(r.connection->id());
    r.reply("project_left", json::object{{"project_id", project.id()}});
  });
}

}  // namespace pa::server
