// The tool-permission requests of one run that wait for a person. The CLI asks (a can_use_tool
// control request); the broker gives the ask a permission_id and a deadline
// (claude.permission_timeout from the request, a wall-clock time that holds across restarts),
// and closes it exactly once: a client's answer, the deadline, the CLI's own cancel, or the run
// cancelling every ask (interrupt, stop, end of turn). Each close sends the CLI its answer (allow
// or deny; nothing for a cancel) and reports the permission_resolved data.
//
// It knows nothing of history, subscribers or the supervisor: its Host (the run) does the
// writing, publishing and the clocks. Its timers run on the executor it is given (the project
// strand); like the run, it is used on that strand only.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/permissions.hpp"
#include "server/project.hpp"
#include "server/run_state.hpp"

namespace pa::server {

class PermissionBroker {
 public:
  // What the broker needs from its run.
  class Host {
   public:
    virtual ~Host() = default;
    // A control response line that must reach the CLI once (tagged "control:<cli_request_id>").
    virtual void send_control(const std::string& cli_request_id, std::string line) = 0;
    // An ask was closed: remember it for late answers, save run.json (the answer sent just
    // before is in flight), then publish `closed.resolution` as permission_resolved, with
    // `requesters` getting it as their reply.
    virtual void permission_closed(const std::string& permission_id, ClosedPermission closed,
                                   const std::vector<Requester>& requesters) = 0;
    // The pending asks changed (run.json is behind).
    virtual void permissions_changed() = 0;
    // The first ask opened (true) or the last one closed (false): time spent waiting for a
    // person does not count against the run's timeouts.
    virtual void waiting_for_person(bool waiting) = 0;
    // Held by each armed timer, so the host outlives its waits (may be null).
    virtual std::shared_ptr<void> keep_alive() = 0;
  };

  PermissionBroker(Host& host, boost::asio::any_io_executor executor, std::string project_id,
                   std::chrono::seconds timeout);
  PermissionBroker(const PermissionBroker&) = delete;
  PermissionBroker& operator=(const PermissionBroker&) = delete;

  bool empty() const { return pending_.empty(); }
  std::size_t size() const { return pending_.size(); }

  // A can_use_tool ask of the CLI (`line` as it wrote it) waits for a person from now on: a
  // new permission_id, its deadline armed. Returns the permission_request data to announce.
  const boost::json::object& open(std::string_view line, const agent::PermissionAsk& ask);
  // An ask that is not put to anyone: the CLI hears a deny with `message` at once.
  void refuse(const agent::PermissionAsk& ask, const std::string& message);
  // An ask nobody can be asked (no subscriber answers permission requests): the CLI hears a
  // deny with `message` at once, and it is reported as permission_resolved (deny, `reason`,
  // by the server) under a new permission_id, never announced as a permission_request.
  void deny_unasked(const agent::PermissionAsk& ask, std::string_view reason,
                    const std::string& message);
  // The permission_request data of the pending ask with this CLI request id (nullptr: none).
  const boost::json::object* announced_for(const std::string& cli_request_id) const;

  // A client's answer; `by` says who (permission_resolved's "by"), `requester` gets the
  // permission_resolved as its reply. false when `permission_id` is not pending.
  bool answer(const agent::PermissionAnswer& answer, boost::json::object by,
              const Requester& requester);
  // The CLI cancelled its ask (control_cancel_request); `reason` as permission_resolved says.
  void cancel_ask(const std::string& cli_request_id, std::string_view reason);
  // Cancels every pending ask with `reason` ("interrupted", "killed", "run_ended").
  void cancel_all(std::string_view reason);

  // What project_joined lists: the permission_request data of each pending ask.
  boost::json::array pending_permissions() const;

  // run.json: the pending asks with their original deadlines, and back. restore() does not arm
  // the timers; arm_all() does (at the original deadlines: one already past expires at once).
  void save(RunState& state) const;
  void restore(const RunState& state);
  void arm_all();
  // The run is left to the next server: no deadline fires here any more.
  void cancel_timers();

 private:
  struct Pending {
    agent::PermissionAsk ask;
    boost::json::object announced;  // the permission_request data
    std::unique_ptr<boost::asio::steady_timer> timer;
    std::string control_line;                          // as the CLI wrote it (for run.json)
    std::chrono::system_clock::time_point deadline{};  // requested_at + permission_timeout
  };

  void arm(const std::string& permission_id);
  void expire(const std::string& permission_id);
  boost::json::object resolution(const std::string& permission_id, const agent::PermissionAsk& ask,
                                 std::string_view decision, std::string_view reason,
                                 boost::json::object by,
                                 const std::optional<std::string>& message) const;
  void close(std::string permission_id, std::string_view decision, std::string_view reason,
             boost::json::object by, const std::vector<Requester>& requesters,
             const std::optional<std::string>& message, bool remember);

  Host& host_;
  boost::asio::any_io_executor executor_;
  std::string project_id_;  // for the log
  std::chrono::seconds timeout_;
  std::map<std::string, Pending> pending_;  // by permission_id
};

}  // namespace pa::server
