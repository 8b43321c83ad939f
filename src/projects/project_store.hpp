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

  // Stores a new project's metadata all at once: built in <data>/projects/.creating-<id>/ and
  // renamed to <id>/, so a crash leaves either nothing under <id> or a complete project.
  std::error_code create(const ProjectInfo& info) const;
  // Rewrites an existing project's metadata (atomically).
  std::error_code save(const ProjectInfo& info) const;
  // At start, before load_all: removes what interrupted creations, deletions and metadata writes
  // left (staging and deleting directories, temporary files, a project directory holding nothing
  // but such files). Never removes a directory that holds history. Notes what it removed.
  void remove_leftovers(std::vector<std::string>& notes) const;
  // Every project directory's metadata. The stored state is ignored: nothing is executing after
  // a restart. A project.json that is missing, unreadable, does not parse or lacks a field is
  // moved aside (project.json.corrupt-<UTC stamp>, kept) and the metadata is rebuilt from the
  // project's history (metadata_rebuild.hpp) and written again; such a project is listed even
  // when its path cannot be recovered (path empty: it cannot run). Each case goes into
  // `recoveries` (or, when null, into `warnings` as its message()). Directories that are not
  // projects (name not an id; or neither metadata nor history) are skipped with a warning.
  std::vector<ProjectInfo> load_all(std::vector<std::string>& warnings,
                                    std::vector<MetadataRecovery>* recoveries = nullptr) const;
  // Removes the project's metadata and history (never the project's own directory): renamed to
  // .deleting-<id> first, so a crash midway leaves no half-deleted project to load.
  std::error_code remove(const std::string& id) const;

 private:
  std::filesystem::path root_;  // <data_dir>/projects
};

}  // namespace pa::projects
