// The CLI's permission exchange as pure functions: reading its lines, checking client answers,
// and writing control responses the CLI's schema accepts (CLI-BEHAVIOUR.md §7, addendum 3).
#include "agent/permissions.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <string>

namespace pa::agent {
namespace {

namespace json = boost::json;

json::object parse_line(const std::string& line) {
  EXPECT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  return json::parse(line).as_object();
}

// The can_use_tool line of the reconstructed 2.1.197 capture.
json::object captured_ask() {
  std::ifstream in(std::string(PA_SOURCE_DIR) +
                   "/tests/fixtures/transcripts/reconstructed-2.1.197-permission-stdio-allow"
                   ".stdout.jsonl");
  for (std::string line; std::getline(in, line);) {
    if (line.find("\"can_use_tool\"") != std::string::npos) return json::parse(line).as_object();
  }
  ADD_FAILURE() << "no can_use_tool line in the capture";
  return {};
}

TEST(Permissions, ReadsTheCapturedCanUseToolRequest) {
  const auto request = parse_control_request(captured_ask());
  ASSERT_TRUE(request);
  EXPECT_EQ(request->subtype, "can_use_tool");
  ASSERT_TRUE(request->ask);
  const PermissionAsk& ask = *request->ask;
  EXPECT_EQ(ask.cli_request_id, "3f2e1d0c-9b8a-4765-8432-10fedcba9876");
  EXPECT_EQ(ask.tool_name, "Bash");
  EXPECT_EQ(ask.display_name, "Bash");
  EXPECT_EQ(ask.tool_use_id, "toolu_01Pq7rS2tU4vW6xY8zA1bC3d");
  EXPECT_EQ(ask.input.at("command"), "rm -f build.log && echo removed");
  ASSERT_EQ(ask.suggestions.size(), 1u);
  EXPECT_EQ(ask.suggestions[0].at("destination"), "localSettings");
  EXPECT_EQ(ask.context.at("description"), "Remove build log");
}

TEST(Permissions, OtherControlRequestsAreNotAsks) {
  const auto hook = parse_control_request(
      json::parse(
          R"({"type":"control_request","request_id":"r1","request":{"subtype":"hook_callback"}})")
          .as_object());
  ASSERT_TRUE(hook);
  EXPECT_EQ(hook->subtype, "hook_callback");
  EXPECT_EQ(hook->request_id, "r1");
  EXPECT_FALSE(hook->ask);
  // An ask without a tool name cannot be shown to anyone.
  const auto nameless = parse_control_request(
      json::parse(
          R"({"type":"control_request","request_id":"r2","request":{"subtype":"can_use_tool"}})")
          .as_object());
  ASSERT_TRUE(nameless);
  EXPECT_FALSE(nameless->ask);
  EXPECT_FALSE(parse_control_request(json::parse(R"({"type":"assistant"})").as_object()));
}

TEST(Permissions, ReadsCancelRequests) {
  EXPECT_EQ(parse_control_cancel(
                json::parse(R"({"type":"control_cancel_request","request_id":"abc"})").as_object()),
            "abc");
  EXPECT_FALSE(parse_control_cancel(json::parse(R"({"type":"result"})").as_object()));
}

PermissionAnswer answer_ok(std::string_view text) {
  auto parsed = parse_permission_response(json::parse(text).as_object());
  EXPECT_TRUE(std::holds_alternative<PermissionAnswer>(parsed))
      << std::get<protocol::Error>(parsed).message;
  return std::holds_alternative<PermissionAnswer>(parsed) ? std::get<PermissionAnswer>(parsed)
                                                          : PermissionAnswer{};
}

void expect_invalid(std::string_view text, std::string_view field) {
  auto parsed = parse_permission_response(json::parse(text).as_object());
  ASSERT_TRUE(std::holds_alternative<protocol::Error>(parsed)) << text;
  const auto& error = std::get<protocol::Error>(parsed);
  EXPECT_EQ(error.code, protocol::ErrorCode::kInvalidMessage);
  EXPECT_EQ(error.details.at("field").as_string(), field) << error.message;
}

TEST(Permissions, AcceptsCompleteAnswers) {
  const auto allow = answer_ok(
      R"({"permission_id":"p1","decision":"allow","updated_input":{"command":"ls"},"remember":"session"})");
  EXPECT_EQ(allow.permission_id, "p1");
  EXPECT_TRUE(allow.allow);
  EXPECT_TRUE(allow.remember_session);
  ASSERT_TRUE(allow.updated_input);
  EXPECT_EQ(allow.updated_input->at("command"), "ls");

  const auto deny = answer_ok(R"({"permission_id":"p1","decision":"deny","message":"no"})");
  EXPECT_FALSE(deny.allow);
  EXPECT_EQ(deny.message, "no");
  EXPECT_FALSE(answer_ok(R"({"permission_id":"p1","decision":"deny","message":""})").message);
}

TEST(Permissions, RefusesMalformedAnswers) {
  expect_invalid(R"({"decision":"allow"})", "data.permission_id");
  expect_invalid(R"({"permission_id":"","decision":"allow"})", "data.permission_id");
  expect_invalid(R"({"permission_id":"a\nb","decision":"allow"})", "data.permission_id");
  expect_invalid(R"({"permission_id":"p","decision":"maybe"})", "data.decision");
  expect_invalid(R"({"permission_id":"p"})", "data.decision");
  expect_invalid(R"({"permission_id":"p","decision":"allow","message":5})", "data.message");
  expect_invalid(R"({"permission_id":"p","decision":"allow","updated_input":"x"})",
                 "data.updated_input");
  expect_invalid(R"({"permission_id":"p","decision":"deny","updated_input":{}})",
                 "data.updated_input");
  expect_invalid(R"({"permission_id":"p","decision":"allow","remember":"forever"})",
                 "data.remember");
  expect_invalid(R"({"permission_id":"p","decision":"deny","remember":"session"})",
                 "data.remember");
  expect_invalid(R"({"permission_id":"p","decision":"allow","extra":1})", "data.extra");
  expect_invalid(R"({"permission_id":"p","decision":"deny","message":")" +
                     std::string(kMaxPermissionMessageBytes + 1, 'x') + R"("})",
                 "data.message");
}

