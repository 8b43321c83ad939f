#include "review/file_view.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json/array.hpp>
#include <cerrno>
#include <cstring>

#include "protocol/clock.hpp"
#include "protocol/utf8.hpp"
#include "review/safe_open.hpp"

namespace pa::review {

namespace json = boost::json;

namespace {
ViewError error_for(const std::string& path, const Opened& opened) {
  return ViewError{opened.reason, "'" + path + "' " + opened.error};
}

// The path policy applies inside a project too: the server's data directory might lie in it.
std::optional<ViewError> policy_problem(const projects::PathPolicy& policy, int fd,
                                        const std::string& path) {
  const std::string real = descriptor_path(fd);
  if (real.empty()) return ViewError{"cannot_open", "'" + path + "' cannot be resolved"};
  if (auto reason = policy.refusal(real)) {
    return ViewError{"refused",
                     "'" + path + "' is refused by the server's path policy: " + *reason};
  }
  return std::nullopt;
}

std::string mtime_text(const struct stat& st) {
  const auto since_epoch =
      std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec);
  return protocol::format_rfc3339(std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(since_epoch)));
}

// Length of the complete UTF-8 text in `bytes` when the last character may be cut.
std::size_t complete_utf8_prefix(std::string_view bytes) {
  std::size_t back = 0;
  while (back < bytes.size() && back < 4) {
    const auto c = static_cast<unsigned char>(bytes[bytes.size() - 1 - back]);
    if ((c & 0xC0) != 0x80) {
      const std::size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
      return need > back + 1 ? bytes.size() - back - 1 : bytes.size();
    }
    ++back;
  }
  return bytes.size();
}
}  // namespace

bool looks_like_text(std::string_view bytes, bool cut_at_end) {
  if (bytes.find('\0') != std::string_view::npos) return false;
  if (cut_at_end) bytes = bytes.substr(0, complete_utf8_prefix(bytes));
  return protocol::is_valid_utf8(bytes);
}

std::variant<json::object, ViewError> read_file(const std::string& project_dir,
                                                const projects::PathPolicy& policy,
                                                const ReadRequest& request) {
  auto opened = open_beneath(project_dir, request.path, 0);
  if (!opened.fd.valid()) return error_for(request.path, opened);
  if (auto problem = policy_problem(policy, opened.fd.get(), request.path)) return *problem;
  struct stat st {};
  if (::fstat(opened.fd.get(), &st) != 0) {
    return ViewError{"cannot_open",
                     "'" + request.path + "' cannot be read: " + std::strerror(errno)};
  }
  if (S_ISDIR(st.st_mode)) {
    return ViewError{"not_a_file", "'" + request.path + "' is a directory; list it with file_list"};
  }
  if (!S_ISREG(st.st_mode)) {
    return ViewError{"not_a_file", "'" + request.path + "' is not a regular file"};
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  const std::uint64_t offset = std::min(request.offset, size);
  const std::uint64_t wanted = std::min({request.length, kMaxReadBytes, size - offset});
  std::string bytes(wanted, '\0');
  std::size_t got = 0;
  while (got < wanted) {
    const auto n = ::pread(opened.fd.get(), bytes.data() + got, wanted - got,
                           static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return ViewError{"cannot_open",
                       "'" + request.path + "' cannot be read: " + std::strerror(errno)};
    }
    if (n == 0) break;  // the file shrank meanwhile
    got += static_cast<std::size_t>(n);
  }
  bytes.resize(got);
  const bool eof = offset + got >= size;
  // A window may end inside a character: the rest of it comes with the next offset.
  const bool text = looks_like_text(bytes, !eof);
  if (text && !eof) bytes.resize(complete_utf8_prefix(bytes));
  json::object out{{"path", request.path.empty() ? "." : request.path},
                   {"size", size},
                   {"offset", offset},
                   {"length", text ? bytes.size() : got},
                   {"eof", text ? offset + bytes.size() >= size : eof},
                   {"truncated", offset + (text ? bytes.size() : got) < size},
                   {"binary", !text},
                   {"mtime", mtime_text(st)}};
  if (text) out["content"] = std::move(bytes);
  return out;
}

std::variant<json::object, ViewError> list_directory(const std::string& project_dir,
                                                     const projects::PathPolicy& policy,
                                                     const std::string& path) {
  auto opened = open_beneath(project_dir, path, O_DIRECTORY);
  if (!opened.fd.valid()) {
    if (opened.reason == "not_a_directory") {
      return ViewError{"not_a_directory",
                       "'" + path + "' is not a directory; read it with file_read"};
    }
    return error_for(path, opened);
  }
  if (auto problem = policy_problem(policy, opened.fd.get(), path)) return *problem;
  DIR* dir = ::fdopendir(opened.fd.get());
  if (dir == nullptr) {
    return ViewError{"cannot_open", "'" + path + "' cannot be listed: " + std::strerror(errno)};
  }
  opened.fd.release();  // the DIR owns it now
  struct Entry {
    std::string name;
    json::object json;
  };
  std::vector<Entry> entries;
  std::uint64_t skipped = 0;
  bool truncated = false;
  while (const dirent* d = ::readdir(dir)) {
    const std::string name = d->d_name;
    if (name == "." || name == "..") continue;
    // A name that is not UTF-8 cannot travel in JSON text; it is counted instead.
    if (!protocol::is_valid_utf8(name)) {
      ++skipped;
      continue;
    }
    if (entries.size() >= kMaxListEntries) {
      truncated = true;
      break;
    }
    struct stat st {};
    json::object entry{{"name", name}};
    if (::fstatat(::dirfd(dir), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      entry["kind"] = "other";
      entry["size"] = nullptr;
      entry["mtime"] = nullptr;
    } else {
      entry["kind"] = S_ISREG(st.st_mode)   ? "file"
                      : S_ISDIR(st.st_mode) ? "dir"
                      : S_ISLNK(st.st_mode) ? "symlink"
                                            : "other";
      entry["size"] = static_cast<std::uint64_t>(st.st_size);
      entry["mtime"] = mtime_text(st);
    }
    entries.push_back(Entry{name, std::move(entry)});
  }
  ::closedir(dir);
  // Directories first, then by name: the order a file browser shows.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    const bool a_dir = a.json.at("kind") == "dir", b_dir = b.json.at("kind") == "dir";
    if (a_dir != b_dir) return a_dir;
    return a.name < b.name;
  });
  json::array list;
  for (auto& e : entries) list.push_back(std::move(e.json));
  return json::object{{"path", path.empty() ? "." : path},
                      {"entries", std::move(list)},
                      {"truncated", truncated},
                      {"skipped", skipped}};
}

}  // namespace pa::review
