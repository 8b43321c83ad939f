// Project path rules: absolute, existing directory, compared after canonicalization.
#pragma once

#include <string>
#include <string_view>
#include <system_error>
#include <variant>

#include "protocol/envelope.hpp"

namespace pa::projects {

// The canonical path (symlinks and ".." resolved), or an INVALID_PATH error saying why.
// Touches the filesystem: call it off the I/O threads.
std::variant<std::string, protocol::Error> canonical_project_path(std::string_view requested);

// True when one canonical path equals, contains or is inside the other (component-wise:
// "/a/b" and "/a/bc" do not nest).
bool paths_nest(std::string_view a, std::string_view b);

// Opens the absolute directory `path` one component at a time without following symlinks
// (O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC). Returns the descriptor, or -1 with `ec` set:
// too_many_symbolic_link_levels / not_a_directory when a component is a symlink or a file.
// The caller closes the descriptor.
int open_directory_no_symlinks(std::string_view path, std::error_code& ec);

}  // namespace pa::projects
