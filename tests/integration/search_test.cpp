// search_messages through the real server with the fake CLI: prompts, agent text, tool inputs
// and results across projects; paging; hostile queries; a deleted project; the index deleted
// or failing.
#include <set>

#include "integration/fixture.hpp"
#include "search/fts_query.hpp"
#include "search/index_file.hpp"

namespace pa::test {
namespace {

namespace fs = std::filesystem;

class SearchTest : public AgentServerTest {
 protected:
  // A data directory of the test's own, so that it outlives a server restart.
  void SetUp() override { start_agent_server({}, {}, data_.path()); }
  TempDir data_{"pa-search-data"};

  Json search(WsClient& client, Json data, std::optional<std::string> project = std::nullopt) {
    Json message{{"type", "search_messages"}, {"data", std::move(data)}};
    if (project) message["project_id"] = *project;
    return client.request(std::move(message), 30s);
  }
  // Searches until the index reports it is not catching up any more (each answer waits up to a
  // second for the index itself), then returns that answer.
  Json search_current(WsClient& client, Json data) {
    const auto until = std::chrono::steady_clock::now() + 60s;
    for (;;) {
      auto reply = search(client, data);
      if (str(reply, "type") != "search_results" || !data_of(reply).at("indexing").as_bool() ||
          std::chrono::steady_clock::now() > until)
        return reply;
    }
  }
  static const json::object& data_of(const Json& m) { return data(m); }
  static const json::array& hits(const Json& reply) {
    EXPECT_EQ(str(reply, "type"), "search_results") << json::serialize(reply);
    static const json::array none;
    if (str(reply, "type") != "search_results") return none;
    return data(reply).at("hits").as_array();
  }
  // The history entry a hit names.
  static Json entry_of(WsClient& client, const json::value& hit) {
    const auto& h = hit.as_object();
    const auto seq = h.at("seq").as_int64();
    const auto page = client.request(Json{{"type", "get_messages"},
                                          {"project_id", str(h, "project_id")},
                                          {"data", {{"after_seq", seq - 1}, {"limit", 1}}}});
    const auto& messages = data(page).at("messages").as_array();
    EXPECT_EQ(messages.size(), 1u);
    return messages.empty() ? Json{} : messages[0].as_object();
  }
  // What kind of entry: "client/execute", "claude/assistant", "claude/user", ...
  static std::string kind(const Json& entry) {
    return str(entry, "direction") + "/" + str(entry.at("message").as_object(), "type");
  }
  void run(WsClient& client, const std::string& id, const std::string& prompt, Json options = {}) {
    ASSERT_TRUE(is_state(execute(client, id, prompt, std::move(options)), "EXECUTING"));
    until_idle(client);
  }
};

TEST_F(SearchTest, FindsPromptAgentTextToolInputAndResultInAnotherProject) {
  auto client = connect();
  const auto a = new_project(*client, "a");
  const auto b = new_project(*client, "b");
  run(*client, a, "the zanzibar login bug [[fake:text text=\"I fixed the quetzal handler\"]]");
  run(*client, b,
      "[[fake:permission command=\"grep -r marmoset src\" output=\"found one axolotl token\"]]",
      Json{{"allowed_tools", json::array{"Bash"}}});

  // A client of project b (it joined b) finds project a's prompt.
  const auto prompt = search(*client, Json{{"query", "ZANZIBAR"}});
  ASSERT_EQ(hits(prompt).size(), 1u);
  const auto& hit = hits(prompt)[0].as_object();
  EXPECT_EQ(str(hit, "project_id"), a);
  EXPECT_EQ(kind(entry_of(*client, hit)), "client/execute");
  EXPECT_FALSE(data(prompt).at("has_more").as_bool());
  EXPECT_FALSE(data(prompt).at("indexing").as_bool());
  // The snippet marks the match; the marks are offsets into the snippet.
  const std::string snippet = str(hit, "snippet");
  const auto& mark = hit.at("marks").as_array().at(0).as_array();
  EXPECT_EQ(snippet.substr(mark[0].as_int64(), mark[1].as_int64() - mark[0].as_int64()),
            "zanzibar");
  EXPECT_FALSE(str(hit, "timestamp").empty());
  EXPECT_FALSE(str(hit, "cursor").empty());

  // The agent's reply (the prompt's directive holds the word too).
  std::set<std::string> kinds;
  const auto reply = search(*client, Json{{"query", "quetzal"}});
  for (const auto& h : hits(reply)) kinds.insert(kind(entry_of(*client, h)));
  EXPECT_TRUE(kinds.contains("claude/assistant"));
  // The tool's input and its result, in project b.
  kinds.clear();
  const auto input = search(*client, Json{{"query", "marmoset"}});
  for (const auto& h : hits(input)) {
    EXPECT_EQ(str(h.as_object(), "project_id"), b);
    kinds.insert(kind(entry_of(*client, h)));
  }
  EXPECT_TRUE(kinds.contains("claude/assistant"));  // the Bash tool_use
  kinds.clear();
  const auto result = search(*client, Json{{"query", "axolotl token"}});
  for (const auto& h : hits(result)) kinds.insert(kind(entry_of(*client, h)));
  EXPECT_TRUE(kinds.contains("claude/user"));  // the tool_result

  // Within one project: project_id narrows it.
  EXPECT_TRUE(hits(search(*client, Json{{"query", "zanzibar"}}, b)).empty());
  EXPECT_EQ(hits(search(*client, Json{{"query", "zanzibar"}}, a)).size(), 1u);
  // Prefixes.
  EXPECT_EQ(hits(search(*client, Json{{"query", "zanzi*"}})).size(), 1u);
  // The index is as private as the history it holds.
  const auto dir = data_.path() / "search";
  EXPECT_EQ(fs::status(dir).permissions() & fs::perms::all, fs::perms::owner_all);
  for (const char* name : {"index.sqlite3", "index.sqlite3-wal", "index.sqlite3-shm"}) {
    EXPECT_EQ(fs::status(dir / name).permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write)
        << name;
  }
}

TEST_F(SearchTest, PagesNewestFirstWithTheLastCursor) {
  auto client = connect();
  const auto id = new_project(*client);
  run(*client, id, "[[fake:drip lines=25 interval_ms=1]]");
  std::vector<std::int64_t> seqs;
  Json query{{"query", "line"}, {"limit", 7}};
  for (int page = 0; page < 10; ++page) {
    const auto reply = search(*client, query);
    const auto& page_hits = hits(reply);
    ASSERT_FALSE(page_hits.empty());
    for (const auto& h : page_hits) seqs.push_back(h.at("seq").as_int64());
    if (!data(reply).at("has_more").as_bool()) break;
    EXPECT_EQ(page_hits.size(), 7u);
    query["before"] = page_hits.back().at("cursor");
  }
  ASSERT_EQ(seqs.size(), 25u);  // "Line i of 25." each once
  for (std::size_t i = 1; i < seqs.size(); ++i) EXPECT_LT(seqs[i], seqs[i - 1]);
}

TEST_F(SearchTest, FtsSyntaxAndBadRequestsAreHarmless) {
  auto client = connect();
  const auto id = new_project(*client);
  run(*client, id, "say \"hello\" AND (goodbye) OR NOT near NEAR(x y) col:umn ^caret");
  // Syntax characters are searched for as words (or dropped as punctuation), never interpreted.
  for (const char* q : {"\"hello\"", "hello\"", "AND", "(goodbye)", "NOT near", "NEAR(x", "col:umn",
                        "^caret", "body:hello", "project:p1", "{body}", "hello -- world", "a\"b\"c",
                        "hello*", "*hello", "xyz:*", "NEAR(hello goodbye, 1)", "- hello +"}) {
    const auto reply = search(*client, Json{{"query", q}});
    EXPECT_EQ(str(reply, "type"), "search_results") << q << ": " << json::serialize(reply);
  }
  EXPECT_EQ(hits(search(*client, Json{{"query", "\"hello\" AND"}})).size(), 1u);
  EXPECT_EQ(hits(search(*client, Json{{"query", "col:umn"}})).size(), 1u);
  // A NUL separates words like a space.
  EXPECT_EQ(hits(search(*client, Json{{"query", std::string("hello\0caret", 11)}})).size(), 1u);

  const auto invalid = [&](Json data, const std::string& field) {
    const auto reply = search(*client, std::move(data));
    EXPECT_EQ(error_code(reply), "INVALID_MESSAGE") << json::serialize(reply);
    EXPECT_EQ(str(data_of(reply).at("details").as_object(), "field"), field);
  };
  invalid(Json{}, "data.query");
  invalid(Json{{"query", ""}}, "data.query");
  invalid(Json{{"query", "-- ()"}}, "data.query");
  invalid(Json{{"query", "ab*"}}, "data.query");
  invalid(Json{{"query", "\"\"\""}}, "data.query");  // quotes only: no word
  invalid(Json{{"query", std::string(search::kMaxQueryBytes + 1, 'x')}}, "data.query");
  invalid(Json{{"query", 5}}, "data.query");
  invalid(Json{{"query", "x"}, {"limit", 0}}, "data.limit");
  invalid(Json{{"query", "x"}, {"limit", 101}}, "data.limit");
  invalid(Json{{"query", "x"}, {"before", "12abc"}}, "data.before");
  invalid(Json{{"query", "x"}, {"before", 12}}, "data.before");
  invalid(Json{{"query", "x"}, {"sort", "asc"}}, "data.sort");
  const auto missing = search(*client, Json{{"query", "x"}}, "no-such-project");
  EXPECT_EQ(error_code(missing), "PROJECT_NOT_FOUND");
  // The connection is still there.
  EXPECT_EQ(hits(search(*client, Json{{"query", "caret"}})).size(), 1u);
}

TEST_F(SearchTest, DeletedProjectLeavesTheIndex) {
  auto client = connect();
  const auto doomed = new_project(*client, "doomed");
  const auto kept = new_project(*client, "kept");
  run(*client, doomed, "wombat in the doomed project");
  run(*client, kept, "wombat in the kept project");
  ASSERT_EQ(hits(search(*client, Json{{"query", "wombat"}})).size(), 2u);
  const auto deleted = client->request(Json{{"type", "project_delete"}, {"project_id", doomed}});
  ASSERT_EQ(str(deleted, "type"), "project_deleted");
  // The search waits for the index to take in the deletion.
  const auto after = search(*client, Json{{"query", "wombat"}});
  ASSERT_EQ(hits(after).size(), 1u);
  EXPECT_EQ(str(hits(after)[0].as_object(), "project_id"), kept);
  // Gone from the file itself, not only from the answers.
  std::string error;
  auto index =
      search::IndexFile::open_reader(server_->data_dir() / "search" / "index.sqlite3", error);
  ASSERT_TRUE(index) << error;
  search::SearchRequest request;
  request.fts_expression = search::build_fts_query("wombat").expression;
  const auto page = index->search(request);
  ASSERT_EQ(page.hits.size(), 1u);
  EXPECT_EQ(page.hits[0].project_id, kept);
}

TEST_F(SearchTest, DeletedIndexIsRebuiltAtStartAndFindsTheSame) {
  auto client = connect();
  const auto a = new_project(*client, "a");
  const auto b = new_project(*client, "b");
  run(*client, a, "capybara one [[fake:text text=\"capybara reply\"]]");
  run(*client, b, "capybara two");
  const auto before = search(*client, Json{{"query", "capybara"}});
  ASSERT_EQ(hits(before).size(), 3u);
  client.reset();
  const fs::path data_dir = data_.path();
  server_->stop();
  ASSERT_TRUE(fs::remove_all(data_dir / "search") > 0);
  start_agent_server({}, {}, data_dir);
  client = connect();
  const auto after = search_current(*client, Json{{"query", "capybara"}});
  EXPECT_FALSE(data(after).at("indexing").as_bool());
  EXPECT_EQ(json::serialize(data(after).at("hits")), json::serialize(data(before).at("hits")));
}

TEST_F(SearchTest, FailingIndexNeverHoldsUpHistory) {
  // A directory where the index file belongs: SQLite cannot open it and the server cannot
  // replace it.
  const fs::path data_dir = data_.path();
  server_->stop();
  fs::remove_all(data_dir / "search");
  fs::create_directories(data_dir / "search" / "index.sqlite3" / "blocker");
  start_agent_server({}, {}, data_dir);
  auto client = connect();
  const auto id = new_project(*client);
  run(*client, id, "pangolin [[fake:drip lines=20 interval_ms=1]]");
  const auto history = all_history(*client, id);
  EXPECT_GE(history.size(), 24u);  // the run is complete in history
  const auto failing = search(*client, Json{{"query", "pangolin"}});
  EXPECT_EQ(error_code(failing), "SEARCH_FAILED") << json::serialize(failing);
  EXPECT_EQ(str(data(failing).at("details").as_object(), "reason"), "unavailable");
  // Once the file can be made, the index catches up from the logs (retried every few seconds).
  fs::remove_all(server_->data_dir() / "search" / "index.sqlite3");
  // The retry is timed: nothing announces it, so ask until the answer is complete.
  EXPECT_TRUE(eventually(
      [&] {
        const auto reply = search(*client, Json{{"query", "pangolin"}});
        return str(reply, "type") == "search_results" && hits(reply).size() == 1 &&
               !data(reply).at("indexing").as_bool();
      },
      60s));
}

TEST_F(SearchTest, ReindexRebuildsWithTheServerStoppedAndRefusesWhileItRuns) {
  auto client = connect();
  const auto id = new_project(*client);
  run(*client, id, "okapi [[fake:text text=\"okapi answer\"]]");
  const auto before = search(*client, Json{{"query", "okapi"}});
  ASSERT_EQ(hits(before).size(), 2u);
  const fs::path data_dir = data_.path();
  // While the server runs: refused, the index untouched.
  const auto refused = run_command({PA_SERVER_BINARY, "reindex", "--data-dir", data_dir.string()});
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_NE(refused.output.find("stop the server first"), std::string::npos) << refused.output;
  client.reset();
  server_->stop();
  // A damaged index is replaced by one built from the logs.
  {
    std::ofstream damage(data_dir / "search" / "index.sqlite3", std::ios::trunc);
    damage << "not an index";
  }
  const auto rebuilt = run_command({PA_SERVER_BINARY, "reindex", "--data-dir", data_dir.string()});
  ASSERT_EQ(rebuilt.exit_code, 0) << rebuilt.output;
  EXPECT_NE(rebuilt.output.find("of 1 projects"), std::string::npos) << rebuilt.output;
  start_agent_server({}, {}, data_dir);
  client = connect();
  const auto after = search(*client, Json{{"query", "okapi"}});
  EXPECT_FALSE(data(after).at("indexing").as_bool());
  EXPECT_EQ(json::serialize(data(after).at("hits")), json::serialize(data(before).at("hits")));
}

}  // namespace
}  // namespace pa::test
