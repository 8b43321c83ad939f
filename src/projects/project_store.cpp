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
  json::object stored = to_json(info);
  stored.erase("state");
  stored["last_seq"] = info.seq_mark;
  stored["format"] = 1;
  return common::write_file_atomically(dir / "project.json", json::serialize(stored) + "\n", 0600);
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
  fs::remove_all(project_dir(id), ec);
  if (ec) return ec;
  return common::fsync_directory(root_);
}

}  // namespace pa::projects
