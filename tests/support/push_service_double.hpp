// A Web Push service for tests (RFC 8030 as the browser vendors run it): HTTPS on 127.0.0.1 with
// the shared test certificate, endpoints https://localhost:<port>/push/<name>. It makes
// subscriptions as a browser would (keeping each private key), checks every POST like a real
// service (aes128gcm, TTL, the VAPID Authorization header of RFC 8292), decrypts the payload
// (RFC 8291) and records what arrived. Per endpoint the test chooses the answer: 201, gone
// (404/410), 429 with Retry-After, 500, or holding the request unanswered.
#pragma once

#include <boost/json/object.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "notify/p256_key.hpp"
#include "support/http_double.hpp"
#include "support/recorder.hpp"

namespace pa::test {

// What PushSubscription.toJSON() gives a page: the endpoint and base64url keys.
struct BrowserSubscription {
  std::string endpoint;
  std::string p256dh;
  std::string auth;
};

struct PushAnswer {
  unsigned status = 201;
  std::string retry_after;  // sent with a 429
  bool hold = false;        // accept the request and never answer it (until answered otherwise)

  static PushAnswer created() { return {}; }
  static PushAnswer status_only(unsigned status) {
    PushAnswer a;
    a.status = status;
    return a;
  }
  static PushAnswer gone(unsigned status = 410) { return status_only(status); }
  static PushAnswer too_many(std::string retry_after) {
    PushAnswer a = status_only(429);
    a.retry_after = std::move(retry_after);
    return a;
  }
  static PushAnswer server_error() { return status_only(500); }
  static PushAnswer held() {
    PushAnswer a;
    a.hold = true;
    return a;
  }
};

// One POST the service received.
struct PushMessage {
  std::string endpoint_name;  // <name> of /push/<name>
  std::optional<std::string> ttl, urgency, topic;
  std::string vapid_key;  // the k= of the Authorization header (base64url)
  bool vapid_ok = false;  // the JWT verifies with k, aud/exp/sub are right, k is the expected key
  // Every check that failed, in words (VAPID, encoding, TTL, decryption, JSON); empty when the
  // request is one a real push service accepts.
  std::vector<std::string> problems;
  std::string plaintext;                       // the decrypted payload
  std::optional<boost::json::object> payload;  // the payload as JSON, when it is an object

  std::string field(std::string_view key) const;  // a string field of the payload, or ""
};

class PushServiceDouble {
 public:
  PushServiceDouble();

  // A new subscription at /push/<name> (a fresh key pair and auth secret).
  BrowserSubscription subscribe(const std::string& name);
  std::string endpoint(const std::string& name) const;
  std::string origin() const { return http_.origin(); }

  // Requests whose k= is another key are refused (403) and flagged, as a service does for a
  // subscription made with this applicationServerKey (base64url, 65-byte point).
  void expect_server_key(const std::string& base64url_key);

  // How /push/<name> answers from now on; requests held there get this answer now (unless it
  // holds too). answer_all() sets it for every endpoint, present and future.
  void answer(const std::string& name, PushAnswer answer);
  void answer_all(PushAnswer answer);

  const Recorder<PushMessage>& messages() const { return messages_; }
  std::vector<PushMessage> messages_to(const std::string& name) const;
  std::size_t held() const { return http_.held(); }

 private:
  struct Endpoint {
    notify::P256Key key;
    std::string auth;
    std::optional<PushAnswer> answer;
  };

  HttpAnswer handle(const HttpRequest& request);
  HttpAnswer reply(const PushAnswer& answer) const;
  void release(const std::function<std::optional<PushAnswer>(const std::string& name)>& which);
  // The problems of the Authorization header; fills `message.vapid_key`.
  std::vector<std::string> check_vapid(const HttpRequest& request, PushMessage& message) const;

  mutable std::mutex mu_;
  std::map<std::string, Endpoint> endpoints_;
  PushAnswer default_answer_;
  std::string expected_key_;
  Recorder<PushMessage> messages_;
  HttpDouble http_;  // last: its thread stops before the state it reads goes away
};

}  // namespace pa::test
