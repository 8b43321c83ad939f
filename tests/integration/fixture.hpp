// Shared set-up for integration tests: a running server and helpers to talk to it.
#pragma once

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "support/server_process.hpp"
#include "support/ws_client.hpp"

namespace pa::test {

namespace json = boost::json;

inline std::string str(const Json& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}
inline const Json& data(const Json& m) {
  return m.at("data").as_object();
}
inline std::string error_code(const Json& m) {
  return m.at("type").as_string() == "error" ? str(data(m), "code") : std::string();
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

  std::unique_ptr<WsClient> connect() {
    ClientOptions o;
    o.tls = server_->tls();
    o.bearer = server_->token();
    auto client = std::make_unique<WsClient>(server_->port(), o);
    EXPECT_EQ(client->connect(), 101) << client->response_body();
    return client;
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

  std::unique_ptr<ServerProcess> server_;
  TempDir projects_root_{"pa-projects"};
};

}  // namespace pa::test
