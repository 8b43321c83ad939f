// execute.data.attachments and get_attachment (issue 19), through the real server and the fake
// CLI: what reaches the CLI's stdin, what history keeps, what the data dir holds.
#include <sys/stat.h>

#include <gmock/gmock.h>

#include <fstream>

#include "integration/attachment_samples.hpp"
#include "integration/fixture.hpp"

namespace pa::test {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class AttachmentsTest : public AgentServerTest {
 protected:
  Json execute_with(WsClient& client, const std::string& id, json::array attachments,
                    const std::string& prompt = "what do you see?") {
    return client.request(Json{{"type", "execute"},
                               {"project_id", id},
                               {"data", {{"prompt", prompt}, {"attachments", attachments}}}});
  }
  Json get_attachment(WsClient& client, const std::string& id, const std::string& sha) {
    return client.request(
        Json{{"type", "get_attachment"}, {"project_id", id}, {"data", {{"sha256", sha}}}});
  }
  // Every regular file under <data_dir>/attachments.
  std::vector<fs::path> stored_files() const {
    std::vector<fs::path> out;
    const auto root = server_->data_dir() / "attachments";
    std::error_code ec;
    for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->is_regular_file()) out.push_back(it->path());
    }
    return out;
  }
  // The execute entry of a project's history (its `message`).
  static Json execute_entry(WsClient& client, const std::string& id) {
    for (const auto& e : all_history(client, id)) {
      const auto& m = e.at("message").as_object();
      if (str(m, "type") == "execute") return m;
    }
    ADD_FAILURE() << "no execute in history";
    return {};
  }
};

