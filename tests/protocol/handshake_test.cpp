// hello's validation and version rule, the capability table, and that docs/protocol.md lists
// exactly the capabilities the server announces.
#include "protocol/handshake.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

namespace pa::protocol {
namespace {

namespace json = boost::json;

std::variant<Hello, Error> parse(std::string_view text) {
  return parse_hello(json::parse(text).as_object());
}

Hello ok(std::string_view text) {
  auto r = parse(text);
  if (auto* e = std::get_if<Error>(&r)) {
    ADD_FAILURE() << text << ": " << e->message;
    return {};
  }
  return std::get<Hello>(r);
}

// The field an invalid hello is refused for (INVALID_MESSAGE), or "" when it was accepted.
std::string refused_field(std::string_view text) {
  auto r = parse(text);
  const auto* e = std::get_if<Error>(&r);
  if (e == nullptr) return "";
  EXPECT_EQ(e->code, ErrorCode::kInvalidMessage) << text;
  return std::string(e->details.at("field").as_string());
}

TEST(Hello, ReadsEveryField) {
  const Hello h = ok(R"({"protocol":1,"client_name":"Pixel 7","capabilities":["permissions"]})");
  EXPECT_EQ(h.protocol, 1);
  EXPECT_EQ(h.client_name, "Pixel 7");
  EXPECT_EQ(h.capabilities, std::vector<std::string>{"permissions"});
  const Hello bare = ok(R"({"protocol":1,"capabilities":[],"client_name":null})");
  EXPECT_FALSE(bare.client_name);
  EXPECT_TRUE(bare.capabilities.empty());
}

TEST(Hello, UnknownCapabilitiesAreDroppedAndRepeatsKeptOnce) {
  const Hello h = ok(
      R"({"protocol":1,"capabilities":["telepathy","queue","permissions","queue","PERMISSIONS"]})");
  EXPECT_EQ(h.capabilities, (std::vector<std::string>{"queue", "permissions"}));
}

TEST(Hello, RefusesBadFields) {
  EXPECT_EQ(refused_field(R"({"capabilities":[]})"), "data.protocol");
  EXPECT_EQ(refused_field(R"({"protocol":null,"capabilities":[]})"), "data.protocol");
  EXPECT_EQ(refused_field(R"({"protocol":"1","capabilities":[]})"), "data.protocol");
  EXPECT_EQ(refused_field(R"({"protocol":1.5,"capabilities":[]})"), "data.protocol");
  EXPECT_EQ(refused_field(R"({"protocol":1.0,"capabilities":[]})"), "data.protocol");
  EXPECT_EQ(refused_field(R"({"protocol":true,"capabilities":[]})"), "data.protocol");
  EXPECT_EQ(refused_field(R"({"protocol":[1],"capabilities":[]})"), "data.protocol");
  EXPECT_EQ(refused_field(R"({"protocol":1})"), "data.capabilities");
  EXPECT_EQ(refused_field(R"({"protocol":1,"capabilities":"permissions"})"), "data.capabilities");
  EXPECT_EQ(refused_field(R"({"protocol":1,"capabilities":[1]})"), "data.capabilities");
  EXPECT_EQ(refused_field(R"({"protocol":1,"capabilities":[""]})"), "data.capabilities");
  EXPECT_EQ(refused_field(R"({"protocol":1,"capabilities":[null]})"), "data.capabilities");
  const std::string long_name(kMaxCapabilityBytes + 1, 'x');
  EXPECT_EQ(refused_field(R"({"protocol":1,"capabilities":[")" + long_name + "\"]}"),
            "data.capabilities");
  std::string many = R"({"protocol":1,"capabilities":[)";
  for (std::size_t i = 0; i <= kMaxHelloCapabilities; ++i) many += (i ? ",\"x\"" : "\"x\"");
  EXPECT_EQ(refused_field(many + "]}"), "data.capabilities");
  EXPECT_EQ(refused_field(R"({"protocol":1,"capabilities":[],"client_name":""})"),
            "data.client_name");
  EXPECT_EQ(refused_field(R"({"protocol":1,"capabilities":[],"client_name":7})"),
            "data.client_name");
  EXPECT_EQ(refused_field(R"({"protocol":1,"capabilities":[],"client_name":"a\tb"})"),
            "data.client_name");
  EXPECT_EQ(refused_field(R"({"protocol":1,"capabilities":[],"client_name":")" +
                          std::string(kMaxClientNameBytes + 1, 'n') + "\"}"),
            "data.client_name");
  EXPECT_EQ(refused_field(R"({"protocol":1,"capabilities":[],"version":1})"), "data.version");
  // At the caps: accepted.
  std::string full = R"({"protocol":1,"capabilities":[)";
  for (std::size_t i = 0; i < kMaxHelloCapabilities; ++i) {
    full += (i ? ",\"" : "\"") + std::string(kMaxCapabilityBytes, 'y') + "\"";
  }
  EXPECT_EQ(
      refused_field(full + "],\"client_name\":\"" + std::string(kMaxClientNameBytes, 'n') + "\"}"),
      "");
}

