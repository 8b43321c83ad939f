// execute.data.attachments (issue 19): validation, the CLI's content blocks, the store.
#include "server/attachments.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fstream>

#include "common/base64.hpp"
#include "server/attachment_store.hpp"
#include "server/follow_up_queue.hpp"
#include "server/run_state.hpp"
#include "support/server_process.hpp"

namespace pa::server {
namespace {

namespace json = boost::json;
using ::testing::HasSubstr;

const std::string kPng = std::string("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16);
const std::string kJpeg = std::string("\xff\xd8\xff\xe0\0\x10JFIF", 10);
const std::string kGif = std::string("GIF89a\x01\0\x01\0", 10);
const std::string kWebp = std::string("RIFF\x24\0\0\0WEBPVP8 ", 16);
const std::string kText = "hello\n";
// sha256("hello\n")
const std::string kTextSha = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";

std::string b64(std::string_view bytes) {
  return common::base64_encode(bytes, common::Base64Alphabet::kStandard);
}

json::object item(std::string name, std::string type, std::string data) {
  return json::object{{"name", name}, {"media_type", type}, {"data", data}};
}

const AttachmentLimits kLimits{1024, 3};

protocol::Error error_of(const json::array& list, AttachmentLimits limits = kLimits) {
  auto parsed = parse_attachments(list, limits);
  EXPECT_TRUE(std::holds_alternative<protocol::Error>(parsed)) << json::serialize(list);
  return std::holds_alternative<protocol::Error>(parsed) ? std::get<protocol::Error>(parsed)
                                                         : protocol::Error{};
}

TEST(Base64, StandardRoundTripAndStrictDecoding) {
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    const auto text = b64(s);
    EXPECT_EQ(text.size() % 4, 0u) << s;
    EXPECT_EQ(common::base64_decode(text, common::Base64Alphabet::kStandard), s);
  }
  EXPECT_EQ(b64("\xfb\xff"), "+/8=");
  for (const char* bad : {"Zm9", "Zm9v\n", "Zm 9v", "Zm9v===", "Zg", "Z===", "Zh==", "-_8="}) {
    EXPECT_FALSE(common::base64_decode(bad, common::Base64Alphabet::kStandard)) << bad;
  }
  // The URL-safe alphabet keeps accepting unpadded input.
  EXPECT_EQ(common::base64_decode("-_8", common::Base64Alphabet::kUrl), "\xfb\xff");
}

TEST(Attachments, AcceptsEachImageTypeByItsSignatureAndText) {
  json::array list{item("a.png", "image/png", b64(kPng)), item("b.jpg", "image/jpeg", b64(kJpeg)),
                   item("c.gif", "image/gif", b64(kGif))};
  auto parsed = parse_attachments(list, kLimits);
  ASSERT_TRUE(std::holds_alternative<std::vector<Attachment>>(parsed));
  const auto& got = std::get<std::vector<Attachment>>(parsed);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].bytes, kPng);
  EXPECT_TRUE(got[0].is_image());

  json::array more{item("d.webp", "image/webp", b64(kWebp)),
                   item("notes.txt", "text/plain", b64(kText)),
                   item("x.json", "application/json", b64("{\"a\":1}"))};
  auto second = parse_attachments(more, kLimits);
  ASSERT_TRUE(std::holds_alternative<std::vector<Attachment>>(second));
  const auto& text = std::get<std::vector<Attachment>>(second)[1];
  EXPECT_FALSE(text.is_image());
  EXPECT_EQ(text.sha256, kTextSha);
  EXPECT_EQ(
      json::serialize(text.ref()),
      R"({"name":"notes.txt","media_type":"text/plain","bytes":6,"sha256":")" + kTextSha + "\"}");
  EXPECT_TRUE(accepted_media_type("text/x-c++src"));
  EXPECT_TRUE(accepted_media_type("application/typescript"));
  for (const char* refused : {"application/pdf", "image/svg+xml", "text/", "Text/plain",
                              "text/plain; charset=utf-8", "application/octet-stream", ""}) {
    EXPECT_FALSE(accepted_media_type(refused)) << refused;
  }
}

