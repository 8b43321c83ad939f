#include "review/history_changes.hpp"

#include <algorithm>
#include <boost/json/parse.hpp>
#include <filesystem>

#include "protocol/json_fields.hpp"
#include "review/history_entry.hpp"

namespace pa::review {

namespace json = boost::json;

namespace {
using protocol::object_at;
using protocol::string_at;

std::uint64_t line_count(std::string_view text) {
  auto n = static_cast<std::uint64_t>(std::count(text.begin(), text.end(), '\n'));
  if (!text.empty() && text.back() != '\n') ++n;
  return n;
}

void append_lines(std::string& out, char mark, std::string_view text) {
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    out += mark;
    out.append(text.substr(start, end - start));
    out += '\n';
    start = end + 1;
  }
}

bool within(const std::string& path, const std::string& scope) {
  if (scope.empty() || scope == ".") return true;
  std::string dir = scope;
  while (!dir.empty() && dir.back() == '/') dir.pop_back();
  return path == dir || path.rfind(dir + "/", 0) == 0;
}
}  // namespace

HistoryChanges::HistoryChanges(std::string project_dir, std::optional<std::uint64_t> since_seq)
    : project_dir_(std::move(project_dir)), since_seq_(since_seq) {}

std::optional<std::string> HistoryChanges::relative_to_project(std::string_view file_path) const {
  if (file_path.empty() || file_path.find('\0') != std::string_view::npos) return std::nullopt;
  namespace fs = std::filesystem;
  fs::path p(file_path);
  if (p.is_relative()) p = fs::path(project_dir_) / p;
  const auto relative = p.lexically_normal().lexically_relative(project_dir_);
  const std::string text = relative.generic_string();
  if (text.empty() || text == "." || text == ".." || text.rfind("../", 0) == 0) return std::nullopt;
  return text;
}

void HistoryChanges::add_tool_use(std::uint64_t seq, const json::object& block) {
  const std::string tool = string_at(block, "name");
  const std::string id = string_at(block, "id");
  const auto* input = object_at(block, "input");
  if (input == nullptr || id.empty()) return;
  std::string file = string_at(*input, tool == "NotebookEdit" ? "notebook_path" : "file_path");
  auto relative = relative_to_project(file);
  if (!relative) return;
  Call call;
  call.path = std::move(*relative);
  if (tool == "Write") {
    call.edits.push_back(Edit{seq, tool, "", string_at(*input, "content"), true});
  } else if (tool == "Edit") {
    call.edits.push_back(
        Edit{seq, tool, string_at(*input, "old_string"), string_at(*input, "new_string"), false});
  } else if (tool == "MultiEdit") {
    const auto* edits = input->if_contains("edits");
    if (edits == nullptr || !edits->is_array()) return;
    for (const auto& e : edits->get_array()) {
      if (!e.is_object()) continue;
      call.edits.push_back(Edit{seq, tool, string_at(e.get_object(), "old_string"),
                                string_at(e.get_object(), "new_string"), false});
    }
  } else if (tool == "NotebookEdit") {
    call.edits.push_back(Edit{seq, tool, "", string_at(*input, "new_source"), false});
  } else {
    return;
  }
  if (calls_.emplace(id, std::move(call)).second) order_.push_back(id);
}

void HistoryChanges::add_entry(std::string_view entry_json) {
  const auto entry = parse_history_entry(entry_json);
  if (!entry) return;
  const std::uint64_t seq = entry->seq;
  if (since_seq_ && seq <= *since_seq_) return;
  if (entry->direction != "claude") return;
  const json::object* message = entry->message;
  const std::string type = string_at(*message, "type");
  const auto* inner = object_at(*message, "message");
  if (inner == nullptr) return;
  const auto* content = inner->if_contains("content");
  if (content == nullptr || !content->is_array()) return;
  for (const auto& block_value : content->get_array()) {
    const auto* block = block_value.if_object();
    if (block == nullptr) continue;
    const std::string block_type = string_at(*block, "type");
    if (type == "assistant" && block_type == "tool_use") {
      add_tool_use(seq, *block);
    } else if (type == "user" && block_type == "tool_result") {
      // A denied or failed call changed nothing.
      const auto* is_error = block->if_contains("is_error");
      if (is_error != nullptr && is_error->is_bool() && is_error->get_bool()) {
        calls_.erase(string_at(*block, "tool_use_id"));
      }
    }
  }
}

Changes HistoryChanges::changes() const {
  Changes out;
  out.source = "history";
  std::map<std::string, std::size_t> index;
  for (const auto& id : order_) {
    const auto it = calls_.find(id);
    if (it == calls_.end()) continue;
    const Call& call = it->second;
    auto [slot, added] = index.emplace(call.path, out.files.size());
    if (added) {
      if (out.files.size() >= kMaxChangedFiles) {
        out.truncated = true;
        index.erase(slot);
        continue;
      }
      ChangedFile file;
      file.path = call.path;
      file.status = "edited";
      file.added = 0;
      file.deleted = 0;
      out.files.push_back(std::move(file));
    }
    ChangedFile& file = out.files[slot->second];
    for (const auto& edit : call.edits) {
      if (edit.write) file.status = "written";
      *file.added += line_count(edit.new_text);
      *file.deleted += line_count(edit.old_text);
      if (std::find(file.seqs.begin(), file.seqs.end(), edit.seq) == file.seqs.end()) {
        file.seqs.push_back(edit.seq);
      }
      if (std::find(file.tools.begin(), file.tools.end(), edit.tool) == file.tools.end()) {
        file.tools.push_back(edit.tool);
      }
    }
  }
  return out;
}

Diff HistoryChanges::diff(const std::string& path, std::size_t max_bytes) const {
  Diff out;
  out.source = "history";
  // Grouped by file, in the order each file was first changed; calls in order within a file.
  std::vector<std::string> files;
  std::map<std::string, std::vector<const Edit*>> edits;
  for (const auto& id : order_) {
    const auto it = calls_.find(id);
    if (it == calls_.end() || !within(it->second.path, path)) continue;
    auto& list = edits[it->second.path];
    if (list.empty()) files.push_back(it->second.path);
    for (const auto& edit : it->second.edits) list.push_back(&edit);
  }
  for (const auto& file : files) {
    std::string part =
        "diff --history a/" + file + " b/" + file + "\n--- a/" + file + "\n+++ b/" + file + "\n";
    for (const Edit* edit : edits[file]) {
      part += "@@ seq " + std::to_string(edit->seq) + " " + edit->tool + " @@\n";
      append_lines(part, '-', edit->old_text);
      append_lines(part, '+', edit->new_text);
    }
    out.text += part;
    if (out.text.size() > max_bytes) break;
  }
  finish_diff(out, max_bytes);
  return out;
}

}  // namespace pa::review
