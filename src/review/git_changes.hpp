// project_changes and project_diff for a project in a git work tree: `git status
// --porcelain=v2 -z` and `git diff --numstat -z` against HEAD (staged and unstaged together),
// untracked files as additions. Paths are relative to the project directory (which may be a
// subdirectory of the work tree: only what is beneath it is reported).
#pragma once

#include <optional>
#include <string>
#include <variant>

#include "review/changes.hpp"
#include "review/git.hpp"

namespace pa::review {

// Why git could not answer (a timeout, a failed command): reason + message for the reply.
struct GitProblem {
  std::string reason;  // timeout, failed
  std::string message;
};

// nullopt when `project_dir` is not in a git work tree or git is not installed: the caller
// falls back to history.
std::optional<std::variant<Changes, GitProblem>> git_changes(const GitSettings& settings,
                                                             const std::string& project_dir);

// `path` (relative, already checked) limits the diff to one file or directory; "" = all.
std::optional<std::variant<Diff, GitProblem>> git_diff(const GitSettings& settings,
                                                       const std::string& project_dir,
                                                       const std::string& path,
                                                       std::size_t max_bytes = kMaxDiffBytes);

// Parsers, exposed for tests. `prefix` is stripped from every path (and paths outside it dropped).
void parse_porcelain_v2(std::string_view out, const std::string& prefix, Changes& changes);
void parse_numstat(std::string_view out, Changes& changes);

}  // namespace pa::review
