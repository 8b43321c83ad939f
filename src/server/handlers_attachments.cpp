// get_attachment (issue 19): an attachment a project's history refers to, with its bytes.
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

#include "common/base64.hpp"
#include "protocol/data_reader.hpp"
#include "server/hub.hpp"
#include "server/project.hpp"
#include "server/request.hpp"

namespace pa::server {

namespace json = boost::json;
using protocol::ErrorCode;

void Hub::handle_get_attachment(Request request) {
  protocol::DataReader reader(request.message.data);
  reader.allow_only({"sha256"});
  auto sha256 = reader.string("sha256", true, 64);
  if (!reader.ok()) {
    request.fail(reader.error());
    return;
  }
  if (!AttachmentStore::looks_like_sha256(*sha256)) {
    request.fail(protocol::make_error(
        ErrorCode::kInvalidMessage,
        "data.sha256 must be 64 lower-case hex digits, as in the history entry's attachments",
        json::object{{"field", "data.sha256"}}));
    return;
  }
  // The project must exist (and the sender see it); the file is read on the blocking pool, not
  // on the project's strand, so a large read never holds up the project's history.
  with_project(std::move(request), [self = shared_from_this(), sha256 = std::move(*sha256)](
                                       Request& r, Project& project) {
    boost::asio::post(self->pool_, [self, r = std::move(r), project_id = project.id(), sha256] {
      std::error_code ec;
      const auto found = self->attachments_.find(project_id, sha256, ec);
      if (ec) {
        spdlog::error("get_attachment {} of project {}: {}", sha256, project_id, ec.message());
        r.fail(protocol::make_error(ErrorCode::kInternalError,
                                    "Could not read the attachment (" + ec.message() +
                                        "); try again, and check the server's data directory",
                                    json::object{{"sha256", sha256}}));
        return;
      }
      if (!found) {
        r.fail(protocol::make_error(
            ErrorCode::kAttachmentNotFound,
            "Project " + project_id + " has no attachment " + sha256 +
                " in its history (never sent with this project's prompts, or its project was "
                "deleted); ask only for the sha256 of an attachments entry of get_messages",
            json::object{{"project_id", project_id}, {"sha256", sha256}}));
        return;
      }
      r.reply("attachment",
              json::object{{"sha256", found->sha256},
                           {"name", found->name},
                           {"media_type", found->media_type},
                           {"bytes", found->bytes.size()},
                           {"data", common::base64_encode(found->bytes,
                                                          common::Base64Alphabet::kStandard)}});
    });
  });
}

void Hub::forget_attachments(const std::string& project_id) {
  boost::asio::post(pool_, [self = shared_from_this(), project_id] {
    const auto removed = self->attachments_.forget_project(project_id);
    if (removed > 0) {
      spdlog::info("project {} deleted: {} attachment file(s) no other project refers to removed",
                   project_id, removed);
    }
  });
}

}  // namespace pa::server
