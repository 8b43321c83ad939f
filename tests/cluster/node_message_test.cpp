// Node-to-node messages: signed with the cluster secret, refused when forged, altered, moved to
// another stream or malformed.
#include "cluster/node_message.hpp"

#include <gtest/gtest.h>

namespace pa::cluster {
namespace {

// The field list an XADD made, as Redis gives it back in XREAD.
redis::Reply fields_of(const std::vector<std::string>& xadd) {
  redis::Reply fields;
  fields.type = redis::Reply::Type::kArray;
  std::size_t i = 2;
  while (xadd[i] != "*") ++i;
  for (++i; i < xadd.size(); ++i) {
    redis::Reply item;
    item.type = redis::Reply::Type::kString;
    item.str = xadd[i];
    fields.elements.push_back(item);
  }
  return fields;
}

NodeMessage sample() {
  return {"req", "a", "boot1", 0, "{\"rid\":\"r1\"}", "{\"type\":\"x\"}", {}};
}

TEST(NodeMessageTest, ASignedMessageOpensWithTheSameSecret) {
  const NodeSigner signer(std::string(40, 's'));
  const auto argv = signer.xadd("pa:cmd:b", sample(), 1000);
  EXPECT_EQ(argv[0], "XADD");
  EXPECT_EQ(argv[2], "MAXLEN");
  std::string why;
  const auto opened = signer.open("pa:cmd:b", fields_of(argv), why);
  ASSERT_TRUE(opened) << why;
  EXPECT_EQ(opened->kind, "req");
  EXPECT_EQ(opened->from, "a");
  EXPECT_EQ(opened->boot, "boot1");
  EXPECT_EQ(opened->body, "{\"rid\":\"r1\"}");
  EXPECT_EQ(opened->frame, "{\"type\":\"x\"}");
  EXPECT_GT(opened->ts_ms, 0);
}

TEST(NodeMessageTest, ForgedAlteredOrMovedMessagesAreRefused) {
  const NodeSigner signer(std::string(40, 's'));
  const NodeSigner other(std::string(40, 't'));
  std::string why;
  // Another secret.
  EXPECT_FALSE(signer.open("pa:cmd:b", fields_of(other.xadd("pa:cmd:b", sample())), why));
  EXPECT_NE(why.find("bad MAC"), std::string::npos);
  // The right secret, another stream (a command for b replayed to c).
  EXPECT_FALSE(signer.open("pa:cmd:c", fields_of(signer.xadd("pa:cmd:b", sample())), why));
  // Any field changed.
  for (std::size_t field = 0; field < 7; ++field) {
    auto fields = fields_of(signer.xadd("pa:cmd:b", sample()));
    auto& value = fields.elements[field * 2 + 1].str;
    if (fields.elements[field * 2].str == "m") continue;
    value += "x";
    EXPECT_FALSE(signer.open("pa:cmd:b", fields, why)) << fields.elements[field * 2].str;
  }
  // Malformed lists.
  redis::Reply odd;
  odd.type = redis::Reply::Type::kArray;
  odd.elements.resize(3);
  EXPECT_FALSE(signer.open("pa:cmd:b", odd, why));
  EXPECT_FALSE(signer.open("pa:cmd:b", redis::Reply{}, why));
  auto missing = fields_of(signer.xadd("pa:cmd:b", sample()));
  missing.elements.erase(missing.elements.begin(), missing.elements.begin() + 2);  // no k
  EXPECT_FALSE(signer.open("pa:cmd:b", missing, why));
  EXPECT_NE(why.find("missing"), std::string::npos);
}

TEST(NodeMessageTest, StreamEntriesAreReadOutOfAnXreadReply) {
  using T = redis::Reply::Type;
  redis::Reply id{T::kString, "1-0", 0, {}};
  redis::Reply fields{T::kArray, {}, 0, {{T::kString, "k", 0, {}}, {T::kString, "v", 0, {}}}};
  redis::Reply entry{T::kArray, {}, 0, {id, fields}};
  redis::Reply stream{T::kArray, {}, 0, {{T::kString, "s1", 0, {}}, {T::kArray, {}, 0, {entry}}}};
  redis::Reply reply{T::kArray, {}, 0, {stream}};
  const auto entries = stream_entries(reply);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].stream, "s1");
  EXPECT_EQ(entries[0].id, "1-0");
  EXPECT_TRUE(stream_entries(redis::Reply{}).empty());  // an XREAD that timed out: nil
  EXPECT_EQ(last_entry_id(redis::Reply{T::kArray, {}, 0, {entry}}), "1-0");
  EXPECT_EQ(last_entry_id(redis::Reply{T::kArray, {}, 0, {}}), "0-0");
}

}  // namespace
}  // namespace pa::cluster
