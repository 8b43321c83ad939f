#include "support/redis_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace pa::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr auto kStartDeadline = 30s;  // generous: the machine may be busy building
constexpr auto kStopDeadline = 30s;
constexpr std::size_t kMaxLogBytes = 256 * 1024;

std::string find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    const auto end = std::min(dirs.find(':', start), dirs.size());
    const auto dir = dirs.substr(start, end - start);
    start = end + 1;
    if (dir.empty()) continue;
    const auto candidate = (fs::path(dir) / name).string();
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

// A port the kernel just handed out on 127.0.0.1; another process may take it before Redis
// binds it, which start() notices ("Address already in use") and retries.
unsigned short free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  ::close(fd);
  if (!ok) throw std::runtime_error("cannot find a free port");
  return ntohs(addr.sin_port);
}

std::string url_encode(const std::string& text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      out += {'%', kHex[byte >> 4], kHex[byte & 15]};
    }
  }
  return out;
}

}  // namespace

// Reads the server's stdout (its log) until EOF or until destroyed, so that the pipe never
// fills and blocks Redis, and so that start() can wait for the "Ready" line.
class RedisServer::Output {
 public:
  explicit Output(int fd) : fd_(fd) {
    if (::pipe2(wake_, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    reader_ = std::thread([this] { run(); });
  }
  ~Output() {
    [[maybe_unused]] auto n = ::write(wake_[1], "x", 1);
    reader_.join();
    ::close(fd_);
    ::close(wake_[0]);
    ::close(wake_[1]);
  }

  // True once the log holds `needle`; false at the deadline or when the server closed its
  // output (it exited) without writing it.
  bool wait_for(const std::string& needle, std::chrono::milliseconds deadline) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, deadline, [&] { return text_.find(needle) != std::string::npos || eof_; });
    return text_.find(needle) != std::string::npos;
  }

  std::string text() const {
    std::lock_guard lock(mutex_);
    return text_;
  }

 private:
  void run() {
    char buf[4096];
    for (;;) {
      pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (fds[1].revents != 0) break;
      const ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n <= 0) break;
      std::lock_guard lock(mutex_);
      text_.append(buf, static_cast<std::size_t>(n));
      if (text_.size() > kMaxLogBytes) text_.erase(0, text_.size() - kMaxLogBytes);
      cv_.notify_all();
    }
    std::lock_guard lock(mutex_);
    eof_ = true;
    cv_.notify_all();
  }

  int fd_;
  int wake_[2] = {-1, -1};
  std::thread reader_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::string text_;
  bool eof_ = false;
};

RedisServer::RedisServer(RedisOptions options) : options_(std::move(options)) {}

RedisServer::~RedisServer() {
  try {
    kill_hard();  // nothing to keep: the test is over
  } catch (const std::exception&) {
    // PR_SET_PDEATHSIG still ends it with the test binary.
  }
}

bool RedisServer::available() {
  static const bool found =
      !find_on_path("redis-server").empty() && !find_on_path("redis-cli").empty();
  return found;
}

void RedisServer::start() {
  if (pid_ > 0) return;
  if (!available())
    throw std::runtime_error("redis-server or redis-cli is not on PATH (Debian: redis-server)");
  // A port chosen here may be taken meanwhile; a restart keeps the port it had.
  const bool choose_port = port_ == 0;
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (choose_port) port_ = free_port();
    launch();
    if (output_->wait_for("Ready to accept connections", kStartDeadline)) {
      const auto pong = cli({"PING"});
      if (pong.find("PONG") != std::string::npos) return;
      const auto log = output_->text();
      kill_hard();
      throw std::runtime_error("redis-server does not answer PING: " + pong + "\n" + log);
    }
    const auto log = output_->text();
    kill_hard();
    if (choose_port && log.find("Address already in use") != std::string::npos) continue;
    if (options_.tls && log.find("tls") != std::string::npos &&
        log.find("Bad directive") != std::string::npos)
      throw std::runtime_error("this redis-server was built without TLS:\n" + log);
    throw std::runtime_error("redis-server did not start:\n" + log);
  }
  throw std::runtime_error("redis-server found no free port in 5 tries");
}

void RedisServer::launch() {
  const std::string port = std::to_string(port_);
  std::vector<std::string> argv = {find_on_path("redis-server"),
                                   "--port",
                                   options_.tls ? "0" : port,
                                   "--bind",
                                   "127.0.0.1",
                                   "--dir",
                                   dir_.path().string(),
                                   "--save",
                                   "",
                                   "--appendonly",
                                   options_.persist ? "yes" : "no",
                                   "--daemonize",
                                   "no",
                                   "--protected-mode",
                                   "no"};
  if (!options_.password.empty()) argv.insert(argv.end(), {"--requirepass", options_.password});
  if (options_.tls) {
    const auto& shared = test_certificate();
    const auto& cert = options_.tls_cert.empty() ? shared.cert : options_.tls_cert;
    const auto& key = options_.tls_key.empty() ? shared.key : options_.tls_key;
    argv.insert(argv.end(), {"--tls-port", port, "--tls-cert-file", cert, "--tls-key-file", key,
                             "--tls-ca-cert-file", cert, "--tls-auth-clients", "no"});
  }
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);

  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    // Only async-signal-safe calls here (the test binary has threads).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);  // the parent died before prctl
    ::dup2(out[1], 1);
    ::dup2(out[1], 2);
    const int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, 0);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(out[1]);
  pid_ = pid;
  // glibc 2.36 declares pidfd_open without extern "C" (a C++ link error): the system call.
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd_ < 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    pid_ = -1;
    ::close(out[0]);
    throw std::runtime_error("pidfd_open failed");
  }
  output_ = std::make_unique<Output>(out[0]);
}

bool RedisServer::wait_exit(std::chrono::milliseconds deadline) {
  if (pid_ <= 0) return true;
  pollfd p{pidfd_, POLLIN, 0};
  int ready;
  do {
    ready = ::poll(&p, 1, static_cast<int>(deadline.count()));
  } while (ready < 0 && errno == EINTR);
  if (ready <= 0) return false;
  ::waitpid(pid_, nullptr, 0);
  ::close(pidfd_);
  pidfd_ = -1;
  pid_ = -1;
  output_.reset();  // after the exit: its reader stops at once
  return true;
}

void RedisServer::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);  // Redis shuts down cleanly (with appendonly, the AOF is synced)
  if (!wait_exit(kStopDeadline)) kill_hard();
}

void RedisServer::kill_hard() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  if (!wait_exit(kStopDeadline)) throw std::runtime_error("redis-server survived SIGKILL");
}

std::string RedisServer::url() const {
  std::string url = options_.tls ? "rediss://" : "redis://";
  if (!options_.password.empty()) url += ":" + url_encode(options_.password) + "@";
  return url + "127.0.0.1:" + std::to_string(port_);
}

std::string RedisServer::cli(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {find_on_path("redis-cli"), "-h", "127.0.0.1", "-p",
                                   std::to_string(port_)};
  if (options_.tls) {
    const auto& ca = options_.tls_cert.empty() ? test_certificate().cert : options_.tls_cert;
    argv.insert(argv.end(), {"--tls", "--cacert", ca});
  }
  if (!options_.password.empty())
    argv.insert(argv.end(), {"-a", options_.password, "--no-auth-warning"});
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, {}, 30s).output;
}

}  // namespace pa::test
