#include "ops/storage_problems.hpp"

#include <algorithm>

namespace pa::ops {

StorageProblems::StorageProblems(std::chrono::milliseconds notify_interval)
    : notify_interval_(notify_interval) {}

StorageProblems::Raised StorageProblems::raise(const std::string& what, const std::string& path,
                                               const std::string& error,
                                               const std::string& project_id,
                                               std::chrono::steady_clock::time_point now) {
  std::unique_lock lock(mutex_);
  Raised raised;
  auto it = entries_.find(path);
  if (it == entries_.end()) {
    Entry entry;
    entry.problem.what = what;
    entry.problem.path = path;
    entry.problem.project_id = project_id;
    entry.problem.since = std::chrono::system_clock::now();
    it = entries_.emplace(path, std::move(entry)).first;
    raised.first = true;
    raised.notify = true;
  } else if (now - it->second.last_notified >= notify_interval_) {
    raised.notify = true;
  }
  auto& entry = it->second;
  entry.problem.what = what;
  entry.problem.error = error;
  if (!project_id.empty()) entry.problem.project_id = project_id;
  ++entry.problem.failures;
  if (raised.notify) entry.last_notified = now;
  if (raised.first && on_first_) {
    const StorageProblem problem = entry.problem;
    const auto listener = on_first_;
    lock.unlock();  // the listener may take its own locks
    listener(problem);
  }
  return raised;
}

void StorageProblems::on_first_failure(std::function<void(const StorageProblem&)> listener) {
  std::lock_guard lock(mutex_);
  on_first_ = std::move(listener);
}

bool StorageProblems::clear(const std::string& path) {
  std::lock_guard lock(mutex_);
  return entries_.erase(path) > 0;
}

std::size_t StorageProblems::clear_project(const std::string& project_id) {
  std::lock_guard lock(mutex_);
  return std::erase_if(
      entries_, [&](const auto& entry) { return entry.second.problem.project_id == project_id; });
}

bool StorageProblems::has(const std::string& path) const {
  std::lock_guard lock(mutex_);
  return entries_.count(path) > 0;
}

std::vector<StorageProblem> StorageProblems::list() const {
  std::vector<StorageProblem> out;
  {
    std::lock_guard lock(mutex_);
    out.reserve(entries_.size());
    for (const auto& [path, entry] : entries_) out.push_back(entry.problem);
  }
  std::stable_sort(out.begin(), out.end(), [](const StorageProblem& a, const StorageProblem& b) {
    return a.since < b.since;
  });
  return out;
}

std::size_t StorageProblems::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

}  // namespace pa::ops
