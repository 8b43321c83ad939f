// Shared set-up for integration tests: a running server and helpers to talk to it.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "support/server_process.hpp"
#include "support/ws_client.hpp"

namespace pa::test {

namespace json = boost::json;

inline std::string str(const Json& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}
inline bool is(const Json& m, std::string_view type) {
  return str(m, "type") == type;
}
inline const Json& data(const Json& m) {
  return m.at("data").as_object();
}
inline std::string error_code(const Json& m) {
  return m.at("type").as_string() == "error" ? str(data(m), "code") : std::string();
}

// Polls `condition` until it holds or the deadline passes (for things that send no event, such
// as a file a tool creates or a process leaving /proc).
inline bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds deadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(20ms);
  }
}

// The process group and state of a live pid from /proc/<pid>/stat; nullopt when it is gone.
struct ProcStat {
  char state = '?';
  pid_t pgid = 0;
};
inline std::optional<ProcStat> proc_stat(pid_t pid) {
  // POSIX reads: a process that exits meanwhile makes read() fail (ESRCH), which std::filebuf
  // would throw as an exception.
  std::string text;
  const int fd = ::open(("/proc/" + std::to_string(pid) + "/stat").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    char buf[1024];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
      text.append(buf, static_cast<std::size_t>(n));
    ::close(fd);
  }
  const auto close = text.rfind(')');
  if (text.empty() || close == std::string::npos) return std::nullopt;
  std::istringstream rest(text.substr(close + 2));
  ProcStat st;
  pid_t ppid = 0;
  rest >> st.state >> ppid >> st.pgid;
  return st;
}
// Running (or stopped): not yet dead. A zombie is dead but not reaped: see gone().
inline bool alive(pid_t pid) {
  const auto st = proc_stat(pid);
  return st && st->state != 'Z' && st->state != 'X';
}
// Dead and reaped: no /proc entry is left (a zombie still has one). For "no zombies" checks.
inline bool gone(pid_t pid) {
  return !proc_stat(pid).has_value();
}
// Live pids whose process group is `pgid`.
inline std::vector<pid_t> group_members(pid_t pgid) {
  std::vector<pid_t> out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = std::stoi(name);
    const auto st = proc_stat(pid);
    if (st && st->pgid == pgid && st->state != 'Z' && st->state != 'X') out.push_back(pid);
  }
  return out;
}

class ServerTest : public ::testing::Test {
 protected:
  void start_server(ServerOptions options = {}) {
    server_ = std::make_unique<ServerProcess>(std::move(options));
    server_->start();
  }
  void SetUp() override { start_server(); }
  void TearDown() override {
    if (HasFailure() && server_) {
      const auto lines = server_->log_lines();
      const std::size_t from = lines.size() > 60 ? lines.size() - 60 : 0;
      std::cerr << "--- last server log lines ---\n";
      for (std::size_t i = from; i < lines.size(); ++i) std::cerr << lines[i] << "\n";
    }
  }

  // A connection to /ws (`target` adds a query). With answers_permissions_, it opens with a hello
  // declaring "permissions", so the server asks it about tool calls.
  std::unique_ptr<WsClient> connect(const std::string& target = "/ws") {
    auto client = connect_without_hello(target);
    if (answers_permissions_) hello(*client, {"permissions"});
    return client;
  }
  // A client as the spec describes it: no hello.
  std::unique_ptr<WsClient> connect_without_hello(const std::string& target = "/ws") {
    ClientOptions o;
    o.tls = server_->tls();
    o.bearer = server_->token();
    o.target = target;
    auto client = std::make_unique<WsClient>(server_->port(), o);
    EXPECT_EQ(client->connect(), 101) << client->response_body();
    return client;
  }
  // Sends hello with `capabilities` (and `client_name` unless empty); returns the welcome.
  static Json hello(WsClient& client, const std::vector<std::string>& capabilities,
                    const std::string& client_name = {}) {
    Json data{{"protocol", 1},
              {"capabilities", json::array(capabilities.begin(), capabilities.end())}};
    if (!client_name.empty()) data["client_name"] = client_name;
    auto welcome = client.request(Json{{"type", "hello"}, {"data", std::move(data)}});
    EXPECT_EQ(str(welcome, "type"), "welcome") << json::serialize(welcome);
    return welcome;
  }

  // A fresh directory to use as a project.
  std::filesystem::path make_dir(const std::string& name) {
    auto p = projects_root_.path() / name;
    std::filesystem::create_directories(p);
    return p;
  }

  Json create_project(WsClient& client, const std::filesystem::path& path) {
    return client.request(Json{{"type", "project_create"}, {"data", {{"path", path.string()}}}});
  }

  // GET /metrics with the token.
  std::string metrics() {
    const auto r = http_get(server_->port(), server_->tls(), "/metrics",
                            {{"Authorization", "Bearer " + server_->token()}});
    EXPECT_EQ(r.status, 200);
    return r.body;
  }

  std::unique_ptr<ServerProcess> server_;
  TempDir projects_root_{"pa-projects"};
  // connect() declares "permissions" in a hello (fixtures whose tests answer permission asks).
  bool answers_permissions_ = false;
};

