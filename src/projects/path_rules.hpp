// Project path rules: absolute, existing directory, compared after canonicalization.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>

#include "protocol/envelope.hpp"

namespace pa::projects {

// The longest path a client may send (a project's path, a file inside it): Linux's PATH_MAX.
inline constexpr std::size_t kMaxPathBytes = 4096;

// The canonical path (symlinks and ".." resolved), or an INVALID_PATH error saying why
// (INTERNAL_ERROR from descriptor_exhaustion() when the server is out of file descriptors).
// Touches the filesystem: call it off the I/O threads.
std::variant<std::string, protocol::Error> canonical_project_path(std::string_view requested);

// True when one canonical path equals, contains or is inside the other (component-wise:
// "/a/b" and "/a/bc" do not nest).
bool paths_nest(std::string_view a, std::string_view b);

// True for "out of file descriptors" (EMFILE: the process's limit, ENFILE: the system's). Such a
// failure says nothing about the path: report it with descriptor_exhaustion(), not INVALID_PATH.
bool out_of_descriptors(const std::error_code& ec);
// INTERNAL_ERROR: the server ran out of file descriptors while `doing` (e.g. "opening the project
// directory"); the message tells the operator to raise the limit. details.reason = "EMFILE" or
// "ENFILE".
protocol::Error descriptor_exhaustion(std::string_view doing, const std::error_code& ec);

// Opens the absolute directory `path` one component at a time without following symlinks
// (O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC). Returns the descriptor, or -1 with `ec` set:
// too_many_symbolic_link_levels / not_a_directory when a component is a symlink or a file;
// too_many_files_open(_in_system) when out of descriptors (out_of_descriptors(ec): not the path's
// fault, report with descriptor_exhaustion()).
// The caller closes the descriptor.
int open_directory_no_symlinks(std::string_view path, std::error_code& ec);

}  // namespace pa::projects
