// hello: the optional handshake (docs/protocol.md, "Handshake"). The client names the protocol
// it speaks and what it can do; the server answers welcome with the version spoken from now on
// and its own capabilities. Memory only: handled on the connection's strand.
#include <spdlog/spdlog.h>

#include <variant>

#include "ops/health.hpp"
#include "ops/logging.hpp"
#include "protocol/handshake.hpp"
#include "server/hub.hpp"
#include "server/request.hpp"

namespace pa::server {

namespace json = boost::json;
using protocol::ErrorCode;

// The limits a client must keep to before it sends (a message over message_size closes the
// connection with 1009): the console checks a prompt with attachments against them.
json::object Hub::client_limits() const {
  return json::object{{"message_size", config_.limits.message_size},
                      {"attachment_bytes", config_.limits.attachment_bytes},
                      {"attachments_per_prompt", config_.limits.attachments_per_prompt},
                      {"prompt_size", config_.limits.prompt_size}};
}

void Hub::handle_hello(Request request) {
  if (request.message.project_id) {
    request.fail(protocol::make_error(ErrorCode::kInvalidMessage, "hello takes no project_id",
                                      json::object{{"field", "project_id"}}));
    return;
  }
  auto parsed = protocol::parse_hello(request.message.data);
  if (auto* error = std::get_if<protocol::Error>(&parsed)) {
    request.fail(*error);
    return;
  }
  auto& hello = std::get<protocol::Hello>(parsed);
  const auto version = protocol::check_protocol(hello.protocol);
  if (const auto* error = std::get_if<protocol::Error>(&version)) {
    request.fail(*error);
    return;
  }

  json::array declared;
  for (const auto& name : hello.capabilities) declared.emplace_back(name);
  auto& profile = request.connection->profile();
  switch (profile.accept_hello(hello.client_name.value_or(""), std::move(hello.capabilities))) {
    case ClientProfile::HelloOutcome::kAccepted:
      break;
    case ClientProfile::HelloOutcome::kRepeated:
      request.fail(protocol::make_error(
          ErrorCode::kInvalidMessage,
          "hello was already answered on this connection; its capabilities stay as declared. "
          "Reconnect to declare others",
          json::object{{"field", "type"}, {"reason", "hello_repeated"}}));
      return;
    case ClientProfile::HelloOutcome::kTooLate:
      request.fail(protocol::make_error(
          ErrorCode::kInvalidMessage,
          "hello must be the first request on a connection; this one goes on without it (as the "
          "spec describes). Reconnect and send hello first to declare capabilities",
          json::object{{"field", "type"}, {"reason", "hello_not_first"}}));
      return;
  }

  const std::string name = request.connection->client_name();
  const auto& who = request.connection->identity();
  json::value device = nullptr;  // the master token
  json::array allowed;
  for (const auto type : devices::allowed_messages(who.role)) allowed.emplace_back(type);
  if (who.is_device())
    device = json::object{{"device_id", who.device_id}, {"name", who.device_name}};
  ops::log_event(spdlog::level::info, "Client hello",
                 json::object{{"connection_id", request.connection->id()},
                              {"protocol", std::get<std::int64_t>(version)},
                              {"client_name", name},
                              {"capabilities", declared}});
  request.reply("welcome", json::object{{"protocol", std::get<std::int64_t>(version)},
                                        {"server_version", ops::server_version()},
                                        {"capabilities", protocol::server_capabilities_json()},
                                        {"client_name",
                                         name.empty() ? json::value(nullptr) : json::value(name)},
                                        {"accepted_capabilities", std::move(declared)},
                                        {"role", devices::role_name(who.role)},
                                        {"device", std::move(device)},
                                        {"allowed_messages", std::move(allowed)},
                                        {"limits", client_limits()}});
}

}  // namespace pa::server
