// What the server keeps on disk about an active run so that a restarted server can take it over
// (<data_dir>/runs/<run_id>/run.json, written atomically, 0600). The CLI's output itself is in
// the run's spool (agent/spool.hpp); which part of it is in history is written into the history
// entries (AgentRun), so this file only holds what the spool cannot tell:
//   - how to find the supervisor again (pid + start time, so a reused pid is never taken for it);
//   - the run's own state as of spool offset `state_offset`: pending permission requests (with
//     their original deadlines), queued follow-ups, tagged writes sent but not yet confirmed by
//     an `i` record (resent after a restart; the supervisor carries each tag out once), and the
//     flags of the turn. A record at or below state_offset already changed this state: when it
//     is replayed (it was not in history yet) it is only published.
#pragma once

#include <sys/types.h>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

namespace pa::server {

struct RunState {
  struct Permission {
    std::string permission_id;
    std::string control_line;       // the CLI's control_request line (re-parsed on restore)
    boost::json::object announced;  // the permission_request data
    std::string deadline;           // RFC 3339
  };
  struct FollowUp {
    std::string queue_id;
    std::string prompt;
    boost::json::object announced;  // the prompt_queued data
  };

  std::string run_id;
  std::string project_id;
  // A run still waiting for a slot: no supervisor yet; the execute as it will start.
  bool queued = false;
  std::uint64_t queued_order = 0;  // ns since the epoch when it was queued
  std::string prompt;
  boost::json::object options;
  boost::json::array attachments;  // its attachments' refs ({name, media_type, bytes, sha256})
  pid_t supervisor_pid = -1;
  unsigned long long supervisor_start = 0;
  pid_t cli_pid = -1;
  std::string started_at;       // RFC 3339
  std::uint64_t first_seq = 0;  // history seq before the run began
  std::string correlation_id;
  std::optional<std::string> resumed_session;
  bool client_permissions = false;
  std::string mcp_path;
  std::size_t prompt_length = 0;
  // Who sent the execute ({} when unknown), and the stop a client asked for: {"how":
  // "interrupt"|"kill", "by"} ({} when none). Both go into project_state (AgentRun::ending()).
  boost::json::object by;
  boost::json::object stop_request;

  std::uint64_t state_offset = 0;
  std::string stop;  // "", "kill", "timeout", "idle_timeout", "shutdown", "force"
  bool interrupting = false;
  bool result_seen = false;
  bool result_is_error = false;
  bool session_not_found = false;
  std::vector<Permission> permissions;
  std::vector<FollowUp> follow_ups;
  std::map<std::string, std::string> in_flight;  // tag -> data ("" for close)
};

boost::json::object to_json(const RunState& state);
RunState run_state_from_json(const boost::json::value& value);  // throws std::runtime_error

std::error_code save_run_state(const std::string& path, const RunState& state);
std::optional<RunState> load_run_state(const std::string& path, std::string& error);

}  // namespace pa::server
