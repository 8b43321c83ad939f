// Helpers shared by the fuzz targets.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "history/message_log.hpp"

namespace pa::fuzz {

// Stops the process (libFuzzer reports it as a crash with the input) when `ok` is false.
void check(bool ok, const char* what);

// True when `text` parses as JSON with a depth limit far above anything the server accepts (so
// only syntax is checked, not nesting).
bool is_json(std::string_view text);

// Appends each message to a project history (a MessageLog in a temporary directory) and reads
// them back the way get_messages does: every entry must come back whole, in order. Every message
// the server publishes or records goes through this path, so what is accepted upstream must
// survive it.
struct HistoryMessage {
  history::Direction direction;
  std::string json;
};
void check_history_round_trip(const std::vector<HistoryMessage>& messages);

}  // namespace pa::fuzz