TEST(Attachments, BadBase64NamesTheAttachment) {
  const auto e = error_of(
      {item("ok.txt", "text/plain", b64(kText)), item("shot.png", "image/png", "iVBORw0KGgo@@@")});
  EXPECT_EQ(e.code, protocol::ErrorCode::kInvalidMessage);
  EXPECT_THAT(e.message, HasSubstr("data.attachments[1] (\"shot.png\")"));
  EXPECT_THAT(e.message, HasSubstr("not valid base64"));
  EXPECT_EQ(e.details.at("field"), "data.attachments[1].data");
  EXPECT_EQ(e.details.at("index"), 1);
  EXPECT_EQ(e.details.at("name"), "shot.png");
  // Line breaks (MIME style) are refused too.
  EXPECT_THAT(error_of({item("a.txt", "text/plain", "aGVs\nbG8=")}).message,
              HasSubstr("not valid base64"));
}

TEST(Attachments, TypeMustMatchTheBytes) {
  const auto text_as_png = error_of({item("fake.png", "image/png", b64(kText))});
  EXPECT_THAT(text_as_png.message,
              HasSubstr("media_type image/png does not match the content: the bytes are not a "
                        "png image"));
  EXPECT_EQ(text_as_png.details.at("field"), "data.attachments[0].media_type");
  EXPECT_THAT(error_of({item("x.jpg", "image/jpeg", b64(kPng))}).message,
              HasSubstr("the bytes are image/png, not image/jpeg"));
  EXPECT_THAT(error_of({item("x.txt", "text/plain", b64(kPng))}).message,
              HasSubstr("not text/plain text"));
  EXPECT_THAT(error_of({item("x.txt", "text/plain", b64(std::string("a\0b", 3)))}).message,
              HasSubstr("contain NUL"));
  EXPECT_THAT(error_of({item("x.pdf", "application/pdf", b64("%PDF-1.4"))}).message,
              HasSubstr("is not accepted"));
}

TEST(Attachments, TooBigAndTooMany) {
  const std::string big(1025, 'a');
  const auto too_big = error_of({item("big.txt", "text/plain", b64(big))});
  EXPECT_THAT(too_big.message, HasSubstr("data.attachments[0] (\"big.txt\")"));
  EXPECT_THAT(too_big.message, HasSubstr("larger than 1 KiB (limits.attachment_bytes)"));
  EXPECT_EQ(too_big.details.at("max_bytes"), 1024);
  // Exactly the limit is fine.
  auto at_limit =
      parse_attachments(json::array{item("ok.txt", "text/plain", b64(big.substr(1)))}, kLimits);
  EXPECT_TRUE(std::holds_alternative<std::vector<Attachment>>(at_limit));
  // Far too big is refused from the text's length, before decoding.
  const auto huge = error_of({item("huge.txt", "text/plain", std::string(8000, 'A'))});
  EXPECT_THAT(huge.message, HasSubstr("larger than 1 KiB"));

  json::array four;
  for (int i = 0; i < 4; ++i) four.push_back(item("f.txt", "text/plain", b64(kText)));
  const auto too_many = error_of(four);
  EXPECT_THAT(too_many.message, HasSubstr("has 4 attachments; at most 3"));
  EXPECT_EQ(too_many.details.at("field"), "data.attachments");
  EXPECT_THAT(error_of({item("e.txt", "text/plain", "")}).message, HasSubstr("is empty"));
}

