// One client request in flight. `done` is shared by every continuation of the request; when the
// last copy is gone the connection reads its next message, so a connection's requests are
// handled one after another, in order, and a flood of requests is throttled by TCP.
#pragma once

#include <boost/json/object.hpp>
#include <memory>
#include <optional>
#include <string>

#include "ops/metrics.hpp"
#include "protocol/envelope.hpp"
#include "server/connection.hpp"
#include "server/project.hpp"

namespace pa::server {

using Done = std::shared_ptr<void>;
Done make_done(std::function<void()> on_done);

struct Request {
  std::shared_ptr<Connection> connection;
  protocol::ClientMessage message;
  Done done;
  ops::ServerMetrics* metrics = nullptr;  // counts errors sent

  Requester requester() const { return Requester{connection, message.request_id}; }
  // The message as JSON text again (for another node to carry out).
  std::string text() const;
  // Direct replies, echoing request_id; `project_id` defaults to the request's.
  void reply(std::string_view type, const boost::json::object& data) const;
  void reply_raw(std::string_view type, std::string_view data_json) const;
  // `duplicate`: the answer to a resent request (same data.idempotency_key) that was already
  // carried out; the error's data gets `duplicate: true`.
  void fail(const protocol::Error& error, bool duplicate = false) const;
  // For messages that take no data fields: fails the request (INVALID_MESSAGE) if it has any.
  bool expect_no_data() const;
  // For messages about no project: fails the request (INVALID_MESSAGE) if it has a project_id.
  bool expect_no_project_id() const;
};

}  // namespace pa::server
