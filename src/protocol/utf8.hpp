// Text from a child process may not be valid UTF-8; WebSocket text frames must be.
#pragma once

#include <string>
#include <string_view>

namespace pa::protocol {

bool is_valid_utf8(std::string_view text);
// Replaces each invalid sequence with U+FFFD.
std::string sanitize_utf8(std::string_view text);
// C0, DEL or C1 controls (U+0080..U+009F, UTF-8 C2 80..C2 9F; NEL is a line break to some
// readers). Ids and names end up in logs and replies: a newline could forge a log line.
bool has_control_characters(std::string_view text);
// `text` (valid UTF-8) in at most `max_bytes`: cut at a code point boundary, with "…" at the cut.
std::string shorten_utf8(std::string_view text, std::size_t max_bytes);

}  // namespace pa::protocol
