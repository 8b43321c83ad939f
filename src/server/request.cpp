#include "server/request.hpp"

#include "protocol/data_reader.hpp"
#include "protocol/json_text.hpp"

#include <boost/json/serialize.hpp>

namespace pa::server {

Done make_done(std::function<void()> on_done) {
  return Done(nullptr, [cb = std::move(on_done)](void*) {
    if (cb) cb();
  });
}

std::string Request::text() const {
  boost::json::object object{{"type", message.type}, {"data", message.data}};
  if (message.project_id) object["project_id"] = *message.project_id;
  if (message.request_id) object["request_id"] = *message.request_id;
  return protocol::to_json_text(object);
}

void Request::reply(std::string_view type, const boost::json::object& data) const {
  reply_raw(type, protocol::to_json_text(data));
}

void Request::reply_raw(std::string_view type, std::string_view data_json) const {
  std::optional<std::string_view> project_id;
  if (message.project_id) project_id = *message.project_id;
  std::optional<std::string_view> request_id;
  if (message.request_id) request_id = *message.request_id;
  connection->send(std::make_shared<const std::string>(protocol::serialize(
      protocol::Outgoing{type, project_id, request_id, std::nullopt, {}}, data_json)));
}

bool Request::expect_no_data() const {
  protocol::DataReader reader(message.data);
  reader.allow_only({});
  if (!reader.ok()) fail(reader.error());
  return reader.ok();
}

bool Request::expect_no_project_id() const {
  if (!message.project_id) return true;
  fail(protocol::make_error(protocol::ErrorCode::kInvalidMessage,
                            message.type + " takes no project_id",
                            boost::json::object{{"field", "project_id"}}));
  return false;
}

void Request::fail(const protocol::Error& error, bool duplicate) const {
  if (metrics != nullptr) metrics->error(protocol::to_string(error.code)).inc();
  std::optional<std::string_view> project_id;
  if (message.project_id) project_id = *message.project_id;
  std::optional<std::string_view> request_id;
  if (message.request_id) request_id = *message.request_id;
  if (duplicate) {
    auto data = protocol::error_data(error);
    data["duplicate"] = true;
    connection->send(std::make_shared<const std::string>(protocol::serialize(
        protocol::Outgoing{"error", project_id, request_id, std::nullopt, {}}, data)));
    return;
  }
  connection->send(std::make_shared<const std::string>(
      protocol::serialize_error(error, project_id, request_id)));
}

}  // namespace pa::server
