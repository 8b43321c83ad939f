// One stored history entry ({"seq", "timestamp", "direction", "message"}, docs/protocol.md
// "History") as the review readers need it; entries that are not of that shape are skipped.
#pragma once

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/json_fields.hpp"

namespace pa::review {

struct HistoryEntry {
  boost::json::value doc;  // owns what `message` points into
  std::uint64_t seq = 0;
  std::string direction;
  std::string timestamp;
  const boost::json::object* message = nullptr;
};

// nullopt for a line that is not JSON, has no numeric seq or no message object.
inline std::optional<HistoryEntry> parse_history_entry(std::string_view entry_json) {
  HistoryEntry out;
  boost::system::error_code ec;
  out.doc = boost::json::parse(entry_json, ec);
  if (ec || !out.doc.is_object()) return std::nullopt;
  const auto& e = out.doc.get_object();
  const auto* seq = e.if_contains("seq");
  if (seq == nullptr || !seq->is_number()) return std::nullopt;
  out.seq = seq->to_number<std::uint64_t>(ec);
  if (ec) return std::nullopt;
  out.message = protocol::object_at(e, "message");
  if (out.message == nullptr) return std::nullopt;
  out.direction = protocol::string_at(e, "direction");
  out.timestamp = protocol::string_at(e, "timestamp");
  return out;
}

}  // namespace pa::review
