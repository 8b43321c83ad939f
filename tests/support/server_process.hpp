// Starts the real pocket-agent-server binary for a test: port 0, a temp data dir, a dev
// certificate, and its log lines captured so tests can wait for events and inspect them.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace pa::test {

// A fresh directory under the system temp dir, removed at destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "pa-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// Paths to a self-signed ECDSA certificate made once per test binary.
struct TestCert {
  std::string cert;
  std::string key;
};
const TestCert& test_certificate();

struct ServerOptions {
  std::vector<std::string> args;           // extra flags
  std::map<std::string, std::string> env;  // extra environment
  bool tls = true;
  std::string token = "test-token-0123456789abcdef";  // empty = let the server generate one
  std::filesystem::path data_dir;                     // empty = a fresh temp dir
  std::string claude_binary;                          // empty = the fake CLI
  std::string server_binary;                          // empty = the build's server
  std::string tls_cert;                               // empty = the shared test certificate
  std::string tls_key;
  bool json_logs = false;
  unsigned long open_file_limit = 0;  // non-zero: the server's RLIMIT_NOFILE (soft and hard)
};

class ServerProcess {
 public:
  explicit ServerProcess(ServerOptions options = {});
  ~ServerProcess();  // SIGTERM, then SIGKILL if it does not stop

  // Starts and waits (deadline) until the listening line names the port. Throws on failure.
  void start();
  void stop(int signal = SIGTERM);                    // waits for exit
  void kill_hard();                                   // SIGKILL, waits for exit
  void send_signal(int signal);                       // does not wait
  int wait_exit(std::chrono::milliseconds deadline);  // exit code, or 128+signal

  unsigned short port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::string& token() const { return options_.token; }
  const std::filesystem::path& data_dir() const { return data_dir_; }
  bool tls() const { return options_.tls; }

  std::vector<std::string> log_lines() const;
  // Waits until a log line satisfies `predicate`.
  bool wait_for_log(const std::function<bool(const std::string&)>& predicate,
                    std::chrono::milliseconds deadline);

 private:
  void reader_loop(int fd);

  ServerOptions options_;
  std::unique_ptr<TempDir> owned_data_;
  std::filesystem::path data_dir_;
  pid_t pid_ = -1;
  unsigned short port_ = 0;
  std::thread reader_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::string> lines_;
  bool eof_ = false;
};

// The supervisors (run processes) started by servers on `data_dir`, and a way to end them.
std::vector<pid_t> supervisors_of(const std::filesystem::path& data_dir);
void kill_supervisors_of(const std::filesystem::path& data_dir);

// The server refuses to run as root without --allow-root; tests in root containers (CI) pass it.
// Returns argv with the flag appended when this process runs as root.
std::vector<std::string> with_root_flag(std::vector<std::string> argv);

// Runs a command to completion (no shell), returning exit code and combined output.
struct CommandResult {
  int exit_code = -1;
  std::string output;
};
// What the command reads on stdin: /dev/null unless `piped`; then `text`, after which stdin is
// closed, or kept open until the command exits (`keep_open`: tools that quit on EOF too early).
struct CommandInput {
  bool piped = false;
  std::string text;
  bool keep_open = false;
};
CommandResult run_command(const std::vector<std::string>& argv,
                          const std::map<std::string, std::string>& extra_env = {},
                          std::chrono::milliseconds deadline = std::chrono::seconds(60),
                          const CommandInput& input = {});

}  // namespace pa::test
