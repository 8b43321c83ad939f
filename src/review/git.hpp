// Running git on a project without running code from the repository: argv only (run_capture),
// a timeout, an output cap, no system or global config, and every config key that could start
// a program overridden on the command line (fsmonitor, hooks, pager, external diff, textconv,
// and the repository's own filter drivers).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace pa::review {

struct GitSettings {
  std::string binary = "git";  // a name looked up in PATH, or a path
  std::string path_env;        // PATH for the lookup and the child ("" = the server's)
  std::chrono::milliseconds timeout{10000};
  std::size_t max_output = 8u << 20;  // bytes of stdout kept per git command
};

struct GitOutput {
  enum class Status { kOk, kNotRepository, kGitMissing, kTimedOut, kFailed };
  Status status = Status::kOk;
  std::string out;
  bool truncated = false;
  int exit_code = 0;
};

// The environment git runs with: PATH, LC_ALL=C, no system/global config, no prompts, no
// optional locks (status never writes the index).
std::vector<std::string> git_env(const GitSettings& settings);

// `git <safety options> <args...>` in `dir`. A non-zero exit is kFailed (exit_code set) unless
// `ok_exit_codes` lists it; kGitMissing when the binary cannot be found.
GitOutput run_git(const GitSettings& settings, const std::string& dir,
                  const std::vector<std::string>& args, std::vector<int> ok_exit_codes = {0});

// Where `dir` sits in a git work tree: nullopt-like status kNotRepository when it is not in
// one; `prefix` = dir relative to the work tree's top ("" or "sub/dir/").
struct Repository {
  GitOutput::Status status = GitOutput::Status::kOk;
  std::string prefix;
  bool has_head = false;
  // `-c filter.<name>.clean= ...` for each filter driver the repository's config names.
  std::vector<std::string> filter_overrides;
};
Repository find_repository(const GitSettings& settings, const std::string& dir);

// The empty tree's id: the base of a diff in a repository without commits.
inline constexpr const char* kEmptyTree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

}  // namespace pa::review
