#include "support/push_service_double.hpp"

#include <openssl/rand.h>
#include <strings.h>

#include <boost/json/parse.hpp>
#include <cctype>
#include <functional>
#include <stdexcept>

#include "notify/base64url.hpp"
#include "support/push_decrypt.hpp"

namespace pa::test {

namespace json = boost::json;
using notify::base64url_decode;
using notify::base64url_encode;

namespace {

constexpr std::string_view kPushPath = "/push/";
constexpr std::int64_t kMaxVapidLifetimeSeconds = 24 * 3600;  // RFC 8292 §2

std::string trim(std::string_view text) {
  const auto first = text.find_first_not_of(' ');
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(' ');
  return std::string(text.substr(first, last - first + 1));
}

// `vapid t=<JWT>, k=<key>` → {"t": ..., "k": ...}; nullopt when the scheme is not vapid.
std::optional<std::map<std::string, std::string>> vapid_params(std::string_view value) {
  constexpr std::string_view kScheme = "vapid ";
  if (value.size() <= kScheme.size() ||
      ::strncasecmp(value.data(), kScheme.data(), kScheme.size()) != 0) {
    return std::nullopt;
  }
  std::map<std::string, std::string> params;
  value.remove_prefix(kScheme.size());
  while (!value.empty()) {
    const auto comma = value.find(',');
    const std::string param = trim(value.substr(0, comma));
    const auto eq = param.find('=');
    if (eq != std::string::npos) params[param.substr(0, eq)] = param.substr(eq + 1);
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return params;
}

std::optional<json::object> parse_object(std::string_view text) {
  boost::system::error_code ec;
  auto value = json::parse(text, ec);
  if (ec || !value.is_object()) return std::nullopt;
  return std::move(value.as_object());
}

std::optional<std::string> string_field(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::optional<std::string>(v->get_string())
                                        : std::nullopt;
}

bool is_topic(std::string_view topic) {
  if (topic.empty() || topic.size() > 32) return false;
  for (const char c : topic) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
  }
  return true;
}

}  // namespace

std::string PushMessage::field(std::string_view key) const {
  return payload ? string_field(*payload, key).value_or("") : std::string();
}

PushServiceDouble::PushServiceDouble()
    : http_(true, [this](const HttpRequest& request) { return handle(request); }) {}

BrowserSubscription PushServiceDouble::subscribe(const std::string& name) {
  auto key = notify::P256Key::generate();
  std::string auth(16, '\0');
  if (!key || RAND_bytes(reinterpret_cast<unsigned char*>(auth.data()), 16) != 1) {
    throw std::runtime_error("cannot make a subscription's keys");
  }
  BrowserSubscription out{endpoint(name), base64url_encode(key->public_point()),
                          base64url_encode(auth)};
  std::lock_guard lock(mu_);
  endpoints_.insert_or_assign(name, Endpoint{std::move(*key), std::move(auth), std::nullopt});
  return out;
}

std::string PushServiceDouble::endpoint(const std::string& name) const {
  return origin() + std::string(kPushPath) + name;
}

void PushServiceDouble::expect_server_key(const std::string& base64url_key) {
  std::lock_guard lock(mu_);
  expected_key_ = base64url_decode(base64url_key).value_or(base64url_key);
}

void PushServiceDouble::answer(const std::string& name, PushAnswer answer) {
  {
    std::lock_guard lock(mu_);
    const auto it = endpoints_.find(name);
    if (it == endpoints_.end()) throw std::invalid_argument("no subscription " + name);
    it->second.answer = answer;
  }
  release([&](const std::string& held_name) {
    return held_name == name ? std::optional<PushAnswer>(answer) : std::nullopt;
  });
}

void PushServiceDouble::answer_all(PushAnswer answer) {
  {
    std::lock_guard lock(mu_);
    default_answer_ = answer;
    for (auto& [name, ep] : endpoints_) ep.answer.reset();
  }
  release([&](const std::string&) { return std::optional<PushAnswer>(answer); });
}

std::vector<PushMessage> PushServiceDouble::messages_to(const std::string& name) const {
  std::vector<PushMessage> out;
  for (auto& m : messages_.all()) {
    if (m.endpoint_name == name) out.push_back(std::move(m));
  }
  return out;
}

void PushServiceDouble::release(
    const std::function<std::optional<PushAnswer>(const std::string& name)>& which) {
  http_.release_held([&](const HttpRequest& request) -> std::optional<HttpAnswer> {
    const auto answer = which(request.target.substr(kPushPath.size()));
    if (!answer || answer->hold) return std::nullopt;
    return reply(*answer);
  });
}

HttpAnswer PushServiceDouble::reply(const PushAnswer& answer) const {
  HttpAnswer out;
  out.status = answer.status;
  out.hold = answer.hold;
  if (!answer.retry_after.empty()) out.headers.emplace_back("Retry-After", answer.retry_after);
  if (answer.status == 201) out.headers.emplace_back("Location", origin() + "/message/1");
  return out;
}

std::vector<std::string> PushServiceDouble::check_vapid(const HttpRequest& request,
                                                        PushMessage& message) const {
  const auto header = request.header("Authorization");
  if (!header) return {"no Authorization header"};
  const auto params = vapid_params(*header);
  if (!params) return {"Authorization is not `vapid t=…, k=…`: " + *header};
  const auto t = params->find("t");
  const auto k = params->find("k");
  if (t == params->end() || k == params->end()) return {"Authorization lacks t= or k="};
  message.vapid_key = k->second;

  std::vector<std::string> problems;
  const auto key_bytes = base64url_decode(k->second);
  const auto key = key_bytes ? notify::P256Key::from_public(*key_bytes) : std::nullopt;
  if (!key) return {"k is not a base64url P-256 public key"};
  {
    std::lock_guard lock(mu_);
    if (!expected_key_.empty() && *key_bytes != expected_key_) {
      problems.push_back("k is not the server's key");
    }
  }
  const std::string& jwt = t->second;
  const auto dot1 = jwt.find('.');
  const auto dot2 = dot1 == std::string::npos ? dot1 : jwt.find('.', dot1 + 1);
  if (dot2 == std::string::npos) return {"t is not a JWT (header.claims.signature)"};
  const auto jose = base64url_decode(jwt.substr(0, dot1));
  const auto claims_text = base64url_decode(jwt.substr(dot1 + 1, dot2 - dot1 - 1));
  const auto signature = base64url_decode(jwt.substr(dot2 + 1));
  const auto header_json = jose ? parse_object(*jose) : std::nullopt;
  const auto claims = claims_text ? parse_object(*claims_text) : std::nullopt;
  if (!header_json || !claims || !signature) return {"the JWT's parts are not base64url JSON"};

  if (string_field(*header_json, "alg") != "ES256") problems.push_back("alg is not ES256");
  if (!key->verify_es256(jwt.substr(0, dot2), *signature)) {
    problems.push_back("the JWT's signature does not verify with k");
  }
  if (string_field(*claims, "aud") != origin()) {
    problems.push_back("aud is not the endpoint's origin " + origin());
  }
  const auto* exp = claims->if_contains("exp");
  const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  if (exp == nullptr || !exp->is_int64()) {
    problems.push_back("exp is not an integer");
  } else if (exp->as_int64() <= now || exp->as_int64() > now + kMaxVapidLifetimeSeconds) {
    problems.push_back("exp is not within the next 24 hours");
  }
  const auto sub = string_field(*claims, "sub").value_or("");
  if (sub.rfind("mailto:", 0) != 0 && sub.rfind("https:", 0) != 0) {
    problems.push_back("sub is not a mailto: or https: contact");
  }
  return problems;
}

HttpAnswer PushServiceDouble::handle(const HttpRequest& request) {
  PushMessage message;
  std::optional<notify::P256Key> key;
  std::string auth;
  PushAnswer answer;
  const bool push_path = request.target.rfind(kPushPath, 0) == 0;
  if (push_path) message.endpoint_name = request.target.substr(kPushPath.size());
  {
    std::lock_guard lock(mu_);
    if (const auto it = endpoints_.find(message.endpoint_name);
        push_path && it != endpoints_.end()) {
      key = it->second.key;
      auth = it->second.auth;
      answer = it->second.answer.value_or(default_answer_);
    }
  }
  if (request.method != "POST") message.problems.push_back("method " + request.method);
  if (!key) message.problems.push_back("no subscription at " + request.target);

  const auto vapid = check_vapid(request, message);
  message.vapid_ok = vapid.empty();
  message.problems.insert(message.problems.end(), vapid.begin(), vapid.end());

  message.ttl = request.header("TTL");
  message.urgency = request.header("Urgency");
  message.topic = request.header("Topic");
  if (!message.ttl || message.ttl->empty() ||
      message.ttl->find_first_not_of("0123456789") != std::string::npos) {
    message.problems.push_back("TTL is missing or not a number of seconds");
  }
  if (message.urgency && *message.urgency != "very-low" && *message.urgency != "low" &&
      *message.urgency != "normal" && *message.urgency != "high") {
    message.problems.push_back("Urgency is not very-low, low, normal or high");
  }
  if (message.topic && !is_topic(*message.topic)) {
    message.problems.push_back("Topic is not 1-32 base64url characters");
  }
  const bool aes128gcm = request.header("Content-Encoding") == "aes128gcm";
  if (!aes128gcm) message.problems.push_back("Content-Encoding is not aes128gcm");

  if (key && aes128gcm) {
    if (auto plain = notify::test::decrypt_push(request.body, *key, auth)) {
      message.plaintext = std::move(*plain);
      message.payload = parse_object(message.plaintext);
      if (!message.payload) message.problems.push_back("the payload is not a JSON object");
    } else {
      message.problems.push_back("the body does not decrypt with the subscription's keys");
    }
  }
  const bool key_mismatch_only =
      message.problems.size() == 1 && message.problems.front() == "k is not the server's key";
  const bool accepted = message.problems.empty();
  const bool vapid_ok = message.vapid_ok;
  messages_.add(std::move(message));

  if (!key) return reply(PushAnswer::gone(404));
  if (key_mismatch_only) return reply(PushAnswer::status_only(403));  // RFC 8292 §4.2
  if (!vapid_ok) return reply(PushAnswer::status_only(401));
  if (!accepted) return reply(PushAnswer::status_only(400));
  return reply(answer);
}

}  // namespace pa::test
