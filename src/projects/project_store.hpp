// Project metadata on disk: <data_dir>/projects/<id>/project.json, written atomically.
// Blocking file I/O: call off the I/O threads.
#pragma once

#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "projects/metadata_rebuild.hpp"
#include "projects/project_info.hpp"

namespace pa::projects {

class ProjectStore {
 public:
  explicit ProjectStore(std::filesystem::path data_dir);

  std::filesystem::path project_dir(const std::string& id) const;
  std::filesystem::path logs_dir(const std::string& id) const;

  std::error_code save(const ProjectInfo& info) const;
  // Every project directory's metadata. The stored state is ignored: nothing is executing after
  // a restart. A project.json that is missing, unreadable, does not parse or lacks a field is
  // moved aside (project.json.corrupt-<UTC stamp>, kept) and the metadata is rebuilt from the
  // project's history (metadata_rebuild.hpp) and written again; such a project is listed even
  // when its path cannot be recovered (path empty: it cannot run). Each case goes into
  // `recoveries` (or, when null, into `warnings` as its message()). Directories that are not
  // projects (name not an id; or neither metadata nor history) are skipped with a warning.
  std::vector<ProjectInfo> load_all(std::vector<std::string>& warnings,
                                    std::vector<MetadataRecovery>* recoveries = nullptr) const;
  // Removes the project's metadata and history (never the project's own directory).
  std::error_code remove(const std::string& id) const;

 private:
  std::filesystem::path root_;  // <data_dir>/projects
};

}  // namespace pa::projects
