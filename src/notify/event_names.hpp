// The notification event names clients and targets subscribe to (issue 17). Header-only: the
// config module checks `notify.targets[].events` against it without linking the notify library.
#pragma once

#include <algorithm>
#include <array>
#include <string_view>

namespace pa::notify {

inline constexpr std::array<std::string_view, 7> kEventNames = {
    "permission_request", "run_succeeded", "run_failed",    "run_timeout",
    "run_lost",           "queue_drained", "server_problem"};

inline bool is_event_name(std::string_view name) {
  return std::find(kEventNames.begin(), kEventNames.end(), name) != kEventNames.end();
}

}  // namespace pa::notify
