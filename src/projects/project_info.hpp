// A project as stored on disk and shown to clients (`project_state`, `project_list_response`).
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "projects/spend.hpp"

namespace pa::projects {

// QUEUED: an execute waits for a free run slot (execution.max_concurrent).
enum class State { kIdle, kQueued, kExecuting };
std::string_view to_string(State state);

struct ProjectInfo {
  std::string id;    // UUIDv4
  std::string path;  // canonical absolute directory
  State state = State::kIdle;
  std::optional<std::string> session_id;  // the CLI's latest session id
  std::string created_at;                 // RFC 3339
  std::string last_active;                // RFC 3339
  std::size_t queue_position = 0;         // 1-based while QUEUED; not stored
  // The newest history seq known to be on disk, stored as "last_seq" so that seq numbers never
  // restart or repeat even if history files are deleted or archived. Not shown to clients.
  std::uint64_t seq_mark = 0;
  spend::Ledger spend;  // what its runs cost (issue 19)
};

// {id, path, state, session_id, created_at, last_active} (session_id null when unset), plus
// queue_position while QUEUED, and the spend: totals, today (the current UTC day) and
// session_totals (the current session's; null when it has none).
boost::json::object to_json(const ProjectInfo& info);

// Random UUIDv4 from OpenSSL's CSPRNG, lower-case hex with dashes.
std::string random_uuid();
bool looks_like_uuid(std::string_view text);

}  // namespace pa::projects
