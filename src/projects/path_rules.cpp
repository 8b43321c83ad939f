#include "projects/path_rules.hpp"

#include <filesystem>
#include <system_error>

namespace pa::projects {

namespace fs = std::filesystem;

namespace {
protocol::Error invalid(std::string_view requested, std::string reason) {
  boost::json::object details;
  details["path"] = requested;
  details["reason"] = reason;
  return protocol::make_error(protocol::ErrorCode::kInvalidPath,
                              "Invalid project path '" + std::string(requested) + "': " + reason,
                              std::move(details));
}
}  // namespace

std::variant<std::string, protocol::Error> canonical_project_path(std::string_view requested) {
  if (requested.empty()) return invalid(requested, "the path is empty");
  if (requested.find('\0') != std::string_view::npos) {
    return invalid(requested, "the path contains a NUL byte");
  }
  const fs::path p{std::string(requested)};
  if (!p.is_absolute()) return invalid(requested, "the path must be absolute (start with /)");
  std::error_code ec;
  const fs::path canonical = fs::canonical(p, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) {
      return invalid(requested, "no such directory; create it first");
    }
    return invalid(requested, "cannot resolve it: " + ec.message());
  }
  const auto status = fs::status(canonical, ec);
  if (ec) return invalid(requested, "cannot read it: " + ec.message());
  if (!fs::is_directory(status)) return invalid(requested, "it is not a directory");
  return canonical.string();
}

bool paths_nest(std::string_view a, std::string_view b) {
  const auto inside = [](std::string_view outer, std::string_view inner) {
    if (outer == "/") return true;
    return inner.size() > outer.size() && inner.substr(0, outer.size()) == outer &&
           inner[outer.size()] == '/';
  };
  return a == b || inside(a, b) || inside(b, a);
}

}  // namespace pa::projects