TEST(Attachments, NamesAreFileNamesNotPaths) {
  const std::pair<std::string, std::string> cases[] = {
      {"", "must not be empty"},
      {"dir/a.txt", "without '/', '\\' or NUL"},
      {"dir\\a.txt", "without '/', '\\' or NUL"},
      {std::string("a\0b.txt", 7), "without '/', '\\' or NUL"},
      {"a\nb.txt", "control characters"},
      {"a\x7f.txt", "control characters"},
      {std::string(256, 'n'), "longer than 255 bytes"},
  };
  for (const auto& [name, why] : cases) {
    const auto e = error_of({item(name, "text/plain", b64(kText))});
    EXPECT_THAT(e.message, HasSubstr("data.attachments[0]: name")) << name;
    EXPECT_THAT(e.message, HasSubstr(why)) << name;
    EXPECT_EQ(e.details.at("field"), "data.attachments[0].name");
  }
  auto ok = parse_attachments(
      json::array{item("Screenshot 2026-01-02 at 10.11.png", "image/png", b64(kPng))}, kLimits);
  EXPECT_TRUE(std::holds_alternative<std::vector<Attachment>>(ok));
}

TEST(Attachments, ShapeErrors) {
  EXPECT_THAT(error_of(json::array{json::value("x")}).message, HasSubstr("must be an object"));
  auto extra = item("a.txt", "text/plain", b64(kText));
  extra["path"] = "/etc/passwd";
  EXPECT_EQ(error_of({extra}).details.at("field"), "data.attachments[0].path");
  json::object no_type{{"name", "a.txt"}, {"data", b64(kText)}};
  EXPECT_THAT(error_of({no_type}).message, HasSubstr("media_type must be a string"));
  json::object number_data{{"name", "a.txt"}, {"media_type", "text/plain"}, {"data", 5}};
  EXPECT_THAT(error_of({number_data}).message, HasSubstr("data must be a string"));
  auto not_array = parse_attachments(json::object{}, kLimits);
  ASSERT_TRUE(std::holds_alternative<protocol::Error>(not_array));
  EXPECT_THAT(std::get<protocol::Error>(not_array).message, HasSubstr("must be an array"));
}

TEST(Attachments, ContentBlocksPutFilesBeforeThePrompt) {
  auto parsed = parse_attachments(json::array{item("a.png", "image/png", b64(kPng)),
                                              item("notes.txt", "text/plain", b64(kText))},
                                  kLimits);
  const auto blocks =
      user_content_blocks("look at these", std::get<std::vector<Attachment>>(parsed));
  ASSERT_EQ(blocks.size(), 3u);
  EXPECT_EQ(json::serialize(blocks[0]),
            R"({"type":"image","source":{"type":"base64","media_type":"image/png","data":")" +
                b64(kPng) + "\"}}");
  EXPECT_EQ(blocks[1].at("type"), "text");
  EXPECT_EQ(blocks[1].at("text"), "Attached file: notes.txt (text/plain)\n\nhello\n");
  EXPECT_EQ(json::serialize(blocks[2]), R"({"type":"text","text":"look at these"})");
}

std::vector<Attachment> two_files() {
  auto parsed = parse_attachments(json::array{item("a.png", "image/png", b64(kPng)),
                                              item("notes.txt", "text/plain", b64(kText))},
                                  kLimits);
  return std::get<std::vector<Attachment>>(parsed);
}

