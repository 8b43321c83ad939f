#include "review/git.hpp"

#include <fcntl.h>

#include <algorithm>
#include <cstdlib>
#include <set>

#include "agent/child_process.hpp"
#include "agent/process_spawn.hpp"

namespace pa::review {

namespace {
std::string server_path() {
  const char* path = std::getenv("PATH");
  return path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
}

// Options before the subcommand: none of the config keys that run programs may take effect.
std::vector<std::string> safety_options() {
  return {
      "--no-pager",           "-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null",  "-c",
      "core.pager=cat",       "-c", "diff.external=",       "-c", "core.untrackedCache=false", "-c",
      "protocol.allow=never", "-c", "color.ui=false"};
}
}  // namespace

std::vector<std::string> git_env(const GitSettings& settings) {
  return {"PATH=" + (settings.path_env.empty() ? server_path() : settings.path_env),
          "LC_ALL=C",
          "GIT_CONFIG_NOSYSTEM=1",
          "GIT_CONFIG_GLOBAL=/dev/null",
          "GIT_TERMINAL_PROMPT=0",
          "GIT_OPTIONAL_LOCKS=0",
          "GIT_PAGER=cat",
          "HOME=/nonexistent"};
}

GitOutput run_git(const GitSettings& settings, const std::string& dir,
                  const std::vector<std::string>& args, std::vector<int> ok_exit_codes) {
  GitOutput result;
  agent::SpawnSpec spec;
  spec.env = git_env(settings);
  spec.binary = agent::find_executable(settings.binary, spec.env);
  if (spec.binary.empty()) {
    result.status = GitOutput::Status::kGitMissing;
    return result;
  }
  // git starts in the project directory itself, never where a symlink put in its place leads.
  agent::detail::UniqueFd cwd(::open(dir.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECTORY | O_NOFOLLOW));
  if (!cwd.valid()) {
    result.status = GitOutput::Status::kNotRepository;
    return result;
  }
  spec.cwd = dir;
  spec.cwd_fd = cwd.get();
  spec.args = safety_options();
  spec.args.insert(spec.args.end(), args.begin(), args.end());
  auto captured = agent::run_capture(spec, settings.timeout, settings.max_output);
  result.out = std::move(captured.out);
  result.truncated = captured.truncated;
  if (captured.ec == std::errc::timed_out) {
    result.status = GitOutput::Status::kTimedOut;
  } else if (captured.ec) {
    result.status = GitOutput::Status::kGitMissing;
  } else {
    result.exit_code =
        captured.status.signaled ? 128 + captured.status.signal : captured.status.code;
    const bool ok = !captured.status.signaled &&
                    std::find(ok_exit_codes.begin(), ok_exit_codes.end(), result.exit_code) !=
                        ok_exit_codes.end();
    if (!ok) result.status = GitOutput::Status::kFailed;
  }
  return result;
}

Repository find_repository(const GitSettings& settings, const std::string& dir) {
  Repository repo;
  const auto inside =
      run_git(settings, dir, {"rev-parse", "--is-inside-work-tree", "--show-prefix"});
  if (inside.status == GitOutput::Status::kFailed) {
    repo.status = GitOutput::Status::kNotRepository;  // git says 128: not a repository
    return repo;
  }
  if (inside.status != GitOutput::Status::kOk) {
    repo.status = inside.status;
    return repo;
  }
  const auto newline = inside.out.find('\n');
  if (inside.out.substr(0, newline) != "true") {
    repo.status = GitOutput::Status::kNotRepository;  // e.g. inside .git
    return repo;
  }
  repo.prefix = newline == std::string::npos ? "" : inside.out.substr(newline + 1);
  while (!repo.prefix.empty() && repo.prefix.back() == '\n') repo.prefix.pop_back();

  const auto head = run_git(settings, dir, {"rev-parse", "--verify", "-q", "HEAD"}, {0, 1});
  if (head.status != GitOutput::Status::kOk) {
    repo.status = head.status;
    return repo;
  }
  repo.has_head = head.exit_code == 0;

  // Filter drivers (clean/smudge/process) are programs named in the repository's config; git
  // would run them to compare work tree files. Each one found is overridden with an empty command.
  const auto filters =
      run_git(settings, dir, {"config", "-z", "--name-only", "--get-regexp", "^filter\\."}, {0, 1});
  if (filters.status == GitOutput::Status::kTimedOut) {
    repo.status = filters.status;
    return repo;
  }
  std::set<std::string> drivers;
  std::size_t start = 0;
  while (start < filters.out.size()) {
    auto end = filters.out.find('\0', start);
    if (end == std::string::npos) end = filters.out.size();
    const std::string key = filters.out.substr(start, end - start);
    start = end + 1;
    const auto last_dot = key.rfind('.');
    if (last_dot == std::string::npos || last_dot <= 7) continue;
    drivers.insert(key.substr(7, last_dot - 7));  // between "filter." and ".<setting>"
  }
  for (const auto& driver : drivers) {
    for (const char* setting : {"clean=", "smudge=", "process=", "required=false"}) {
      repo.filter_overrides.push_back("-c");
      repo.filter_overrides.push_back("filter." + driver + "." + setting);
    }
  }
  return repo;
}

}  // namespace pa::review
