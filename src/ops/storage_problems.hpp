// Storage trouble the server has now: a history, metadata or spool file it could not write. One
// entry per target (a path); raised when a write fails, cleared when a later write to the same
// target succeeds. `health` reports the entries (status "degraded"); the owner of a target uses
// raise()'s `notify` to tell clients at most once per target per notify interval.
// Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace pa::ops {

struct StorageProblem {
  std::string what;        // "history", "metadata", "spool", ...
  std::string path;        // the file or directory that could not be written (the key)
  std::string error;       // the errno text of the latest failure
  std::string project_id;  // empty when not a project's
  std::chrono::system_clock::time_point since;  // first failure since the target last worked
  std::uint64_t failures = 0;                   // failed writes since then
};

class StorageProblems {
 public:
  explicit StorageProblems(std::chrono::milliseconds notify_interval = std::chrono::seconds(5));

  struct Raised {
    bool first = false;   // the target had no problem before this failure
    bool notify = false;  // tell clients now: first failure, or none told for notify_interval
  };
  // A write to `path` failed. Updates `error` (the latest), keeps `since`.
  Raised raise(const std::string& what, const std::string& path, const std::string& error,
               const std::string& project_id = {},
               std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());
  // Called (outside the lock) with each problem when it starts: the first failure of a target
  // that had none. Set once at start-up (the notifier's server_problem).
  void on_first_failure(std::function<void(const StorageProblem&)> listener);
  // A write to `path` succeeded: forgets its problem. True if there was one.
  bool clear(const std::string& path);
  // Forgets every problem of a project (deleted). Returns how many.
  std::size_t clear_project(const std::string& project_id);

  bool has(const std::string& path) const;
  std::vector<StorageProblem> list() const;  // oldest first
  std::size_t size() const;

 private:
  struct Entry {
    StorageProblem problem;
    std::chrono::steady_clock::time_point last_notified;
  };
  const std::chrono::milliseconds notify_interval_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry> entries_;  // by path
  std::function<void(const StorageProblem&)> on_first_;
};

}  // namespace pa::ops
