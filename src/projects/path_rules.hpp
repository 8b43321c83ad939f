// Project path rules: absolute, existing directory, compared after canonicalization.
#pragma once

#include <string>
#include <string_view>
#include <variant>

#include "protocol/envelope.hpp"

namespace pa::projects {

// The canonical path (symlinks and ".." resolved), or an INVALID_PATH error saying why.
// Touches the filesystem: call it off the I/O threads.
std::variant<std::string, protocol::Error> canonical_project_path(std::string_view requested);

// True when one canonical path equals, contains or is inside the other (component-wise:
// "/a/b" and "/a/bc" do not nest).
bool paths_nest(std::string_view a, std::string_view b);

}  // namespace pa::projects
