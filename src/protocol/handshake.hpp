// The optional handshake a client may open with: `hello {protocol, client_name?, capabilities}`
// answered by `welcome {protocol, server_version, capabilities, client_name}`
// (docs/protocol.md, "Handshake"). Here: the protocol versions, the one table of the server's
// capabilities, the client-name rule shared with `/ws?client_name=`, and the validation of a
// hello's data. Pure functions; the hub keeps the per-connection state (server/client_profile).
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "protocol/envelope.hpp"

namespace pa::protocol {

// The protocol this server speaks, and the oldest one it still speaks. A client sends the
// newest it knows; the server answers with min(that, kProtocolVersion) or, below
// kOldestProtocolVersion, UNSUPPORTED_PROTOCOL.
inline constexpr std::int64_t kProtocolVersion = 1;
inline constexpr std::int64_t kOldestProtocolVersion = 1;

// A feature a client can rely on when the server lists it in welcome, and, for those a client
// can declare in hello, what the server then does differently.
struct Capability {
  std::string_view name;
  std::string_view meaning;  // one line, for the reader of this table
};

// The server's capabilities, in the order welcome lists them. A new feature appends its row;
// docs/protocol.md ("Capabilities") describes each and a test keeps the two in step.
inline constexpr Capability kServerCapabilities[] = {
    {"permissions",
     "permission_request / permission_response; a client declaring it is asked for tool "
     "permissions"},
    {"queue", "execute with mode \"queue\": follow-ups in the running CLI"},
    {"interrupt", "agent_interrupt: end the turn without signals"},
    {"idempotency", "data.idempotency_key on execute, permission_response, project_create"},
    {"history_paging", "get_messages before_seq: page history backwards"},
    {"review", "project_changes, project_diff, file_read, file_list, session_list"},
    {"notifications",
     "push_info, push_subscribe, push_unsubscribe, push_test, client_focus: Web Push to this "
     "device"},
    {"devices",
     "paired devices with roles: welcome's role and device, device_pair, device_list, "
     "device_rename, device_revoke, POST /pair"},
};

// The capabilities a client declares that change what the server does for it.
inline constexpr std::string_view kPermissionsCapability = "permissions";

bool is_server_capability(std::string_view name);
boost::json::array server_capabilities_json();

// A client's name (`/ws?client_name=` and hello's client_name): 1-64 bytes of UTF-8 without
// control characters.
inline constexpr std::size_t kMaxClientNameBytes = 64;
bool valid_client_name(std::string_view name);

// Caps on a hello: entries in `capabilities`, bytes per entry.
inline constexpr std::size_t kMaxHelloCapabilities = 64;
inline constexpr std::size_t kMaxCapabilityBytes = 64;

struct Hello {
  std::int64_t protocol = 0;  // INT64_MAX stands for any larger number
  std::optional<std::string> client_name;
  std::vector<std::string> capabilities;  // the ones this server knows, each once, in order
};

// Validates a hello's `data`: INVALID_MESSAGE naming the field (unknown field, protocol not an
// integer, client_name not a valid name, capabilities not a list of 1-64 byte strings or more
// than 64 of them). Unknown capability strings are dropped, not refused. The version rule is
// the caller's (check_protocol).
std::variant<Hello, Error> parse_hello(const boost::json::object& data);

// The version the connection speaks from now on, or UNSUPPORTED_PROTOCOL for one older than
// kOldestProtocolVersion.
std::variant<std::int64_t, Error> check_protocol(std::int64_t client_protocol);

}  // namespace pa::protocol
