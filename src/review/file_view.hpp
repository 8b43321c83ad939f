// file_read and file_list: a read-only view of what is inside a project, through open_beneath
// (no ".." , no absolute path, no symlink out of the project) and the server's path policy.
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>

#include "projects/path_policy.hpp"

namespace pa::review {

// Why a path cannot be viewed: `reason` is a short word for clients (invalid, not_found,
// outside_project, refused, not_a_file, not_a_directory, not_accessible, ...).
struct ViewError {
  std::string reason;
  std::string message;  // "<path> <what is wrong>"
};

inline constexpr std::uint64_t kDefaultReadBytes = 256 * 1024;
inline constexpr std::uint64_t kMaxReadBytes = 1024 * 1024;
inline constexpr std::size_t kMaxListEntries = 2000;

struct ReadRequest {
  std::string path;
  std::uint64_t offset = 0;
  std::uint64_t length = kDefaultReadBytes;  // capped at kMaxReadBytes
};

// file_read's reply data: {path, size, offset, length, eof, truncated, binary, content?}.
std::variant<boost::json::object, ViewError> read_file(const std::string& project_dir,
                                                       const projects::PathPolicy& policy,
                                                       const ReadRequest& request);

// file_list's reply data: {path, entries: [{name, kind, size, mtime}], truncated, skipped}.
std::variant<boost::json::object, ViewError> list_directory(const std::string& project_dir,
                                                            const projects::PathPolicy& policy,
                                                            const std::string& path);

// Whether `bytes` is text to show: no NUL byte and valid UTF-8 (an incomplete sequence at the
// very end is allowed when `cut_at_end`: the window may end inside a character).
bool looks_like_text(std::string_view bytes, bool cut_at_end);

}  // namespace pa::review
