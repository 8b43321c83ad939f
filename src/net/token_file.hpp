// The generated bearer token, kept in <data_dir>/auth_token (mode 0600) across restarts.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>

namespace pa::net {

// A token is one line; a larger file is refused at start (exit 2) rather than read.
inline constexpr std::size_t kMaxTokenFileBytes = 4096;

std::filesystem::path token_path(const std::filesystem::path& data_dir);
// Reads the token, creating a random 256-bit one (64 hex characters) on first use.
// Throws std::runtime_error when the file cannot be read or written, is not a regular file, is
// larger than kMaxTokenFileBytes, or holds more than one line or a token under 16 characters.
std::string load_or_create_token(const std::filesystem::path& data_dir, bool& created);

}  // namespace pa::net
