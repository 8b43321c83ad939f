// Attachments (issue 19) with the REAL Claude CLI against the scripted model API: the files
// reach the model as an image block and a text block, history keeps references only, and
// get_attachment gives the same bytes back. Skipped only when node or the CLI is missing.
#include <boost/json/serialize.hpp>

#include "integration/attachment_samples.hpp"
#include "integration/real_cli_fixture.hpp"

namespace pa::test {
namespace {

TEST_F(RealCliStubTest, PngAndTextFileReachTheModelApiAsImageAndTextBlocks) {
  start();
  auto client = connect();
  const auto id = str(create_project(*client, make_dir("attach")), "project_id");
  const auto reply = client->request(
      Json{{"type", "execute"},
           {"project_id", id},
           {"data",
            {{"prompt", R"([[stub:text text="A dot and notes."]] what are these?)"},
             {"attachments", json::array{attachment("dot.png", "image/png", b64(kPng)),
                                         attachment("notes.txt", "text/plain", b64(kNotes))}}}}});
  ASSERT_EQ(str(data(reply), "state"), "EXECUTING") << json::serialize(reply);
  const auto seen = until_idle(*client, 120s);
  const auto result = find_line(cli_lines(seen), "result");
  ASSERT_TRUE(result);
  EXPECT_EQ(str(*result, "subtype"), "success") << json::serialize(*result);

  // The model API got the user turn with both files as content blocks.
  const auto requests = stub_->message_requests();
  ASSERT_GE(requests.size(), 1U);
  const auto& messages = requests[0].at("body").at("messages").as_array();
  const json::array* content = nullptr;
  for (const auto& m : messages) {
    if (str(m.as_object(), "role") == "user" && m.at("content").is_array())
      content = &m.at("content").as_array();
  }
  ASSERT_NE(content, nullptr) << json::serialize(messages);
  bool image = false, text_file = false, prompt = false;
  for (const auto& b : *content) {
    const auto& block = b.as_object();
    if (str(block, "type") == "image") {
      const auto& source = block.at("source").as_object();
      EXPECT_EQ(str(source, "type"), "base64");
      EXPECT_EQ(str(source, "media_type"), "image/png");
      EXPECT_EQ(str(source, "data"), b64(kPng));
      image = true;
    } else if (str(block, "type") == "text") {
      const auto text = str(block, "text");
      if (text.find("Attached file: notes.txt (text/plain)") != std::string::npos) {
        EXPECT_NE(text.find(kNotes), std::string::npos) << text;
        text_file = true;
      }
      if (text.find("what are these?") != std::string::npos) prompt = true;
    }
  }
  EXPECT_TRUE(image && text_file && prompt) << json::serialize(*content);

  // History: references, never the bytes.
  const auto history = all_history(*client, id);
  json::array refs;
  for (const auto& e : history) {
    const auto& m = e.at("message").as_object();
    if (str(m, "type") == "execute") refs = m.at("data").at("attachments").as_array();
    EXPECT_EQ(json::serialize(e).find(b64(kPng)), std::string::npos) << json::serialize(e);
  }
  ASSERT_EQ(refs.size(), 2U);
  for (std::size_t i = 0; i < 2; ++i) {
    const auto& ref = refs[i].as_object();
    const auto got = client->request(Json{{"type", "get_attachment"},
                                          {"project_id", id},
                                          {"data", {{"sha256", str(ref, "sha256")}}}});
    ASSERT_EQ(str(got, "type"), "attachment") << json::serialize(got);
    EXPECT_EQ(common::base64_decode(str(data(got), "data"), common::Base64Alphabet::kStandard),
              i == 0 ? kPng : kNotes);
    EXPECT_EQ(str(data(got), "name"), str(ref, "name"));
  }
}

}  // namespace
}  // namespace pa::test
