// Shared set-up for tests that run the REAL Claude CLI (tools/claude-cli, installed by `make
// deps`) through the server against the scripted model API (tests/fixtures/model_api_stub.mjs).
// Tests are skipped (with the reason) only when node or the CLI binary is missing.
#pragma once

#include <unistd.h>

#include <boost/json/serialize.hpp>
#include <fstream>
#include <functional>
#include <regex>
#include <sstream>
#include <thread>

#include "integration/fixture.hpp"
#include "support/model_stub.hpp"

namespace pa::test {

namespace fs = std::filesystem;

inline std::string real_cli() {
  return std::string(PA_SOURCE_DIR) + "/tools/claude-cli/node_modules/.bin/claude";
}
inline std::string stub_script() {
  return std::string(PA_SOURCE_DIR) + "/tests/fixtures/model_api_stub.mjs";
}

class RealCliStubTest : public AgentServerTest {
 protected:
  void SetUp() override {
    if (::access(real_cli().c_str(), X_OK) != 0) {
      GTEST_SKIP() << "the real CLI is not installed at " << real_cli() << "; run `make deps`";
    }
    node_ = find_in_path("node");
    if (node_.empty()) GTEST_SKIP() << "node is not in PATH; run `make deps`";
    stub_ = std::make_unique<ModelStub>(node_, stub_script());
    stub_->start();
  }

  // The server runs the real CLI against the stub, with a private HOME for the CLI's sessions.
  // `data_dir`: reuse a data directory (a restart after the previous server was killed).
  void start(std::vector<std::string> extra = {}, const fs::path& data_dir = {}) {
    ServerOptions options;
    options.data_dir = data_dir;
    options.claude_binary = real_cli();
    options.args = {"--claude-home",
                    home_.path().string(),
                    "--claude-env",
                    "ANTHROPIC_BASE_URL=" + stub_->base_url() +
                        ",ANTHROPIC_API_KEY=stub-key-not-secret"
                        ",CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1,DISABLE_TELEMETRY=1"
                        ",DISABLE_AUTOUPDATER=1,DISABLE_ERROR_REPORTING=1,SHELL=/bin/bash",
                    "--timeouts-kill-grace",
                    "20s"};
    options.args.insert(options.args.end(), extra.begin(), extra.end());
    start_server(options);
  }

  Json execute_ok(WsClient& client, const std::string& id, const std::string& prompt,
                  Json options = {}) {
    auto reply = execute(client, id, prompt, std::move(options));
    EXPECT_EQ(str(data(reply), "state"), "EXECUTING") << json::serialize(reply);
    return reply;
  }

  // The agent_message payloads among `seen`, in order.
  static std::vector<Json> cli_lines(const std::vector<Json>& seen) {
    std::vector<Json> out;
    for (const auto& m : seen) {
      if (str(m, "type") == "agent_message") out.push_back(data(m));
    }
    return out;
  }
  static std::optional<Json> find_line(const std::vector<Json>& lines, const std::string& type) {
    for (const auto& l : lines) {
      if (str(l, "type") == type) return l;
    }
    return std::nullopt;
  }
  // The text of an assistant line's first content block ("" if none).
  static std::string block_text(const Json& line, const std::string& field = "text") {
    const auto& content = line.at("message").as_object().at("content");
    if (!content.is_array() || content.as_array().empty()) return {};
    return str(content.as_array()[0].as_object(), field);
  }
  // The CLI's pid for the latest run, from the server's "Execution started … pid=N" log line.
  pid_t cli_pid() {
    static const std::regex kPid(R"(Execution started.* pid=(\d+))");
    pid_t pid = -1;
    server_->wait_for_log(
        [&](const std::string& l) {
          std::smatch m;
          if (std::regex_search(l, m, kPid)) pid = std::stoi(m[1]);
          return false;  // scan everything: the last one wins
        },
        0ms);
    return pid;
  }

  std::string node_;
  std::unique_ptr<ModelStub> stub_;
  TempDir home_{"pa-claude-home"};
};

}  // namespace pa::test
