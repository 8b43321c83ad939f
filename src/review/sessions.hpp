// session_list: the project's past CLI sessions, rebuilt from its history. A run starts at a
// client's execute (a queued follow-up joins the run in progress); the session of a run is the
// session_id its CLI lines carry. Cost: the CLI's result lines carry the process's cumulative
// total_cost_usd, so a run costs its largest value and a session the sum over its runs.
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pa::review {

inline constexpr std::size_t kMaxPromptChars = 200;
inline constexpr std::size_t kMaxSessions = 500;

class SessionList {
 public:
  void add_entry(std::string_view entry_json);
  // {sessions: [{session_id, first_prompt, first_prompt_truncated, started, ended, runs,
  //   cost_usd, first_seq, last_seq, current}], truncated}; newest first.
  boost::json::object to_json(const std::optional<std::string>& current_session) const;

 private:
  struct Run {
    std::string prompt, started;
    std::uint64_t seq = 0;
    std::optional<std::string> session;
    double cost = 0;
  };
  struct Session {
    std::string id, first_prompt, started, ended;
    std::uint64_t first_seq = 0, last_seq = 0, runs = 0;
    double cost = 0;
  };
  void close_run();

  std::optional<Run> run_;
  std::vector<Session> sessions_;  // in the order first seen
  std::map<std::string, std::size_t, std::less<>> index_;
};

// The first `max_chars` characters of `text` (UTF-8 aware); `cut` says whether any were left out.
std::string first_chars(std::string_view text, std::size_t max_chars, bool& cut);

}  // namespace pa::review
