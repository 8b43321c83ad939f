#include "projects/path_policy.hpp"

#include <algorithm>
#include <filesystem>
#include <stdexcept>
#include <system_error>

#include "projects/path_rules.hpp"

namespace pa::projects {

namespace fs = std::filesystem;

namespace {

// True when `path` is `dir` or inside it (component-wise).
bool within(std::string_view path, std::string_view dir) {
  if (dir == "/") return true;
  return path == dir ||
         (path.size() > dir.size() && path.starts_with(dir) && path[dir.size()] == '/');
}

// The canonical form of an existing path, or its lexically normal form when it does not exist
// (a private directory the server has not created yet still deserves protection).
std::string best_canonical(const std::string& path) {
  std::error_code ec;
  const fs::path absolute = fs::absolute(fs::path(path), ec);
  if (ec) return fs::path(path).lexically_normal().string();
  fs::path canonical = fs::weakly_canonical(absolute, ec);
  if (ec) canonical = absolute.lexically_normal();
  std::string text = canonical.string();
  while (text.size() > 1 && text.back() == '/') text.pop_back();
  return text;
}

void add_unique(std::vector<std::string>& list, std::string value) {
  if (value.empty()) return;
  if (std::find(list.begin(), list.end(), value) == list.end()) list.push_back(std::move(value));
}

// "/lib", "/lib64", "/libx32", ...: every top-level directory whose name starts with "lib".
bool in_top_level_lib(std::string_view path) {
  return path.starts_with("/lib");
}

}  // namespace

const std::vector<std::string>& builtin_denied_dirs() {
  static const std::vector<std::string> dirs = {"/etc", "/proc", "/sys", "/dev", "/boot", "/usr",
                                                "/bin", "/sbin", "/lib", "/var", "/root"};
  return dirs;
}

PathPolicy PathPolicy::make(const Settings& settings) {
  PathPolicy policy;
  for (const auto& root : settings.allowed_roots) {
    auto canonical = canonical_project_path(root);
    if (auto* error = std::get_if<protocol::Error>(&canonical)) {
      throw std::runtime_error("invalid value for projects.allowed_roots: " + error->message);
    }
    add_unique(policy.allowed_roots_, std::get<std::string>(std::move(canonical)));
  }
  const std::string home = settings.home.empty() ? std::string() : best_canonical(settings.home);
  for (const auto& dir : builtin_denied_dirs()) {
    if (dir == "/root" && (settings.home == "/root" || home == "/root")) continue;
    add_unique(policy.denied_trees_, dir);
    // On merged-/usr systems /bin is /usr/bin: keep the canonical form too.
    const std::string canonical = best_canonical(dir);
    if (canonical != "/" && !(dir == "/root" && home == canonical)) {
      add_unique(policy.denied_trees_, canonical);
    }
  }
  for (const auto& dir : settings.private_dirs) {
    if (!dir.empty()) add_unique(policy.private_dirs_, best_canonical(dir));
  }
  return policy;
}

std::optional<std::string> PathPolicy::refusal(std::string_view canonical) const {
  if (canonical.empty()) {
    // A project whose metadata was rebuilt without a path (project_store.hpp).
    return "the project's path is unknown (its metadata was damaged and could not be rebuilt); "
           "delete the project and create it again";
  }
  if (canonical == "/") return "the root directory (/) cannot be a project or an added directory";
  for (const auto& dir : private_dirs_) {
    if (paths_nest(canonical, dir)) {
      return within(canonical, dir)
                 ? "it is inside the server's private directory " + dir
                 : "it contains the server's private directory " + dir +
                       " (data or certificates); choose a directory that does not";
    }
  }
  // An allowed root the operator placed inside a system directory (say /var/www) is an explicit
  // exception to the deny list for what lies under it.
  const auto explicitly_allowed = [&](std::string_view denied) {
    return std::any_of(allowed_roots_.begin(), allowed_roots_.end(), [&](const std::string& root) {
      return within(root, denied) && root != denied && within(canonical, root);
    });
  };
  for (const auto& dir : denied_trees_) {
    if (within(canonical, dir) && !explicitly_allowed(dir)) {
      return "it is inside " + dir + ", a system directory the server refuses (built-in deny list)";
    }
  }
  if (in_top_level_lib(canonical)) {
    const auto slash = canonical.find('/', 1);
    const std::string top(canonical.substr(0, slash));
    if (!explicitly_allowed(top)) {
      return "it is inside " + top + ", a system library directory the server refuses";
    }
  }
  if (!allowed_roots_.empty() &&
      std::none_of(allowed_roots_.begin(), allowed_roots_.end(),
                   [&](const std::string& root) { return within(canonical, root); })) {
    std::string roots;
    for (const auto& root : allowed_roots_) roots += (roots.empty() ? "" : ", ") + root;
    return "it is outside projects.allowed_roots (" + roots + ")";
  }
  return std::nullopt;
}

}  // namespace pa::projects
