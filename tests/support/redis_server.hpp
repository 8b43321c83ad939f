// Starts a real redis-server (Debian's package) for a test: 127.0.0.1, a free port, a temp dir,
// optionally a password and TLS. It can be stopped and started again on the same port and dir
// (a Redis restart), or killed. Tests that need it skip when redis-server is not installed.
// The server dies with the thread that started it (PR_SET_PDEATHSIG): start it from the test's
// own thread, and it never outlives the test binary.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "support/server_process.hpp"

namespace pa::test {

struct RedisOptions {
  std::string password;  // non-empty: requirepass
  bool tls = false;      // serve TLS only (tls-port), with the shared test certificate
  std::string tls_cert;  // TLS with another certificate and key (empty: the shared one)
  std::string tls_key;
  bool persist = false;  // appendonly yes (a restart keeps the data); else nothing is kept
};

class RedisServer {
 public:
  explicit RedisServer(RedisOptions options = {});  // start() starts it
  ~RedisServer();                                   // stops it
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  static bool available();  // redis-server is on PATH

  void start();  // waits (deadline) until it answers PING; throws on failure
  void stop();   // SHUTDOWN NOSAVE / SIGTERM, waits for exit
  void kill_hard();
  bool running() const { return pid_ > 0; }
  unsigned short port() const { return port_; }
  // redis://[:password@]127.0.0.1:port or rediss://…
  std::string url() const;
  // Runs redis-cli with `args` against it and returns its output (for checks and forging).
  std::string cli(const std::vector<std::string>& args) const;

 private:
  class Output;  // the server's log (stdout), read by a thread
  void launch();
  bool wait_exit(std::chrono::milliseconds deadline);  // reaps it; false: still running

  RedisOptions options_;
  TempDir dir_{"pa-redis"};
  unsigned short port_ = 0;
  pid_t pid_ = -1;
  int pidfd_ = -1;  // becomes readable when the server exits
  std::unique_ptr<Output> output_;
};

}  // namespace pa::test
