#include "server/project_registry.hpp"

#include <algorithm>

#include "projects/path_rules.hpp"
#include "server/project.hpp"

namespace pa::server {

std::shared_ptr<Project> ProjectRegistry::find(const std::string& id) const {
  std::lock_guard lock(mutex_);
  const auto it = projects_.find(id);
  return it == projects_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<Project>> ProjectRegistry::all() const {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<Project>> out;
  out.reserve(projects_.size());
  for (const auto& [id, project] : projects_) out.push_back(project);
  return out;
}

std::size_t ProjectRegistry::size() const {
  std::lock_guard lock(mutex_);
  return projects_.size();
}

bool ProjectRegistry::add(std::shared_ptr<Project> project) {
  std::lock_guard lock(mutex_);
  const std::string id = project->id();
  return projects_.emplace(id, std::move(project)).second;
}

ProjectRegistry::Reservation ProjectRegistry::reserve_path(const std::string& path,
                                                           std::size_t max_projects) {
  using Outcome = Reservation::Outcome;
  std::lock_guard lock(mutex_);
  if (projects_.size() + pending_paths_.size() >= max_projects) return {Outcome::kLimit, {}, {}};
  const auto nests = [&](const std::string& other_path) {
    return !other_path.empty() && projects::paths_nest(other_path, path);
  };
  for (const auto& [id, project] : projects_) {
    if (nests(project->path())) return {Outcome::kNests, project->path(), id};
  }
  for (const auto& pending : pending_paths_) {
    if (nests(pending)) return {Outcome::kNests, pending, {}};
  }
  pending_paths_.push_back(path);
  return {};
}

void ProjectRegistry::release_path(const std::string& path) {
  std::lock_guard lock(mutex_);
  const auto it = std::find(pending_paths_.begin(), pending_paths_.end(), path);
  if (it != pending_paths_.end()) pending_paths_.erase(it);
}

void ProjectRegistry::add_reserved(const std::string& path, std::shared_ptr<Project> project) {
  std::lock_guard lock(mutex_);
  const auto it = std::find(pending_paths_.begin(), pending_paths_.end(), path);
  if (it != pending_paths_.end()) pending_paths_.erase(it);
  const std::string id = project->id();
  projects_.emplace(id, std::move(project));
}

bool ProjectRegistry::remove(const std::string& id) {
  std::lock_guard lock(mutex_);
  return projects_.erase(id) > 0;
}

}  // namespace pa::server