TEST_F(AttachmentsTest, ImageAndTextReachTheCliAsBlocksAndHistoryKeepsReferences) {
  auto client = connect();
  const auto id = new_project(*client);
  const auto reply = execute_with(*client, id,
                                  {attachment("dot.png", "image/png", b64(kPng)),
                                   attachment("notes.txt", "text/plain", b64(kNotes))});
  ASSERT_TRUE(is_state(reply, "EXECUTING")) << json::serialize(reply);
  until_idle(*client);

  // The CLI got one user line: image block, text block with the file's name, prompt.
  const auto rec = records();
  ASSERT_EQ(rec.size(), 1u);
  const auto& stdin_lines = rec[0].at("stdin").as_array();
  ASSERT_GE(stdin_lines.size(), 1u);
  const auto line = json::parse(stdin_lines[0].as_string()).as_object();
  EXPECT_EQ(str(line, "type"), "user");
  const auto& content = line.at("message").at("content").as_array();
  ASSERT_EQ(content.size(), 3u) << json::serialize(line);
  EXPECT_EQ(content[0], json::parse(R"({"type":"image","source":{"type":"base64",)"
                                    R"("media_type":"image/png","data":")" +
                                    b64(kPng) + "\"}}"));
  EXPECT_EQ(content[1].at("type"), "text");
  EXPECT_EQ(str(content[1].as_object(), "text"),
            "Attached file: notes.txt (text/plain)\n\n" + kNotes);
  EXPECT_EQ(content[2], json::parse(R"({"type":"text","text":"what do you see?"})"));

  // History: references, not the bytes.
  const auto entry = execute_entry(*client, id);
  const auto& refs = entry.at("data").at("attachments").as_array();
  ASSERT_EQ(refs.size(), 2u);
  EXPECT_EQ(str(refs[0].as_object(), "name"), "dot.png");
  EXPECT_EQ(str(refs[0].as_object(), "media_type"), "image/png");
  EXPECT_EQ(refs[0].at("bytes").as_int64(), static_cast<std::int64_t>(kPng.size()));
  EXPECT_EQ(refs[0].as_object().size(), 4u) << json::serialize(refs[0]);
  EXPECT_EQ(json::serialize(entry).find(b64(kPng)), std::string::npos);
  EXPECT_EQ(json::serialize(entry).find("line two"), std::string::npos);

  // get_attachment: the same bytes, name and type.
  for (std::size_t i = 0; i < 2; ++i) {
    const auto sha = str(refs[i].as_object(), "sha256");
    const auto got = get_attachment(*client, id, sha);
    ASSERT_EQ(str(got, "type"), "attachment") << json::serialize(got);
    EXPECT_EQ(str(data(got), "sha256"), sha);
    EXPECT_EQ(str(data(got), "name"), str(refs[i].as_object(), "name"));
    EXPECT_EQ(str(data(got), "media_type"), str(refs[i].as_object(), "media_type"));
    EXPECT_EQ(common::base64_decode(str(data(got), "data"), common::Base64Alphabet::kStandard),
              i == 0 ? kPng : kNotes);
  }

  // Stored once each, owner-only: two blobs and two refs.
  const auto files = stored_files();
  EXPECT_EQ(files.size(), 4u);
  for (const auto& f : files) {
    struct stat st {};
    ASSERT_EQ(::stat(f.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << f;
  }
}

TEST_F(AttachmentsTest, BadAttachmentsAreRefusedByNameAndNothingIsStored) {
  // Room in one message for an attachment just over the default 5 MiB.
  start_agent_server({"--limits-message-size", "8388608"});
  auto client = connect();
  const auto id = new_project(*client);
  const auto good = attachment("ok.txt", "text/plain", b64(kNotes));
  json::array too_many;
  for (int i = 0; i < 11; ++i) too_many.push_back(good);
  const std::pair<json::array, std::string> cases[] = {
      {{good, attachment("shot.png", "image/png", "not base64!")},
       "data.attachments[1] (\"shot.png\"): data is not valid base64"},
      {{good, attachment("shot.png", "image/png", b64(kNotes))},
       "data.attachments[1] (\"shot.png\"): media_type image/png does not match the content"},
      {{attachment("big.txt", "text/plain", b64(std::string(5 * 1024 * 1024 + 1, 'a')))},
       "data.attachments[0] (\"big.txt\"): is 5242881 bytes, larger than 5 MiB "
       "(limits.attachment_bytes)"},
      {too_many, "data.attachments has 11 attachments; at most 10"},
      {{good, attachment("../etc/passwd", "text/plain", b64(kNotes))},
       "data.attachments[1]: name must be a file name without '/'"},
      {{attachment(std::string("a\0b.txt", 7), "text/plain", b64(kNotes))},
       "data.attachments[0]: name must be a file name without '/', '\\' or NUL"},
  };
  for (const auto& [list, message] : cases) {
    const auto reply = execute_with(*client, id, list);
    EXPECT_EQ(error_code(reply), "INVALID_MESSAGE") << json::serialize(reply);
    EXPECT_THAT(str(data(reply), "message"), HasSubstr(message));
  }
  // The connection is fine, nothing ran, nothing was stored or recorded in history.
  EXPECT_EQ(str(client->request(Json{{"type", "health"}}), "type"), "health_status");
  EXPECT_TRUE(records().empty());
  EXPECT_TRUE(stored_files().empty());
  for (const auto& e : all_history(*client, id))
    EXPECT_NE(str(e.at("message").as_object(), "type"), "execute");
}

TEST_F(AttachmentsTest, GetAttachmentOnlyFromTheProjectThatSentIt) {
  auto client = connect();
  const auto a = new_project(*client, "a");
  const auto b = new_project(*client, "b");
  ASSERT_TRUE(is_state(execute_with(*client, a, {attachment("dot.png", "image/png", b64(kPng))}),
                       "EXECUTING"));
  until_idle(*client);
  const auto sha =
      str(execute_entry(*client, a).at("data").at("attachments").at(0).as_object(), "sha256");

  const auto other = get_attachment(*client, b, sha);
  EXPECT_EQ(error_code(other), "ATTACHMENT_NOT_FOUND") << json::serialize(other);
  EXPECT_EQ(str(data(other).at("details").as_object(), "sha256"), sha);
  EXPECT_EQ(error_code(get_attachment(*client, a, std::string(64, 'a'))), "ATTACHMENT_NOT_FOUND");
  EXPECT_EQ(error_code(get_attachment(*client, a, "../../devices.json")), "INVALID_MESSAGE");
  EXPECT_EQ(
      error_code(client->request(Json{
          {"type", "get_attachment"}, {"project_id", a}, {"data", {{"sha256", sha}, {"x", 1}}}})),
      "INVALID_MESSAGE");
  EXPECT_EQ(str(get_attachment(*client, a, sha), "type"), "attachment");
}

TEST_F(AttachmentsTest, DeletingAProjectRemovesTheFilesOnlyItReferred) {
  auto client = connect();
  const auto a = new_project(*client, "a");
  const auto b = new_project(*client, "b");
  // Both send the notes; only `a` sends the PNG.
  ASSERT_TRUE(is_state(execute_with(*client, a,
                                    {attachment("dot.png", "image/png", b64(kPng)),
                                     attachment("notes.txt", "text/plain", b64(kNotes))}),
                       "EXECUTING"));
  until_idle(*client);
  ASSERT_TRUE(is_state(
      execute_with(*client, b, {attachment("same-notes.md", "text/markdown", b64(kNotes))}),
      "EXECUTING"));
  until_idle(*client);
  const auto refs = execute_entry(*client, a).at("data").at("attachments").as_array();
  const auto png_sha = str(refs[0].as_object(), "sha256");
  const auto notes_sha = str(refs[1].as_object(), "sha256");
  EXPECT_EQ(stored_files().size(), 5u);  // 2 blobs, 3 refs

  const auto deleted = client->request(Json{{"type", "project_delete"}, {"project_id", a}});
  ASSERT_EQ(str(deleted, "type"), "project_deleted") << json::serialize(deleted);
  const auto blob = [&](const std::string& sha) {
    return server_->data_dir() / "attachments" / "blobs" / sha.substr(0, 2) / sha;
  };
  // Removed on the blocking pool after the reply.
  EXPECT_TRUE(eventually([&] { return !fs::exists(blob(png_sha)); }, std::chrono::seconds(10)));
  EXPECT_TRUE(fs::exists(blob(notes_sha)));
  const auto got = get_attachment(*client, b, notes_sha);
  ASSERT_EQ(str(got, "type"), "attachment") << json::serialize(got);
  EXPECT_EQ(str(data(got), "name"), "same-notes.md");
}

// A follow-up (mode "queue") carries its files too: announced as refs, sent to the same CLI
// process as content blocks after the first turn.
TEST_F(AttachmentsTest, AFollowUpCarriesItsAttachmentsIntoTheRunningCli) {
  auto client = connect();
  const auto id = new_project(*client);
  const auto hold = state_.path() / "release";
  ASSERT_TRUE(is_state(
      execute(*client, id,
              "[[fake:drip lines=2 interval_ms=1 hold_after=1 hold_file=" + hold.string() + "]]"),
      "EXECUTING"));
  ASSERT_TRUE(client->read_until([](const Json& m) { return str(m, "type") == "agent_message"; },
                                 std::chrono::seconds(30)));
  const auto queued = client->request(
      Json{{"type", "execute"},
           {"project_id", id},
           {"data",
            {{"prompt", "[[fake:text]] and this one"},
             {"mode", "queue"},
             {"attachments", json::array{attachment("dot.png", "image/png", b64(kPng))}}}}});
  ASSERT_EQ(str(queued, "type"), "prompt_queued") << json::serialize(queued);
  const auto& refs = data(queued).at("attachments").as_array();
  ASSERT_EQ(refs.size(), 1u);
  EXPECT_EQ(str(refs[0].as_object(), "name"), "dot.png");
  EXPECT_FALSE(refs[0].as_object().contains("data"));
  std::ofstream(hold).put('\n');
  until_idle(*client);

  const auto rec = records();
  ASSERT_EQ(rec.size(), 1u);  // one CLI process for both turns
  const auto& stdin_lines = rec[0].at("stdin").as_array();
  ASSERT_GE(stdin_lines.size(), 2u);
  const auto second = json::parse(stdin_lines[1].as_string()).as_object();
  const auto& content = second.at("message").at("content").as_array();
  ASSERT_EQ(content.size(), 2u) << json::serialize(second);
  EXPECT_EQ(content[0].at("type"), "image");
  EXPECT_EQ(str(content[0].at("source").as_object(), "data"), b64(kPng));
  EXPECT_EQ(str(content[1].as_object(), "text"), "[[fake:text]] and this one");
  // The follow-up's history entry holds the reference; get_attachment serves it.
  const auto sha = str(refs[0].as_object(), "sha256");
  const auto got = get_attachment(*client, id, sha);
  ASSERT_EQ(str(got, "type"), "attachment") << json::serialize(got);
  EXPECT_EQ(common::base64_decode(str(data(got), "data"), common::Base64Alphabet::kStandard), kPng);
}

TEST_F(AttachmentsTest, LimitsComeFromTheSettings) {
  start_agent_server({"--limits-attachments-per-prompt", "1", "--limits-attachment-bytes", "10"});
  auto client = connect();
  const auto id = new_project(*client);
  const auto two = execute_with(
      *client, id,
      {attachment("a.txt", "text/plain", b64("a")), attachment("b.txt", "text/plain", b64("b"))});
  EXPECT_THAT(str(data(two), "message"), HasSubstr("at most 1 may go with one prompt"));
  const auto big =
      execute_with(*client, id, {attachment("a.txt", "text/plain", b64("01234567890"))});
  EXPECT_THAT(str(data(big), "message"), HasSubstr("11 bytes, larger than 10 bytes"));
  EXPECT_TRUE(
      is_state(execute_with(*client, id, {attachment("a.txt", "text/plain", b64("0123456789"))}),
               "EXECUTING"));
  until_idle(*client);
}

}  // namespace
}  // namespace pa::test
