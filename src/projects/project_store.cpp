#include "projects/project_store.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <optional>
#include <utility>

#include "common/atomic_file.hpp"
#include "projects/metadata_rebuild.hpp"
#include "protocol/clock.hpp"

namespace pa::projects {

namespace fs = std::filesystem;
namespace json = boost::json;

ProjectStore::ProjectStore(fs::path data_dir) : root_(std::move(data_dir) / "projects") {}

fs::path ProjectStore::project_dir(const std::string& id) const {
  return root_ / id;
}
fs::path ProjectStore::logs_dir(const std::string& id) const {
  return root_ / id / "logs";
}

namespace {
constexpr std::string_view kCreatingPrefix = ".creating-";
constexpr std::string_view kDeletingPrefix = ".deleting-";

std::string metadata_text(const ProjectInfo& info) {
  json::object stored = to_json(info);
  stored.erase("state");
  // The spend as counted (the views of it in to_json are computed from it).
  stored.erase("totals");
  stored.erase("today");
  stored.erase("session_totals");
  stored["spend"] = spend::to_stored_json(info.spend);
  stored["last_seq"] = info.seq_mark;
  stored["format"] = 1;
  return json::serialize(stored) + "\n";
}
}  // namespace

std::error_code ProjectStore::create(const ProjectInfo& info) const {
  std::error_code ec;
  fs::create_directories(root_, ec);
  if (ec) return ec;
  const auto staging = root_ / (std::string(kCreatingPrefix) + info.id);
  const auto dir = project_dir(info.id);
  if (fs::exists(dir, ec) || ec) return ec ? ec : std::make_error_code(std::errc::file_exists);
  fs::create_directory(staging, ec);
  if (ec) return ec;
  fs::permissions(staging, fs::perms::owner_all, ec);
  if (!ec) ec = common::write_file_atomically(staging / "project.json", metadata_text(info), 0600);
  // One rename makes the project appear whole; RENAME_NOREPLACE semantics are not needed: the id
  // is a fresh random UUID and was checked above.
  if (!ec) fs::rename(staging, dir, ec);
  if (!ec) ec = common::fsync_directory(root_);
  if (ec) {
    // Usually empty by now (a failed atomic write removes its temporary file): rmdir needs no
    // descriptor, which matters when the failure was running out of them. What stays is removed
    // at the next start.
    std::error_code ignored;
    if (!fs::remove(staging, ignored)) fs::remove_all(staging, ignored);
  }
  return ec;
}

std::error_code ProjectStore::save(const ProjectInfo& info) const {
  std::error_code ec;
  const auto dir = project_dir(info.id);
  if (!fs::exists(dir, ec)) {
    fs::create_directories(dir, ec);
    if (ec) return ec;
    fs::permissions(dir, fs::perms::owner_all, ec);
    if (ec) return ec;
    if (auto sync_ec = common::fsync_directory(root_)) return sync_ec;
  }
  return common::write_file_atomically(dir / "project.json", metadata_text(info), 0600);
}

void ProjectStore::remove_leftovers(std::vector<std::string>& notes) const {
  std::error_code ec;
  if (!fs::exists(root_, ec)) return;
  bool removed_any = false;
  for (fs::directory_iterator it(root_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code dec;
    if (!it->is_directory(dec)) continue;
    if (name.starts_with(kCreatingPrefix) || name.starts_with(kDeletingPrefix)) {
      fs::remove_all(it->path(), dec);
      notes.push_back("removed " + it->path().string() +
                      (name.starts_with(kCreatingPrefix)
                           ? ", left by a project_create that was interrupted"
                           : ", left by a project_delete that was interrupted") +
                      (dec ? " (incompletely: " + dec.message() + ")" : std::string()));
      removed_any = true;
      continue;
    }
    if (!looks_like_uuid(name)) continue;
    for (const auto& temp : common::remove_atomic_temp_files(it->path()))
      notes.push_back("removed " + (it->path() / temp).string() +
                      ", a temporary file left by an interrupted metadata write");
    if (fs::exists(it->path() / "project.json", dec)) continue;
    // No metadata: an interrupted creation (before creations were staged) if nothing else is
    // there. Anything else, history above all, is left alone (and reported by load_all).
    if (fs::is_empty(it->path(), dec) && !dec) {
      fs::remove(it->path(), dec);
      notes.push_back("removed the empty project directory " + it->path().string() +
                      ", left by a project_create that was interrupted");
      removed_any = true;
    }
  }
  if (removed_any) common::fsync_directory(root_);
}

namespace {
bool read_string(const json::object& o, std::string_view key, std::string& out) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) return false;
  out = std::string(v->get_string());
  return true;
}

// Parses project.json of the project named `dir_name`; nullopt with `problem` set when it is not
// usable metadata.
std::optional<ProjectInfo> parse_metadata(const std::string& text, const std::string& dir_name,
                                          std::string& problem) {
  json::error_code parse_ec;
  const json::value v = json::parse(text, parse_ec);
  if (parse_ec) {
    problem = text.empty() ? "is empty"
                           : "does not parse (truncated or not JSON: " + parse_ec.message() + ")";
    return std::nullopt;
  }
  if (!v.is_object()) {
    problem = "is not a JSON object";
    return std::nullopt;
  }
  const auto& o = v.get_object();
  ProjectInfo info;
  for (const auto& [key, out] : {std::pair<std::string_view, std::string*>{"id", &info.id},
                                 {"path", &info.path},
                                 {"created_at", &info.created_at},
                                 {"last_active", &info.last_active}}) {
    if (!read_string(o, key, *out)) {
      problem = "has no valid '" + std::string(key) + "'";
      return std::nullopt;
    }
  }
  if (info.id != dir_name) {
    problem = "names another project id (" + info.id + ")";
    return std::nullopt;
  }
  if (const auto* s = o.if_contains("session_id"); s != nullptr && s->is_string()) {
    info.session_id = std::string(s->get_string());
  }
  if (const auto* n = o.if_contains("last_seq"); n != nullptr && n->is_uint64()) {
    info.seq_mark = n->get_uint64();
  } else if (n != nullptr && n->is_int64() && n->get_int64() >= 0) {
    info.seq_mark = static_cast<std::uint64_t>(n->get_int64());
  }
  info.spend = spend::ledger_from_json(o.if_contains("spend"));
  return info;
}

// project.json.corrupt-20240101T120000Z (-N when taken), beside the original.
fs::path corrupt_name(const fs::path& file) {
  const std::string stamp = protocol::format_file_stamp(std::chrono::system_clock::now());
  // "2024-01-01_12-00-00" -> "20240101T120000Z"
  std::string compact;
  for (char c : stamp) {
    if (c == '_') {
      compact += 'T';
    } else if (c != '-') {
      compact += c;
    }
  }
  compact += 'Z';
  fs::path candidate = file;
  candidate += ".corrupt-" + compact;
  std::error_code ec;
  for (int n = 1; fs::exists(candidate, ec) && n < 1000; ++n) {
    candidate = file;
    candidate += ".corrupt-" + compact + "-" + std::to_string(n);
  }
  return candidate;
}
}  // namespace

