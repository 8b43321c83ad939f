// project_changes, project_diff, file_read, file_list, session_list: reviewing what the agent
// did, read-only. Fields are checked on the connection's strand; git, file reads and history
// scans run on the blocking pool (history pages on the project's strand, one page per post so
// the project's other work goes on in between). The logic lives in src/review/.
#include <boost/asio/post.hpp>
#include <boost/json/object.hpp>
#include <memory>

#include "projects/path_rules.hpp"
#include "protocol/data_reader.hpp"
#include "review/file_view.hpp"
#include "review/git_changes.hpp"
#include "review/history_changes.hpp"
#include "review/safe_open.hpp"
#include "review/sessions.hpp"
#include "server/hub.hpp"
#include "server/project.hpp"
#include "server/request.hpp"

namespace pa::server {

namespace asio = boost::asio;
namespace json = boost::json;
using protocol::ErrorCode;

namespace {
constexpr std::size_t kScanPageEntries = 1000;
constexpr std::uint64_t kScanPageBytes = 8u << 20;

protocol::Error invalid_path(const std::string& path, const std::string& reason,
                             const std::string& message) {
  return protocol::make_error(
      ErrorCode::kInvalidPath, message,
      json::object{{"field", "data.path"}, {"path", path}, {"reason", reason}});
}

protocol::Error git_failed(const review::GitProblem& problem) {
  return protocol::make_error(ErrorCode::kGitFailed,
                              problem.message +
                                  "; try again, or review from history with "
                                  "get_messages",
                              json::object{{"reason", problem.reason}});
}

// The seq of a stored history entry ({"seq":N,...}), 0 if it has none.
std::uint64_t entry_seq(std::string_view entry) {
  const auto at = entry.find("\"seq\":");
  if (at == std::string_view::npos) return 0;
  std::uint64_t seq = 0;
  for (auto i = at + 6; i < entry.size() && entry[i] >= '0' && entry[i] <= '9'; ++i) {
    seq = seq * 10 + static_cast<std::uint64_t>(entry[i] - '0');
  }
  return seq;
}

// Feeds every history entry after `after_seq` to `on_entry`, a page per strand post, then
// calls `on_done` (on the strand).
void scan_history(std::shared_ptr<Project> project, std::uint64_t after_seq,
                  std::function<void(std::string_view)> on_entry, std::function<void()> on_done) {
  auto& strand = project->strand();
  asio::post(strand, [project = std::move(project), after_seq, on_entry = std::move(on_entry),
                      on_done = std::move(on_done)]() mutable {
    history::Query query;
    query.after_seq = after_seq;
    query.limit = kScanPageEntries;
    query.max_bytes = kScanPageBytes;
    const auto page = project->read_history(query);
    std::uint64_t last = after_seq;
    for (const auto& entry : page.entries) {
      on_entry(entry);
      last = std::max(last, entry_seq(entry));
    }
    if (page.has_more && last > after_seq) {
      scan_history(std::move(project), last, std::move(on_entry), std::move(on_done));
      return;
    }
    on_done();
  });
}

// The project's directory when the path policy still allows it, else fails the request.
bool project_dir_allowed(const Request& r, const Project& project,
                         const projects::PathPolicy& policy) {
  if (auto reason = policy.refusal(project.path())) {
    r.fail(protocol::make_error(
        ErrorCode::kInvalidPath,
        "The project directory " + project.path() + " is refused by the path policy: " + *reason,
        json::object{{"path", project.path()}, {"reason", "refused"}}));
    return false;
  }
  return true;
}

// data.path of file_read/file_list/project_diff: checked here, before any disk access.
std::optional<std::string> read_relative_path(Request& request, protocol::DataReader& reader,
                                              bool required) {
  auto path = reader.string("path", required, projects::kMaxPathBytes);
  if (!reader.ok()) {
    request.fail(reader.error());
    return std::nullopt;
  }
  std::string value = path.value_or("");
  if (auto problem = review::relative_path_problem(value)) {
    request.fail(invalid_path(value, "invalid", "data.path " + *problem));
    return std::nullopt;
  }
  return value;
}
}  // namespace

void Hub::handle_project_changes(Request request) {
  protocol::DataReader reader(request.message.data);
  reader.allow_only({"since_seq"});
  const auto since_seq = reader.uint("since_seq", false, 0, UINT64_MAX);
  if (!reader.ok()) {
    request.fail(reader.error());
    return;
  }
  with_project(std::move(request), [self = shared_from_this(), since_seq](Request& r,
                                                                          Project& project) {
    if (!project_dir_allowed(r, project, self->path_policy_)) return;
    auto shared = project.shared_from_this();
    asio::post(self->pool_, [self, r = std::move(r), shared, since_seq]() mutable {
      auto from_git = review::git_changes(review::GitSettings{}, shared->path());
      if (from_git) {
        if (auto* problem = std::get_if<review::GitProblem>(&*from_git)) {
          r.fail(git_failed(*problem));
          return;
        }
        r.reply("project_changes_response", review::to_json(std::get<review::Changes>(*from_git)));
        return;
      }
      auto collector = std::make_shared<review::HistoryChanges>(shared->path(), since_seq);
      scan_history(
          shared, since_seq.value_or(0),
          [collector](std::string_view entry) { collector->add_entry(entry); },
          [collector, r = std::move(r)] {
            r.reply("project_changes_response", review::to_json(collector->changes()));
          });
    });
  });
}

void Hub::handle_project_diff(Request request) {
  protocol::DataReader reader(request.message.data);
  reader.allow_only({"path"});
  auto path = read_relative_path(request, reader, false);
  if (!path) return;
  with_project(std::move(request), [self = shared_from_this(), path = std::move(*path)](
                                       Request& r, Project& project) {
    if (!project_dir_allowed(r, project, self->path_policy_)) return;
    auto shared = project.shared_from_this();
    asio::post(self->pool_, [r = std::move(r), shared, path]() mutable {
      const auto reply = [](const Request& to, const review::Diff& diff,
                            const std::string& limited_to) {
        to.reply("project_diff_response",
                 json::object{
                     {"source", diff.source},
                     {"path", limited_to.empty() ? json::value(nullptr) : json::value(limited_to)},
                     {"diff", diff.text},
                     {"truncated", diff.truncated}});
      };
      auto from_git = review::git_diff(review::GitSettings{}, shared->path(), path);
      if (from_git) {
        if (auto* problem = std::get_if<review::GitProblem>(&*from_git)) {
          r.fail(git_failed(*problem));
          return;
        }
        reply(r, std::get<review::Diff>(*from_git), path);
        return;
      }
      auto collector = std::make_shared<review::HistoryChanges>(shared->path(), std::nullopt);
      scan_history(
          shared, 0, [collector](std::string_view entry) { collector->add_entry(entry); },
          [collector, r = std::move(r), path, reply] { reply(r, collector->diff(path), path); });
    });
  });
}

void Hub::handle_file_read(Request request) {
  protocol::DataReader reader(request.message.data);
  reader.allow_only({"path", "offset", "length"});
  review::ReadRequest read;
  const auto offset = reader.uint("offset", false, 0, UINT64_MAX);
  // A larger length is capped (the reply's length and truncated tell), not refused.
  const auto length = reader.uint("length", false, 1, UINT64_MAX);
  auto path = read_relative_path(request, reader, true);
  if (!path) return;
  read.path = std::move(*path);
  read.offset = offset.value_or(0);
  read.length = std::min(length.value_or(review::kDefaultReadBytes), review::kMaxReadBytes);
  with_project(std::move(request),
               [self = shared_from_this(), read = std::move(read)](Request& r, Project& project) {
                 if (!project_dir_allowed(r, project, self->path_policy_)) return;
                 asio::post(self->pool_, [self, r = std::move(r), dir = project.path(), read] {
                   auto result = review::read_file(dir, self->path_policy_, read);
                   if (auto* error = std::get_if<review::ViewError>(&result)) {
                     r.fail(invalid_path(read.path, error->reason, error->message));
                     return;
                   }
                   r.reply("file_read_response", std::get<json::object>(result));
                 });
               });
}

void Hub::handle_file_list(Request request) {
  protocol::DataReader reader(request.message.data);
  reader.allow_only({"path"});
  auto path = read_relative_path(request, reader, false);
  if (!path) return;
  with_project(std::move(request),
               [self = shared_from_this(), path = std::move(*path)](Request& r, Project& project) {
                 if (!project_dir_allowed(r, project, self->path_policy_)) return;
                 asio::post(self->pool_, [self, r = std::move(r), dir = project.path(), path] {
                   auto result = review::list_directory(dir, self->path_policy_, path);
                   if (auto* error = std::get_if<review::ViewError>(&result)) {
                     r.fail(invalid_path(path, error->reason, error->message));
                     return;
                   }
                   r.reply("file_list_response", std::get<json::object>(result));
                 });
               });
}

void Hub::handle_session_list(Request request) {
  if (!request.expect_no_data()) return;
  with_project(std::move(request), [](Request& r, Project& project) {
    auto sessions = std::make_shared<review::SessionList>();
    scan_history(
        project.shared_from_this(), 0,
        [sessions](std::string_view entry) { sessions->add_entry(entry); },
        [sessions, r = std::move(r), project = project.shared_from_this()] {
          r.reply("session_list_response", sessions->to_json(project->snapshot().session_id));
        });
  });
}

}  // namespace pa::server
