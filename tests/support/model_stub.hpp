// Runs tests/fixtures/model_api_stub.mjs (a scripted Anthropic Messages API for the real Claude
// CLI) under node, without a shell, and collects the JSON events it prints: one per request
// received, stream start/end, client disconnects. See tests/fixtures/README.md.
#pragma once

#include <sys/types.h>

#include <boost/json/object.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace pa::test {

// The absolute path of `name` found in PATH (executable), or empty.
std::string find_in_path(const std::string& name);

class ModelStub {
 public:
  // `node` is the node binary, `script` the stub's path.
  ModelStub(std::string node, std::string script);
  ~ModelStub();  // closes the stub's stdin (it exits), SIGKILL if it does not
  ModelStub(const ModelStub&) = delete;
  ModelStub& operator=(const ModelStub&) = delete;

  // Starts node and waits for the listening event. Throws on failure.
  void start(std::chrono::milliseconds deadline = std::chrono::seconds(30));
  unsigned short port() const { return port_; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // Every event so far, oldest first.
  std::vector<boost::json::object> events() const;
  // The POST /v1/messages requests so far (their "request" events).
  std::vector<boost::json::object> message_requests() const;
  // Waits until an event satisfies `predicate`; returns it.
  std::optional<boost::json::object> wait_for(
      const std::function<bool(const boost::json::object&)>& predicate,
      std::chrono::milliseconds deadline);
  // Lines node printed that are not JSON events (its errors), for failure messages.
  std::string other_output() const;

 private:
  void reader_loop(int fd);

  std::string node_, script_;
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  unsigned short port_ = 0;
  std::thread reader_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<boost::json::object> events_;
  std::string other_;
  bool eof_ = false;
};

}  // namespace pa::test
