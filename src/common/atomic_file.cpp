#include "common/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

namespace pa::common {

namespace {
std::error_code last_error() {
  return {errno, std::generic_category()};
}

std::error_code write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return last_error();
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}
}  // namespace

std::error_code fsync_directory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return last_error();
  std::error_code ec;
  if (::fsync(fd) != 0) ec = last_error();
  ::close(fd);
  return ec;
}

std::error_code write_file_atomically(const std::filesystem::path& path, std::string_view content,
                                      mode_t mode) {
  const auto dir = path.parent_path();
  std::string tmp_template = (dir / ("." + path.filename().string() + ".tmp.XXXXXX")).string();
  const int fd = ::mkostemp(tmp_template.data(), O_CLOEXEC);
  if (fd < 0) return last_error();
  std::error_code ec;
  if (::fchmod(fd, mode) != 0) ec = last_error();
  if (!ec) ec = write_all(fd, content);
  if (!ec && ::fsync(fd) != 0) ec = last_error();
  if (::close(fd) != 0 && !ec) ec = last_error();
  if (!ec && ::rename(tmp_template.c_str(), path.c_str()) != 0) ec = last_error();
  if (ec) {
    ::unlink(tmp_template.c_str());
    return ec;
  }
  return fsync_directory(dir);
}

bool is_atomic_temp_name(std::string_view name) {
  // "." + target name + ".tmp." + the six characters mkostemp chose.
  constexpr std::string_view kMark = ".tmp.";
  if (name.size() < 1 + 1 + kMark.size() + 6 || name.front() != '.') return false;
  return name.substr(name.size() - 6 - kMark.size(), kMark.size()) == kMark;
}

std::vector<std::string> remove_atomic_temp_files(const std::filesystem::path& dir) {
  std::vector<std::string> removed;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code tec;
    if (!is_atomic_temp_name(name) || !it->is_regular_file(tec)) continue;
    if (std::filesystem::remove(it->path(), tec)) removed.push_back(name);
  }
  if (!removed.empty()) fsync_directory(dir);
  return removed;
}

std::string read_small_file(const std::filesystem::path& path, std::error_code& ec) {
  ec.clear();
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ec = std::make_error_code(std::errc::no_such_file_or_directory);
    if (std::filesystem::exists(path)) ec = std::make_error_code(std::errc::permission_denied);
    return {};
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace pa::common