std::vector<ProjectInfo> ProjectStore::load_all(std::vector<std::string>& warnings,
                                                std::vector<MetadataRecovery>* recoveries) const {
  std::vector<ProjectInfo> out;
  std::error_code ec;
  if (!fs::exists(root_, ec)) return out;
  for (fs::directory_iterator it(root_, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_directory()) continue;
    const std::string dir_name = it->path().filename().string();
    const auto file = it->path() / "project.json";
    if (!looks_like_uuid(dir_name)) {
      warnings.push_back("skipping " + it->path().string() +
                         ": not a project directory (its name is not a project id)");
      continue;
    }
    std::error_code read_ec;
    const std::string text = common::read_small_file(file, read_ec);
    std::string problem;
    std::optional<ProjectInfo> info;
    std::error_code stat_ec;
    const bool missing = read_ec && !fs::exists(fs::symlink_status(file, stat_ec));
    if (missing) {
      problem = "is missing";
    } else if (read_ec) {
      problem = "cannot be read (" + read_ec.message() + ")";
    } else {
      info = parse_metadata(text, dir_name, problem);
    }
    if (info) {
      if (info->path.empty()) {
        // Rebuilt earlier without a path: still listed, still said at every start.
        MetadataRecovery note;
        note.id = dir_name;
        note.dir = it->path();
        note.problem = "names no path (rebuilt earlier without one)";
        note.saved = true;
        if (recoveries != nullptr) recoveries->push_back(std::move(note));
      }
      out.push_back(std::move(*info));
      continue;
    }
    const auto logs = logs_dir(dir_name);
    std::error_code exists_ec;
    if (missing && !fs::exists(logs, exists_ec)) {
      warnings.push_back("skipping " + it->path().string() +
                         ": it has neither project.json nor a history (nothing to list)");
      continue;
    }
    // Damaged metadata is never a silent loss: keep the file aside, rebuild from the history.
    MetadataRecovery recovery;
    recovery.id = dir_name;
    recovery.dir = it->path();
    recovery.problem = problem;
    bool can_save = missing;
    if (!missing) {
      const auto aside = corrupt_name(file);
      std::error_code move_ec;
      fs::rename(file, aside, move_ec);
      if (!move_ec) move_ec = common::fsync_directory(it->path());
      if (move_ec) {
        warnings.push_back("project " + dir_name + ": could not move the damaged " + file.string() +
                           " aside (" + move_ec.message() +
                           "); it is left in place and the rebuilt metadata is not written");
      } else {
        recovery.kept_as = aside;
        can_save = true;
      }
    }
    RebuildSources sources;
    ProjectInfo rebuilt = rebuild_metadata(dir_name, logs, text, sources, warnings);
    recovery.path_source = sources.path;
    if (can_save) {
      if (auto save_ec = save(rebuilt)) {
        warnings.push_back("project " + dir_name + ": cannot write the rebuilt " + file.string() +
                           ": " + save_ec.message());
      } else {
        recovery.saved = true;
      }
    }
    if (recoveries != nullptr) {
      recoveries->push_back(std::move(recovery));
    } else {
      warnings.push_back(recovery.message());
    }
    out.push_back(std::move(rebuilt));
  }
  if (ec) warnings.push_back("cannot list " + root_.string() + ": " + ec.message());
  return out;
}

std::error_code ProjectStore::remove(const std::string& id) const {
  std::error_code ec;
  const auto doomed = root_ / (std::string(kDeletingPrefix) + id);
  fs::rename(project_dir(id), doomed, ec);
  if (ec == std::errc::no_such_file_or_directory) return {};
  if (ec) return ec;
  if (auto sync_ec = common::fsync_directory(root_)) return sync_ec;
  fs::remove_all(doomed, ec);
  if (ec) return ec;
  return common::fsync_directory(root_);
}

}  // namespace pa::projects
