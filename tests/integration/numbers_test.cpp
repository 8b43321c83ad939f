// Numbers as the spec writes them (issue 16): the raw text of what clients receive has no
// exponent form (Boost.JSON writes 5.07E2, 0E0, 1.23E-2), and integer fields are integers.
#include <regex>

#include "integration/fixture.hpp"
#include "support/json_tokens.hpp"

namespace pa::test {
namespace {

void expect_no_exponent(const std::string& text) {
  ASSERT_FALSE(text.empty());
  for (const auto& token : number_tokens(text)) {
    EXPECT_EQ(token.find_first_of("eE+"), std::string::npos) << token << " in " << text;
  }
}

// `"key":<integer>` in the raw text (the first occurrence of the key).
void expect_integer_field(const std::string& text, const std::string& key) {
  const std::regex re("\"" + key + "\":(-?[0-9.eE+-]+)");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(text, m, re)) << key << " in " << text;
  EXPECT_TRUE(std::regex_match(m[1].str(), std::regex("-?[0-9]+"))) << key << ": " << m[1];
}

// `"key":<number with at most `decimals` decimals>`.
void expect_decimal_field(const std::string& text, const std::string& key, int decimals) {
  const std::regex re("\"" + key + "\":(-?[0-9.eE+-]+)");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(text, m, re)) << key << " in " << text;
  EXPECT_TRUE(std::regex_match(
      m[1].str(), std::regex("-?[0-9]+(\\.[0-9]{1," + std::to_string(decimals) + "})?")))
      << key << ": " << m[1];
}

class NumbersTest : public ServerTest {
 protected:
  void SetUp() override {
    ServerOptions o;
    o.args = {"--stats-interval", "1s"};
    start_server(std::move(o));
  }
};

TEST_F(NumbersTest, StatsHealthResultAndHistoryHavePlainNumbers) {
  auto client = connect();
  const std::string id = str(create_project(*client, make_dir("p")), "project_id");
  client->request(Json{{"type", "execute"}, {"project_id", id}, {"data", {{"prompt", "hello"}}}});
  // The CLI's result line carries a cost (the fake CLI writes it as Boost.JSON does: 1.23E-2).
  ASSERT_TRUE(client->read_until(
      [](const Json& m) {
        return str(m, "type") == "agent_message" && str(data(m), "type") == "result";
      },
      30s));
  const std::string result = client->last_text();
  expect_no_exponent(result);
  expect_decimal_field(result, "total_cost_usd", 30);
  expect_integer_field(result, "seq");
  ASSERT_TRUE(client->read_until(is_idle, 30s));

  // server_stats after the run: avg_duration_ms and the counts are integers, rate_per_sec has
  // one decimal at most.
  ASSERT_TRUE(client->read_until(
      [](const Json& m) {
        return str(m, "type") == "server_stats" &&
               data(m).at("executions").at("total").to_number<int>() == 1;
      },
      10s));
  const std::string stats = client->last_text();
  expect_no_exponent(stats);
  for (const auto* key : {"connections", "projects", "active", "queued", "total", "success",
                          "failed", "avg_duration_ms", "sent", "received", "uptime"}) {
    expect_integer_field(stats, key);
  }
  expect_decimal_field(stats, "rate_per_sec", 1);

  // health over the WebSocket.
  const auto health = client->request(Json{{"type", "health"}});
  ASSERT_EQ(str(health, "type"), "health_status");
  const std::string health_text = client->last_text();
  expect_no_exponent(health_text);
  for (const auto* key :
       {"uptime", "active", "limit", "count", "executing", "memory_mb", "threads"}) {
    expect_integer_field(health_text, key);
  }
  expect_decimal_field(health_text, "cpu_percent", 1);
  expect_decimal_field(health_text, "disk_free_gb", 1);

  // A history page: the result line as it went out live, every number plain.
  const auto page = client->request(
      Json{{"type", "get_messages"}, {"project_id", id}, {"data", {{"after_seq", 0}}}});
  ASSERT_EQ(str(page, "type"), "messages_response");
  const std::string page_text = client->last_text();
  expect_no_exponent(page_text);
  expect_decimal_field(page_text, "total_cost_usd", 30);
  expect_integer_field(page_text, "last_seq");
}

// GET /health: the integer fields are integers.
TEST_F(NumbersTest, HttpHealthHasIntegerFields) {
  const auto http = http_get(server_->port(), server_->tls(), "/health");
  ASSERT_EQ(http.status, 200) << http.body;
  for (const auto* key :
       {"uptime", "active", "limit", "count", "executing", "memory_mb", "threads"}) {
    expect_integer_field(http.body, key);
  }
}

// GET /health: its fractions (cpu_percent, disk_free_gb) in plain decimal too.
TEST_F(NumbersTest, HttpHealthHasPlainFractions) {
  const auto http = http_get(server_->port(), server_->tls(), "/health");
  ASSERT_EQ(http.status, 200) << http.body;
  expect_no_exponent(http.body);
  expect_decimal_field(http.body, "cpu_percent", 1);
  expect_decimal_field(http.body, "disk_free_gb", 1);
}

}  // namespace
}  // namespace pa::test
