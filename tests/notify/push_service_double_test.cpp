// The tests' notification doubles (tests/support): the push service verifies and decrypts what
// web_push_request() makes and sent through post_http(), flags what a real service refuses,
// answers as the test tells it (gone, 429, held); the HTTP core keeps connections alive; the
// ntfy/webhook double records requests.
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>
#include <future>
#include <thread>

#include "common/hex.hpp"
#include "notify/base64url.hpp"
#include "notify/channels.hpp"
#include "notify/digest.hpp"
#include "notify/web_push_crypto.hpp"
#include "support/hook_double.hpp"
#include "support/push_service_double.hpp"
#include "support/server_process.hpp"

namespace pa::notify {
namespace {

using namespace std::chrono_literals;
using test::HookDouble;
using test::PushAnswer;
using test::PushServiceDouble;

Event permission_event() {
  return Event{.event = "permission_request",
               .project_id = "p1",
               .project_path = "/home/me/proj",
               .title = "Bash needs your answer",
               .body = "touch x",
               .url = "/#/p/p1/permission/r1",
               .tag = "permission:r1",
               .at = "2026-12-07T08:00:00Z",
               .urgent = true};
}

WebPushSubscription raw(const test::BrowserSubscription& s) {
  return {s.endpoint, base64url_decode(s.p256dh).value(), base64url_decode(s.auth).value()};
}

HttpPost push_request(const test::BrowserSubscription& to, const P256Key& server_key,
                      const Event& event = permission_event()) {
  std::string error;
  auto request = web_push_request(event, raw(to), Vapid{&server_key, "mailto:ops@example.org"},
                                  std::chrono::system_clock::now(), error);
  EXPECT_TRUE(request) << error;
  request->timeout = 20s;
  return std::move(*request);
}

// The request's Authorization header, for tampering.
std::string& authorization(HttpPost& request) {
  for (auto& [name, value] : request.headers) {
    if (name == "Authorization") return value;
  }
  throw std::logic_error("no Authorization header");
}

// post_http on a thread of its own, so the test can act while the exchange is open.
class AsyncPost {
 public:
  explicit AsyncPost(HttpPost request)
      : tls_(make_client_tls_context(test::test_certificate().cert)) {
    post_http(io_.get_executor(), tls_, std::move(request),
              [this](HttpReply r) { reply_.set_value(std::move(r)); });
    thread_ = std::thread([this] { io_.run(); });
  }
  ~AsyncPost() { thread_.join(); }
  std::future<HttpReply>& reply() { return future_; }

