// Crash-safe small-file writes: temp file in the same directory, write, fsync, rename over the
// target, fsync the directory. After return the new content survives a crash or power loss.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace pa::common {

std::error_code write_file_atomically(const std::filesystem::path& path, std::string_view content,
                                      mode_t mode);
std::error_code fsync_directory(const std::filesystem::path& dir);
// Removes the temporary files write_file_atomically() leaves when the process is killed between
// creating and renaming one (".<name>.tmp.XXXXXX" directly in `dir`). Returns the names removed.
std::vector<std::string> remove_atomic_temp_files(const std::filesystem::path& dir);
// True for the name of such a temporary file.
bool is_atomic_temp_name(std::string_view name);
// Reads a whole (small) file; ec set on failure.
std::string read_small_file(const std::filesystem::path& path, std::error_code& ec);

}  // namespace pa::common
