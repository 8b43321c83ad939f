// Bodies of node messages are checked like client input: wrong types, sizes and shapes are
// refused (nullopt), never thrown or crashed on.
#include "cluster/body.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

namespace pa::cluster {
namespace {

namespace json = boost::json;

TEST(NodeBodyTest, FieldsAreReadOnlyWithTheirTypeAndSize) {
  const auto body = parse_body(R"({"n":5,"neg":-1,"f":1.5,"s":"abc","b":true})");
  ASSERT_TRUE(body);
  EXPECT_EQ(get_u64(*body, "n"), 5u);
  EXPECT_FALSE(get_u64(*body, "neg"));
  EXPECT_FALSE(get_u64(*body, "f"));
  EXPECT_FALSE(get_u64(*body, "s"));
  EXPECT_EQ(get_string(*body, "s", 3), "abc");
  EXPECT_FALSE(get_string(*body, "s", 2));
  EXPECT_EQ(get_bool(*body, "b"), true);
  EXPECT_FALSE(get_bool(*body, "n"));
  EXPECT_FALSE(parse_body("[1,2]"));
  EXPECT_FALSE(parse_body("{\"a\":"));
  EXPECT_FALSE(parse_body(std::string(70, '[') + std::string(70, ']')));
  EXPECT_FALSE(parse_body(R"({"a":"long"})", 5));
}

TEST(NodeBodyTest, SeqFramesTakeOnlySeqsAndClientFrames) {
  const auto frames = [](const char* text) {
    const auto value = json::parse(text);
    return seq_frames(&value);
  };
  const auto good = frames(R"([[3,"{\"type\":\"x\"}"],[4,"{\"type\":\"y\",\"data\":{}}"]])");
  ASSERT_TRUE(good);
  ASSERT_EQ(good->size(), 2u);
  EXPECT_EQ((*good)[1].first, 4u);
  EXPECT_EQ(*(*good)[0].second, R"({"type":"x"})");
  EXPECT_TRUE(frames("[]"));
  for (const char* bad : {R"([[-1,"{\"type\":\"x\"}"]])", R"([[1.5,"{\"type\":\"x\"}"]])",
                          R"([["3","{\"type\":\"x\"}"]])", R"([[3,"not json"]])",
                          R"([[3,"{\"no\":\"type\"}"]])", R"([[3]])", R"([3])", R"({"a":1})"}) {
    EXPECT_FALSE(frames(bad)) << bad;
  }
  EXPECT_FALSE(seq_frames(nullptr));
  EXPECT_TRUE(is_client_frame(R"({"type":"agent_message","data":{}})"));
  EXPECT_FALSE(is_client_frame(R"({"type":5})"));
}

}  // namespace
}  // namespace pa::cluster
