#include "server/catch_up_frames.hpp"

#include <boost/json.hpp>

#include "protocol/envelope.hpp"
#include "protocol/json_text.hpp"

namespace pa::server {

namespace json = boost::json;

namespace {

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.substr(0, prefix.size()) == prefix;
}
bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// The message's own bytes inside the entry. MessageLog writes an entry as
// {"seq":N,"timestamp":"T","direction":"D","message":<message as given><trailer>} where the
// trailer is a run's spool mark (,"run":{...}). Where the layout is as expected the bytes are
// taken as they are (a CLI line is not re-serialized); otherwise the parsed message is.
std::string raw_message(std::string_view entry, const json::object& parsed, std::uint64_t seq,
                        std::string_view timestamp, std::string_view direction) {
  const std::string head = "{\"seq\":" + std::to_string(seq) + ",\"timestamp\":\"" +
                           std::string(timestamp) + "\",\"direction\":\"" + std::string(direction) +
                           "\",\"message\":";
  std::string tail = "}";
  if (const auto* run = parsed.if_contains("run")) tail = ",\"run\":" + json::serialize(*run) + "}";
  const bool only_known_keys = parsed.size() == (parsed.contains("run") ? 5u : 4u);
  if (only_known_keys && starts_with(entry, head) && ends_with(entry, tail) &&
      entry.size() > head.size() + tail.size()) {
    return std::string(entry.substr(head.size(), entry.size() - head.size() - tail.size()));
  }
  return protocol::to_json_text(parsed.at("message"));
}

}  // namespace

RebuiltFrame frame_from_history_entry(std::string_view entry, std::string_view project_id) {
  RebuiltFrame out;
  boost::system::error_code ec;
  const json::value value = json::parse(entry, ec);
  if (ec || !value.is_object()) return out;
  const auto& o = value.get_object();
  const auto* seq = o.if_contains("seq");
  const auto* timestamp = o.if_contains("timestamp");
  const auto* direction = o.if_contains("direction");
  const auto* message = o.if_contains("message");
  if (seq == nullptr || !seq->is_number() || timestamp == nullptr || !timestamp->is_string() ||
      direction == nullptr || !direction->is_string() || message == nullptr) {
    return out;
  }
  const auto n = seq->to_number<std::uint64_t>(ec);
  if (ec || n == 0) return out;
  out.seq = n;
  const std::string_view dir = direction->get_string();
  if (dir != "claude" && dir != "server") return out;  // a client's message: recorded only
  const std::string_view ts = timestamp->get_string();
  std::string raw = raw_message(entry, o, n, ts, dir);
  // Numbers by the rule, as they went out live; an entry an older server wrote may still hold
  // exponent forms (5.07E2). Idempotent, so a live frame's bytes come out again unchanged.
  if (protocol::contains_double(*message)) protocol::normalize_json_numbers(raw);

  std::string_view type = "agent_message";
  std::string_view data_json = raw;
  std::string type_text;
  if (dir == "server" && message->is_object()) {
    const auto& m = message->get_object();
    const auto* t = m.if_contains("type");
    if (m.size() == 2 && t != nullptr && t->is_string() && m.contains("data") &&
        m.at("data").is_object()) {
      // Project::publish wrote {"type":T,"data":D}: the frame is T with data D.
      type_text = std::string(t->get_string());
      const std::string prefix = "{\"type\":" + json::serialize(t->get_string()) + ",\"data\":";
      if (starts_with(raw, prefix) && ends_with(raw, "}")) {
        type = type_text;
        data_json = std::string_view(raw).substr(prefix.size(), raw.size() - prefix.size() - 1);
      } else {
        type = type_text;
        const std::string data = protocol::to_json_text(m.at("data"));
        out.frame = protocol::serialize(protocol::Outgoing{type, project_id, std::nullopt, n, ts},
                                        std::string_view(data));
        return out;
      }
    }
  }
  out.frame =
      protocol::serialize(protocol::Outgoing{type, project_id, std::nullopt, n, ts}, data_json);
  return out;
}

}  // namespace pa::server
