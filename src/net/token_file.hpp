// The generated bearer token, kept in <data_dir>/auth_token (mode 0600) across restarts.
#pragma once

#include <filesystem>
#include <string>

namespace pa::net {

std::filesystem::path token_path(const std::filesystem::path& data_dir);
// Reads the token, creating a random 256-bit one (64 hex characters) on first use.
// Throws std::runtime_error when the file cannot be read or written.
std::string load_or_create_token(const std::filesystem::path& data_dir, bool& created);

}  // namespace pa::net
