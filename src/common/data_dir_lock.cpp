#include "common/data_dir_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace pa::common {

namespace fs = std::filesystem;

fs::path DataDirLock::path_in(const fs::path& data_dir) {
  return data_dir / "server.lock";
}

namespace {
// The pid the holder wrote, or empty (it may not have written it yet).
std::string read_holder_pid(int fd) {
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return {};
  std::string text(buf, static_cast<std::size_t>(n));
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) return {};
  return text;
}
}  // namespace

std::optional<DataDirLock> DataDirLock::acquire(const fs::path& data_dir, std::string& error) {
  const fs::path path = path_in(data_dir);
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    error = "cannot open the lock file " + path.string() + ": " + std::strerror(errno);
    return std::nullopt;
  }
  int rc;
  do {
    rc = ::flock(fd, LOCK_EX | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    const int err = errno;
    if (err == EWOULDBLOCK) {
      const std::string pid = read_holder_pid(fd);
      error = "the data directory " + data_dir.string() +
              " is in use by another pocket-agent-server (" +
              (pid.empty() ? std::string("pid unknown: it is starting") : "pid " + pid) +
              ", lock " + path.string() +
              "); two servers on one data directory would corrupt its history. Stop that "
              "server, or give this one another --data-dir";
    } else {
      error = "cannot lock " + path.string() + ": " + std::strerror(err);
    }
    ::close(fd);
    return std::nullopt;
  }
  // Ours now: record the pid (a stale one from a crashed server is simply overwritten).
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 ||
      ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    error = "cannot write the lock file " + path.string() + ": " + std::strerror(errno);
    ::close(fd);
    return std::nullopt;
  }
  return DataDirLock(fd);
}

DataDirLock::DataDirLock(DataDirLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

DataDirLock& DataDirLock::operator=(DataDirLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

DataDirLock::~DataDirLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace pa::common
