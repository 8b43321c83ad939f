#include "support/server_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <random>
#include <regex>
#include <stdexcept>

extern char** environ;

namespace pa::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

TempDir::TempDir(const std::string& prefix) {
  std::random_device rd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto candidate = fs::temp_directory_path() /
                     (prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    std::error_code ec;
    if (fs::create_directory(candidate, ec)) {
      path_ = fs::canonical(candidate);
      return;
    }
  }
  throw std::runtime_error("cannot create a temp dir");
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

namespace {

// stdin is `in_fd`, or /dev/null when it is -1; stdout and stderr go to `out_fd`. A non-zero
// `open_file_limit` becomes the child's RLIMIT_NOFILE (soft and hard) before exec.
pid_t spawn(const std::vector<std::string>& argv,
            const std::map<std::string, std::string>& extra_env, int out_fd, int in_fd = -1,
            rlim_t open_file_limit = 0) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    const auto key = entry.substr(0, entry.find('='));
    if (key.rfind("PA_", 0) == 0 || extra_env.count(key) != 0) continue;  // tests decide PA_*
    env_strings.push_back(std::move(entry));
  }
  for (const auto& [k, v] : extra_env) env_strings.push_back(k + "=" + v);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out_fd, 1);
    ::dup2(out_fd, 2);
    ::dup2(in_fd >= 0 ? in_fd : ::open("/dev/null", O_RDONLY), 0);
    if (open_file_limit != 0) {
      const rlimit lim{open_file_limit, open_file_limit};
      if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) ::_exit(126);
    }
    ::execve(args[0], args.data(), envp.data());
    ::_exit(127);
  }
  return pid;
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

const TestCert& test_certificate() {
  static const TestCert cert = [] {
    static TempDir dir("pa-cert");
    TestCert c{(dir / "server.crt").string(), (dir / "server.key").string()};
    auto r = run_command({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                          "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", c.key, "-out",
                          c.cert, "-days", "2", "-subj", "/CN=localhost", "-addext",
                          "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"});
    if (r.exit_code != 0) throw std::runtime_error("openssl failed: " + r.output);
    return c;
  }();
  return cert;
}

std::vector<std::string> with_root_flag(std::vector<std::string> argv) {
  if (::geteuid() == 0) argv.push_back("--allow-root");
  return argv;
}

