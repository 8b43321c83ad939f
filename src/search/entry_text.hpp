// What of a history entry is searchable: a client's prompt (execute), the agent's text and tool
// calls (an assistant line: text blocks, tool_use name and every string in its input) and tool
// results (a user line's tool_result blocks). Server notices, thinking, partial-message events
// and the result line (which repeats the last text) are not.
#pragma once

#include <boost/json/object.hpp>
#include <cstddef>
#include <string>
#include <string_view>

namespace pa::search {

// An entry's searchable text is cut to this many bytes (at a code point): a huge tool result
// (a whole file read) is found by its beginning.
inline constexpr std::size_t kMaxEntryTextBytes = std::size_t{64} * 1024;

// The text of `message` (a history entry's "message") with direction "client", "claude" or
// "server"; empty when nothing in it is searchable. Valid UTF-8; the bytes 0x01 and 0x02 (the
// index's snippet markers) are replaced by spaces.
std::string searchable_text(std::string_view direction, const boost::json::object& message);

}  // namespace pa::search
