#include "devices/roles.hpp"

#include <algorithm>
#include <array>

namespace pa::devices {

namespace {

// Push messages are viewer: a Web Push endpoint is a capability URL only the browser that
// subscribed knows, so push_unsubscribe/push_test can only reach the sender's own subscription,
// and a notification tells no more than a viewer already sees (a permission request, a run's end).
// client_focus only mutes notifications for the sender's own connection.
constexpr std::array kRules{
    MessageRule{"hello", Role::kViewer},
    MessageRule{"health", Role::kViewer},
    MessageRule{"project_list", Role::kViewer},
    MessageRule{"project_join", Role::kViewer},
    MessageRule{"project_leave", Role::kViewer},
    MessageRule{"get_messages", Role::kViewer},
    MessageRule{"project_changes", Role::kViewer},
    MessageRule{"project_diff", Role::kViewer},
    MessageRule{"file_read", Role::kViewer},
    MessageRule{"file_list", Role::kViewer},
    MessageRule{"session_list", Role::kViewer},
    MessageRule{"client_focus", Role::kViewer},
    MessageRule{"push_info", Role::kViewer},
    MessageRule{"push_subscribe", Role::kViewer},
    MessageRule{"push_unsubscribe", Role::kViewer},
    MessageRule{"push_test", Role::kViewer},
    MessageRule{"get_attachment", Role::kViewer},
    // Search reads history, as get_messages does, across every project (all are visible to all).
    MessageRule{"search_messages", Role::kViewer},
    MessageRule{"execute", Role::kOperator},
    MessageRule{"agent_kill", Role::kOperator},
    MessageRule{"agent_interrupt", Role::kOperator},
    MessageRule{"agent_new_session", Role::kOperator},
    MessageRule{"permission_response", Role::kApprover},
    MessageRule{"project_create", Role::kAdmin},
    MessageRule{"project_delete", Role::kAdmin},
    MessageRule{"device_pair", Role::kAdmin},
    MessageRule{"device_list", Role::kAdmin},
    MessageRule{"device_rename", Role::kAdmin},
    MessageRule{"device_revoke", Role::kAdmin},
};

}  // namespace

std::string_view role_name(Role role) {
  switch (role) {
    case Role::kViewer:
      return "viewer";
    case Role::kOperator:
      return "operator";
    case Role::kApprover:
      return "approver";
    case Role::kAdmin:
      return "admin";
  }
  return "viewer";
}

std::optional<Role> parse_role(std::string_view name) {
  for (const Role r : {Role::kViewer, Role::kOperator, Role::kApprover, Role::kAdmin}) {
    if (role_name(r) == name) return r;
  }
  return std::nullopt;
}

std::span<const MessageRule> message_rules() {
  return kRules;
}

std::optional<Role> required_role(std::string_view message_type) {
  const auto it = std::find_if(kRules.begin(), kRules.end(),
                               [&](const MessageRule& r) { return r.type == message_type; });
  if (it == kRules.end()) return std::nullopt;
  return it->least;
}

bool allows(Role role, std::string_view message_type) {
  if (role == Role::kAdmin) return true;
  const auto least = required_role(message_type);
  if (!least) return false;
  // Operator and approver each add their own messages to viewer's; neither includes the other's.
  return *least == Role::kViewer || *least == role;
}

std::vector<std::string_view> allowed_messages(Role role) {
  std::vector<std::string_view> types;
  for (const auto& rule : kRules) {
    if (allows(role, rule.type)) types.push_back(rule.type);
  }
  return types;
}

}  // namespace pa::devices