TEST(AttachmentStore, StoresOnceByDigestPrivatelyAndFindsPerProject) {
  test::TempDir dir{"pa-attach"};
  AttachmentStore store(dir / "attachments");
  const auto files = two_files();
  ASSERT_FALSE(store.add("p1", files));
  ASSERT_FALSE(store.add("p2", {files[1]}));
  const auto blob = dir / "attachments" / "blobs" / kTextSha.substr(0, 2) / kTextSha;
  struct stat st {};
  ASSERT_EQ(::stat(blob.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_size, 6);

  std::error_code ec;
  auto found = store.find("p1", kTextSha, ec);
  ASSERT_TRUE(found);
  EXPECT_FALSE(ec);
  EXPECT_EQ(found->bytes, kText);
  EXPECT_EQ(found->name, "notes.txt");
  EXPECT_EQ(found->media_type, "text/plain");
  // p2 never sent the PNG: not found there, though the blob exists.
  EXPECT_FALSE(store.find("p2", files[0].sha256, ec));
  EXPECT_FALSE(ec);
  EXPECT_FALSE(store.find("p1", std::string(64, '0'), ec));
  EXPECT_FALSE(store.find("p1", "../../etc/passwd", ec));

  // Read back for a queued run after a restart.
  json::array refs{files[0].ref(), files[1].ref()};
  auto loaded = store.load(refs);
  ASSERT_TRUE(loaded);
  EXPECT_EQ((*loaded)[0].bytes, kPng);

  // Deleting p1 keeps the blob p2 still refers to and removes the PNG only p1 had.
  EXPECT_EQ(store.forget_project("p1"), 1u);
  EXPECT_FALSE(std::filesystem::exists(dir / "attachments" / "blobs" /
                                       files[0].sha256.substr(0, 2) / files[0].sha256));
  EXPECT_TRUE(std::filesystem::exists(blob));
  EXPECT_FALSE(store.find("p1", kTextSha, ec));
  EXPECT_TRUE(store.find("p2", kTextSha, ec));
  EXPECT_FALSE(store.load(refs));  // the PNG is gone
  EXPECT_EQ(store.forget_project("p2"), 1u);
  EXPECT_FALSE(std::filesystem::exists(blob));
}

TEST(AttachmentStore, ADamagedBlobIsNotServed) {
  test::TempDir dir{"pa-attach"};
  AttachmentStore store(dir / "attachments");
  ASSERT_FALSE(store.add("p1", {two_files()[1]}));
  std::ofstream(dir / "attachments" / "blobs" / kTextSha.substr(0, 2) / kTextSha) << "hellO\n";
  std::error_code ec;
  EXPECT_FALSE(store.find("p1", kTextSha, ec));
}

// A queued follow-up and a queued run keep their attachments across a restart: refs in run.json,
// the bytes read back from the store.
TEST(AttachmentStore, QueuedFollowUpsAndRunsGetTheirFilesBackAfterARestart) {
  test::TempDir dir{"pa-attach"};
  AttachmentStore store(dir / "attachments");
  const auto files = two_files();
  ASSERT_FALSE(store.add("p1", files));

  FollowUpQueue queue;
  const auto announced = queue.push("look", json::object{{"type", "client"}}, files);
  ASSERT_EQ(announced.at("attachments").as_array().size(), 2u);
  EXPECT_EQ(announced.at("attachments").at(1), files[1].ref());
  RunState saved;
  queue.save(saved);
  saved.queued = true;
  saved.prompt = "queued run";
  for (const auto& a : files) saved.attachments.push_back(a.ref());
  const auto text = json::serialize(to_json(saved));
  EXPECT_EQ(text.find(common::base64_encode(kPng, common::Base64Alphabet::kStandard)),
            std::string::npos);  // refs only

  const RunState loaded = run_state_from_json(json::parse(text));
  EXPECT_EQ(loaded.attachments, saved.attachments);
  FollowUpQueue restored;
  restored.restore(loaded, &store);
  auto next = restored.take_next();
  ASSERT_TRUE(next);
  ASSERT_EQ(next->follow_up.attachments.size(), 2u);
  EXPECT_EQ(next->follow_up.attachments[0].bytes, kPng);
  EXPECT_EQ(next->follow_up.attachments[1].name, "notes.txt");
  auto again = store.load(loaded.attachments);
  ASSERT_TRUE(again);
  EXPECT_EQ((*again)[1].bytes, kText);

  // Files gone meanwhile: the follow-up still goes, without them.
  store.forget_project("p1");
  FollowUpQueue without;
  without.restore(loaded, &store);
  EXPECT_TRUE(without.take_next()->follow_up.attachments.empty());
}

}  // namespace
}  // namespace pa::server