CommandResult run_command(const std::vector<std::string>& argv,
                          const std::map<std::string, std::string>& extra_env,
                          std::chrono::milliseconds deadline, const CommandInput& input) {
  int fds[2];
  int in[2] = {-1, -1};
  if (::pipe2(fds, O_CLOEXEC) != 0) return {};
  if (input.piped && ::pipe2(in, O_CLOEXEC) != 0) return {};
  const pid_t pid = spawn(argv, extra_env, fds[1], in[0]);
  ::close(fds[1]);
  if (input.piped) {
    ::close(in[0]);
    if (!input.text.empty()) {
      [[maybe_unused]] auto n = ::write(in[1], input.text.data(), input.text.size());
    }
    if (!input.keep_open) in[1] = (::close(in[1]), -1);
  }
  CommandResult result;
  const auto until = std::chrono::steady_clock::now() + deadline;
  char buf[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left <= 0ms) {
      ::kill(pid, SIGKILL);
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    result.output.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  if (in[1] >= 0) ::close(in[1]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.exit_code = decode_status(status);
  return result;
}

ServerProcess::ServerProcess(ServerOptions options) : options_(std::move(options)) {
  if (options_.data_dir.empty()) {
    owned_data_ = std::make_unique<TempDir>("pa-data");
    data_dir_ = owned_data_->path();
  } else {
    data_dir_ = options_.data_dir;
  }
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) stop(SIGTERM);
  // Runs outlive the server (their supervisors are detached): whatever a test left running in
  // the data directory it owns goes with it.
  if (owned_data_) kill_supervisors_of(data_dir_);
}

std::vector<pid_t> supervisors_of(const std::filesystem::path& data_dir) {
  std::vector<pid_t> out;
  const std::string prefix = (data_dir / "runs").string() + "/";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    // POSIX reads: a process that exits meanwhile makes read() fail with ESRCH, which
    // std::filebuf would turn into an exception (fatal in a destructor).
    std::string cmdline;
    const int fd = ::open((entry.path() / "cmdline").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
      cmdline.append(buf, static_cast<std::size_t>(n));
    ::close(fd);
    std::vector<std::string> args;
    std::size_t start = 0;
    for (std::size_t i = 0; i < cmdline.size(); ++i) {
      if (cmdline[i] == '\0') {
        args.push_back(cmdline.substr(start, i - start));
        start = i + 1;
      }
    }
    if (args.size() == 3 && args[1] == "__supervise" && args[2].rfind(prefix, 0) == 0)
      out.push_back(static_cast<pid_t>(std::stoi(name)));
  }
  return out;
}

void kill_supervisors_of(const std::filesystem::path& data_dir) {
  for (const pid_t pid : supervisors_of(data_dir)) ::kill(pid, SIGKILL);
}

void ServerProcess::start() {
  std::vector<std::string> argv = {
      options_.server_binary.empty() ? std::string(PA_SERVER_BINARY) : options_.server_binary,
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--data-dir",
      data_dir_.string(),
      "--log-format",
      options_.json_logs ? "json" : "text",
      "--log-level",
      "debug"};
  if (options_.tls) {
    const auto& cert = test_certificate();
    argv.insert(argv.end(),
                {"--tls-cert", options_.tls_cert.empty() ? cert.cert : options_.tls_cert,
                 "--tls-key", options_.tls_key.empty() ? cert.key : options_.tls_key});
  } else {
    argv.push_back("--no-tls");
  }
  argv.insert(argv.end(),
              {"--claude-binary",
               options_.claude_binary.empty() ? PA_FAKE_CLAUDE : options_.claude_binary});
  argv.insert(argv.end(), options_.args.begin(), options_.args.end());
  argv = with_root_flag(std::move(argv));
  auto env = options_.env;
  if (!options_.token.empty()) env["PA_AUTH_TOKEN"] = options_.token;

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  {
    std::lock_guard lock(mutex_);
    lines_.clear();
    eof_ = false;
  }
  pid_ = spawn(argv, env, fds[1], -1, options_.open_file_limit);
  ::close(fds[1]);
  if (reader_.joinable()) reader_.join();
  reader_ = std::thread([this, fd = fds[0]] { reader_loop(fd); });

  static const std::regex kListening(R"(listening on \S+ \(port (\d+)\))");
  std::string port_text;
  const bool up = wait_for_log(
      [&](const std::string& line) {
        std::smatch m;
        if (std::regex_search(line, m, kListening)) {
          port_text = m[1];
          return true;
        }
        return false;
      },
      30s);
  if (!up) {
    std::string all;
    for (const auto& l : log_lines()) all += l + "\n";
    throw std::runtime_error("server did not start:\n" + all);
  }
  port_ = static_cast<unsigned short>(std::stoi(port_text));
}

void ServerProcess::reader_loop(int fd) {
  std::string pending;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    pending.append(buf, static_cast<std::size_t>(n));
    std::size_t pos;
    while ((pos = pending.find('\n')) != std::string::npos) {
      std::lock_guard lock(mutex_);
      lines_.push_back(pending.substr(0, pos));
      pending.erase(0, pos + 1);
      cv_.notify_all();
    }
  }
  ::close(fd);
  std::lock_guard lock(mutex_);
  if (!pending.empty()) lines_.push_back(pending);
  eof_ = true;
  cv_.notify_all();
}

std::vector<std::string> ServerProcess::log_lines() const {
  std::lock_guard lock(mutex_);
  return lines_;
}

bool ServerProcess::wait_for_log(const std::function<bool(const std::string&)>& predicate,
                                 std::chrono::milliseconds deadline) {
  std::unique_lock lock(mutex_);
  std::size_t checked = 0;
  return cv_.wait_for(lock, deadline, [&] {
    for (; checked < lines_.size(); ++checked) {
      if (predicate(lines_[checked])) return true;
    }
    return eof_;
  }) && !(eof_ && checked == lines_.size() && [&] {
           for (const auto& l : lines_)
             if (predicate(l)) return false;
           return true;
         }());
}

int ServerProcess::wait_exit(std::chrono::milliseconds deadline) {
  if (pid_ <= 0) return -1;
  const auto until = std::chrono::steady_clock::now() + deadline;
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) break;
    if (std::chrono::steady_clock::now() > until) return -1;
    // Wait for the log pipe to close (the process is gone) instead of sleeping blind.
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, 20ms, [&] { return eof_; });
  }
  pid_ = -1;
  if (reader_.joinable()) reader_.join();
  return decode_status(status);
}

void ServerProcess::stop(int signal) {
  if (pid_ <= 0) return;
  ::kill(pid_, signal);
  if (wait_exit(30s) == -1 && pid_ > 0) kill_hard();
}

void ServerProcess::send_signal(int signal) {
  if (pid_ > 0) ::kill(pid_, signal);
}

void ServerProcess::kill_hard() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  wait_exit(30s);
}

}  // namespace pa::test
