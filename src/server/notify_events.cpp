#include "server/notify_events.hpp"

#include <cstdio>
#include <filesystem>

#include "protocol/clock.hpp"
#include "protocol/utf8.hpp"

namespace pa::server {

namespace json = boost::json;

namespace {

constexpr std::size_t kDetailBytes = 160;  // of a command, a file name, a result

// The project as a person names it: its directory's last component.
std::string project_name(const projects::ProjectInfo& project) {
  const auto name = std::filesystem::path(project.path).filename().string();
  return name.empty() ? project.path : name;
}

notify::Event base(const projects::ProjectInfo& project, std::string_view event,
                   const std::string& console_url) {
  notify::Event e;
  e.event = event;
  e.project_id = project.id;
  e.project_path = project.path;
  e.url = project_link(console_url, project.id);
  e.at = protocol::now_rfc3339();
  return e;
}

// The one line of a tool input worth showing: a command, a file, a URL, a pattern.
std::string input_summary(const json::object& announced) {
  const auto* input = announced.if_contains("input");
  if (input == nullptr || !input->is_object()) return {};
  for (const std::string_view key : {"command", "file_path", "notebook_path", "url", "pattern",
                                     "path", "query", "description"}) {
    if (const auto* v = input->get_object().if_contains(key); v != nullptr && v->is_string())
      return protocol::shorten_utf8(std::string(v->get_string()), kDetailBytes);
  }
  return {};
}

std::string string_of(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

std::string seconds_text(std::int64_t ms) {
  char buf[32];
  if (ms < 60'000) {
    std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ms) / 1000.0);
  } else {
    std::snprintf(buf, sizeof buf, "%lld min %lld s", static_cast<long long>(ms / 60'000),
                  static_cast<long long>((ms % 60'000) / 1000));
  }
  return buf;
}

std::string cost_text(double usd) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "$%.4f", usd);
  return buf;
}

}  // namespace

std::string project_link(const std::string& console_url, const std::string& project_id) {
  return console_url + "/#/p/" + project_id;
}

notify::Event permission_event(const projects::ProjectInfo& project, const json::object& announced,
                               const std::string& console_url) {
  auto e = base(project, "permission_request", console_url);
  const std::string permission_id = string_of(announced, "permission_id");
  std::string tool = string_of(announced, "display_name");
  if (tool.empty()) tool = string_of(announced, "tool_name");
  e.title = "Claude needs you in " + project_name(project);
  e.body = "Allow " + protocol::shorten_utf8(tool, 60) + "?";
  if (const auto detail = input_summary(announced); !detail.empty()) e.body += "\n" + detail;
  e.url += "/permission/" + permission_id;
  e.tag = "permission:" + permission_id;
  e.urgent = true;
  return e;
}

std::optional<notify::Event> run_end_event(const projects::ProjectInfo& project,
                                           std::string_view reason, const RunSummary& summary,
                                           std::chrono::milliseconds wall_time,
                                           const std::string& console_url) {
  const std::string name = project_name(project);
  const std::int64_t ms = summary.duration_ms.value_or(wall_time.count());
  notify::Event e;
  if (reason == "completed") {
    e = base(project, "run_succeeded", console_url);
    e.title = "Done in " + name;
    e.body = "Finished in " + seconds_text(ms);
    if (summary.cost_usd) e.body += " · " + cost_text(*summary.cost_usd);
    if (summary.num_turns) e.body += " · " + std::to_string(*summary.num_turns) + " turns";
    if (!summary.result_text.empty())
      e.body += "\n" + protocol::shorten_utf8(summary.result_text, kDetailBytes);
  } else if (reason == "failed") {
    e = base(project, "run_failed", console_url);
    e.title = "Run failed in " + name;
    e.body = protocol::shorten_utf8(!summary.error.empty() ? summary.error
                                    : !summary.result_text.empty()
                                        ? summary.result_text
                                        : std::string("The CLI ended with an error"),
                                    kDetailBytes);
  } else if (reason == "timeout") {
    e = base(project, "run_timeout", console_url);
    e.title = "Run timed out in " + name;
    e.body = summary.error.empty() ? "Stopped after " + seconds_text(ms)
                                   : protocol::shorten_utf8(summary.error, kDetailBytes);
  } else if (reason == "lost") {
    e = base(project, "run_lost", console_url);
    e.title = "Run lost in " + name;
    e.body = "The CLI stopped while the server was away; its output up to then is in history";
  } else {
    return std::nullopt;
  }
  e.tag = "run:" + project.id;
  return e;
}

notify::Event queue_drained_event(const projects::ProjectInfo& project, std::size_t count,
                                  bool last_failed, const std::string& console_url) {
  auto e = base(project, "queue_drained", console_url);
  e.title = "Queue done in " + project_name(project);
  e.body = std::to_string(count) + (count == 1 ? " queued prompt" : " queued prompts") + " ran" +
           (last_failed ? "; the last one ended with an error" : "");
  e.tag = "queue:" + project.id;
  return e;
}

notify::Event server_problem_event(const ops::StorageProblem& problem,
                                   const std::string& console_url) {
  notify::Event e;
  e.event = "server_problem";
  e.title = "Pocket Agent cannot write its " + problem.what;
  e.body = protocol::shorten_utf8(problem.error, kDetailBytes) +
           "\nCheck the disk of the server (health shows details)";
  e.project_id = problem.project_id;
  e.url = problem.project_id.empty() ? console_url + "/"
                                     : project_link(console_url, problem.project_id);
  e.tag = "server";
  e.at = protocol::now_rfc3339();
  return e;
}

}  // namespace pa::server
