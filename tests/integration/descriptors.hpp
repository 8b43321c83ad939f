// A running server's open descriptors, and a way to use up all it may have (EMFILE tests).
#pragma once

#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "integration/fixture.hpp"
#include "integration/raw_client.hpp"

namespace pa::test {

inline std::size_t open_descriptors(pid_t pid) {
  std::size_t n = 0;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", ec), end;
       !ec && it != end; it.increment(ec))
    ++n;
  return n;
}

// Lowers the server's RLIMIT_NOFILE to kHeadroom above the highest descriptor it has open (prlimit
// on a process of the same user may lower it, so filling them is quick), then fills every one
// left with TCP connections the server accepts. Keep `fillers` to keep it starved; `limit` is the
// new limit. Check `open_descriptors(pid) == limit` afterwards (failures are reported here).
struct Starved {
  rlim_t limit = 0;
  std::size_t open_before = 0;  // the server's open descriptors before it was starved
  std::vector<std::unique_ptr<RawClient>> fillers;
};
inline Starved exhaust_descriptors(ServerProcess& server) {
  Starved out;
  out.open_before = open_descriptors(server.pid());
  int highest = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc/" + std::to_string(server.pid()) + "/fd"))
    highest = std::max(highest, std::stoi(entry.path().filename().string()));
  // Once released, the test goes on with a new client and a run: the run's supervisor alone takes
  // 8 at once (3 pipes, its report pipe, /dev/null, the project directory). With only 8 spare,
  // whether it started depended on holes below the highest descriptor (CI, ASan: EMFILE).
  constexpr rlim_t kHeadroom = 24;
  out.limit = static_cast<rlim_t>(highest) + 1 + kHeadroom;
  const rlimit low{out.limit, out.limit};
  if (::prlimit(server.pid(), RLIMIT_NOFILE, &low, nullptr) != 0) {
    ADD_FAILURE() << "prlimit: " << std::strerror(errno);
    return out;
  }
  // One filler at a time. A filler normally raises the count; when a descriptor the server had
  // open only for a moment (a finished run's link) closes meanwhile, the filler takes its number
  // and the count stays: go on after a short wait rather than fail. (One too many waits in the
  // backlog and is answered 503 through the spare descriptor, which the tests allow for.)
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (open_descriptors(server.pid()) < out.limit) {
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "the fillers were not accepted: " << open_descriptors(server.pid())
                    << " descriptors open of " << out.limit;
      return out;
    }
    const auto before = open_descriptors(server.pid());
    out.fillers.push_back(std::make_unique<RawClient>(server.port(), true));
    if (!out.fillers.back()->connect(/*tcp_only=*/true)) {
      ADD_FAILURE() << "a filler could not connect";
      return out;
    }
    eventually([&] { return open_descriptors(server.pid()) > before; }, std::chrono::seconds(3));
  }
  return out;
}

// Closes `count` fillers and waits until the server has closed its side of them: exactly `count`
// descriptors below the limit are free (for a test of what fails with only a few).
inline bool free_descriptors(ServerProcess& server, Starved& starved, std::size_t count) {
  if (count > starved.fillers.size()) return false;
  starved.fillers.resize(starved.fillers.size() - count);
  return eventually([&] { return open_descriptors(server.pid()) == starved.limit - count; },
                    std::chrono::seconds(20));
}

// Closes the fillers and waits until the server has closed its side of every one: back to what
// it had open before, give or take `kept` descriptors the starved requests opened since (a
// history log). Waiting for only a few to be free raced the rest still closing: a run started
// then found too few for its supervisor (EMFILE) under ASan's slower server.
inline bool release_descriptors(ServerProcess& server, Starved& starved, std::size_t kept = 0) {
  starved.fillers.clear();
  return eventually([&] { return open_descriptors(server.pid()) <= starved.open_before + kept; },
                    std::chrono::seconds(20));
}

}  // namespace pa::test
