#include "support/model_stub.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace pa::test {

namespace json = boost::json;
using namespace std::chrono_literals;

std::string find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (dir.empty()) continue;
    const std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

ModelStub::ModelStub(std::string node, std::string script)
    : node_(std::move(node)), script_(std::move(script)) {}

ModelStub::~ModelStub() {
  if (stdin_fd_ >= 0) ::close(stdin_fd_);  // the stub exits at EOF on stdin
  if (pid_ > 0) {
    std::unique_lock lock(mutex_);
    if (!cv_.wait_for(lock, 5s, [&] { return eof_; })) ::kill(pid_, SIGKILL);
    lock.unlock();
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  if (reader_.joinable()) reader_.join();
}

void ModelStub::start(std::chrono::milliseconds deadline) {
  int out[2];
  int in[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(in, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe failed");
  }
  std::vector<std::string> argv = {node_, script_};
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(out[1], 2);
    ::execve(args[0], args.data(), environ);
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(in[0]);
  stdin_fd_ = in[1];
  reader_ = std::thread([this, fd = out[0]] { reader_loop(fd); });
  const auto listening = wait_for(
      [](const json::object& e) {
        const auto* ev = e.if_contains("event");
        return ev != nullptr && ev->is_string() && ev->get_string() == "listening";
      },
      deadline);
  if (!listening) throw std::runtime_error("the model stub did not start: " + other_output());
  port_ = static_cast<unsigned short>(listening->at("port").to_number<int>());
}

void ModelStub::reader_loop(int fd) {
  std::string pending;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    pending.append(buf, static_cast<std::size_t>(n));
    std::size_t pos;
    while ((pos = pending.find('\n')) != std::string::npos) {
      const std::string line = pending.substr(0, pos);
      pending.erase(0, pos + 1);
      boost::system::error_code ec;
      auto value = json::parse(line, ec);
      std::lock_guard lock(mutex_);
      if (!ec && value.is_object()) {
        events_.push_back(std::move(value.get_object()));
      } else {
        other_ += line + "\n";
      }
      cv_.notify_all();
    }
  }
  ::close(fd);
  std::lock_guard lock(mutex_);
  other_ += pending;
  eof_ = true;
  cv_.notify_all();
}

std::vector<json::object> ModelStub::events() const {
  std::lock_guard lock(mutex_);
  return events_;
}

std::vector<json::object> ModelStub::message_requests() const {
  std::vector<json::object> out;
  for (auto& e : events()) {
    const auto* ev = e.if_contains("event");
    const auto* method = e.if_contains("method");
    const auto* url = e.if_contains("url");
    if (ev == nullptr || !ev->is_string() || ev->get_string() != "request") continue;
    if (method == nullptr || !method->is_string() || method->get_string() != "POST") continue;
    if (url == nullptr || !url->is_string()) continue;
    const std::string_view u = url->get_string();
    if (u.substr(0, u.find('?')) == "/v1/messages") out.push_back(e);
  }
  return out;
}

std::optional<json::object> ModelStub::wait_for(
    const std::function<bool(const json::object&)>& predicate, std::chrono::milliseconds deadline) {
  std::unique_lock lock(mutex_);
  std::size_t checked = 0;
  std::optional<json::object> found;
  cv_.wait_for(lock, deadline, [&] {
    for (; checked < events_.size(); ++checked) {
      if (predicate(events_[checked])) {
        found = events_[checked];
        return true;
      }
    }
    return eof_;
  });
  return found;
}

std::string ModelStub::other_output() const {
  std::lock_guard lock(mutex_);
  return other_;
}

}  // namespace pa::test
