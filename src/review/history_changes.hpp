// project_changes and project_diff for a project that is not a git work tree: the file edits
// the agent asked for, from the Edit, Write, MultiEdit and NotebookEdit tool calls recorded in
// the project's history. A call whose tool_result is an error (denied, failed) is dropped.
// Only files inside the project are reported. This is what the agent *requested*; the files
// may have changed since by other means.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>
#include "review/changes.hpp"

namespace pa::review {

class HistoryChanges {
 public:
  // `since_seq`: only tool calls in entries after it.
  HistoryChanges(std::string project_dir, std::optional<std::uint64_t> since_seq);

  // One history entry (as stored: {"seq","timestamp","direction","message"}), oldest first.
  void add_entry(std::string_view entry_json);

  Changes changes() const;
  // A unified-diff-like text built from the recorded inputs (see docs/protocol.md): per call a
  // hunk headed "@@ seq N Edit @@" with the replaced text as '-' lines and the new text as '+'
  // lines. `path` ("" = all) limits it to one file or a directory.
  Diff diff(const std::string& path, std::size_t max_bytes = kMaxDiffBytes) const;

 private:
  struct Edit {
    std::uint64_t seq = 0;
    std::string tool;
    std::string old_text, new_text;  // Write: old_text empty
    bool write = false;
  };
  struct Call {
    std::string path;  // relative to the project
    std::vector<Edit> edits;
  };
  std::optional<std::string> relative_to_project(std::string_view file_path) const;
  void add_tool_use(std::uint64_t seq, const boost::json::object& block);

  std::string project_dir_;
  std::optional<std::uint64_t> since_seq_;
  std::vector<std::string> order_;     // tool_use ids, in call order
  std::map<std::string, Call> calls_;  // by tool_use id
};

}  // namespace pa::review
