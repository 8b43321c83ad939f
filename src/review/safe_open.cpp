#include "review/safe_open.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace pa::review {

namespace {
constexpr std::size_t kMaxRelativeBytes = 4096;

Opened failure(int err) {
  Opened out;
  switch (err) {
    case ENOENT:
      out.reason = "not_found";
      out.error = "does not exist";
      break;
    case EXDEV:
    case ELOOP:
      out.reason = "outside_project";
      out.error = "leads out of the project (a symbolic link to outside it)";
      break;
    case ENOTDIR:
      out.reason = "not_a_directory";
      out.error = "has a component that is not a directory";
      break;
    case EACCES:
    case EPERM:
      out.reason = "not_accessible";
      out.error = "is not accessible (permission denied)";
      break;
    default:
      out.reason = "cannot_open";
      out.error = std::string("cannot be opened (") + std::strerror(err) + ")";
  }
  return out;
}

std::string normalized(std::string_view relative) {
  return relative.empty() ? std::string(".") : std::string(relative);
}

// openat2 beneath `dir`; ENOSYS when the kernel lacks it.
int open_resolved(int dir, const std::string& path, int flags) {
  open_how how{};
  how.flags = static_cast<std::uint64_t>(flags);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  for (;;) {
    const long fd = ::syscall(SYS_openat2, dir, path.c_str(), &how, sizeof how);
    if (fd >= 0 || errno != EAGAIN) return static_cast<int>(fd);
  }
}

// One component at a time, none of them a symlink.
int open_walk(int dir, const std::string& path, int flags) {
  UniqueFd current(::fcntl(dir, F_DUPFD_CLOEXEC, 0));
  if (!current.valid()) return -1;
  std::size_t start = 0;
  for (;;) {
    auto slash = path.find('/', start);
    const bool last = slash == std::string::npos;
    const std::string part = path.substr(start, last ? std::string::npos : slash - start);
    start = last ? path.size() : slash + 1;
    if (part.empty() || part == ".") {
      if (!last) continue;
      return ::openat(current.get(), ".", flags | O_NOFOLLOW);
    }
    const int next = ::openat(current.get(), part.c_str(),
                              (last ? flags : (O_RDONLY | O_CLOEXEC | O_DIRECTORY)) | O_NOFOLLOW);
    if (next < 0) {
      // With O_DIRECTORY a symlink fails as ENOTDIR: say that it was a symlink.
      struct stat st {};
      if (errno == ENOTDIR &&
          ::fstatat(current.get(), part.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISLNK(st.st_mode)) {
        errno = ELOOP;
      }
      return -1;
    }
    if (last) return next;
    current.reset(next);
  }
}
}  // namespace

std::optional<std::string> relative_path_problem(std::string_view relative) {
  if (relative.size() > kMaxRelativeBytes) {
    return "is too long (at most " + std::to_string(kMaxRelativeBytes) + " bytes)";
  }
  if (relative.find('\0') != std::string_view::npos) return "must not contain NUL characters";
  if (!relative.empty() && relative.front() == '/') {
    return "must be relative to the project directory, not absolute";
  }
  std::size_t start = 0;
  while (start <= relative.size()) {
    auto slash = relative.find('/', start);
    if (slash == std::string_view::npos) slash = relative.size();
    if (relative.substr(start, slash - start) == "..") return "must not contain '..' components";
    start = slash + 1;
  }
  return std::nullopt;
}

Opened open_beneath(const std::string& root, std::string_view relative, int flags,
                    Resolver resolver) {
  if (auto problem = relative_path_problem(relative)) {
    Opened out;
    out.reason = "invalid";
    out.error = *problem;
    return out;
  }
  // O_NOFOLLOW: a project directory replaced by a symlink since it was created is not followed.
  UniqueFd dir(::open(root.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECTORY | O_NOFOLLOW));
  if (!dir.valid()) {
    Opened out = failure(errno);
    out.reason = "project_directory";
    out.error = "the project directory " + out.error;
    return out;
  }
  const std::string path = normalized(relative);
  const int all_flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | flags;
  int fd = -1;
  if (resolver == Resolver::kAuto) {
    fd = open_resolved(dir.get(), path, all_flags);
    if (fd < 0 && (errno == ENOSYS || errno == EPERM)) fd = -2;  // no openat2 (or seccomp)
  }
  if (resolver == Resolver::kWalk || fd == -2) {
    fd = open_walk(dir.get(), path, all_flags);
    if (fd < 0 && errno == ELOOP) {
      Opened out;
      out.reason = "symlink";
      out.error =
          "passes through a symbolic link, which this server refuses (the kernel has no openat2 "
          "to resolve links safely beneath the project)";
      return out;
    }
  }
  if (fd < 0) return failure(errno);
  Opened out;
  out.fd = UniqueFd(fd);
  return out;
}

std::string descriptor_path(int fd) {
  char buffer[4096];
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  const auto n = ::readlink(link.c_str(), buffer, sizeof buffer);
  if (n <= 0 || static_cast<std::size_t>(n) >= sizeof buffer) return {};
  return std::string(buffer, static_cast<std::size_t>(n));
}

}  // namespace pa::review
