// The words of each notification (issue 17): what a person sees on the lock screen for a
// permission request, a run's end, a drained queue or the server's storage trouble. Pure.
// A notification may be read by anyone near the phone: it names the project's directory and
// the tool, and shows the start of a command or a result, never more (docs/security.md).
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "notify/event.hpp"
#include "ops/storage_problems.hpp"
#include "projects/project_info.hpp"

namespace pa::server {

// What the run's last result said (CliLine), kept for the notification of its end.
struct RunSummary {
  std::optional<double> cost_usd;
  std::optional<std::int64_t> duration_ms, num_turns;
  std::string result_text;
  std::string error;  // the message of the run's error, if it reported one
};

// Links into the console: `console_url` (notify.console_url, may be empty) + "/#/p/<id>".
std::string project_link(const std::string& console_url, const std::string& project_id);

// `announced`: the permission_request data (permission_id, tool_name, input, ...).
notify::Event permission_event(const projects::ProjectInfo& project,
                               const boost::json::object& announced,
                               const std::string& console_url);
// The event of a run that ended with `reason` (the `ended.reason` of project_state): completed,
// failed, timeout or lost; nullopt for the endings a person caused or expects (killed,
// interrupted, shutdown).
std::optional<notify::Event> run_end_event(const projects::ProjectInfo& project,
                                           std::string_view reason, const RunSummary& summary,
                                           std::chrono::milliseconds wall_time,
                                           const std::string& console_url);
// The prompts queued on a run (mode "queue") are all done: `count` of them.
notify::Event queue_drained_event(const projects::ProjectInfo& project, std::size_t count,
                                  bool last_failed, const std::string& console_url);
notify::Event server_problem_event(const ops::StorageProblem& problem,
                                   const std::string& console_url);

}  // namespace pa::server
