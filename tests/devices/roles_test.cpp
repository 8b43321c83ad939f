#include "devices/roles.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

namespace pa::devices {
namespace {

const Role kAllRoles[] = {Role::kViewer, Role::kOperator, Role::kApprover, Role::kAdmin};

// The issue's roles, written out independently of the table under test.
const std::set<std::string> kViewerMessages{
    "hello", "health", "project_list", "project_join", "project_leave", "get_messages",
    "project_changes", "project_diff", "file_read", "file_list", "session_list", "client_focus",
    "push_info", "push_subscribe", "push_unsubscribe", "push_test", "get_attachment",
    // Issue 19: search over every project's history.
    "search_messages"};
const std::set<std::string> kOperatorMessages{"execute", "agent_kill", "agent_interrupt",
                                              "agent_new_session"};
const std::set<std::string> kApproverMessages{"permission_response"};
const std::set<std::string> kAdminMessages{"project_create", "project_delete", "device_pair",
                                           "device_list",    "device_rename",  "device_revoke"};

std::set<std::string> all_messages() {
  std::set<std::string> all = kViewerMessages;
  for (const auto* s : {&kOperatorMessages, &kApproverMessages, &kAdminMessages})
    all.insert(s->begin(), s->end());
  return all;
}

// The message types src/server/hub.cpp dispatches: {"type", &Hub::handle_...}.
std::set<std::string> hub_message_types() {
  std::ifstream in(std::string(PA_SOURCE_DIR) + "/src/server/hub.cpp");
  std::stringstream text;
  text << in.rdbuf();
  const std::string source = text.str();
  const std::regex entry(R"re(\{"([a-z_]+)",\s*&Hub::handle_)re");
  std::set<std::string> types;
  for (std::sregex_iterator it(source.begin(), source.end(), entry), end; it != end; ++it)
    types.insert((*it)[1]);
  return types;
}

TEST(Roles, NamesRoundTripAndNothingElseParses) {
  for (const Role r : kAllRoles) EXPECT_EQ(parse_role(role_name(r)), r);
  EXPECT_EQ(role_name(Role::kViewer), "viewer");
  EXPECT_EQ(role_name(Role::kOperator), "operator");
  EXPECT_EQ(role_name(Role::kApprover), "approver");
  EXPECT_EQ(role_name(Role::kAdmin), "admin");
  for (const char* bad : {"", "Admin", "root", "viewer ", "operators", "owner"})
    EXPECT_FALSE(parse_role(bad)) << bad;
}

TEST(Roles, EveryMessageUnderEveryRole) {
  for (const auto& type : all_messages()) {
    const bool viewer = kViewerMessages.count(type) > 0;
    EXPECT_EQ(allows(Role::kViewer, type), viewer) << type;
    EXPECT_EQ(allows(Role::kOperator, type), viewer || kOperatorMessages.count(type) > 0) << type;
    EXPECT_EQ(allows(Role::kApprover, type), viewer || kApproverMessages.count(type) > 0) << type;
    EXPECT_TRUE(allows(Role::kAdmin, type)) << type;
  }
}

TEST(Roles, RequiredRoleIsTheLeastThatMaySend) {
  for (const auto& type : all_messages()) {
    const auto least = required_role(type);
    ASSERT_TRUE(least) << type;
    EXPECT_TRUE(allows(*least, type)) << type;
    const Role expected = kViewerMessages.count(type)     ? Role::kViewer
                          : kOperatorMessages.count(type) ? Role::kOperator
                          : kApproverMessages.count(type) ? Role::kApprover
                                                          : Role::kAdmin;
    EXPECT_EQ(*least, expected) << type;
  }
}

TEST(Roles, ApproverAndOperatorAreSiblingsNotAChain) {
  EXPECT_FALSE(allows(Role::kApprover, "execute"));
  EXPECT_FALSE(allows(Role::kApprover, "agent_kill"));
  EXPECT_FALSE(allows(Role::kOperator, "permission_response"));
  EXPECT_FALSE(allows(Role::kOperator, "project_create"));
  EXPECT_FALSE(allows(Role::kApprover, "device_revoke"));
  EXPECT_FALSE(allows(Role::kViewer, "execute"));
  EXPECT_FALSE(allows(Role::kViewer, "permission_response"));
}

TEST(Roles, UnknownTypesHaveNoRoleAndOnlyAdminPasses) {
  for (const char* type : {"", "Execute", "execute ", "shutdown", "device_pairing"}) {
    EXPECT_FALSE(required_role(type)) << type;
    EXPECT_FALSE(allows(Role::kViewer, type)) << type;
    EXPECT_FALSE(allows(Role::kOperator, type)) << type;
    EXPECT_FALSE(allows(Role::kApprover, type)) << type;
    EXPECT_TRUE(allows(Role::kAdmin, type)) << type;
  }
}

TEST(Roles, TableListsEachTypeOnceAndExactlyTheExpectedOnes) {
  std::set<std::string> listed;
  for (const auto& rule : message_rules()) {
    EXPECT_TRUE(listed.insert(std::string(rule.type)).second) << "listed twice: " << rule.type;
  }
  EXPECT_EQ(listed, all_messages());
}

// A handler added to the hub without a role here would be admin-only for devices by accident:
// this fails until it is given one (and the expectations above are updated).
TEST(Roles, EveryMessageTheHubHandlesHasARole) {
  const auto hub = hub_message_types();
  ASSERT_GE(hub.size(), 20u) << "the handler table of src/server/hub.cpp was not found";
  for (const auto& type : hub) EXPECT_TRUE(required_role(type)) << type << " has no role";
  // And the table names nothing the hub does not handle.
  for (const auto& rule : message_rules())
    EXPECT_TRUE(hub.count(std::string(rule.type))) << rule.type;
}

}  // namespace
}  // namespace pa::devices

