#include "projects/metadata_rebuild.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <charconv>
#include <memory>
#include <optional>

#include "history/message_log.hpp"
#include "protocol/clock.hpp"

namespace pa::projects {

namespace fs = std::filesystem;
namespace json = boost::json;

std::string MetadataRecovery::message() const {
  std::string out = "project " + id + ": " + (dir / "project.json").string() + " " + problem;
  if (!kept_as.empty()) out += "; the damaged file is kept as " + kept_as.string();
  if (path_source.empty()) {
    out +=
        "; its path is unknown (neither its history nor the damaged file names it): it is "
        "listed and its history is readable, but it cannot run; delete it and create it again";
  } else {
    out += "; rebuilt from its " + path_source;
    out += saved ? "" : " (the rebuilt project.json could not be written; kept in memory)";
  }
  return out;
}

namespace {

// Position just after `"key"` followed by optional spaces and a colon, and spaces; npos if none.
std::size_t value_start(std::string_view text, std::string_view key, std::size_t from = 0) {
  const std::string quoted = "\"" + std::string(key) + "\"";
  for (std::size_t at = text.find(quoted, from); at != std::string_view::npos;
       at = text.find(quoted, at + 1)) {
    std::size_t i = at + quoted.size();
    while (i < text.size() &&
           (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
      ++i;
    if (i >= text.size() || text[i] != ':') continue;
    ++i;
    while (i < text.size() &&
           (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
      ++i;
    return i;
  }
  return std::string_view::npos;
}

const json::object* object_at(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_object() ? &v->get_object() : nullptr;
}

std::optional<std::string> string_at(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) return std::nullopt;
  return std::string(v->get_string());
}

// What one history entry says about the session: nullopt = nothing; a value = the session id
// then (an empty string: none, as after session_reset or a state without one).
std::optional<std::string> session_of(const json::object& entry) {
  const auto direction = string_at(entry, "direction");
  const auto* message = object_at(entry, "message");
  if (!direction || message == nullptr) return std::nullopt;
  const auto type = string_at(*message, "type").value_or("");
  if (*direction == "claude") {
    // The CLI's system/init and result lines carry the session they belong to.
    const bool init = type == "system" && string_at(*message, "subtype") == "init";
    if (init || type == "result") return string_at(*message, "session_id");
    return std::nullopt;
  }
  if (*direction != "server") return std::nullopt;
  if (type == "session_reset") return std::string();
  if (type == "project_state") {
    const auto* data = object_at(*message, "data");
    if (data == nullptr || data->if_contains("session_id") == nullptr) return std::nullopt;
    return string_at(*data, "session_id").value_or("");
  }
  return std::nullopt;
}

// The project's path as a project_state entry of this project shows it.
std::optional<std::string> path_of(const json::object& entry, const std::string& id) {
  if (string_at(entry, "direction") != "server") return std::nullopt;
  const auto* message = object_at(entry, "message");
  if (message == nullptr || string_at(*message, "type") != "project_state") return std::nullopt;
  const auto* data = object_at(*message, "data");
  if (data == nullptr) return std::nullopt;
  const auto entry_id = string_at(*data, "id");
  if (entry_id && *entry_id != id) return std::nullopt;
  auto path = string_at(*data, "path");
  if (!path || path->empty() || path->front() != '/') return std::nullopt;
  return path;
}

std::optional<std::uint64_t> seq_of(const json::object& entry) {
  const auto* seq = entry.if_contains("seq");
  if (seq == nullptr) return std::nullopt;
  if (seq->is_uint64()) return seq->get_uint64();
  if (seq->is_int64() && seq->get_int64() >= 0) return static_cast<std::uint64_t>(seq->get_int64());
  return std::nullopt;
}

std::optional<json::object> parse_entry(const std::string& text) {
  json::error_code ec;
  auto v = json::parse(text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.get_object());
}

}  // namespace

std::optional<std::string> salvage_string(std::string_view text, std::string_view key) {
  const std::size_t start = value_start(text, key);
  if (start == std::string_view::npos || start >= text.size() || text[start] != '"')
    return std::nullopt;
  for (std::size_t i = start + 1; i < text.size(); ++i) {
    if (text[i] == '\\') {
      ++i;
      continue;
    }
    if (text[i] == '"') {
      json::error_code ec;
      const auto v = json::parse(text.substr(start, i + 1 - start), ec);
      if (ec || !v.is_string()) return std::nullopt;
      return std::string(v.get_string());
    }
  }
  return std::nullopt;  // cut off inside the string
}

std::optional<std::uint64_t> salvage_uint(std::string_view text, std::string_view key) {
  const std::size_t start = value_start(text, key);
  if (start == std::string_view::npos) return std::nullopt;
  std::uint64_t value = 0;
  const auto* first = text.data() + start;
  const auto* last = text.data() + text.size();
  const auto [end, ec] = std::from_chars(first, last, value);
  // A number cut off by the end of the text may be missing digits: not trusted.
  if (ec != std::errc() || end == first || end == last) return std::nullopt;
  const char next = *end;
  if (next != ',' && next != '}' && next != ' ' && next != '\n' && next != '\r' && next != '\t')
    return std::nullopt;
  return value;
}

ProjectInfo rebuild_metadata(const std::string& id, const fs::path& logs_dir,
                             std::string_view damaged, RebuildSources& sources,
                             std::vector<std::string>& warnings) {
  ProjectInfo info;
  info.id = id;
  sources = {};

  std::optional<std::string> path;
  std::optional<std::string> session;  // decided (empty string: none)
  std::string first_timestamp;
  std::string last_timestamp;
  std::uint64_t last_seq = 0;

  std::error_code ec;
  std::vector<std::string> log_warnings;
  std::unique_ptr<history::MessageLog> log;
  if (fs::exists(logs_dir, ec)) {
    log = history::MessageLog::open(logs_dir, history::Options{}, log_warnings, ec);
    if (ec)
      warnings.push_back("cannot read the history in " + logs_dir.string() + ": " + ec.message());
  }
  if (log) {
    last_seq = log->last_seq();
    constexpr std::size_t kPage = 512;
    // Oldest first: created_at, and the path from the first project_state (the one the create
    // answered with).
    history::Query forward;
    forward.limit = kPage;
    for (bool more = true; more && !path;) {
      const auto page = log->read(forward, log_warnings);
      const auto cursor = forward.after_seq;
      for (const auto& text : page.entries) {
        const auto entry = parse_entry(text);
        if (!entry) continue;
        if (first_timestamp.empty()) first_timestamp = string_at(*entry, "timestamp").value_or("");
        if (const auto seq = seq_of(*entry)) forward.after_seq = *seq;
        if (!path) path = path_of(*entry, id);
        if (path) break;
      }
      more = page.has_more && forward.after_seq != cursor;
    }
    // Newest first: last_active, and the session the latest entry that speaks of one names.
    history::Query backward;
    backward.limit = kPage;
    backward.before_seq = last_seq + 1;
    for (bool more = true; more && !session;) {
      const auto page = log->read(backward, log_warnings);
      for (auto it = page.entries.rbegin(); it != page.entries.rend(); ++it) {
        const auto entry = parse_entry(*it);
        if (!entry) continue;
        if (last_timestamp.empty()) last_timestamp = string_at(*entry, "timestamp").value_or("");
        session = session_of(*entry);
        if (session) break;
      }
      if (page.entries.empty()) break;
      const auto first = parse_entry(page.entries.front());
      const auto seq = first ? seq_of(*first) : std::nullopt;
      if (!seq) break;
      backward.before_seq = *seq;
      more = page.has_more;
    }
  }
  for (auto& w : log_warnings) warnings.push_back(std::move(w));

  if (path) {
    sources.path = "history";
  } else if (auto salvaged = salvage_string(damaged, "path");
             salvaged && !salvaged->empty() && salvaged->front() == '/') {
    path = std::move(salvaged);
    sources.path = "damaged file";
  }
  info.path = path.value_or("");
  if (session && !session->empty()) info.session_id = *session;
  if (!session) {
    if (auto salvaged = salvage_string(damaged, "session_id"); salvaged && !salvaged->empty())
      info.session_id = std::move(salvaged);
  }
  const auto valid_time = [](const std::optional<std::string>& t) {
    return t && protocol::parse_rfc3339(*t).has_value();
  };
  if (!first_timestamp.empty()) {
    info.created_at = first_timestamp;
  } else if (auto t = salvage_string(damaged, "created_at"); valid_time(t)) {
    info.created_at = *t;
  } else {
    info.created_at = protocol::now_rfc3339();
  }
  if (!last_timestamp.empty()) {
    info.last_active = last_timestamp;
  } else if (auto t = salvage_string(damaged, "last_active"); valid_time(t)) {
    info.last_active = *t;
  } else {
    info.last_active = info.created_at;
  }
  // Seqs must never repeat: the highest the history or the damaged file knows.
  info.seq_mark = std::max(last_seq, salvage_uint(damaged, "last_seq").value_or(0));
  return info;
}

}  // namespace pa::projects
