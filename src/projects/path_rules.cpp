#include "projects/path_rules.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <system_error>

namespace pa::projects {

namespace fs = std::filesystem;

namespace {
protocol::Error invalid(std::string_view requested, std::string reason) {
  boost::json::object details;
  details["path"] = requested;
  details["reason"] = reason;
  return protocol::make_error(protocol::ErrorCode::kInvalidPath,
                              "Invalid project path '" + std::string(requested) + "': " + reason,
                              std::move(details));
}
}  // namespace

bool out_of_descriptors(const std::error_code& ec) {
  return ec == std::errc::too_many_files_open || ec == std::errc::too_many_files_open_in_system;
}

protocol::Error descriptor_exhaustion(std::string_view doing, const std::error_code& ec) {
  const bool system_wide = ec == std::errc::too_many_files_open_in_system;
  boost::json::object details;
  details["reason"] = system_wide ? "ENFILE" : "EMFILE";
  return protocol::make_error(
      protocol::ErrorCode::kInternalError,
      std::string("The server ran out of file descriptors") +
          (system_wide ? " (the system's limit, ENFILE)" : " (its open file limit, EMFILE)") +
          " while " + std::string(doing) +
          "; the operator must raise the limit (ulimit -n, or LimitNOFILE= in the systemd unit)" +
          (system_wide ? " or the system's (fs.file-max)" : "") + ". Retry later",
      std::move(details));
}

std::variant<std::string, protocol::Error> canonical_project_path(std::string_view requested) {
  if (requested.empty()) return invalid(requested, "the path is empty");
  if (requested.find('\0') != std::string_view::npos) {
    return invalid(requested, "the path contains a NUL byte");
  }
  const fs::path p{std::string(requested)};
  if (!p.is_absolute()) return invalid(requested, "the path must be absolute (start with /)");
  std::error_code ec;
  const fs::path canonical = fs::canonical(p, ec);
  if (ec) {
    if (out_of_descriptors(ec)) return descriptor_exhaustion("resolving the path", ec);
    if (ec == std::errc::no_such_file_or_directory) {
      return invalid(requested, "no such directory; create it first");
    }
    return invalid(requested, "cannot resolve it: " + ec.message());
  }
  const auto status = fs::status(canonical, ec);
  if (out_of_descriptors(ec)) return descriptor_exhaustion("resolving the path", ec);
  if (ec) return invalid(requested, "cannot read it: " + ec.message());
  if (!fs::is_directory(status)) return invalid(requested, "it is not a directory");
  return canonical.string();
}

bool paths_nest(std::string_view a, std::string_view b) {
  const auto inside = [](std::string_view outer, std::string_view inner) {
    if (outer == "/") return true;
    return inner.size() > outer.size() && inner.substr(0, outer.size()) == outer &&
           inner[outer.size()] == '/';
  };
  return a == b || inside(a, b) || inside(b, a);
}

int open_directory_no_symlinks(std::string_view path, std::error_code& ec) {
  ec.clear();
  if (path.empty() || path.front() != '/' || path.find('\0') != std::string_view::npos) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return -1;
  }
  constexpr int kFlags = O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  int dir = ::open("/", kFlags);
  if (dir < 0) {
    ec = {errno, std::generic_category()};
    return -1;
  }
  std::size_t pos = 1;
  while (pos < path.size()) {
    const auto slash = path.find('/', pos);
    const auto end = slash == std::string_view::npos ? path.size() : slash;
    const std::string component(path.substr(pos, end - pos));
    pos = end + 1;
    if (component.empty() || component == ".") continue;
    if (component == "..") {  // canonical paths have none; refuse rather than walk upwards
      ::close(dir);
      ec = std::make_error_code(std::errc::invalid_argument);
      return -1;
    }
    const int next = ::openat(dir, component.c_str(), kFlags);
    const int err = errno;
    ::close(dir);
    if (next < 0) {
      // O_NOFOLLOW on a symlink with O_PATH|O_DIRECTORY reports ENOTDIR or ELOOP.
      ec = {err, std::generic_category()};
      return -1;
    }
    dir = next;
  }
  return dir;
}

}  // namespace pa::projects
