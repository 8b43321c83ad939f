#include "projects/project_store.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "common/atomic_file.hpp"

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
}  // namespace

std::vector<ProjectInfo> ProjectStore::load_all(std::vector<std::string>& warnings) const {
  std::vector<ProjectInfo> out;
  std::error_code ec;
  if (!fs::exists(root_, ec)) return out;
  for (fs::directory_iterator it(root_, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_directory()) continue;
    const auto file = it->path() / "project.json";
    std::error_code read_ec;
    const std::string text = common::read_small_file(file, read_ec);
    if (read_ec) {
      warnings.push_back("skipping project " + it->path().filename().string() + ": cannot read " +
                         file.string() + ": " + read_ec.message());
      continue;
    }
    json::error_code parse_ec;
    const json::value v = json::parse(text, parse_ec);
    ProjectInfo info;
    bool ok = !parse_ec && v.is_object();
    if (ok) {
      const auto& o = v.get_object();
      ok = read_string(o, "id", info.id) && read_string(o, "path", info.path) &&
           read_string(o, "created_at", info.created_at) &&
           read_string(o, "last_active", info.last_active) && looks_like_uuid(info.id) &&
           info.id == it->path().filename().string();
      if (ok) {
        if (const auto* s = o.if_contains("session_id"); s != nullptr && s->is_string()) {
          info.session_id = std::string(s->get_string());
        }
        if (const auto* n = o.if_contains("last_seq"); n != nullptr && n->is_uint64()) {
          info.seq_mark = n->get_uint64();
        } else if (n != nullptr && n->is_int64() && n->get_int64() >= 0) {
          info.seq_mark = static_cast<std::uint64_t>(n->get_int64());
        }
      }
    }
    if (!ok) {
      warnings.push_back("skipping project " + it->path().filename().string() + ": " +
                         file.string() + " is not valid project metadata");
      continue;
    }
    out.push_back(std::move(info));
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
