// push_info, push_subscribe, push_unsubscribe, push_test, client_focus: a device's notifications
// (issue 17; docs/protocol.md "Notifications"). Fields are checked on the connection's strand;
// what reads or writes push_subscriptions.json runs on the blocking pool. The service itself is
// notify::Notifier.
#include <boost/asio/post.hpp>
#include <boost/json/array.hpp>

#include "notify/event_names.hpp"
#include "notify/notifier.hpp"
#include "protocol/data_reader.hpp"
#include "server/hub.hpp"
#include "server/request.hpp"

namespace pa::server {

namespace asio = boost::asio;
namespace json = boost::json;
using protocol::ErrorCode;

namespace {

json::array names(const std::vector<std::string>& events) {
  json::array out;
  for (const auto& e : events) out.emplace_back(e);
  return out;
}

json::object describe(const notify::StoredSubscription& s) {
  return {{"endpoint", s.keys.endpoint}, {"events", names(s.events)}, {"created_at", s.created_at}};
}

// data.endpoint, required or not; fails the request when it is malformed.
std::optional<std::string> read_endpoint(Request& request, bool required,
                                         std::initializer_list<std::string_view> allowed) {
  protocol::DataReader reader(request.message.data);
  reader.allow_only(allowed);
  auto endpoint = reader.string("endpoint", required, notify::kMaxEndpointBytes);
  if (!reader.ok()) {
    request.fail(reader.error());
    return std::nullopt;
  }
  return endpoint.value_or("");
}

}  // namespace

void Hub::handle_push_info(Request request) {
  if (!request.expect_no_project_id()) return;
  auto endpoint = read_endpoint(request, false, {"endpoint"});
  if (!endpoint) return;
  asio::post(pool_,
             [self = shared_from_this(), r = std::move(request), endpoint = std::move(*endpoint)] {
               json::array events;
               for (const auto name : notify::kEventNames) events.emplace_back(name);
               json::value subscription = nullptr;
               if (!endpoint.empty()) {
                 if (auto found = self->notifier_->find(endpoint, r.connection->id()))
                   subscription = describe(*found);
               }
               r.reply("push_info_response",
                       json::object{{"vapid_public_key", self->notifier_->vapid_public_key()},
                                    {"events", std::move(events)},
                                    {"subscription", std::move(subscription)}});
             });
}

void Hub::handle_push_subscribe(Request request) {
  if (!request.expect_no_project_id()) return;
  protocol::DataReader reader(request.message.data);
  reader.allow_only({"subscription", "events"});
  if (!reader.ok()) {
    request.fail(reader.error());
    return;
  }
  asio::post(pool_, [self = shared_from_this(), r = std::move(request)] {
    auto result =
        self->notifier_->subscribe(r.message.data, r.connection->client_name(), r.connection->id(),
                                   r.connection->identity().device_id);
    if (const auto* error = std::get_if<protocol::Error>(&result)) {
      r.fail(*error);
      return;
    }
    const auto& s = std::get<notify::StoredSubscription>(result);
    r.reply("push_subscribed",
            json::object{{"endpoint", s.keys.endpoint}, {"events", names(s.events)}});
  });
}

void Hub::handle_push_unsubscribe(Request request) {
  if (!request.expect_no_project_id()) return;
  auto endpoint = read_endpoint(request, true, {"endpoint"});
  if (!endpoint) return;
  asio::post(pool_,
             [self = shared_from_this(), r = std::move(request), endpoint = std::move(*endpoint)] {
               if (auto error = self->notifier_->unsubscribe(endpoint)) {
                 r.fail(*error);
                 return;
               }
               r.reply("push_unsubscribed", json::object{{"endpoint", endpoint}});
             });
}

void Hub::handle_push_test(Request request) {
  if (!request.expect_no_project_id()) return;
  auto endpoint = read_endpoint(request, true, {"endpoint"});
  if (!endpoint) return;
  asio::post(pool_, [self = shared_from_this(), r = std::move(request),
                     endpoint = std::move(*endpoint)] {
    if (!self->notifier_->send_test(endpoint)) {
      r.fail(protocol::make_error(ErrorCode::kInvalidMessage,
                                  "No subscription has this endpoint; send push_subscribe first",
                                  json::object{{"field", "data.endpoint"}}));
      return;
    }
    r.reply("push_test_sent", json::object{{"endpoint", endpoint}});
  });
}

// No reply on success: a console sends one on every view change.
void Hub::handle_client_focus(Request request) {
  protocol::DataReader reader(request.message.data);
  reader.allow_only({"project_id"});
  if (!reader.ok()) {
    request.fail(reader.error());
    return;
  }
  if (!request.message.project_id) {
    notifier_->set_focus(request.connection->id(), std::nullopt);
    return;
  }
  if (!find_project(*request.message.project_id)) {
    request.fail(protocol::make_error(
        ErrorCode::kProjectNotFound,
        "No project has id " + *request.message.project_id + "; send null when none is shown",
        json::object{{"project_id", *request.message.project_id}}));
    return;
  }
  notifier_->set_focus(request.connection->id(), *request.message.project_id);
}

}  // namespace pa::server
