// How many connections the open file limit (RLIMIT_NOFILE) leaves room for.
//
// Every connection is one descriptor (its socket; TLS needs none more). Whatever else the
// server holds comes out of the same limit, so that is reserved first:
//
//   reserve = fixed + history + workers * per_worker + runs * per_run + margin
//
//   fixed       kFixed (16) + 2 per listener: stdio, the log file, the data directory's lock,
//               the idempotency log, the event loops (epoll, eventfd, timerfd of the I/O context
//               and of the blocking pool), the signal pipe; per listener its socket and the
//               spare descriptor it gives up to accept-and-refuse when out of descriptors
//   history     the history file budget (history::FdBudget, 64)
//   workers     blocking pool threads (max(2, cores)), each kPerWorker (8) at its peak: starting
//               a run's supervisor takes the project directory, three pipes and /dev/null at once;
//               the other jobs (a history read, an atomic metadata write, the CLI probe) fewer
//   runs        execution.max_concurrent, kPerRun (1) each: the socket to the run's supervisor
//   margin      kMargin (16): libraries (resolver, OpenSSL), what the formula missed
//
// What is left are sockets: connections, and connections still in their TLS handshake or HTTP
// request (which need a descriptor before they can be told 503). At least an eighth of it, and at
// least kMinHandshakeSlots, is kept for the latter:
//
//   sockets     = limit - reserve
//   handshakes  = max(kMinHandshakeSlots, sockets / 8)
//   max_connections (effective) = clamp(sockets - handshakes, 1, configured)
//
// and the listener never holds more than `sockets - effective` (at least `handshakes`) sockets
// that are not yet connections: it stops accepting (the kernel's backlog keeps the rest waiting)
// until one is done.
#pragma once

#include <cstdint>
#include <string>

namespace pa::net {

struct DescriptorInputs {
  std::uint64_t open_file_limit = 0;  // the soft RLIMIT_NOFILE (after raising it to the hard one)
  std::uint64_t configured_max_connections = 100;
  std::uint64_t max_concurrent_runs = 10;  // execution.max_concurrent
  std::uint64_t worker_threads = 2;        // the hub's blocking pool
  std::uint64_t history_files = 64;        // history::FdBudget's limit
  std::uint64_t listeners = 1;             // 2 with metrics.port
};

struct DescriptorPlan {
  static constexpr std::uint64_t kFixed = 16;
  static constexpr std::uint64_t kPerListener = 2;
  static constexpr std::uint64_t kPerWorker = 8;
  static constexpr std::uint64_t kPerRun = 1;
  static constexpr std::uint64_t kMargin = 16;
  static constexpr std::uint64_t kMinHandshakeSlots = 8;

  std::uint64_t open_file_limit = 0;
  std::uint64_t reserve = 0;          // descriptors kept for everything but sockets
  std::uint64_t sockets = 0;          // limit - reserve (0 when the reserve does not fit)
  std::uint64_t handshake_slots = 0;  // sockets kept for connections not yet admitted
  std::uint64_t configured_max_connections = 0;
  std::uint64_t max_connections = 0;  // effective: what the hub admits
  // Sockets the listener may hold that are not (yet) connections: sockets - max_connections, at
  // least handshake_slots.
  std::uint64_t max_pending_sockets = 0;

  bool capped() const { return max_connections < configured_max_connections; }
  // The smallest open file limit at which `configured_max_connections` fits (same reserve).
  std::uint64_t limit_needed() const;
  // One line for the start-up log: the limit, the reserve and what it leaves.
  std::string describe() const;
  // The warning logged at start when capped(): what was asked, what fits, how to fix it.
  std::string warning() const;
};

DescriptorPlan plan_descriptors(const DescriptorInputs& in);

}  // namespace pa::net