namespace pa::devices {
namespace {

// docs/protocol.md's roles table (rows "| `type` | role |" after the "### Roles" heading) is
// exactly the roles table of the code.
// welcome.allowed_messages: exactly what allows() lets each role send, and nothing it refuses.
TEST(Roles, AllowedMessagesAreWhatEachRoleMaySend) {
  for (const Role role : {Role::kViewer, Role::kOperator, Role::kApprover, Role::kAdmin}) {
    std::set<std::string> listed;
    for (const auto type : allowed_messages(role)) listed.emplace(type);
    std::set<std::string> expected;
    for (const auto& type : all_messages()) {
      if (allows(role, type)) expected.insert(type);
    }
    EXPECT_EQ(listed, expected) << role_name(role);
  }
  std::set<std::string> operator_sends;
  for (const auto type : allowed_messages(Role::kOperator)) operator_sends.emplace(type);
  EXPECT_TRUE(operator_sends.contains("execute"));
  EXPECT_FALSE(operator_sends.contains("permission_response"));
  EXPECT_FALSE(operator_sends.contains("device_list"));
  EXPECT_EQ(allowed_messages(Role::kAdmin).size(), all_messages().size());
}

TEST(Roles, DocumentedInProtocolMd) {
  std::ifstream in(std::string(PA_SOURCE_DIR) + "/docs/protocol.md");
  ASSERT_TRUE(in);
  std::stringstream text;
  text << in.rdbuf();
  const std::string doc = text.str();
  const auto start = doc.find("\n### Roles\n");
  ASSERT_NE(start, std::string::npos) << "docs/protocol.md has no '### Roles' section";
  const auto end = doc.find("\n#", start + 1);
  const std::string section = doc.substr(start, end == std::string::npos ? end : end - start);
  std::set<std::pair<std::string, std::string>> documented;
  static const std::regex kRow(R"(\n\| `([a-z_]+)` \| ([a-z]+) \|)");
  for (std::sregex_iterator it(section.begin(), section.end(), kRow), last; it != last; ++it)
    documented.emplace((*it)[1], (*it)[2]);
  std::set<std::pair<std::string, std::string>> table;
  for (const auto& rule : message_rules())
    table.emplace(std::string(rule.type), std::string(role_name(rule.least)));
  EXPECT_EQ(documented, table);
}

}  // namespace
}  // namespace pa::devices
