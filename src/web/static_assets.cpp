#include "web/static_assets.hpp"

#include <algorithm>
#include <array>
#include <utility>

namespace pa::web {

namespace http = boost::beast::http;

namespace {

constexpr std::array<std::pair<std::string_view, std::string_view>, 12> kTypes = {{
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".json", "application/json"},
    {".webmanifest", "application/manifest+json"},
    {".woff2", "font/woff2"},
    {".txt", "text/plain; charset=utf-8"},
    {".map", "application/json"},
}};

// True when `header` (an If-None-Match value) lists `etag` or is "*".
bool matches_etag(std::string_view header, std::string_view etag) {
  while (!header.empty()) {
    const auto comma = header.find(',');
    std::string_view item = header.substr(0, comma);
    header = comma == std::string_view::npos ? std::string_view{} : header.substr(comma + 1);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (item.starts_with("W/")) item.remove_prefix(2);  // weak comparison, as RFC 9110 asks
    if (item == "*" || item == etag) return true;
  }
  return false;
}

}  // namespace

const Asset* find_asset(std::string_view path) {
  if (path == "/") path = "/index.html";
  const auto table = embedded_assets();
  const auto it = std::lower_bound(table.begin(), table.end(), path,
                                   [](const Asset& a, std::string_view p) { return a.path < p; });
  return it != table.end() && it->path == path ? &*it : nullptr;
}

std::string_view content_type(std::string_view path) {
  for (const auto& [ext, type] : kTypes) {
    if (path.ends_with(ext)) return type;
  }
  return "application/octet-stream";
}

bool is_immutable(std::string_view path) {
  return path.starts_with("/assets/");
}

Response respond(const Asset& asset, const http::request<http::string_body>& req) {
  const auto inm = req.find(http::field::if_none_match);
  const bool not_modified = inm != req.end() && matches_etag(inm->value(), asset.etag);
  Response res{not_modified ? http::status::not_modified : http::status::ok, req.version()};
  res.set(http::field::server, "pocket-agent-server");
  res.set(http::field::content_type, content_type(asset.path));
  res.set(http::field::etag, asset.etag);
  res.set(http::field::cache_control,
          is_immutable(asset.path) ? "public, max-age=31536000, immutable" : "no-cache");
  res.set("Content-Security-Policy", kContentSecurityPolicy);
  res.set("X-Content-Type-Options", "nosniff");
  res.set("Referrer-Policy", "no-referrer");
  res.set("Cross-Origin-Opener-Policy", "same-origin");
  res.set("X-Frame-Options", "DENY");
  res.keep_alive(req.keep_alive());
  if (not_modified) return res;
  res.body() = {asset.body.data(), asset.body.size()};
  res.prepare_payload();
  if (req.method() == http::verb::head) {
    // The same headers as GET (Content-Length of the body included), without the body.
    res.body() = {};
  }
  return res;
}

}  // namespace pa::web
