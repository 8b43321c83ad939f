// Project metadata on disk: <data_dir>/projects/<id>/project.json, written atomically.
// Blocking file I/O: call off the I/O threads.
#pragma once

#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "projects/project_info.hpp"

namespace pa::projects {

class ProjectStore {
 public:
  explicit ProjectStore(std::filesystem::path data_dir);

  std::filesystem::path project_dir(const std::string& id) const;
  std::filesystem::path logs_dir(const std::string& id) const;

  std::error_code save(const ProjectInfo& info) const;
  // Every readable project; unreadable or invalid ones are reported in `warnings` and skipped.
  // The stored state is ignored: nothing is executing after a restart.
  std::vector<ProjectInfo> load_all(std::vector<std::string>& warnings) const;
  // Removes the project's metadata and history (never the project's own directory).
  std::error_code remove(const std::string& id) const;

 private:
  std::filesystem::path root_;  // <data_dir>/projects
};

}  // namespace pa::projects
