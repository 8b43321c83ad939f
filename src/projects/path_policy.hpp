// Where projects and `add_dirs` may point: a built-in deny list of system directories and the
// server's own files, and optionally a list of allowed roots. Applied to canonical paths, so a
// symlink or ".." cannot walk around it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pa::projects {

class PathPolicy {
 public:
  struct Settings {
    std::vector<std::string> allowed_roots;  // projects.allowed_roots; empty = anywhere not denied
    std::vector<std::string> private_dirs;   // the data and certificate directories
    std::string home;                        // the server user's home ("" = unknown)
  };

  // No restrictions beyond "/" itself; for tools and tests that need no policy.
  PathPolicy() = default;

  // Canonicalizes the roots and private directories. Throws std::runtime_error naming the
  // setting when an allowed root does not exist or is not a directory (a startup error).
  static PathPolicy make(const Settings& settings);

  // Why `canonical` (an absolute canonical directory) may not be used, or nullopt if it may.
  std::optional<std::string> refusal(std::string_view canonical) const;

  const std::vector<std::string>& allowed_roots() const { return allowed_roots_; }

 private:
  std::vector<std::string> allowed_roots_;
  std::vector<std::string> private_dirs_;
  std::vector<std::string> denied_trees_;  // system directories, refused with all they contain
};

// The built-in system directories (before the home exception and canonicalization).
const std::vector<std::string>& builtin_denied_dirs();

}  // namespace pa::projects
