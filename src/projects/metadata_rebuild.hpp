// Rebuilding a project's metadata when its project.json is damaged or missing: the id is the
// directory's name; path, session id, created_at, last_active and the seq mark come from the
// project's history (and, where the history has nothing, from whatever the damaged file still
// holds). Blocking file I/O: call off the I/O threads (start-up).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "projects/project_info.hpp"

namespace pa::projects {

// What ProjectStore::load_all did about a project whose project.json it could not use.
struct MetadataRecovery {
  std::string id;
  std::filesystem::path dir;  // <data_dir>/projects/<id>
  std::string problem;        // why project.json was not usable
  std::filesystem::path
      kept_as;              // where the damaged file was moved (empty: none, or kept in place)
  std::string path_source;  // "history", "damaged file", or "" (path unknown)
  bool saved = false;       // the rebuilt project.json was written
  // One line for the log and health.warnings.
  std::string message() const;
};

// Where the fields came from.
struct RebuildSources {
  std::string path;  // "history", "damaged file" or "" (unknown: info.path stays empty)
};

// Rebuilds the metadata of project `id` from its history in `logs_dir` and the `damaged` text of
// its old project.json (may be empty). Reading repairs a torn history tail as opening the
// project would. Problems reading the history are appended to `warnings`. info.path is empty
// when neither source has it.
ProjectInfo rebuild_metadata(const std::string& id, const std::filesystem::path& logs_dir,
                             std::string_view damaged, RebuildSources& sources,
                             std::vector<std::string>& warnings);

// The value of a top-level string member `key` in JSON text that may be truncated or damaged
// after it (a lenient scan; nullopt when it is not there whole).
std::optional<std::string> salvage_string(std::string_view text, std::string_view key);
std::optional<std::uint64_t> salvage_uint(std::string_view text, std::string_view key);

}  // namespace pa::projects