 private:
  boost::asio::io_context io_;
  boost::asio::ssl::context tls_;
  std::promise<HttpReply> reply_;
  std::future<HttpReply> future_ = reply_.get_future();
  std::thread thread_;
};

HttpReply post(HttpPost request) {
  AsyncPost exchange(std::move(request));
  EXPECT_EQ(exchange.reply().wait_for(30s), std::future_status::ready);
  return exchange.reply().get();
}

TEST(PushServiceDouble, VerifiesAndDecryptsAWebPushRequest) {
  PushServiceDouble service;
  const auto phone = service.subscribe("phone");
  EXPECT_EQ(phone.endpoint, service.origin() + "/push/phone");
  const auto server_key = P256Key::generate().value();
  service.expect_server_key(base64url_encode(server_key.public_point()));

  const auto reply = post(push_request(phone, server_key));
  EXPECT_EQ(reply.error, "");
  EXPECT_EQ(reply.status, 201u);
  const auto messages = service.messages().all();
  ASSERT_EQ(messages.size(), 1u);
  const auto& m = messages[0];
  EXPECT_EQ(m.endpoint_name, "phone");
  EXPECT_TRUE(m.problems.empty()) << m.problems.front();
  EXPECT_TRUE(m.vapid_ok);
  EXPECT_EQ(m.vapid_key, base64url_encode(server_key.public_point()));
  EXPECT_EQ(m.ttl, "300");
  EXPECT_EQ(m.urgency, "high");
  EXPECT_EQ(m.topic, push_topic("permission:r1"));
  ASSERT_TRUE(m.payload);
  EXPECT_EQ(*m.payload, boost::json::parse(m.plaintext));
  EXPECT_EQ(m.field("event"), "permission_request");
  EXPECT_EQ(m.field("url"), "/#/p/p1/permission/r1");
  EXPECT_EQ(m.field("tag"), "permission:r1");
}

TEST(PushServiceDouble, AJwtSignedWithAnotherKeyIsFlaggedAndRefused) {
  PushServiceDouble service;
  const auto phone = service.subscribe("phone");
  const auto server_key = P256Key::generate().value();
  const auto forger = P256Key::generate().value();
  auto request = push_request(phone, forger);
  // The forger's token presented under the server's key.
  auto& header = authorization(request);
  header =
      header.substr(0, header.find(", k=")) + ", k=" + base64url_encode(server_key.public_point());

  EXPECT_EQ(post(std::move(request)).status, 401u);
  const auto m = service.messages().all().at(0);
  EXPECT_FALSE(m.vapid_ok);
  ASSERT_EQ(m.problems.size(), 1u);
  EXPECT_EQ(m.problems[0], "the JWT's signature does not verify with k");
}

TEST(PushServiceDouble, AnotherServersKeyIsRefused) {
  PushServiceDouble service;
  const auto phone = service.subscribe("phone");
  service.expect_server_key(base64url_encode(P256Key::generate()->public_point()));
  EXPECT_EQ(post(push_request(phone, P256Key::generate().value())).status, 403u);
  const auto m = service.messages().all().at(0);
  EXPECT_FALSE(m.vapid_ok);
  EXPECT_EQ(m.problems, std::vector<std::string>{"k is not the server's key"});
}

TEST(PushServiceDouble, FlagsAnExpiredTokenAWrongAudienceAndAMissingTtl) {
  PushServiceDouble service;
  const auto phone = service.subscribe("phone");
  const auto key = P256Key::generate().value();
  auto request = push_request(phone, key);
  authorization(request) =
      vapid_authorization(key, "https://push.example", "",
                          std::chrono::system_clock::now() - std::chrono::minutes(1))
          .value();
  std::erase_if(request.headers, [](const auto& h) { return h.first == "TTL"; });

  EXPECT_EQ(post(std::move(request)).status, 401u);
  const auto m = service.messages().all().at(0);
  EXPECT_FALSE(m.vapid_ok);
  const std::vector<std::string> expected = {
      "aud is not the endpoint's origin " + service.origin(), "exp is not within the next 24 hours",
      "sub is not a mailto: or https: contact", "TTL is missing or not a number of seconds"};
  EXPECT_EQ(m.problems, expected);
  EXPECT_EQ(m.field("event"), "permission_request");  // the payload itself was fine
}

TEST(PushServiceDouble, ABodyForOtherKeysDoesNotDecrypt) {
  PushServiceDouble service;
  const auto phone = service.subscribe("phone");
  const auto tablet = service.subscribe("tablet");
  const auto key = P256Key::generate().value();
  auto request = push_request(tablet, key);
  request.url = phone.endpoint;  // same origin: the VAPID token still fits
  EXPECT_EQ(post(std::move(request)).status, 400u);
  const auto m = service.messages().all().at(0);
  EXPECT_TRUE(m.vapid_ok);
  EXPECT_EQ(m.problems,
            std::vector<std::string>{"the body does not decrypt with the subscription's keys"});
}

TEST(PushServiceDouble, AnswersGoneTooManyAndErrorsAsTold) {
  PushServiceDouble service;
  const auto key = P256Key::generate().value();
  const auto gone = service.subscribe("gone");
  const auto moved = service.subscribe("moved");
  const auto busy = service.subscribe("busy");
  const auto broken = service.subscribe("broken");
  service.answer("gone", PushAnswer::gone());
  service.answer("moved", PushAnswer::gone(404));
  service.answer("busy", PushAnswer::too_many("7"));
  service.answer("broken", PushAnswer::server_error());

  EXPECT_EQ(post(push_request(gone, key)).status, 410u);
  EXPECT_EQ(post(push_request(moved, key)).status, 404u);
  const auto too_many = post(push_request(busy, key));
  EXPECT_EQ(too_many.status, 429u);
  EXPECT_EQ(too_many.retry_after, "7");
  EXPECT_EQ(post(push_request(broken, key)).status, 500u);
  // Requests answered otherwise are still checked and recorded.
  ASSERT_EQ(service.messages().size(), 4u);
  for (const auto& m : service.messages().all()) EXPECT_TRUE(m.problems.empty());

  // An endpoint nobody subscribed: 404, recorded with the reason.
  auto unknown = push_request(gone, key);
  unknown.url = service.endpoint("nobody");
  EXPECT_EQ(post(std::move(unknown)).status, 404u);
  EXPECT_EQ(service.messages().all().back().problems.front(), "no subscription at /push/nobody");
}

TEST(PushServiceDouble, AHeldRequestIsAnsweredOnlyOnceReleased) {
  PushServiceDouble service;
  const auto phone = service.subscribe("phone");
  service.answer_all(PushAnswer::held());
  AsyncPost exchange(push_request(phone, P256Key::generate().value()));
  ASSERT_TRUE(service.messages().wait_for_count(1, 20s));
  // The double recorded the message and holds its answer back.
  EXPECT_EQ(exchange.reply().wait_for(0s), std::future_status::timeout);

  service.answer("phone", PushAnswer::created());
  ASSERT_EQ(exchange.reply().wait_for(20s), std::future_status::ready);
  EXPECT_EQ(exchange.reply().get().status, 201u);
  EXPECT_EQ(service.held(), 0u);
}

TEST(PushServiceDouble, DestroyingItEndsAHeldExchange) {
  auto service = std::make_unique<PushServiceDouble>();
  const auto phone = service->subscribe("phone");
  service->answer("phone", PushAnswer::held());
  AsyncPost exchange(push_request(phone, P256Key::generate().value()));
  ASSERT_TRUE(service->messages().wait_for_count(1, 20s));
  service.reset();
  ASSERT_EQ(exchange.reply().wait_for(20s), std::future_status::ready);
  const auto reply = exchange.reply().get();
  EXPECT_EQ(reply.status, 0u);
  EXPECT_NE(reply.error, "");
}

// Several requests on one TLS connection, each answered in turn.
TEST(HttpDouble, ServesKeepAliveRequestsOnOneConnection) {
  namespace asio = boost::asio;
  namespace http = boost::beast::http;
  int handled = 0;
  test::HttpDouble server(true, [&](const test::HttpRequest& request) {
    test::HttpAnswer answer;
    answer.body = request.target + " " + request.body;
    return answer;
  });
  asio::io_context io;
  asio::ssl::context tls(asio::ssl::context::tls_client);
  tls.load_verify_file(test::test_certificate().cert);
  asio::ssl::stream<asio::ip::tcp::socket> stream(io, tls);
  stream.set_verify_mode(asio::ssl::verify_peer);
  stream.set_verify_callback(asio::ssl::host_name_verification("localhost"));
  SSL_set_tlsext_host_name(stream.native_handle(), "localhost");
  stream.next_layer().connect({asio::ip::make_address("127.0.0.1"), server.port()});
  stream.handshake(asio::ssl::stream_base::client);
  boost::beast::flat_buffer buffer;
  for (int i = 0; i < 3; ++i) {
    http::request<http::string_body> req{http::verb::post, "/n" + std::to_string(i), 11};
    req.set(http::field::host, "localhost");
    req.body() = "body" + std::to_string(i);
    req.prepare_payload();
    http::write(stream, req);
    http::response<http::string_body> res;
    http::read(stream, buffer, res);
    EXPECT_EQ(res.result_int(), 200);
    EXPECT_TRUE(res.keep_alive());
    EXPECT_EQ(res.body(), "/n" + std::to_string(i) + " body" + std::to_string(i));
    ++handled;
  }
  EXPECT_EQ(handled, 3);
  EXPECT_EQ(server.connections(), 1u);
}

TEST(HookDouble, RecordsNtfyAndSignedWebhookPosts) {
  HookDouble hooks;
  Event event = permission_event();
  const auto ntfy = post(ntfy_request(event, hooks.url("/pocket"), "tk_secret"));
  EXPECT_EQ(ntfy.status, 200u);
  hooks.answer_with(503);
  const auto hook = post(webhook_request(event, hooks.url("/hook?x=1"), "s3cret"));
  EXPECT_EQ(hook.status, 503u);

  ASSERT_TRUE(hooks.requests().wait_for_count(2, 10s));
  const auto requests = hooks.requests().all();
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].target, "/pocket");
  EXPECT_EQ(requests[0].header("title"), "Bash needs your answer");
  EXPECT_EQ(requests[0].header("Authorization"), "Bearer tk_secret");
  EXPECT_EQ(requests[0].body, "touch x");
  EXPECT_EQ(requests[1].target, "/hook?x=1");
  EXPECT_EQ(requests[1].header("X-Pocket-Agent-Signature"),
            "sha256=" + common::to_hex(hmac_sha256("s3cret", requests[1].body).value()));
  EXPECT_EQ(requests[1].header("Missing"), std::nullopt);
}

TEST(HookDouble, ServesHttpsWithTheTestCertificate) {
  HookDouble hooks(true);
  EXPECT_EQ(hooks.url("/t").rfind("https://localhost:", 0), 0u);
  EXPECT_EQ(post(ntfy_request(permission_event(), hooks.url("/t"), "")).status, 200u);
  EXPECT_EQ(hooks.requests().all().at(0).header("Authorization"), std::nullopt);
}

}  // namespace
}  // namespace pa::notify
