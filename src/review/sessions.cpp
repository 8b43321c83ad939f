#include "review/sessions.hpp"

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>

#include "protocol/json_fields.hpp"
#include "review/history_entry.hpp"

namespace pa::review {

namespace json = boost::json;

using protocol::object_at;
using protocol::string_at;

std::string first_chars(std::string_view text, std::size_t max_chars, bool& cut) {
  std::size_t chars = 0, i = 0;
  while (i < text.size()) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {
      if (chars == max_chars) break;
      ++chars;
    }
    ++i;
  }
  cut = i < text.size();
  return std::string(text.substr(0, i));
}

void SessionList::close_run() {
  if (!run_) return;
  if (run_->session) {
    auto [it, added] = index_.emplace(*run_->session, sessions_.size());
    if (added) {
      Session s;
      s.id = *run_->session;
      s.first_prompt = run_->prompt;
      s.started = run_->started;
      s.first_seq = run_->seq;
      sessions_.push_back(std::move(s));
    }
    Session& s = sessions_[it->second];
    ++s.runs;
    s.cost += run_->cost;
  }
  run_.reset();
}

void SessionList::add_entry(std::string_view entry_json) {
  const auto entry = parse_history_entry(entry_json);
  if (!entry) return;
  const std::uint64_t seq = entry->seq;
  const json::object* message = entry->message;
  const std::string& direction = entry->direction;
  const std::string type = string_at(*message, "type");
  if (direction == "client" && type == "execute") {
    const auto* data = object_at(*message, "data");
    const bool follow_up = data != nullptr && string_at(*data, "mode") == "queue";
    if (follow_up && run_) return;  // part of the run in progress
    close_run();
    run_ = Run{data != nullptr ? string_at(*data, "prompt") : "", entry->timestamp, seq,
               std::nullopt, 0};
    return;
  }
  if (direction != "claude") return;
  const std::string session = string_at(*message, "session_id");
  if (session.empty()) return;
  if (!run_) run_ = Run{"", entry->timestamp, seq, std::nullopt, 0};  // e.g. restored
  if (run_->session != session) {
    // A resume that continued under a new id: the run goes on in the new session.
    if (run_->session) {
      const std::string prompt = run_->prompt;
      close_run();
      run_ = Run{prompt, entry->timestamp, seq, std::nullopt, 0};
    }
    run_->session = session;
  }
  auto [it, added] = index_.emplace(session, sessions_.size());
  if (added) {
    Session s;
    s.id = session;
    s.first_prompt = run_->prompt;
    s.started = run_->started;
    s.first_seq = run_->seq;
    sessions_.push_back(std::move(s));
  }
  Session& s = sessions_[it->second];
  s.ended = entry->timestamp;
  s.last_seq = seq;
  if (type == "result") {
    const auto* cost = message->if_contains("total_cost_usd");
    boost::system::error_code ec;
    const double usd = cost != nullptr && cost->is_number() ? cost->to_number<double>(ec) : 0.0;
    if (!ec) run_->cost = std::max(run_->cost, usd);
  }
}

json::object SessionList::to_json(const std::optional<std::string>& current_session) const {
  // The run still open is counted as if it ended now (a copy: this stays const).
  SessionList closed = *this;
  closed.close_run();
  // Newest activity first; the oldest beyond kMaxSessions are left out.
  auto all = closed.sessions_;
  std::stable_sort(all.begin(), all.end(),
                   [](const Session& x, const Session& y) { return x.last_seq > y.last_seq; });
  const bool truncated = all.size() > kMaxSessions;
  if (truncated) all.resize(kMaxSessions);
  json::array list;
  for (const Session& s : all) {
    bool cut = false;
    auto prompt = first_chars(s.first_prompt, kMaxPromptChars, cut);
    list.push_back(json::object{{"session_id", s.id},
                                {"first_prompt", std::move(prompt)},
                                {"first_prompt_truncated", cut},
                                {"started", s.started},
                                {"ended", s.ended},
                                {"runs", s.runs},
                                {"cost_usd", s.cost},
                                {"first_seq", s.first_seq},
                                {"last_seq", s.last_seq},
                                {"current", current_session == s.id}});
  }
  return json::object{{"sessions", std::move(list)}, {"truncated", truncated}};
}

}  // namespace pa::review
