// The web console through the real server over TLS: GET / and its assets without a token, with
// the caching and security headers; other paths and methods keep their answers.
#include <regex>

#include "integration/fixture.hpp"
#include "integration/raw_client.hpp"

namespace pa::test {
namespace {

class ConsoleTest : public ServerTest {
 protected:
  // One request on a fresh connection; the whole response (the server closes: Connection: close).
  std::string exchange(const std::string& request) {
    RawClient raw(server_->port(), server_->tls());
    EXPECT_TRUE(raw.connect());
    EXPECT_TRUE(raw.send(request));
    return raw.read_until_closed(15s).bytes;
  }
};

TEST_F(ConsoleTest, ServesTheConsoleWithoutATokenAndWithStrictHeaders) {
  const auto index = http_get(server_->port(), true, "/");
  ASSERT_EQ(index.status, 200) << index.body;
  EXPECT_EQ(index.headers.at("Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(index.headers.at("Cache-Control"), "no-cache");
  const std::string csp = index.headers.at("Content-Security-Policy");
  EXPECT_NE(csp.find("default-src 'none'"), std::string::npos);
  EXPECT_NE(csp.find("script-src 'self'"), std::string::npos);
  EXPECT_NE(csp.find("connect-src 'self'"), std::string::npos);
  EXPECT_EQ(index.headers.at("X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(index.headers.at("Referrer-Policy"), "no-referrer");
  const std::string etag = index.headers.at("ETag");

  // Revalidation: the same ETag is 304 with no body.
  const auto again = http_get(server_->port(), true, "/", {{"If-None-Match", etag}});
  EXPECT_EQ(again.status, 304);
  EXPECT_TRUE(again.body.empty());

  // Every script and style the page names is served, same-origin, cached for good.
  std::smatch m;
  std::string rest = index.body;
  int assets = 0;
  static const std::regex kRef(R"re((?:src|href)="(/assets/[^"]+)")re");
  while (std::regex_search(rest, m, kRef)) {
    const auto asset = http_get(server_->port(), true, m[1].str());
    EXPECT_EQ(asset.status, 200) << m[1];
    EXPECT_EQ(asset.headers.at("Cache-Control"), "public, max-age=31536000, immutable");
    EXPECT_EQ(asset.headers.at("X-Content-Type-Options"), "nosniff");
    const std::string type = asset.headers.at("Content-Type");
    EXPECT_TRUE(type.starts_with(m[1].str().ends_with(".js") ? "text/javascript" : "text/css"))
        << type;
    EXPECT_FALSE(asset.body.empty());
    ++assets;
    rest = m.suffix();
  }
  EXPECT_GE(assets, 2);
}

TEST_F(ConsoleTest, OtherPathsAndMethodsAreUnchanged) {
  EXPECT_EQ(http_get(server_->port(), true, "/nope").status, 404);
  EXPECT_EQ(http_get(server_->port(), true, "/assets/missing.js").status, 404);
  EXPECT_EQ(http_get(server_->port(), true, "/health").status, 200);
  EXPECT_EQ(http_get(server_->port(), true, "/metrics").status, 401);
  EXPECT_EQ(http_get(server_->port(), true, "/ws").status, 404);  // not an upgrade

  const auto post = exchange(
      "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n"
      "Connection: close\r\n\r\n");
  EXPECT_TRUE(post.starts_with("HTTP/1.1 404")) << post.substr(0, 80);

  // HEAD: GET's headers, Content-Length included, and no body.
  const auto head = exchange("HEAD / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(head.starts_with("HTTP/1.1 200")) << head.substr(0, 80);
  EXPECT_NE(head.find("Content-Security-Policy: "), std::string::npos);
  const auto end_of_head = head.find("\r\n\r\n");
  ASSERT_NE(end_of_head, std::string::npos);
  EXPECT_EQ(head.size(), end_of_head + 4);
}

}  // namespace
}  // namespace pa::test