TEST(Hello, ClientNameRuleIsTheQueryRule) {
  EXPECT_TRUE(valid_client_name("Pixel 7"));
  EXPECT_TRUE(valid_client_name("Téléphone ☎"));
  EXPECT_FALSE(valid_client_name(""));
  EXPECT_FALSE(valid_client_name("a\nb"));
  EXPECT_FALSE(valid_client_name("\xff\xfe"));
  EXPECT_TRUE(valid_client_name(std::string(kMaxClientNameBytes, 'a')));
  EXPECT_FALSE(valid_client_name(std::string(kMaxClientNameBytes + 1, 'a')));
}

TEST(Hello, VersionRule) {
  // Newer clients are answered with the server's own version; older than supported: refused.
  EXPECT_EQ(std::get<std::int64_t>(check_protocol(kProtocolVersion)), kProtocolVersion);
  EXPECT_EQ(std::get<std::int64_t>(check_protocol(kProtocolVersion + 7)), kProtocolVersion);
  EXPECT_EQ(std::get<std::int64_t>(check_protocol(ok(R"({"protocol":18446744073709551615,
      "capabilities":[]})")
                                                      .protocol)),
            kProtocolVersion);
  for (const std::int64_t old : {kOldestProtocolVersion - 1, std::int64_t{-3}}) {
    const auto r = check_protocol(old);
    ASSERT_TRUE(std::holds_alternative<Error>(r)) << old;
    const auto& e = std::get<Error>(r);
    EXPECT_EQ(e.code, ErrorCode::kUnsupportedProtocol);
    EXPECT_EQ(e.details.at("protocol").as_int64(), old);
    EXPECT_EQ(e.details.at("oldest").as_int64(), kOldestProtocolVersion);
    EXPECT_EQ(e.details.at("newest").as_int64(), kProtocolVersion);
    EXPECT_NE(e.message.find("send no hello"), std::string::npos) << e.message;
  }
}

TEST(Capabilities, TableIsWhatWelcomeListsAndNamesAreUnique) {
  const json::array listed = server_capabilities_json();
  ASSERT_EQ(listed.size(), std::size(kServerCapabilities));
  std::set<std::string> names;
  for (std::size_t i = 0; i < listed.size(); ++i) {
    EXPECT_EQ(listed[i].as_string(), kServerCapabilities[i].name);
    EXPECT_TRUE(is_server_capability(kServerCapabilities[i].name));
    names.insert(std::string(kServerCapabilities[i].name));
  }
  EXPECT_EQ(names.size(), listed.size());
  EXPECT_TRUE(is_server_capability(kPermissionsCapability));
  EXPECT_FALSE(is_server_capability("telepathy"));
}

// docs/protocol.md's capability table (rows "| `name` | ..." after the "### Capabilities"
// heading) names exactly the server's capabilities.
TEST(Capabilities, DocumentedInProtocolMd) {
  std::ifstream in(std::string(PA_SOURCE_DIR) + "/docs/protocol.md");
  ASSERT_TRUE(in);
  std::stringstream text;
  text << in.rdbuf();
  const std::string doc = text.str();
  const auto start = doc.find("### Capabilities");
  ASSERT_NE(start, std::string::npos) << "docs/protocol.md has no '### Capabilities' section";
  const auto end = doc.find("\n#", start + 1);
  const std::string section = doc.substr(start, end == std::string::npos ? end : end - start);
  std::set<std::string> documented;
  static const std::regex kRow(R"(\n\| `([a-z_]+)` \|)");
  for (std::sregex_iterator it(section.begin(), section.end(), kRow), last; it != last; ++it) {
    documented.insert((*it)[1]);
  }
  std::set<std::string> table;
  for (const auto& c : kServerCapabilities) table.insert(std::string(c.name));
  EXPECT_EQ(documented, table);
}

}  // namespace
}  // namespace pa::protocol
