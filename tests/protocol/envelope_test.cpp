#include "protocol/envelope.hpp"

#include <gtest/gtest.h>

#include <set>

#include <regex>

#include <boost/json/parse.hpp>

#include "protocol/data_reader.hpp"
#include "protocol/utf8.hpp"

namespace pa::protocol {
namespace {

namespace json = boost::json;

std::string field_of(const Error& e) {
  return std::string(e.details.at("field").as_string());
}

TEST(Envelope, ParsesAllFields) {
  auto r = parse_client_message(
      R"({"type":"project_join","project_id":"p1","data":{"x":1},"request_id":"r1"})");
  ASSERT_TRUE(r.message);
  EXPECT_EQ(r.message->type, "project_join");
  EXPECT_EQ(r.message->project_id, "p1");
  EXPECT_EQ(r.message->request_id, "r1");
  EXPECT_EQ(r.message->data.at("x").as_int64(), 1);
}

TEST(Envelope, ProjectIdFromDataAndConflicts) {
  auto r = parse_client_message(R"({"type":"project_join","data":{"project_id":"p2"}})");
  ASSERT_TRUE(r.message);
  EXPECT_EQ(r.message->project_id, "p2");
  EXPECT_FALSE(r.message->data.contains("project_id"));
  r = parse_client_message(R"({"type":"t","project_id":"p2","data":{"project_id":"p2"}})");
  EXPECT_TRUE(r.message) << "the same id in both places is fine";
  r = parse_client_message(
      R"({"type":"t","project_id":"a","data":{"project_id":"b"},"request_id":"r"})");
  ASSERT_FALSE(r.message);
  EXPECT_EQ(r.error.code, ErrorCode::kInvalidMessage);
  EXPECT_EQ(field_of(r.error), "project_id");
  EXPECT_EQ(r.request_id, "r") << "ids are echoed even on errors";
}

TEST(Envelope, RejectsMalformedInputNamingTheField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{", "$"},
      {"[]", "$"},
      {"null", "$"},
      {R"({})", "type"},
      {R"({"type":""})", "type"},
      {R"({"type":1})", "type"},
      {R"({"type":"x","data":[]})", "data"},
      {R"({"type":"x","request_id":5})", "request_id"},
      {R"({"type":"x","request_id":""})", "request_id"},
      {R"({"type":"x","project_id":{}})", "project_id"},
      {R"({"type":"x","surprise":true})", "surprise"},
      {R"({"type":"x","data":{"project_id":7}})", "data.project_id"},
  };
  for (const auto& [text, field] : cases) {
    auto r = parse_client_message(text);
    ASSERT_FALSE(r.message) << text;
    EXPECT_EQ(r.error.code, ErrorCode::kInvalidMessage) << text;
    EXPECT_EQ(field_of(r.error), field) << text;
    EXPECT_FALSE(r.error.message.empty());
  }
  auto r = parse_client_message(R"({"type":"x","request_id":")" + std::string(200, 'a') + "\"}");
  EXPECT_FALSE(r.message);
}

TEST(Envelope, DepthLimitInvalidUtf8AndControlCharactersInIds) {
  const auto nested = [](std::size_t depth) {
    return R"({"type":"x","data":{"v":)" + std::string(depth, '[') + std::string(depth, ']') + "}}";
  };
  // The envelope and data take two levels; the limit applies to the whole message.
  EXPECT_TRUE(parse_client_message(nested(kMaxJsonDepth - 2)).message);
  for (const std::size_t depth : {kMaxJsonDepth, std::size_t{100000}}) {
    auto r = parse_client_message(nested(depth));
    ASSERT_FALSE(r.message) << depth;
    EXPECT_EQ(field_of(r.error), "$");
  }
  auto bad_utf8 = parse_client_message("{\"type\":\"x\",\"data\":{\"s\":\"\xff\xfe\"}}");
  ASSERT_FALSE(bad_utf8.message);
  EXPECT_EQ(field_of(bad_utf8.error), "$");
  for (const char* id :
       {"a\\nb", "a\\u0000b", "\\u001b[31m", "x\\u007f", "nel\\u0085", "\\u009b"}) {
    auto r = parse_client_message(std::string(R"({"type":"x","request_id":")") + id + "\"}");
    ASSERT_FALSE(r.message) << id;
    EXPECT_EQ(field_of(r.error), "request_id") << id;
    r = parse_client_message(std::string(R"({"type":"x","project_id":")") + id + "\"}");
    ASSERT_FALSE(r.message) << id;
    EXPECT_EQ(field_of(r.error), "project_id") << id;
  }
  EXPECT_TRUE(parse_client_message(R"({"type":"x","request_id":"ünïcode-ok ✓"})").message);
}

TEST(Envelope, NullDataIsEmpty) {
  auto r = parse_client_message(R"({"type":"project_list","data":null})");
  ASSERT_TRUE(r.message);
  EXPECT_TRUE(r.message->data.empty());
}

TEST(Envelope, SerializesServerMessages) {
  const std::string text =
      serialize(Outgoing{"agent_message", "p\"1", "r1", 42, "2024-01-01T00:00:00.000Z"},
                std::string_view(R"({"type":"result"})"));
  const auto v = json::parse(text).as_object();
  EXPECT_EQ(v.at("type").as_string(), "agent_message");
  EXPECT_EQ(v.at("project_id").as_string(), "p\"1");
  EXPECT_EQ(v.at("request_id").as_string(), "r1");
  EXPECT_EQ(v.at("seq").as_int64(), 42);
  EXPECT_EQ(v.at("timestamp").as_string(), "2024-01-01T00:00:00.000Z");
  EXPECT_EQ(v.at("data").at("type").as_string(), "result");

  const auto bare =
      json::parse(serialize(Outgoing{"health_status", {}, {}, {}, {}}, json::object{})).as_object();
  EXPECT_FALSE(bare.contains("project_id"));
  EXPECT_FALSE(bare.contains("request_id"));
  EXPECT_FALSE(bare.contains("seq"));
  EXPECT_TRUE(bare.at("data").is_object());
  EXPECT_EQ(bare.at("timestamp").as_string().size(), 24u);
}

TEST(ErrorCodes, EveryCodeHasItsOwnName) {
  std::set<std::string> names;
  for (const auto code : kAllErrorCodes) {
    const std::string name(to_string(code));
    EXPECT_TRUE(std::regex_match(name, std::regex("[A-Z]+(_[A-Z]+)*"))) << name;
    if (code != ErrorCode::kInternalError) {
      EXPECT_NE(name, "INTERNAL_ERROR");
    }
    names.insert(name);
  }
  EXPECT_EQ(names.size(), std::size(kAllErrorCodes));
  EXPECT_TRUE(names.count("SHUTTING_DOWN"));
  EXPECT_TRUE(names.count("STORAGE_FAILED"));
}

TEST(Envelope, SerializesErrors) {
  const auto e = make_error(ErrorCode::kProjectNotFound, "Project not found: x",
                            json::object{{"project_id", "x"}});
  const auto v = json::parse(serialize_error(e, "x", "req-1")).as_object();
  EXPECT_EQ(v.at("type").as_string(), "error");
  EXPECT_EQ(v.at("data").at("code").as_string(), "PROJECT_NOT_FOUND");
  EXPECT_EQ(v.at("data").at("message").as_string(), "Project not found: x");
  EXPECT_EQ(v.at("data").at("details").at("project_id").as_string(), "x");
  EXPECT_EQ(v.at("request_id").as_string(), "req-1");
}

TEST(DataReader, TypedBoundedReads) {
  const auto data =
      json::parse(R"({"s":"abc","n":5,"b":true,"l":["x","y"],"o":{},"neg":-1})").as_object();
  DataReader r(data);
  EXPECT_EQ(r.string("s", true, 10), "abc");
  EXPECT_EQ(r.uint("n", true, 1, 10), 5u);
  EXPECT_EQ(r.boolean("b"), true);
  EXPECT_EQ(r.string_list("l", 5, 5)->size(), 2u);
  EXPECT_NE(r.object("o", true), nullptr);
  EXPECT_FALSE(r.string("missing", false, 10));
  EXPECT_TRUE(r.ok());

  DataReader too_long(data);
  too_long.string("s", true, 2);
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(field_of(too_long.error()), "data.s");

  DataReader negative(data);
  negative.uint("neg", true, 0, 10);
  EXPECT_FALSE(negative.ok());

  DataReader range(data);
  range.uint("n", true, 6, 10);
  EXPECT_FALSE(range.ok());

  DataReader required(data);
  required.string("absent", true, 10);
  EXPECT_EQ(field_of(required.error()), "data.absent");

  DataReader unknown(data);
  unknown.allow_only({"s", "n"});
  EXPECT_EQ(field_of(unknown.error()), "data.b");
}

TEST(Utf8, ValidatesAndSanitizes) {
  EXPECT_TRUE(is_valid_utf8("plain ascii"));
  EXPECT_TRUE(is_valid_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("\xFF"));
  EXPECT_FALSE(is_valid_utf8("\xC3\x28"));
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));  // a surrogate
  EXPECT_FALSE(is_valid_utf8("\xE2\x82"));      // truncated
  EXPECT_EQ(sanitize_utf8("a\xFF"
                          "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_TRUE(is_valid_utf8(sanitize_utf8("\xC3\x28\xF0\x9F")));
  EXPECT_EQ(sanitize_utf8("caf\xC3\xA9"), "caf\xC3\xA9");
}

}  // namespace
}  // namespace pa::protocol
