// Fuzzes what the server does with the Claude CLI's stdout: the input is a chunk of stdout, split
// into lines at '\n' the way agent::ChildProcess delivers them, and each line goes through
// AgentRun::on_line's steps: agent::inspect_cli_line, then either the verbatim JSON line or a
// {"type":"raw"} wrapper of its sanitized text is published (spliced into an agent_message
// envelope) and appended to the project's history.
//
// (ChildProcess's line splitter itself is not fuzzed: it is a private part of the process object
// and cannot run without a child.)
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/run_options.hpp"
#include "protocol/envelope.hpp"
#include "protocol/utf8.hpp"
#include "support.hpp"

namespace {

namespace json = boost::json;
using pa::fuzz::check;
using pa::fuzz::is_json;

constexpr std::size_t kMaxLinesPerInput = 64;

// Project::publish_raw: the history entry (checked once per input, see below), then the envelope
// every subscriber gets.
void publish(std::vector<pa::fuzz::HistoryMessage>& history, std::string_view history_json,
             std::string_view data_json) {
  history.push_back({pa::history::Direction::kClaude, std::string(history_json)});
  const std::string text = pa::protocol::serialize(
      pa::protocol::Outgoing{"agent_message", "p1", std::nullopt, 1, "2024-01-01T00:00:00.000Z"},
      data_json);
  check(is_json(text), "agent_message envelope is not JSON");
  check(pa::protocol::is_valid_utf8(text), "agent_message is not valid UTF-8 (not a text frame)");
}

void on_line(std::vector<pa::fuzz::HistoryMessage>& history, std::string_view line) {
  const pa::agent::CliLine parsed = pa::agent::inspect_cli_line(line);
  if (!parsed.is_json_object) {
    check(parsed.type.empty() && !parsed.is_result && parsed.errors.empty(), "non-JSON fields");
    const std::string raw =
        json::serialize(json::object{{"type", "raw"}, {"text", pa::protocol::sanitize_utf8(line)}});
    publish(history, raw, raw);
    return;
  }
  check(parsed.is_result == (parsed.type == "result"), "is_result");
  for (const auto& e : parsed.errors) check(!e.empty(), "an error serialized to nothing");
  // An empty line is not a JSON object, so the history never gets an empty message.
  publish(history, line, line);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  std::vector<pa::fuzz::HistoryMessage> history;
  for (std::size_t n = 0; !rest.empty() && n < kMaxLinesPerInput; ++n) {
    const std::size_t nl = rest.find('\n');
    on_line(history, rest.substr(0, nl));
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
  }
  pa::fuzz::check_history_round_trip(history);
  return 0;
}
