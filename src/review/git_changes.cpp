#include "review/git_changes.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <map>

#include "review/safe_open.hpp"

namespace pa::review {

namespace {
using Status = GitOutput::Status;

std::vector<std::string_view> split_nul(std::string_view out) {
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  while (start < out.size()) {
    auto end = out.find('\0', start);
    if (end == std::string_view::npos) end = out.size();
    fields.push_back(out.substr(start, end - start));
    start = end + 1;
  }
  return fields;
}

// The n-th space-separated field of a porcelain record, and where the rest (the path) begins.
std::string_view nth_field(std::string_view record, int n, std::size_t* rest = nullptr) {
  std::size_t start = 0;
  for (int i = 0; i < n; ++i) {
    start = record.find(' ', start);
    if (start == std::string_view::npos) return {};
    ++start;
  }
  const auto end = record.find(' ', start);
  if (rest != nullptr) *rest = end == std::string_view::npos ? record.size() : end + 1;
  return record.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
}

std::optional<std::string> strip_prefix(std::string_view path, const std::string& prefix) {
  if (path.substr(0, prefix.size()) != prefix) return std::nullopt;
  return std::string(path.substr(prefix.size()));
}

std::string status_word(char x, char y) {
  const char c = x != '.' ? x : y;
  switch (c) {
    case 'A':
      return "added";
    case 'D':
      return "deleted";
    case 'R':
      return "renamed";
    case 'C':
      return "copied";
    case 'T':
      return "type_changed";
    default:
      return "modified";
  }
}

std::optional<GitProblem> problem(const GitOutput& out, std::string_view what) {
  if (out.status == Status::kTimedOut) {
    return GitProblem{"timeout", "git " + std::string(what) +
                                     " did not finish in time; the repository may be very large"};
  }
  if (out.status != Status::kOk) {
    return GitProblem{"failed", "git " + std::string(what) + " failed (exit code " +
                                    std::to_string(out.exit_code) + ")"};
  }
  return std::nullopt;
}

std::vector<std::string> with_overrides(const Repository& repo, std::vector<std::string> args) {
  std::vector<std::string> all = repo.filter_overrides;
  all.insert(all.end(), args.begin(), args.end());
  return all;
}

// Lines of a new (untracked) file for its counts and its diff, read beneath the project.
struct NewFile {
  bool readable = false;
  bool binary = false;
  std::string text;
};
constexpr std::size_t kMaxNewFileBytes = 1u << 20;

NewFile read_new_file(const std::string& project_dir, const std::string& path) {
  NewFile file;
  auto opened = open_beneath(project_dir, path, 0);
  if (!opened.fd.valid()) return file;
  std::string bytes(kMaxNewFileBytes + 1, '\0');
  std::size_t got = 0;
  while (got < bytes.size()) {
    const auto n = ::read(opened.fd.get(), bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got > kMaxNewFileBytes) return file;  // too large to count: unknown
  bytes.resize(got);
  file.readable = true;
  file.binary = bytes.find('\0') != std::string::npos;
  if (!file.binary) file.text = std::move(bytes);
  return file;
}

std::uint64_t count_lines(std::string_view text) {
  auto n = static_cast<std::uint64_t>(std::count(text.begin(), text.end(), '\n'));
  if (!text.empty() && text.back() != '\n') ++n;
  return n;
}

std::string new_file_diff(const std::string& path, const NewFile& file) {
  std::string out = "diff --git a/" + path + " b/" + path + "\nnew file mode 100644\n";
  if (!file.readable) return out + "(untracked file not shown: too large or not readable)\n";
  if (file.binary) return out + "Binary files /dev/null and b/" + path + " differ\n";
  const auto lines = count_lines(file.text);
  if (lines == 0) return out;
  out += "--- /dev/null\n+++ b/" + path + "\n@@ -0,0 +1";
  if (lines != 1) out += "," + std::to_string(lines);
  out += " @@\n";
  std::size_t start = 0;
  while (start < file.text.size()) {
    auto end = file.text.find('\n', start);
    const bool last = end == std::string::npos;
    out += '+';
    out.append(file.text, start, last ? std::string::npos : end - start);
    out += '\n';
    if (last) {
      out += "\\ No newline at end of file\n";
      break;
    }
    start = end + 1;
  }
  return out;
}

std::string base_of(const Repository& repo) {
  return repo.has_head ? "HEAD" : kEmptyTree;
}
}  // namespace

void parse_porcelain_v2(std::string_view out, const std::string& prefix, Changes& changes) {
  const auto records = split_nul(out);
  for (std::size_t i = 0; i < records.size(); ++i) {
    const std::string_view record = records[i];
    if (record.size() < 2) continue;
    ChangedFile file;
    std::size_t path_at = 0;
    std::optional<std::string> path;
    switch (record[0]) {
      case '1': {
        const auto xy = nth_field(record, 1);
        nth_field(record, 7, &path_at);
        if (xy.size() != 2) continue;
        file.status = status_word(xy[0], xy[1]);
        file.staged = xy[0] != '.';
        path = strip_prefix(record.substr(path_at), prefix);
        break;
      }
      case '2': {
        const auto xy = nth_field(record, 1);
        nth_field(record, 8, &path_at);
        if (xy.size() != 2) continue;
        file.status = status_word(xy[0], xy[1]);
        file.staged = xy[0] != '.';
        path = strip_prefix(record.substr(path_at), prefix);
        if (i + 1 < records.size()) {
          // The original path follows as its own NUL-terminated field.
          if (auto old = strip_prefix(records[i + 1], prefix))
            file.old_path = *old;
          else
            file.old_path = std::string(records[i + 1]);
          ++i;
        }
        break;
      }
      case 'u':
        nth_field(record, 9, &path_at);
        file.status = "unmerged";
        path = strip_prefix(record.substr(path_at), prefix);
        break;
      case '?':
        file.status = "untracked";
        path = strip_prefix(record.substr(2), prefix);
        break;
      default:
        continue;  // '!' ignored files, '#' headers
    }
    if (!path || path->empty()) continue;
    if (changes.files.size() >= kMaxChangedFiles) {
      changes.truncated = true;
      return;
    }
    file.path = std::move(*path);
    changes.files.push_back(std::move(file));
  }
}

void parse_numstat(std::string_view out, Changes& changes) {
  std::map<std::string, ChangedFile*, std::less<>> by_path;
  for (auto& file : changes.files) by_path.emplace(file.path, &file);
  const auto fields = split_nul(out);
  for (std::size_t i = 0; i < fields.size(); ++i) {
    const auto record = fields[i];
    const auto tab1 = record.find('\t');
    const auto tab2 = tab1 == std::string_view::npos ? tab1 : record.find('\t', tab1 + 1);
    if (tab2 == std::string_view::npos) continue;
    const auto added = record.substr(0, tab1);
    const auto deleted = record.substr(tab1 + 1, tab2 - tab1 - 1);
    std::string_view path = record.substr(tab2 + 1);
    if (path.empty() && i + 2 < fields.size()) {  // a rename: "\0old\0new"
      path = fields[i + 2];
      i += 2;
    }
    auto it = by_path.find(path);
    if (it == by_path.end()) continue;
    if (added == "-") {
      it->second->binary = true;
      continue;
    }
    try {
      it->second->added = std::stoull(std::string(added));
      it->second->deleted = std::stoull(std::string(deleted));
    } catch (const std::exception&) {
    }
  }
}

std::optional<std::variant<Changes, GitProblem>> git_changes(const GitSettings& settings,
                                                             const std::string& project_dir) {
  const auto repo = find_repository(settings, project_dir);
  if (repo.status == Status::kNotRepository || repo.status == Status::kGitMissing) {
    return std::nullopt;
  }
  if (repo.status != Status::kOk) return GitProblem{"timeout", "git did not answer in time"};
  Changes changes;
  changes.source = "git";
  const auto status =
      run_git(settings, project_dir,
              with_overrides(repo, {"status", "--porcelain=v2", "-z", "--untracked-files=all",
                                    "--ignore-submodules=all", "--", "."}));
  if (auto p = problem(status, "status")) return *p;
  parse_porcelain_v2(status.out, repo.prefix, changes);
  changes.truncated = changes.truncated || status.truncated;

  const auto numstat =
      run_git(settings, project_dir,
              with_overrides(
                  repo, {"diff", "--numstat", "-z", "--no-ext-diff", "--no-textconv",
                         "--ignore-submodules=all", "--relative", "-M", base_of(repo), "--", "."}));
  if (auto p = problem(numstat, "diff --numstat")) return *p;
  parse_numstat(numstat.out, changes);
  for (auto& file : changes.files) {
    if (file.status != "untracked") continue;
    const auto content = read_new_file(project_dir, file.path);
    if (!content.readable) continue;
    file.binary = content.binary;
    if (!content.binary) {
      file.added = count_lines(content.text);
      file.deleted = 0;
    }
  }
  return changes;
}

std::optional<std::variant<Diff, GitProblem>> git_diff(const GitSettings& settings,
                                                       const std::string& project_dir,
                                                       const std::string& path,
                                                       std::size_t max_bytes) {
  const auto repo = find_repository(settings, project_dir);
  if (repo.status == Status::kNotRepository || repo.status == Status::kGitMissing) {
    return std::nullopt;
  }
  if (repo.status != Status::kOk) return GitProblem{"timeout", "git did not answer in time"};
  const std::string pathspec = path.empty() ? "." : path;
  GitSettings capped = settings;
  capped.max_output = max_bytes;
  Diff diff;
  diff.source = "git";
  // ":(literal)" so that a file named like a pattern ("*.c") means only itself.
  const auto tracked =
      run_git(capped, project_dir,
              with_overrides(repo, {"diff", "--no-ext-diff", "--no-textconv", "--no-color",
                                    "--ignore-submodules=all", "--relative", "-M", base_of(repo),
                                    "--", ":(literal)" + pathspec}));
  if (auto p = problem(tracked, "diff")) return *p;
  diff.text = tracked.out;
  diff.truncated = tracked.truncated;

  // Untracked files are not in `git diff`: each is shown as a new file.
  const auto untracked =
      run_git(settings, project_dir,
              with_overrides(repo, {"ls-files", "-z", "--others", "--exclude-standard", "--",
                                    ":(literal)" + pathspec}));
  if (auto p = problem(untracked, "ls-files")) return *p;
  for (const auto name : split_nul(untracked.out)) {
    if (diff.text.size() >= max_bytes) {
      diff.truncated = true;
      break;
    }
    // ls-files prints paths relative to the current directory (the project).
    const std::string file(name);
    diff.text += new_file_diff(file, read_new_file(project_dir, file));
  }
  finish_diff(diff, max_bytes);
  return diff;
}

}  // namespace pa::review