TEST(Permissions, AllowLineHasTheShapeTheCliRequires) {
  const json::value input = json::parse(R"({"command":"ls"})");
  const auto line = parse_line(allow_response_line("req-1", input, nullptr));
  EXPECT_EQ(line.at("type"), "control_response");
  const auto& response = line.at("response").as_object();
  EXPECT_EQ(response.at("subtype"), "success");
  EXPECT_EQ(response.at("request_id"), "req-1");
  const auto& decision = response.at("response").as_object();
  EXPECT_EQ(decision.at("behavior"), "allow");
  EXPECT_EQ(decision.at("updatedInput"), input);  // required by the CLI's schema
  EXPECT_FALSE(decision.contains("updatedPermissions"));

  const json::array updates{json::object{{"type", "setMode"}, {"mode", "acceptEdits"}}};
  const auto with = parse_line(allow_response_line("req-1", input, &updates));
  EXPECT_EQ(with.at("response").at("response").at("updatedPermissions"), updates);
}

TEST(Permissions, DenyAndErrorLines) {
  const auto deny = parse_line(deny_response_line("req-2", "Not now"));
  const auto& decision = deny.at("response").at("response").as_object();
  EXPECT_EQ(decision.at("behavior"), "deny");
  EXPECT_EQ(decision.at("message"), "Not now");  // required by the CLI's schema
  EXPECT_EQ(deny.at("response").at("request_id"), "req-2");

  const auto error = parse_line(control_error_line("req-3", "unsupported"));
  EXPECT_EQ(error.at("response").at("subtype"), "error");
  EXPECT_EQ(error.at("response").at("error"), "unsupported");
  EXPECT_EQ(error.at("response").at("request_id"), "req-3");
}

TEST(Permissions, RememberUsesTheCliSuggestionsScopedToTheSession) {
  const auto request = parse_control_request(captured_ask());
  ASSERT_TRUE(request && request->ask);
  const auto updates = session_permission_updates(*request->ask);
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_EQ(updates[0].at("type"), "addRules");
  EXPECT_EQ(updates[0].at("destination"), "session");  // never the user's settings files
  EXPECT_EQ(updates[0].at("rules").at(0).at("ruleContent"), "rm -f build.log && echo removed");

  PermissionAsk bare;
  bare.tool_name = "Write";
  const auto fallback = session_permission_updates(bare);
  ASSERT_EQ(fallback.size(), 1u);
  EXPECT_EQ(fallback[0].at("rules").at(0).at("toolName"), "Write");
  EXPECT_EQ(fallback[0].at("behavior"), "allow");
  EXPECT_EQ(fallback[0].at("destination"), "session");
}

TEST(Permissions, InputHashIsSha256OfTheSerializedInput) {
  // sha256("{}") and sha256("{\"a\":1}")
  EXPECT_EQ(input_sha256(json::object{}),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
  EXPECT_EQ(input_sha256(json::parse(R"({"a":1})")),
            "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862");
}

}  // namespace
}  // namespace pa::agent
