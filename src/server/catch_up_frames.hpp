// The live frame a history entry was broadcast as, rebuilt from the entry (a lagging subscriber's
// catch-up, SubscriberCursor). Byte for byte what Project sent live:
//  - direction "claude": agent_message whose data is the CLI's line;
//  - direction "server", message {"type":T,"data":D} (Project::publish): T with data D;
//  - direction "server", any other message (a run's oversized_line notice): agent_message;
//  - direction "client": recorded only, never broadcast (no frame).
// Each with the entry's seq and timestamp and no request_id, and its numbers by the rule of
// protocol/json_text.hpp (an entry written by an older server may hold exponent forms).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pa::server {

struct RebuiltFrame {
  std::uint64_t seq = 0;             // 0: the entry could not be read
  std::optional<std::string> frame;  // nothing: not a broadcast
};

RebuiltFrame frame_from_history_entry(std::string_view entry, std::string_view project_id);

}  // namespace pa::server
