// What the server tells a person who is not looking (issue 17): one notification event, and
// the JSON every channel carries (the Web Push payload, the webhook body).
#pragma once

#include <array>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "notify/event_names.hpp"

namespace pa::notify {

struct Event {
  std::string event;         // one of kEventNames
  std::string project_id;    // empty for server_problem
  std::string project_path;  // empty for server_problem
  std::string title;         // one short line
  std::string body;          // a few lines at most
  std::string url;           // the console view to open (the project, the permission card)
  std::string tag;           // same tag = same notification (a later one replaces or withdraws it)
  std::string at;            // RFC 3339, when it happened
  bool urgent = false;       // needs the person now (a permission request)
};

// {event, project_id, project_path, title, body, url, tag, at}; project fields null when empty.
boost::json::object to_json(const Event& event);

}  // namespace pa::notify
