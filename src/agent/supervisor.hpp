// A run's supervisor: the small process that owns the CLI so that a run belongs to the host, not
// to the server process (the pattern of containerd's shim and Podman's conmon).
//
// The server starts it (`pocket-agent-server __supervise <run_dir>`, the same binary) detached:
// its own session, no PDEATHSIG, so a crash, SIGKILL, restart or upgrade of the server leaves it
// running. It reads its spec (SupervisorSpec, JSON) from stdin, starts the CLI exactly as the
// server used to (argv only, own process group, PDEATHSIG so the CLI dies with the supervisor,
// fchdir into the project directory the server opened without following symlinks, which it
// inherits as fd 3), answers one JSON line on stdout ({"ok":true,"cli_pid":N} or
// {"ok":false,"errno":N,"error":"..."}) and then:
//   - writes every stdout line of the CLI, and every event of the run, to <run_dir>/spool
//     (spool.hpp: append-only, 0600, fdatasync every fsync_interval, a full disk holds the CLI's
//     output until the write succeeds);
//   - serves <run_dir>/sock (0600) to one server at a time: the server sends `attach` with the
//     spool offset it has applied, gets a hello line, then every record from that offset on,
//     live; it sends operations (supervisor ops below) the other way;
//   - enforces timeouts.execution and timeouts.execution_idle itself (paused while the server
//     says a person is being asked), and stops the CLI (interrupt request, then after
//     kill_grace SIGTERM to its group, after term_grace SIGKILL to its whole tree);
//   - after the CLI ended, kills what it left behind, writes the exit record and exits once a
//     server said `done`, or after `retention` with no server (the spool stays; the next
//     server start applies it).
//
// Ops (server → supervisor, one JSON object per line):
//   {"op":"attach","offset":N}                  first; the reply is the hello line
//   {"op":"write","data":"...","tag":"..."}     to the CLI's stdin; a tag is carried out once
//                                               ever (a resend after a restart is harmless)
//                                               and spooled as an `i` record
//   {"op":"close","tag":"close"}                close the CLI's stdin (after queued writes)
//   {"op":"stop","reason":"kill|shutdown|force"}
//   {"op":"clocks","paused":true|false}         a person is being asked: timeouts wait
//   {"op":"done"}                               the server applied the exit record
// Hello (supervisor → server): {"v":1,"pid":N,"cli_pid":N,"spool_size":N,"exited":b}
#pragma once

#include <sys/types.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

#include "agent/child_process.hpp"
#include "agent/spool.hpp"

namespace pa::agent {

inline constexpr int kSupervisorProtocol = 1;
inline constexpr char kSuperviseCommand[] = "__supervise";

struct SupervisorSpec {
  SpawnSpec cli;  // cwd_fd is ignored: the directory arrives as fd 3
  std::size_t max_line_bytes = 16 * 1024 * 1024;
  std::chrono::seconds execution{0};       // 0 = none
  std::chrono::seconds execution_idle{0};  // 0 = off
  std::chrono::seconds kill_grace{3};
  std::chrono::seconds term_grace{5};
  std::chrono::milliseconds fsync_interval{1000};
  // How long a supervisor whose CLI ended waits for a server to take the last records.
  std::chrono::seconds retention{600};
};
boost::json::object to_json(const SupervisorSpec& spec);
// Throws std::runtime_error naming what is wrong.
SupervisorSpec supervisor_spec_from_json(const boost::json::value& value);

// Where a run's files are.
struct RunPaths {
  std::string dir;
  std::string spool() const { return dir + "/spool"; }
  std::string socket() const { return dir + "/sock"; }
  std::string log() const { return dir + "/supervisor.log"; }
};

// The supervisor process (main() dispatches `__supervise <run_dir>` here). Returns the exit code.
int supervisor_main(int argc, char** argv);

// ---- server side ----

struct Launched {
  pid_t supervisor_pid = -1;
  unsigned long long supervisor_start = 0;  // /proc start time: with the pid, names the process
  pid_t cli_pid = -1;
};
// Starts a supervisor for `paths` (the directory must exist, 0700) and waits for its answer.
// Blocking: call off the I/O threads. `project_dir_fd` is the directory the CLI runs in. ec is
// no_such_file_or_directory / permission_denied when the CLI binary cannot be run.
Launched launch_supervisor(const std::string& self_exe, const RunPaths& paths,
                           const SupervisorSpec& spec, int project_dir_fd, std::error_code& ec,
                           std::string& error);

// Whether the process `pid` is still the supervisor that was started then (not a reused pid).
bool supervisor_alive(pid_t pid, unsigned long long start_time);

struct LinkHandlers {
  // Every record from the attach offset on, in order. Returning false holds the link: no more
  // records are delivered until resume() (the caller could not apply this one; it comes again).
  std::function<bool(const SpoolRecord& record)> on_record;
  // The connection ended before the exit record (the supervisor died, or its socket failed).
  std::function<void(std::error_code ec)> on_disconnect;
};

// The server's connection to one supervisor. Records are delivered on `handler_executor`, in
// order; socket I/O runs on `io`. The server passes the project's strand as both: the socket is
// read on the project's thread pool and each read's records are applied in the same handler
// (no hop from an I/O thread to the project's). Thread-safe methods.
class SupervisorLink : public std::enable_shared_from_this<SupervisorLink> {
 public:
  // Connects to paths.socket() and attaches at `offset` (blocking connect, call off the I/O
  // threads). nullptr with ec when the supervisor cannot be reached.
  static std::shared_ptr<SupervisorLink> attach(boost::asio::any_io_executor io,
                                                boost::asio::any_io_executor handler_executor,
                                                const RunPaths& paths, std::uint64_t offset,
                                                std::size_t max_record, LinkHandlers handlers,
                                                std::error_code& ec);
  virtual ~SupervisorLink() = default;

  virtual pid_t cli_pid() const = 0;
  virtual std::uint64_t spool_size_at_attach() const = 0;
  // Ops, sent in order.
  virtual void write(std::string data, std::string tag) = 0;
  virtual void close_stdin() = 0;
  virtual void stop(std::string_view reason) = 0;
  virtual void pause_clocks(bool paused) = 0;
  virtual void done() = 0;
  // After on_record returned false: deliver that record again, then the rest.
  virtual void resume() = 0;
  // Stops reading and closes the socket; no handler runs after this returns... except one
  // already running.
  virtual void detach() = 0;
};

}  // namespace pa::agent
