// Starts a real redis-server (Debian's package) for a test: 127.0.0.1, a free port, a temp dir,
// optionally a password and TLS. It can be stopped and started again on the same port and dir
// (a Redis restart), or killed. Tests that need it skip when redis-server is not installed.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <string>

#include "support/server_process.hpp"

namespace pa::test {

struct RedisOptions {
  std::string password;  // non-empty: requirepass
  bool tls = false;      // serve TLS only (tls-port), with the shared test certificate
  bool persist = false;  // appendonly yes (a restart keeps the data); else nothing is kept
};

class RedisServer {
 public:
  explicit RedisServer(RedisOptions options = {});
  ~RedisServer();  // stops it
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
  RedisOptions options_;
  TempDir dir_{"pa-redis"};
  unsigned short port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace pa::test
