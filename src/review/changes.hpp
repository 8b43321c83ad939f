// What `project_changes` reports: one entry per changed file, from git or from history.
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pa::review {

struct ChangedFile {
  std::string path;  // relative to the project directory
  // git: modified, added, deleted, renamed, copied, type_changed, unmerged, untracked.
  // history: written (Write), edited (Edit, MultiEdit, NotebookEdit).
  std::string status;
  std::optional<std::string> old_path;          // renamed/copied: where it came from
  std::optional<std::uint64_t> added, deleted;  // line counts; unset = unknown or binary
  bool binary = false;
  bool staged = false;              // git: the change is (partly) in the index
  std::vector<std::uint64_t> seqs;  // history: the entries with the tool calls
  std::vector<std::string> tools;   // history: the tools used, each once
};

struct Changes {
  std::string source;  // "git" or "history"
  std::vector<ChangedFile> files;
  bool truncated = false;  // more files than the cap, or git's output was cut
};

boost::json::object to_json(const Changes& changes);

struct Diff {
  std::string source;  // "git" or "history"
  std::string text;    // unified diff
  bool truncated = false;
};

inline constexpr std::size_t kMaxDiffBytes = 2u << 20;

// Cuts `diff.text` to at most `max_bytes` at a line end (setting truncated) and makes it valid
// UTF-8 (file contents need not be): what project_diff sends.
void finish_diff(Diff& diff, std::size_t max_bytes);

// The most files one reply lists.
inline constexpr std::size_t kMaxChangedFiles = 2000;

}  // namespace pa::review
