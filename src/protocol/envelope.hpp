// The JSON envelope of every WebSocket message (docs/protocol.md, "Envelope").
//   client -> server: {type, project_id?, data?, request_id?}
//   server -> client: {type, project_id?, data, request_id?, seq?, timestamp}
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/error_codes.hpp"

namespace pa::protocol {

// A failure to report to the client as an `error` message.
struct Error {
  ErrorCode code = ErrorCode::kInternalError;
  std::string message;  // says what happened and what to do
  boost::json::object details;
};
Error make_error(ErrorCode code, std::string message, boost::json::object details = {});

struct ClientMessage {
  std::string type;
  std::optional<std::string> project_id;  // from the envelope or data.project_id
  boost::json::object data;               // {} when absent
  std::optional<std::string> request_id;
};

struct ParseResult {
  std::optional<ClientMessage> message;   // set on success
  Error error;                            // set on failure
  std::optional<std::string> request_id;  // echoed on the error when it could be read
  std::optional<std::string> project_id;
};

inline constexpr std::size_t kMaxIdLength = 128;
// Deepest JSON nesting accepted in a client message (deeper: INVALID_MESSAGE).
inline constexpr std::size_t kMaxJsonDepth = 64;

// Parses and checks the envelope (not the per-type data; see validate.hpp).
ParseResult parse_client_message(std::string_view text);

// Immutable serialized message shared by every recipient of a broadcast.
using SharedText = std::shared_ptr<const std::string>;

struct Outgoing {
  std::string_view type;
  std::optional<std::string_view> project_id;
  std::optional<std::string_view> request_id;
  std::optional<std::uint64_t> seq;  // set when the message is also in the project's history
  std::string_view timestamp;        // empty = now
};

// `data_json` must be a serialized JSON object (spliced verbatim, not re-parsed).
std::string serialize(const Outgoing& head, std::string_view data_json);
std::string serialize(const Outgoing& head, const boost::json::object& data);
std::string serialize_error(const Error& error, std::optional<std::string_view> project_id,
                            std::optional<std::string_view> request_id);
boost::json::object error_data(const Error& error);

}  // namespace pa::protocol
