#include "net/descriptor_plan.hpp"

#include <algorithm>

namespace pa::net {

namespace {
std::uint64_t reserve_for(const DescriptorInputs& in) {
  using P = DescriptorPlan;
  return P::kFixed + P::kPerListener * in.listeners + in.history_files +
         P::kPerWorker * in.worker_threads + P::kPerRun * in.max_concurrent_runs + P::kMargin;
}
}  // namespace

DescriptorPlan plan_descriptors(const DescriptorInputs& in) {
  DescriptorPlan p;
  p.open_file_limit = in.open_file_limit;
  p.configured_max_connections = in.configured_max_connections;
  p.reserve = reserve_for(in);
  p.sockets = in.open_file_limit > p.reserve ? in.open_file_limit - p.reserve : 0;
  p.handshake_slots = std::max(DescriptorPlan::kMinHandshakeSlots, p.sockets / 8);
  const std::uint64_t fit = p.sockets > p.handshake_slots ? p.sockets - p.handshake_slots : 0;
  // At least one: a server that admits nobody is no use, and the limit is reported loudly.
  p.max_connections = std::max<std::uint64_t>(1, std::min(in.configured_max_connections, fit));
  p.max_pending_sockets = std::max(
      p.handshake_slots, p.sockets > p.max_connections ? p.sockets - p.max_connections : 0);
  return p;
}

std::uint64_t DescriptorPlan::limit_needed() const {
  // The same arithmetic as plan_descriptors() with this plan's reserve.
  const auto fits = [&](std::uint64_t limit) {
    const std::uint64_t room = limit > reserve ? limit - reserve : 0;
    const std::uint64_t handshakes = std::max(kMinHandshakeSlots, room / 8);
    return room > handshakes && room - handshakes >= configured_max_connections;
  };
  std::uint64_t lo = reserve;  // does not fit
  std::uint64_t hi = reserve + 2 * configured_max_connections + kMinHandshakeSlots + 1;  // fits
  while (hi - lo > 1) {
    const std::uint64_t mid = lo + (hi - lo) / 2;
    (fits(mid) ? hi : lo) = mid;
  }
  return hi;
}

std::string DescriptorPlan::describe() const {
  return "open file limit " + std::to_string(open_file_limit) + ": " + std::to_string(reserve) +
         " descriptors reserved for runs, history and the server itself, " +
         std::to_string(sockets) + " for sockets: at most " + std::to_string(max_connections) +
         " connections (limits.max_connections " + std::to_string(configured_max_connections) +
         ") and " + std::to_string(max_pending_sockets) + " more in their handshake";
}

std::string DescriptorPlan::warning() const {
  return "limits.max_connections " + std::to_string(configured_max_connections) +
         " does not fit the open file limit " + std::to_string(open_file_limit) + " (" +
         std::to_string(reserve) +
         " descriptors are reserved for runs, history and the server itself, and some for "
         "connections in their handshake): at most " +
         std::to_string(max_connections) +
         " connections are accepted, more get HTTP 503. Raise the limit to at least " +
         std::to_string(limit_needed()) +
         " (ulimit -n, LimitNOFILE= in the systemd unit, --ulimit nofile= in Docker) or lower "
         "limits.max_connections";
}

}  // namespace pa::net
