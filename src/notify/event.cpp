#include "notify/event.hpp"

namespace pa::notify {

boost::json::object to_json(const Event& e) {
  auto or_null = [](const std::string& s) {
    return s.empty() ? boost::json::value(nullptr) : boost::json::value(s);
  };
  return {{"event", e.event},
          {"project_id", or_null(e.project_id)},
          {"project_path", or_null(e.project_path)},
          {"title", e.title},
          {"body", e.body},
          {"url", e.url},
          {"tag", e.tag},
          {"at", e.at}};
}

}  // namespace pa::notify
