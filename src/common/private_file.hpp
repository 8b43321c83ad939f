// Reading a small private file of the data dir (the auth token, the VAPID key): refuses what such
// a file cannot be (not a regular file), never loads a huge one, and tightens loose permissions
// (a copy restored with 0644) to 0600.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>

namespace pa::common {

// At most max_bytes + 1 bytes of the file, so a caller can tell "too large" without reading it
// all. Throws std::runtime_error ("cannot read <path>: <why>") when it cannot be read or is not a
// regular file.
std::string read_private_file(const std::filesystem::path& path, std::size_t max_bytes);

}  // namespace pa::common
