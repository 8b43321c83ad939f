// Roles of paired devices and the one table of what each may send.
//
// A device has one role; the master token (auth.token) is always admin. Each client message type
// the server accepts has a least role that may send it:
//   viewer    reads: project_list/join/leave, get_messages, health, the review reads, hello,
//             client_focus and its own Web Push subscription (push_info/subscribe/unsubscribe/test)
//   operator  viewer + running the agent: execute (also mode "queue"), agent_kill,
//             agent_interrupt, agent_new_session
//   approver  viewer + permission_response
//   admin     everything: project_create/delete and the device_* messages
// Operator and approver are siblings, not a chain: an approver may not run prompts and an operator
// may not answer permission requests. allows() is the check; required_role() names the least role
// for FORBIDDEN's details.required_role. A type missing from the table is unknown: required_role()
// is nullopt and only admin is allowed it (the hub then answers an unknown type as it does today),
// so a new handler nobody listed here fails closed for devices; tests/devices/roles_test.cpp
// compares the table with the hub's handler table and fails until the new type is listed.
#pragma once

#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace pa::devices {

enum class Role { kViewer, kOperator, kApprover, kAdmin };

// "viewer", "operator", "approver", "admin".
std::string_view role_name(Role role);
// The inverse of role_name (exact, lower case); nullopt for anything else.
std::optional<Role> parse_role(std::string_view name);

struct MessageRule {
  std::string_view type;
  Role least;
};
// Every client message type the server accepts, with the least role that may send it.
std::span<const MessageRule> message_rules();

// The least role for `message_type`; nullopt for a type the table does not know.
std::optional<Role> required_role(std::string_view message_type);
// May a device with `role` send `message_type`? For an unknown type only admin may.
bool allows(Role role, std::string_view message_type);
// Every message type `role` may send, in the table's order (welcome.allowed_messages: what a
// client shows its person, so that it does not offer what the server would refuse).
std::vector<std::string_view> allowed_messages(Role role);

}  // namespace pa::devices
