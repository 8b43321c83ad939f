// The embedded web console: lookup, content types, caching and security headers, conditional
// and HEAD requests (without a server; tests/integration/console_test.cpp serves it for real).
#include "web/static_assets.hpp"

#include <gtest/gtest.h>

#include <string>

namespace pa::web {
namespace {

namespace http = boost::beast::http;

http::request<http::string_body> get(std::string target, http::verb method = http::verb::get) {
  http::request<http::string_body> req{method, target, 11};
  req.set(http::field::host, "localhost");
  return req;
}

const Asset* first_under_assets(std::string_view ext) {
  for (const auto& a : embedded_assets()) {
    if (a.path.starts_with("/assets/") && a.path.ends_with(ext)) return &a;
  }
  return nullptr;
}

TEST(StaticAssets, TableIsSortedAndHoldsTheBuild) {
  const auto table = embedded_assets();
  ASSERT_FALSE(table.empty());
  for (std::size_t i = 1; i < table.size(); ++i) EXPECT_LT(table[i - 1].path, table[i].path);
  for (const auto& a : table) {
    EXPECT_TRUE(a.path.starts_with("/")) << a.path;
    EXPECT_EQ(a.etag.size(), 34u) << a.path;  // a quoted 32-hex-digit SHA-256 prefix
    EXPECT_FALSE(a.body.empty()) << a.path;
  }
  EXPECT_NE(first_under_assets(".js"), nullptr);
  EXPECT_NE(first_under_assets(".css"), nullptr);
}

TEST(StaticAssets, RootIsIndexAndUnknownPathsAreNot) {
  const Asset* index = find_asset("/");
  ASSERT_NE(index, nullptr);
  EXPECT_EQ(index, find_asset("/index.html"));
  EXPECT_NE(index->body.find("<div id=\"app\">"), std::string_view::npos);
  // The page loads its hashed script and style from /assets/, with no inline script.
  const Asset* js = first_under_assets(".js");
  ASSERT_NE(js, nullptr);
  EXPECT_NE(index->body.find(std::string(js->path)), std::string_view::npos);
  EXPECT_EQ(index->body.find("<script>"), std::string_view::npos);
  for (const char* path : {"/ws", "/health", "/metrics", "/assets/", "/assets", "/index.htm",
                           "/../index.html", "/assets/../index.html", "", "/INDEX.HTML"}) {
    EXPECT_EQ(find_asset(path), nullptr) << path;
  }
}

TEST(StaticAssets, ContentTypesFromTheExtension) {
  EXPECT_EQ(content_type("/index.html"), "text/html; charset=utf-8");
  EXPECT_EQ(content_type("/assets/index-abc.js"), "text/javascript; charset=utf-8");
  EXPECT_EQ(content_type("/assets/index-abc.css"), "text/css; charset=utf-8");
  EXPECT_EQ(content_type("/favicon.svg"), "image/svg+xml");
  EXPECT_EQ(content_type("/x.png"), "image/png");
  EXPECT_EQ(content_type("/no-extension"), "application/octet-stream");
}

// The installable app: the service worker at the root (its scope cannot be above its path), not
// under the immutable /assets/ (a new worker must be fetched again), the manifest the page links
// and its icons (tests/browser/notify.test.mjs checks that Chromium accepts them).
TEST(StaticAssets, ServiceWorkerManifestAndIconsAreServedFromTheRoot) {
  const Asset* sw = find_asset("/sw.js");
  ASSERT_NE(sw, nullptr);
  EXPECT_FALSE(is_immutable(sw->path));
  EXPECT_EQ(content_type(sw->path), "text/javascript; charset=utf-8");
  EXPECT_NE(sw->body.find("addEventListener('push'"), std::string_view::npos);
  const Asset* manifest = find_asset("/manifest.webmanifest");
  ASSERT_NE(manifest, nullptr);
  EXPECT_EQ(content_type(manifest->path), "application/manifest+json");
  const Asset* index = find_asset("/");
  ASSERT_NE(index, nullptr);
  EXPECT_NE(index->body.find("<link rel=\"manifest\" href=\"/manifest.webmanifest\""),
            std::string_view::npos);
  // The manifest's icons, then the page's (iOS) and the notifications' (Android's status bar).
  for (const char* icon :
       {"/icons/icon-192.png", "/icons/icon-512.png", "/icons/icon-maskable-512.png"}) {
    EXPECT_NE(manifest->body.find(icon), std::string_view::npos) << icon;
  }
  for (const char* icon :
       {"/icons/icon-192.png", "/icons/icon-512.png", "/icons/icon-maskable-512.png",
        "/icons/apple-touch-icon.png", "/icons/badge-96.png"}) {
    const Asset* a = find_asset(icon);
    ASSERT_NE(a, nullptr) << icon;
    EXPECT_TRUE(a->body.starts_with("\x89PNG\r\n")) << icon;
  }
}

TEST(StaticAssets, IndexIsRevalidatedWithSecurityHeaders) {
  const Asset* index = find_asset("/");
  ASSERT_NE(index, nullptr);
  const auto res = respond(*index, get("/"));
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res[http::field::content_type], "text/html; charset=utf-8");
  EXPECT_EQ(res[http::field::cache_control], "no-cache");
  EXPECT_EQ(res[http::field::etag], index->etag);
  EXPECT_EQ(res["Content-Security-Policy"], kContentSecurityPolicy);
  EXPECT_EQ(res["X-Content-Type-Options"], "nosniff");
  EXPECT_EQ(res["Referrer-Policy"], "no-referrer");
  EXPECT_EQ(res[http::field::content_length], std::to_string(index->body.size()));
  EXPECT_EQ(std::string_view(res.body().data(), res.body().size()), index->body);
  EXPECT_NE(kContentSecurityPolicy.find("default-src 'none'"), std::string_view::npos);
  EXPECT_NE(kContentSecurityPolicy.find("frame-ancestors 'none'"), std::string_view::npos);
}

TEST(StaticAssets, HashedAssetsAreImmutable) {
  const Asset* js = first_under_assets(".js");
  ASSERT_NE(js, nullptr);
  const auto res = respond(*js, get(std::string(js->path)));
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res[http::field::cache_control], "public, max-age=31536000, immutable");
  EXPECT_EQ(res[http::field::content_type], "text/javascript; charset=utf-8");
  EXPECT_EQ(res["Content-Security-Policy"], kContentSecurityPolicy);
}

TEST(StaticAssets, IfNoneMatchGives304WithoutBody) {
  const Asset* index = find_asset("/");
  ASSERT_NE(index, nullptr);
  for (std::string header : {std::string(index->etag), "\"other\", " + std::string(index->etag),
                             "W/" + std::string(index->etag), std::string("*")}) {
    auto req = get("/");
    req.set(http::field::if_none_match, header);
    const auto res = respond(*index, req);
    EXPECT_EQ(res.result(), http::status::not_modified) << header;
    EXPECT_EQ(res.body().size(), 0u);
    EXPECT_EQ(res[http::field::etag], index->etag);
  }
  auto req = get("/");
  req.set(http::field::if_none_match, "\"stale\"");
  EXPECT_EQ(respond(*index, req).result(), http::status::ok);
}

TEST(StaticAssets, HeadHasGetsHeadersAndNoBody) {
  const Asset* index = find_asset("/");
  ASSERT_NE(index, nullptr);
  const auto res = respond(*index, get("/", http::verb::head));
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res[http::field::content_length], std::to_string(index->body.size()));
  EXPECT_EQ(res.body().size(), 0u);
}

}  // namespace
}  // namespace pa::web
