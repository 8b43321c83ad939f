// Paired devices in the server (issue 18; docs/protocol.md "Devices and roles"): the role check
// before every handler, device_pair/list/rename/revoke (admin), POST /pair's redemption and the
// device side of connecting. The library is src/devices/; devices.json is written only on the
// blocking pool, never on an I/O thread.
#include <spdlog/spdlog.h>

#include <unistd.h>
#include <boost/asio/post.hpp>
#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>

#include "devices/qr.hpp"
#include "notify/notifier.hpp"
#include "ops/logging.hpp"
#include "protocol/clock.hpp"
#include "protocol/data_reader.hpp"
#include "server/cluster_node.hpp"
#include "server/connection.hpp"
#include "server/hub.hpp"
#include "server/request.hpp"

namespace pa::server {

namespace asio = boost::asio;
namespace json = boost::json;
using protocol::ErrorCode;

namespace {

// A device id is a UUID (36 bytes); anything far longer is no id of ours.
constexpr std::size_t kMaxDeviceIdBytes = 64;
// A pairing code is 10 characters; a longer string is refused before it is looked at.
constexpr std::size_t kMaxPairingCodeBytes = 64;

PairAnswer pair_refusal(int status, std::string reason, std::string message) {
  return PairAnswer{status, json::object{{"error", std::move(message)}, {"reason", reason}}, {}};
}

std::string refusal_message(const devices::Refusal& refusal) {
  if (refusal.reason == "used")
    return "this pairing code was already used; ask an admin for a new one";
  if (refusal.reason == "expired")
    return "this pairing code expired (a code lasts 10 minutes); ask an admin for a new one";
  if (refusal.reason == "too_many_attempts")
    return "too many wrong pairing codes from your address; retry in " +
           std::to_string(refusal.retry_after.count()) + " seconds";
  return "no such pairing code; check the 10 characters or ask an admin for a new one";
}

// The FORBIDDEN details name what to do: which role the message needs.
protocol::Error forbidden(const std::string& type, devices::Role role, devices::Role required) {
  const std::string needed(devices::role_name(required));
  return protocol::make_error(
      ErrorCode::kForbidden,
      type + " needs the " + needed + " role and this connection is " +
          std::string(devices::role_name(role)) + "; ask an admin to pair this device as " + needed,
      json::object{{"required_role", needed}, {"role", devices::role_name(role)}, {"type", type}});
}

// data.device_id of device_rename/device_revoke; fails the request when it is malformed.
std::optional<std::string> read_device_id(protocol::DataReader& reader) {
  return reader.string("device_id", true, kMaxDeviceIdBytes);
}

}  // namespace

bool Hub::role_allows(const Request& request) {
  const auto role = request.connection->identity().role;
  if (devices::allows(role, request.message.type)) return true;
  // Every handled type is in the roles table (tests/devices/roles_test.cpp checks).
  const auto required =
      devices::required_role(request.message.type).value_or(devices::Role::kAdmin);
  request.fail(forbidden(request.message.type, role, required));
  return false;
}

void Hub::load_devices(std::vector<std::string>& warnings) {
  const std::string problem = devices_.load();
  if (!problem.empty()) warnings.push_back(problem);
  const auto count = devices_.list().size();
  if (count > 0) spdlog::info("{} paired devices in {}", count, devices_.path().string());
}

std::optional<devices::Identity> Hub::device_identity(std::string_view token) {
  // Only a device token can match: skip hashing every other string.
  if (!token.starts_with(devices::kTokenPrefix)) return std::nullopt;
  auto device = devices_.authenticate(token);
  if (!device) return std::nullopt;
  return devices::Identity{device->role, device->device_id, device->name};
}

void Hub::save_devices_later() {
  asio::post(pool_, [self = shared_from_this()] {
    if (const auto ec = self->devices_.save())
      spdlog::warn("cannot save {}: {}", self->devices_.path().string(), ec.message());
  });
}

std::string Hub::pair_base_url() const {
  if (!config_.notify.console_url.empty()) {
    std::string base = config_.notify.console_url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    return base;
  }
  char hostname[256] = {};
  std::string host = "localhost";
  if (::gethostname(hostname, sizeof hostname - 1) == 0 && hostname[0] != '\0') host = hostname;
  return std::string(config_.tls.enabled ? "https://" : "http://") + host + ":" +
         std::to_string(listen_port_.load());
}

PairAnswer Hub::pair_device(std::string_view body, std::string_view remote_address) {
  boost::system::error_code ec;
  const json::value doc = json::parse(body, ec);
  if (ec || !doc.is_object()) {
    return pair_refusal(400, "invalid_request",
                        "send a JSON object {\"code\": \"<pairing code>\", \"name\": \"<optional "
                        "device name>\"} with Content-Type: application/json");
  }
  protocol::DataReader reader(doc.get_object(), "");
  reader.allow_only({"code", "name"});
  const auto code = reader.string("code", true, kMaxPairingCodeBytes);
  const auto name = reader.string("name", false, devices::kMaxDeviceNameBytes * 4);
  if (!reader.ok()) return pair_refusal(400, "invalid_request", reader.error().message);
  if (name) {
    if (auto problem = devices::device_name_problem(*name))
      return pair_refusal(400, "invalid_name", "name " + *problem);
  }
  const auto now = std::chrono::system_clock::now();
  auto redeemed = pairing_.redeem(*code, remote_address, now);
  if (cluster_) redeemed = cluster_->shared().redeem_pairing_code(*code, std::move(redeemed));
  if (const auto* refusal = std::get_if<devices::Refusal>(&redeemed)) {
    auto answer = pair_refusal(refusal->status, refusal->reason, refusal_message(*refusal));
    answer.retry_after = refusal->retry_after;
    if (refusal->status != 410)
      spdlog::warn("POST /pair from {} refused: {}", remote_address, refusal->reason);
    return answer;
  }
  const auto& granted = std::get<devices::Redeemed>(redeemed);
  std::string device_name = name ? *name : granted.name;
  if (device_name.empty()) device_name = std::string(devices::role_name(granted.role)) + " device";
  auto added = devices_.add(device_name, granted.role, now);
  if (added.full) {
    return pair_refusal(409, "too_many_devices",
                        "this server already has " + std::to_string(devices::kMaxDevices) +
                            " paired devices; an admin revokes one, then makes a new code");
  }
  if (added.error) {
    spdlog::error("cannot write {}: {}", devices_.path().string(), added.error.message());
    return pair_refusal(503, "storage_failed",
                        "the server could not save the device (" + added.error.message() +
                            "); an admin checks the data directory and makes a new code");
  }
  if (cluster_) cluster_->shared().device_changed();  // the other nodes take its token too
  ops::log_event(spdlog::level::info, "Device paired",
                 json::object{{"device_id", added.device.device_id},
                              {"device_name", added.device.name},
                              {"role", devices::role_name(added.device.role)},
                              {"remote_address", remote_address}});
  return PairAnswer{200,
                    json::object{{"device_id", added.device.device_id},
                                 {"token", added.token},
                                 {"role", devices::role_name(added.device.role)},
                                 {"name", added.device.name}},
                    {}};
}

// ---- the admin's messages ----

void Hub::handle_device_pair(Request request) {
  if (!request.expect_no_project_id()) return;
  protocol::DataReader reader(request.message.data);
  reader.allow_only({"role", "name"});
  const auto role_text = reader.string("role", true, 16);
  const auto name = reader.string("name", false, devices::kMaxDeviceNameBytes * 4);
  if (!reader.ok()) {
    request.fail(reader.error());
    return;
  }
  const auto role = devices::parse_role(*role_text);
  if (!role) {
    request.fail(protocol::make_error(
        ErrorCode::kInvalidMessage, "data.role must be one of viewer, operator, approver, admin",
        json::object{{"field", "data.role"},
                     {"allowed", json::array{"viewer", "operator", "approver", "admin"}}}));
    return;
  }
  if (name) {
    if (auto problem = devices::device_name_problem(*name)) {
      request.fail(protocol::make_error(ErrorCode::kInvalidMessage, "data.name " + *problem,
                                        json::object{{"field", "data.name"}}));
      return;
    }
  }
  const auto code = pairing_.create(*role, name.value_or(""), std::chrono::system_clock::now());
  // Behind a load balancer the device may redeem it on another node.
  if (cluster_)
    cluster_->shared().share_pairing_code(code.code, *role, name.value_or(""), code.expires_at);
  const auto& who = request.connection->identity();
  ops::log_event(spdlog::level::info, "Pairing code made",
                 json::object{{"role", devices::role_name(*role)},
                              {"by_device_id", who.is_device() ? json::value(who.device_id)
                                                               : json::value(nullptr)}});
  const std::string url = pair_base_url() + "/?pair=" + code.code;
  // The console shows the QR code as an <img> of this SVG (null for a notify.console_url so long
  // that the URL does not fit in a QR code).
  json::value qr = nullptr;
  if (url.size() <= devices::kQrMaxBytes) qr = json::string(devices::qr_svg(url));
  request.reply("device_pairing",
                json::object{{"code", code.code},
                             {"url", url},
                             {"qr_svg", std::move(qr)},
                             {"expires_at", protocol::format_rfc3339(code.expires_at)}});
}

void Hub::handle_device_list(Request request) {
  if (!request.expect_no_project_id() || !request.expect_no_data()) return;
  json::array list;
  for (const auto& device : devices_.list()) list.push_back(devices::device_json(device));
  request.reply("device_list_response", json::object{{"devices", std::move(list)}});
}

void Hub::handle_device_rename(Request request) {
  if (!request.expect_no_project_id()) return;
  protocol::DataReader reader(request.message.data);
  reader.allow_only({"device_id", "name"});
  auto device_id = read_device_id(reader);
  auto name = reader.string("name", true, devices::kMaxDeviceNameBytes * 4);
  if (!reader.ok()) {
    request.fail(reader.error());
    return;
  }
  if (auto problem = devices::device_name_problem(*name)) {
    request.fail(protocol::make_error(ErrorCode::kInvalidMessage, "data.name " + *problem,
                                      json::object{{"field", "data.name"}}));
    return;
  }
  asio::post(pool_, [self = shared_from_this(), r = std::move(request),
                     device_id = std::move(*device_id), name = std::move(*name)]() mutable {
    std::error_code ec;
    if (!self->devices_.rename(device_id, name, ec)) {
      r.fail(protocol::make_error(ErrorCode::kDeviceNotFound,
                                  "No paired device has this device_id; send device_list",
                                  json::object{{"device_id", device_id}}));
      return;
    }
    if (ec) {
      r.fail(protocol::make_error(ErrorCode::kStorageFailed,
                                  "Could not save devices.json (" + ec.message() +
                                      "); the name is unchanged. Check the data directory's "
                                      "free space and permissions",
                                  json::object{{"file", "devices.json"}}));
      return;
    }
    if (self->cluster_) self->cluster_->shared().device_changed();
    r.reply("device_renamed", json::object{{"device_id", device_id}, {"name", name}});
  });
}

void Hub::handle_device_revoke(Request request) {
  if (!request.expect_no_project_id()) return;
  protocol::DataReader reader(request.message.data);
  reader.allow_only({"device_id"});
  auto device_id = read_device_id(reader);
  if (!reader.ok()) {
    request.fail(reader.error());
    return;
  }
  asio::post(pool_, [self = shared_from_this(), r = std::move(request),
                     device_id = std::move(*device_id)] {
    const auto device = self->devices_.find(device_id);
    std::error_code ec;
    if (!device || !self->devices_.revoke(device_id, ec)) {
      r.fail(protocol::make_error(ErrorCode::kDeviceNotFound,
                                  "No paired device has this device_id; send device_list",
                                  json::object{{"device_id", device_id}}));
      return;
    }
    if (self->cluster_)
      self->cluster_->shared().device_revoked(device_id);  // every node refuses it
    const auto& who = r.connection->identity();
    self->end_device(*device, who.is_device() ? json::value(who.device_id) : json::value(nullptr));
    if (ec) {
      // Refused in memory already; devices.json still lists it until a save succeeds.
      spdlog::error("cannot write {} after revoking device {}: {}", self->devices_.path().string(),
                    device_id, ec.message());
      r.fail(protocol::make_error(
          ErrorCode::kStorageFailed,
          "The device is revoked and disconnected, but devices.json could not be written (" +
              ec.message() +
              "); it would work again after a restart. Fix the data directory's free space or "
              "permissions: the next device change saves the file",
          json::object{{"file", "devices.json"}, {"device_id", device_id}}));
      return;
    }
    r.reply("device_revoked", json::object{{"device_id", device_id}});
  });
}

// pool: a device was revoked (here, or on another node of the cluster): its token is refused
// already; its open connections and push subscriptions go now.
void Hub::end_device(const devices::Device& device, json::value by_device_id) {
  const auto open = connections_.connections_of_device(device.device_id);
  for (const auto& connection : open) connection->close(kRevokedCloseCode, "revoked");
  std::error_code push_ec;
  const auto subscriptions = notifier_->forget_device(device.device_id, push_ec);
  if (push_ec)
    spdlog::warn("cannot save push_subscriptions.json after revoking a device: {}",
                 push_ec.message());
  ops::log_event(spdlog::level::info, "Device revoked",
                 json::object{{"device_id", device.device_id},
                              {"device_name", device.name},
                              {"connections_closed", open.size()},
                              {"push_subscriptions_removed", subscriptions},
                              {"by_device_id", std::move(by_device_id)}});
}

}  // namespace pa::server