// Every history entry of a project, oldest first, read through get_messages page by page
// (pages are cut by count and by bytes; has_more says when to ask again).
inline std::vector<Json> all_history(WsClient& client, const std::string& project_id) {
  std::vector<Json> out;
  std::int64_t after = 0;
  for (;;) {
    const auto page = client.request(
        Json{
            {"type", "get_messages"}, {"project_id", project_id}, {"data", {{"after_seq", after}}}},
        30s);
    const auto* d = page.if_contains("data");
    const auto* messages = d != nullptr ? d->as_object().if_contains("messages") : nullptr;
    if (messages == nullptr) {
      ADD_FAILURE() << "get_messages failed: " << json::serialize(page);
      return out;
    }
    for (const auto& e : messages->as_array()) {
      out.push_back(e.as_object());
      after = e.at("seq").as_int64();
    }
    if (!d->at("has_more").as_bool()) return out;
    if (messages->as_array().empty()) {
      ADD_FAILURE() << "an empty page with has_more";
      return out;
    }
  }
}

// The project_list entry of project `id` (fails the test when it is not listed).
inline Json project_listed(WsClient& client, const std::string& id) {
  const auto list = client.request(Json{{"type", "project_list"}});
  for (const auto& p : data(list).at("projects").as_array()) {
    if (str(p.as_object(), "id") == id) return p.as_object();
  }
  ADD_FAILURE() << "project " << id << " not listed";
  return {};
}

inline bool is_state(const Json& m, std::string_view state) {
  return str(m, "type") == "project_state" && str(data(m), "state") == state;
}
inline bool is_idle(const Json& m) {
  return is_state(m, "IDLE");
}

// The value of one sample in Prometheus text (`series` with its labels, if any), or -1 when absent.
inline double metric_sample(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

// The messages of `type` among `messages`, in order.
inline std::vector<Json> of_type(const std::vector<Json>& messages, std::string_view type) {
  std::vector<Json> out;
  for (const auto& m : messages) {
    if (str(m, "type") == type) out.push_back(m);
  }
  return out;
}

// The CLI lines (agent_message data) of type `cli_type` among `messages`, in order.
inline std::vector<Json> cli_lines_of_type(const std::vector<Json>& messages,
                                           std::string_view cli_type) {
  std::vector<Json> out;
  for (const auto& m : messages) {
    if (str(m, "type") == "agent_message" && str(data(m), "type") == cli_type) {
      out.push_back(data(m));
    }
  }
  return out;
}

// The tool_result blocks of the CLI's user lines among `messages`, in order.
inline std::vector<Json> tool_result_blocks(const std::vector<Json>& messages) {
  std::vector<Json> out;
  for (const auto& line : cli_lines_of_type(messages, "user")) {
    const auto& content = line.at("message").at("content");
    if (!content.is_array()) continue;
    for (const auto& block : content.as_array()) {
      if (block.is_object() && str(block.as_object(), "type") == "tool_result") {
        out.push_back(block.as_object());
      }
    }
  }
  return out;
}

// A server whose fake CLI records each run (argv, env, cwd) and keeps sessions in a temp dir.
class AgentServerTest : public ServerTest {
 protected:
  void SetUp() override { start_agent_server({}); }

  // `extra_env`: more NAME=VALUE,... for the CLI; `data_dir`: reuse a data directory (restarts).
  void start_agent_server(std::vector<std::string> args, const std::string& extra_env = {},
                          const std::filesystem::path& data_dir = {}) {
    ServerOptions options;
    options.args = std::move(args);
    options.data_dir = data_dir;
    options.args.insert(
        options.args.end(),
        {"--claude-env", "FAKE_CLAUDE_RECORD=" + record_file().string() +
                             ",FAKE_CLAUDE_STATE_DIR=" + (state_.path() / "sessions").string() +
                             (extra_env.empty() ? "" : "," + extra_env)});
    start_server(options);
  }

  std::filesystem::path record_file() const { return state_.path() / "record.jsonl"; }

  // The recorded runs of the fake CLI (not the health probe's --version), oldest first.
  std::vector<Json> records() const {
    std::vector<Json> out;
    std::ifstream in(record_file());
    for (std::string line; std::getline(in, line);) {
      if (line.empty()) continue;
      auto record = json::parse(line).as_object();
      if (json::serialize(record.at("argv")).find("\"--version\"") == std::string::npos) {
        out.push_back(std::move(record));
      }
    }
    return out;
  }

  // Runs `prompt` in a new project until IDLE and returns the fake CLI's record of that run.
  Json record_of_one_run(WsClient& client, const std::string& prompt = "hi") {
    const auto id = new_project(client);
    EXPECT_TRUE(is_state(execute(client, id, prompt), "EXECUTING"));
    until_idle(client);
    const auto rec = records();
    EXPECT_EQ(rec.size(), 1u);
    return rec.empty() ? Json{} : rec.back();
  }

  std::string new_project(WsClient& client, const std::string& name = "proj") {
    return str(create_project(client, make_dir(name)), "project_id");
  }

  Json execute(WsClient& client, const std::string& id, const std::string& prompt,
               Json options = {}) {
    Json data_json{{"prompt", prompt}};
    if (!options.empty()) data_json["options"] = std::move(options);
    return client.request(
        Json{{"type", "execute"}, {"project_id", id}, {"data", std::move(data_json)}});
  }

  // Reads until the project is IDLE again; returns everything received, in order.
  std::vector<Json> until_idle(WsClient& client,
                               std::chrono::milliseconds deadline = std::chrono::seconds(30)) {
    std::vector<Json> seen;
    auto last = client.read_until(
        [&](const Json& m) {
          seen.push_back(m);
          return is_state(m, "IDLE");
        },
        deadline);
    EXPECT_TRUE(last) << "the project did not return to IDLE";
    return seen;
  }

  TempDir state_{"pa-fake-state"};
};

}  // namespace pa::test
