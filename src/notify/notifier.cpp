#include "notify/notifier.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>

#include "notify/base64url.hpp"
#include "notify/channels.hpp"
#include "notify/http_post.hpp"
#include "notify/vapid_key_file.hpp"
#include "notify/web_push_crypto.hpp"
#include "protocol/clock.hpp"
#include "protocol/utf8.hpp"

namespace pa::notify {

namespace asio = boost::asio;
namespace json = boost::json;
using protocol::ErrorCode;

namespace {
// Permission requests remembered for withdrawal; an ask lives minutes, so this is plenty.
constexpr std::size_t kMaxRememberedAsks = 1000;
}  // namespace

void fit_for_push(Event& event) {
  auto size = [&] { return json::serialize(to_json(event)).size(); };
  event.title = protocol::shorten_utf8(event.title, 200);
  event.body = protocol::shorten_utf8(event.body, 1000);
  for (std::size_t path_max = 1024; size() > kMaxPushPlaintext && path_max >= 64; path_max /= 2) {
    event.body = protocol::shorten_utf8(event.body, std::min<std::size_t>(event.body.size(), 200));
    event.project_path = protocol::shorten_utf8(event.project_path, path_max);
  }
}

bool endpoint_host_allowed(const std::string& endpoint, const std::vector<std::string>& hosts) {
  const auto url = boost::urls::parse_absolute_uri(endpoint);
  if (!url || url->scheme() != "https") return false;
  std::string host = url->host();
  std::transform(host.begin(), host.end(), host.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (std::string allowed : hosts) {
    std::transform(allowed.begin(), allowed.end(), allowed.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (host == allowed || (host.size() > allowed.size() && host.ends_with(allowed) &&
                            host[host.size() - allowed.size() - 1] == '.')) {
      return true;
    }
  }
  return false;
}

std::shared_ptr<Notifier> Notifier::create(asio::any_io_executor io, asio::any_io_executor work,
                                           const config::Config& config,
                                           ops::ServerMetrics& metrics,
                                           std::vector<std::string>& warnings) {
  bool created = false;
  P256Key key = load_or_create_vapid_key(config.data.dir, created);
  if (created) {
    warnings.push_back("made a new Web Push (VAPID) key in " +
                       vapid_key_path(config.data.dir).string());
  }
  std::shared_ptr<Notifier> notifier(
      new Notifier(std::move(work), config, metrics, std::move(key)));
  // Sends in flight may outlive the notifier: the dispatcher reaches it through a weak pointer,
  // and its sender holds the TLS context itself.
  const std::weak_ptr<Notifier> weak = notifier;
  notifier->dispatcher_ = Dispatcher::create(
      io,
      [io, tls = notifier->tls_](HttpPost request, std::function<void(HttpReply)> done) {
        post_http(io, *tls, std::move(request), std::move(done));
      },
      DispatcherOptions{},
      [weak](const std::string& endpoint) {
        if (auto self = weak.lock()) self->remove_gone(endpoint);
      },
      [weak](const Delivery& d, Dispatcher::Outcome outcome) {
        if (auto self = weak.lock()) self->count(d, outcome);
      });
  if (auto note = notifier->store_.load(); !note.empty()) warnings.push_back(note);
  metrics.push_subscriptions.set(static_cast<double>(notifier->store_.all().size()));
  return notifier;
}

Notifier::Notifier(asio::any_io_executor work, const config::Config& config,
                   ops::ServerMetrics& metrics, P256Key vapid)
    : work_(std::move(work)),
      settings_(config.notify),
      metrics_(metrics),
      vapid_(std::move(vapid)),
      vapid_public_(base64url_encode(vapid_.public_point())),
      tls_(std::make_shared<asio::ssl::context>(make_client_tls_context(config.notify.ca_file))),
      store_(config.data.dir) {}

std::variant<StoredSubscription, protocol::Error> Notifier::subscribe(
    const json::value& data, const std::string& client_name, std::uint64_t connection,
    const std::string& device_id) {
  std::string error;
  auto parsed = parse_subscribe(data, error);
  if (!parsed) {
    return protocol::make_error(ErrorCode::kInvalidMessage, error,
                                json::object{{"field", "subscription"}});
  }
  if (!endpoint_host_allowed(parsed->keys.endpoint, settings_.push_service_hosts)) {
    return protocol::make_error(
        ErrorCode::kInvalidMessage,
        "subscription.endpoint names a host that is not a known push service; if this browser's "
        "push service is genuine, add its host to notify.push_service_hosts",
        json::object{{"field", "subscription.endpoint"}, {"setting", "notify.push_service_hosts"}});
  }
  parsed->client_name = client_name;
  parsed->device_id = device_id;
  // A device that subscribes again keeps its first date.
  const auto known = lookup(parsed->keys.endpoint);
  parsed->created_at = known ? known->created_at : protocol::now_rfc3339();
  if (!store_.put(*parsed)) {
    return protocol::make_error(ErrorCode::kResourceLimit,
                                "This server already has " + std::to_string(kMaxSubscriptions) +
                                    " push subscriptions; unsubscribe a device you no longer use",
                                json::object{{"limit", kMaxSubscriptions}});
  }
  if (const auto ec = store_.save()) {
    store_.remove(parsed->keys.endpoint);
    return protocol::make_error(ErrorCode::kStorageFailed,
                                "Could not save the subscription (" + ec.message() +
                                    "); check the data directory's free space and permissions",
                                json::object{{"file", "push_subscriptions.json"}});
  }
  metrics_.push_subscriptions.set(static_cast<double>(store_.all().size()));
  tie(connection, parsed->keys.endpoint);
  changed(parsed->keys.endpoint, &*parsed);
  return std::move(*parsed);
}

bool Notifier::adopt(const StoredSubscription& subscription) {
  const auto known = lookup(subscription.keys.endpoint);
  if (known && subscription_json(*known) == subscription_json(subscription)) return false;
  if (!store_.put(subscription)) return false;
  metrics_.push_subscriptions.set(static_cast<double>(store_.all().size()));
  save_subscriptions();
  return true;
}

bool Notifier::drop(const std::string& endpoint) {
  if (!store_.remove(endpoint)) return false;
  metrics_.push_subscriptions.set(static_cast<double>(store_.all().size()));
  save_subscriptions();
  return true;
}

std::optional<protocol::Error> Notifier::unsubscribe(const std::string& endpoint) {
  if (!store_.remove(endpoint)) return std::nullopt;
  changed(endpoint, nullptr);
  metrics_.push_subscriptions.set(static_cast<double>(store_.all().size()));
  if (const auto ec = store_.save()) {
    return protocol::make_error(ErrorCode::kStorageFailed,
                                "Could not save the subscriptions (" + ec.message() +
                                    "); check the data directory's free space and permissions",
                                json::object{{"file", "push_subscriptions.json"}});
  }
  return std::nullopt;
}

std::size_t Notifier::forget_device(const std::string& device_id, std::error_code& error) {
  std::vector<std::string> endpoints;
  for (const auto& s : store_.all()) {
    if (s.device_id == device_id) endpoints.push_back(s.keys.endpoint);
  }
  const std::size_t removed = store_.remove_device(device_id);
  if (removed == 0) return 0;
  for (const auto& endpoint : endpoints) changed(endpoint, nullptr);
  metrics_.push_subscriptions.set(static_cast<double>(store_.all().size()));
  error = store_.save();
  return removed;
}

std::optional<StoredSubscription> Notifier::lookup(const std::string& endpoint) const {
  for (auto& s : store_.all()) {
    if (s.keys.endpoint == endpoint) return s;
  }
  return std::nullopt;
}

std::optional<StoredSubscription> Notifier::find(const std::string& endpoint,
                                                 std::uint64_t connection) {
  auto found = lookup(endpoint);
  if (found) tie(connection, endpoint);
  return found;
}

bool Notifier::reaches(std::string_view event,
                       const std::function<bool(const std::string&)>& counts) const {
  const std::string name(event);
  for (const auto& target : settings_.targets) {
    if (target.events.empty() ||
        std::find(target.events.begin(), target.events.end(), name) != target.events.end())
      return true;
  }
  const auto receiving = store_.receiving(name);
  return std::any_of(receiving.begin(), receiving.end(),
                     [&](const StoredSubscription& s) { return !counts || counts(s.device_id); });
}

bool Notifier::send_test(const std::string& endpoint) {
  auto subscription = lookup(endpoint);
  if (!subscription) return false;
  {
    Event event;
    event.event = kTestEvent;
    event.title = "Pocket Agent test notification";
    event.body = "Notifications reach this device.";
    event.url = settings_.console_url + "/";
    event.tag = "test";
    event.at = protocol::now_rfc3339();
    asio::post(work_, [self = shared_from_this(), event = std::move(event),
                       s = std::move(*subscription)] { self->push_to(event, s); });
  }
  return true;
}

void Notifier::tie(std::uint64_t connection, const std::string& endpoint) {
  std::lock_guard lock(mutex_);
  screens_[connection].endpoints.insert(endpoint);
}

void Notifier::set_focus(std::uint64_t connection, std::optional<std::string> project_id) {
  std::lock_guard lock(mutex_);
  screens_[connection].project_id = std::move(project_id);
}

void Notifier::forget_connection(std::uint64_t connection) {
  std::lock_guard lock(mutex_);
  screens_.erase(connection);
}

bool Notifier::in_focus(const std::string& endpoint, const std::string& project_id) const {
  if (project_id.empty()) return false;
  std::lock_guard lock(mutex_);
  return std::any_of(screens_.begin(), screens_.end(), [&](const auto& entry) {
    const Screen& screen = entry.second;
    return screen.project_id == project_id && screen.endpoints.contains(endpoint);
  });
}

void Notifier::raise(Event event) {
  asio::post(work_,
             [self = shared_from_this(), event = std::move(event)] { self->deliver(event); });
}

void Notifier::withdraw(const std::string& tag, const std::string& project_id) {
  asio::post(work_, [self = shared_from_this(), tag, project_id] {
    std::vector<std::string> endpoints;
    {
      std::lock_guard lock(self->mutex_);
      auto it = self->pushed_asks_.find(tag);
      if (it == self->pushed_asks_.end()) return;
      endpoints = std::move(it->second);
      self->pushed_asks_.erase(it);
    }
    Event event;
    event.event = kWithdrawEvent;
    event.project_id = project_id;
    event.title = "Answered";
    event.url = self->settings_.console_url + "/#/p/" + project_id;
    event.tag = tag;
    event.at = protocol::now_rfc3339();
    for (const auto& s : self->store_.all()) {
      if (std::find(endpoints.begin(), endpoints.end(), s.keys.endpoint) != endpoints.end())
        self->push_to(event, s);
    }
  });
}

void Notifier::deliver(const Event& original) {
  Event event = original;
  fit_for_push(event);
  for (const auto& s : store_.receiving(event.event)) {
    if (in_focus(s.keys.endpoint, event.project_id)) {
      metrics_.notifications_suppressed.inc();
      continue;
    }
    push_to(event, s);
    if (event.urgent) {
      std::lock_guard lock(mutex_);
      if (pushed_asks_.size() < kMaxRememberedAsks || pushed_asks_.contains(event.tag))
        pushed_asks_[event.tag].push_back(s.keys.endpoint);
    }
  }
  for (const auto& target : settings_.targets) {
    if (!target.events.empty() &&
        std::find(target.events.begin(), target.events.end(), event.event) == target.events.end())
      continue;
    Delivery d;
    d.channel = target.type;
    d.request = target.type == "ntfy" ? ntfy_request(original, target.url, target.token)
                                      : webhook_request(original, target.url, target.secret);
    d.request.timeout = settings_.timeout;
    if (!dispatcher_->enqueue(std::move(d))) metrics_.notifications_dropped.inc();
  }
}

void Notifier::push_to(const Event& event, const StoredSubscription& subscription) {
  std::string error;
  auto request = web_push_request(event, subscription.keys, Vapid{&vapid_, settings_.vapid_subject},
                                  std::chrono::system_clock::now(), error);
  if (!request) {
    metrics_.notifications_failed.with("web_push").inc();
    spdlog::warn("Web Push notification not sent: {}", error);
    return;
  }
  request->timeout = settings_.timeout;
  Delivery d;
  d.channel = "web_push";
  d.key = subscription.keys.endpoint;
  d.request = std::move(*request);
  if (!dispatcher_->enqueue(std::move(d))) metrics_.notifications_dropped.inc();
}

void Notifier::count(const Delivery& d, Dispatcher::Outcome outcome) {
  switch (outcome) {
    case Dispatcher::Outcome::kSent:
      metrics_.notifications_sent.with(d.channel).inc();
      break;
    case Dispatcher::Outcome::kFailed:
      metrics_.notifications_failed.with(d.channel).inc();
      break;
    case Dispatcher::Outcome::kGone:
      break;  // counted by remove_gone once the subscription is really gone
  }
}

void Notifier::remove_gone(const std::string& endpoint) {
  // Called on the dispatcher's strand (an I/O thread): the file write goes to the work executor.
  asio::post(work_, [weak = weak_from_this(), endpoint] {
    auto self = weak.lock();
    if (!self || !self->store_.remove(endpoint)) return;
    self->changed(endpoint, nullptr);
    // The gauge first: whoever sees the removal counted also sees one subscription fewer.
    self->metrics_.push_subscriptions.set(static_cast<double>(self->store_.all().size()));
    self->metrics_.push_subscriptions_removed.inc();
    self->save_subscriptions();
  });
}

void Notifier::save_subscriptions() {
  if (const auto ec = store_.save())
    spdlog::error("push_subscriptions.json not saved: {}", ec.message());
}

void Notifier::stop() {
  dispatcher_->stop();
}

}  // namespace pa::notify
