#include "review/changes.hpp"

#include <boost/json/array.hpp>

#include "protocol/utf8.hpp"

namespace pa::review {

namespace json = boost::json;

boost::json::object to_json(const Changes& changes) {
  json::array files;
  for (const auto& file : changes.files) {
    json::object entry{{"path", file.path}, {"status", file.status}};
    if (file.old_path) entry["old_path"] = *file.old_path;
    entry["added"] = file.added ? json::value(*file.added) : json::value(nullptr);
    entry["deleted"] = file.deleted ? json::value(*file.deleted) : json::value(nullptr);
    entry["binary"] = file.binary;
    if (changes.source == "git") {
      entry["staged"] = file.staged;
    } else {
      json::array seqs, tools;
      for (auto seq : file.seqs) seqs.push_back(seq);
      for (const auto& tool : file.tools) tools.push_back(json::value(tool));
      entry["seqs"] = std::move(seqs);
      entry["tools"] = std::move(tools);
    }
    files.push_back(std::move(entry));
  }
  return json::object{
      {"source", changes.source}, {"files", std::move(files)}, {"truncated", changes.truncated}};
}

void finish_diff(Diff& diff, std::size_t max_bytes) {
  // A cut (here, or git's output at its cap) ends at the last complete line.
  if (diff.text.size() > max_bytes || diff.truncated) {
    const std::size_t keep = std::min(diff.text.size(), max_bytes);
    const auto cut = keep == 0 ? std::string::npos : diff.text.rfind('\n', keep - 1);
    diff.text.resize(cut == std::string::npos ? 0 : cut + 1);
    diff.truncated = true;
  }
  if (!protocol::is_valid_utf8(diff.text)) diff.text = protocol::sanitize_utf8(diff.text);
}

}  // namespace pa::review
