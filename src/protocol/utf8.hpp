// Text from a child process may not be valid UTF-8; WebSocket text frames must be.
#pragma once

#include <string>
#include <string_view>

namespace pa::protocol {

bool is_valid_utf8(std::string_view text);
// Replaces each invalid sequence with U+FFFD.
std::string sanitize_utf8(std::string_view text);

}  // namespace pa::protocol
