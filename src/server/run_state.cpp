#include "server/run_state.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <stdexcept>

#include "common/atomic_file.hpp"

namespace pa::server {

namespace json = boost::json;

json::object to_json(const RunState& s) {
  json::array permissions, follow_ups;
  for (const auto& p : s.permissions) {
    permissions.push_back(json::object{{"permission_id", p.permission_id},
                                       {"control_line", p.control_line},
                                       {"announced", p.announced},
                                       {"deadline", p.deadline}});
  }
  for (const auto& f : s.follow_ups) {
    follow_ups.push_back(
        json::object{{"queue_id", f.queue_id}, {"prompt", f.prompt}, {"announced", f.announced}});
  }
  json::object in_flight;
  for (const auto& [tag, data] : s.in_flight) in_flight[tag] = data;
  json::object out{{"v", 1},
                   {"run_id", s.run_id},
                   {"project_id", s.project_id},
                   {"supervisor_pid", s.supervisor_pid},
                   {"supervisor_start", s.supervisor_start},
                   {"cli_pid", s.cli_pid},
                   {"started_at", s.started_at},
                   {"first_seq", s.first_seq},
                   {"correlation_id", s.correlation_id},
                   {"client_permissions", s.client_permissions},
                   {"mcp_path", s.mcp_path},
                   {"prompt_length", s.prompt_length},
                   {"state_offset", s.state_offset},
                   {"stop", s.stop},
                   {"interrupting", s.interrupting},
                   {"result_seen", s.result_seen},
                   {"result_is_error", s.result_is_error},
                   {"session_not_found", s.session_not_found},
                   {"permissions", std::move(permissions)},
                   {"follow_ups", std::move(follow_ups)},
                   {"in_flight", std::move(in_flight)}};
  out["resumed_session"] = s.resumed_session ? json::value(*s.resumed_session) : nullptr;
  if (!s.by.empty()) out["by"] = s.by;
  if (!s.stop_request.empty()) out["stop_request"] = s.stop_request;
  if (s.queued) {
    out["queued"] =
        json::object{{"order", s.queued_order}, {"prompt", s.prompt}, {"options", s.options}};
    if (!s.attachments.empty()) out["queued"].as_object()["attachments"] = s.attachments;
  }
  return out;
}

namespace {
const json::value& field(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr) throw std::runtime_error("run.json: missing " + std::string(key));
  return *v;
}
std::string text(const json::object& o, std::string_view key) {
  const auto& v = field(o, key);
  if (!v.is_string()) throw std::runtime_error("run.json: " + std::string(key) + " is not text");
  return std::string(v.get_string());
}
std::uint64_t number(const json::object& o, std::string_view key) {
  const auto& v = field(o, key);
  if (v.is_uint64()) return v.get_uint64();
  if (v.is_int64() && v.get_int64() >= 0) return static_cast<std::uint64_t>(v.get_int64());
  throw std::runtime_error("run.json: " + std::string(key) + " is not a count");
}
bool flag(const json::object& o, std::string_view key) {
  const auto& v = field(o, key);
  if (!v.is_bool()) throw std::runtime_error("run.json: " + std::string(key) + " is not a flag");
  return v.get_bool();
}
const json::object& object(const json::value& v, std::string_view what) {
  if (!v.is_object())
    throw std::runtime_error("run.json: " + std::string(what) + " is not an object");
  return v.get_object();
}
}  // namespace

RunState run_state_from_json(const json::value& value) {
  const json::object& o = object(value, "the file");
  RunState s;
  s.run_id = text(o, "run_id");
  s.project_id = text(o, "project_id");
  const auto& sup = field(o, "supervisor_pid");  // -1 while queued
  s.supervisor_pid = static_cast<pid_t>(sup.is_int64() ? sup.get_int64() : -1);
  s.supervisor_start = number(o, "supervisor_start");
  s.cli_pid =
      static_cast<pid_t>(field(o, "cli_pid").is_int64() ? field(o, "cli_pid").get_int64() : -1);
  s.started_at = text(o, "started_at");
  s.first_seq = number(o, "first_seq");
  s.correlation_id = text(o, "correlation_id");
  s.client_permissions = flag(o, "client_permissions");
  s.mcp_path = text(o, "mcp_path");
  s.prompt_length = number(o, "prompt_length");
  s.state_offset = number(o, "state_offset");
  s.stop = text(o, "stop");
  s.interrupting = flag(o, "interrupting");
  s.result_seen = flag(o, "result_seen");
  s.result_is_error = flag(o, "result_is_error");
  s.session_not_found = flag(o, "session_not_found");
  if (const auto& r = field(o, "resumed_session"); r.is_string())
    s.resumed_session = std::string(r.get_string());
  // Optional: files written before these existed lack them.
  if (const auto* by = o.if_contains("by")) s.by = object(*by, "by");
  if (const auto* stop = o.if_contains("stop_request"))
    s.stop_request = object(*stop, "stop_request");
  const auto& perms = field(o, "permissions");
  if (!perms.is_array()) throw std::runtime_error("run.json: permissions");
  for (const auto& item : perms.get_array()) {
    const auto& p = object(item, "a permission");
    s.permissions.push_back(RunState::Permission{text(p, "permission_id"), text(p, "control_line"),
                                                 object(field(p, "announced"), "announced"),
                                                 text(p, "deadline")});
  }
  const auto& follow = field(o, "follow_ups");
  if (!follow.is_array()) throw std::runtime_error("run.json: follow_ups");
  for (const auto& item : follow.get_array()) {
    const auto& f = object(item, "a follow-up");
    s.follow_ups.push_back(RunState::FollowUp{text(f, "queue_id"), text(f, "prompt"),
                                              object(field(f, "announced"), "announced")});
  }
  if (const auto* q = o.if_contains("queued"); q != nullptr) {
    const auto& queued = object(*q, "queued");
    s.queued = true;
    s.queued_order = number(queued, "order");
    s.prompt = text(queued, "prompt");
    s.options = object(field(queued, "options"), "queued.options");
    if (const auto* a = queued.if_contains("attachments"); a != nullptr) {
      if (!a->is_array()) throw std::runtime_error("run.json: queued.attachments");
      s.attachments = a->get_array();
    }
  }
  for (const auto& [tag, data] : object(field(o, "in_flight"), "in_flight")) {
    if (!data.is_string()) throw std::runtime_error("run.json: in_flight");
    s.in_flight[std::string(tag)] = std::string(data.get_string());
  }
  return s;
}

std::error_code save_run_state(const std::string& path, const RunState& state) {
  return common::write_file_atomically(path, json::serialize(to_json(state)), 0600);
}

std::optional<RunState> load_run_state(const std::string& path, std::string& error) {
  std::error_code ec;
  const std::string content = common::read_small_file(path, ec);
  if (ec) {
    error = path + ": " + ec.message();
    return std::nullopt;
  }
  boost::system::error_code jec;
  const json::value value = json::parse(content, jec);
  if (jec) {
    error = path + ": not JSON (" + jec.message() + ")";
    return std::nullopt;
  }
  try {
    return run_state_from_json(value);
  } catch (const std::exception& e) {
    error = path + ": " + e.what();
    return std::nullopt;
  }
}

}  // namespace pa::server
