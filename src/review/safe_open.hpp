// Opening a path inside a project without leaving it: the path is relative, has no ".."
// component, and is resolved by the kernel beneath the project's directory descriptor
// (openat2 with RESOLVE_BENEATH: symlinks inside the project work, one that leads out fails).
// Where openat2 is missing, a component-wise walk with O_NOFOLLOW refuses every symlink.
// Either way the check and the open are one step: no check-then-open race.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "agent/process_spawn.hpp"

namespace pa::review {

using agent::detail::UniqueFd;

// Why `relative` is not an acceptable project-relative path, or nullopt. "" and "." mean the
// project directory itself.
std::optional<std::string> relative_path_problem(std::string_view relative);

struct Opened {
  UniqueFd fd;
  std::string error;   // set when fd is invalid: what went wrong, for the reply
  std::string reason;  // not_found, outside_project, not_accessible, ...
};

enum class Resolver { kAuto, kWalk };

// Opens `relative` (checked with relative_path_problem first) beneath the directory `root`
// (absolute). `flags` are added to O_RDONLY | O_CLOEXEC (e.g. O_DIRECTORY).
Opened open_beneath(const std::string& root, std::string_view relative, int flags,
                    Resolver resolver = Resolver::kAuto);

// The absolute path of an open descriptor (from /proc/self/fd), "" if unknown.
std::string descriptor_path(int fd);

}  // namespace pa::review
