#include "protocol/handshake.hpp"

#include <algorithm>
#include <limits>

#include "protocol/data_reader.hpp"
#include "protocol/utf8.hpp"

namespace pa::protocol {

namespace json = boost::json;

bool is_server_capability(std::string_view name) {
  return std::any_of(std::begin(kServerCapabilities), std::end(kServerCapabilities),
                     [&](const Capability& c) { return c.name == name; });
}

json::array server_capabilities_json() {
  json::array out;
  for (const auto& c : kServerCapabilities) out.emplace_back(c.name);
  return out;
}

bool valid_client_name(std::string_view name) {
  return !name.empty() && name.size() <= kMaxClientNameBytes && is_valid_utf8(name) &&
         !has_control_characters(name);
}

namespace {
Error field_error(std::string field, std::string message) {
  json::object details{{"field", field}};
  return make_error(ErrorCode::kInvalidMessage, field + " " + message, std::move(details));
}
}  // namespace

std::variant<Hello, Error> parse_hello(const json::object& data) {
  DataReader reader(data);
  reader.allow_only({"protocol", "client_name", "capabilities"});
  if (!reader.ok()) return reader.error();
  Hello hello;

  // Any JSON integer is a version (a newer client may send a number this server never heard
  // of); fractions, strings and the rest are not.
  const json::value* protocol = data.if_contains("protocol");
  if (protocol == nullptr || protocol->is_null()) {
    return field_error("data.protocol",
                       "is required: the newest protocol version the client speaks (this server "
                       "speaks " +
                           std::to_string(kProtocolVersion) + ")");
  }
  if (protocol->is_int64()) {
    hello.protocol = protocol->get_int64();
  } else if (protocol->is_uint64()) {
    hello.protocol = std::numeric_limits<std::int64_t>::max();
  } else {
    return field_error("data.protocol", "must be an integer (this server speaks " +
                                            std::to_string(kProtocolVersion) + ")");
  }

  if (const json::value* name = data.if_contains("client_name"); name && !name->is_null()) {
    if (!name->is_string() || !valid_client_name(name->get_string())) {
      return field_error("data.client_name", "must be 1 to " + std::to_string(kMaxClientNameBytes) +
                                                 " bytes of printable UTF-8");
    }
    hello.client_name = std::string(name->get_string());
  }

  const json::value* list = data.if_contains("capabilities");
  if (list == nullptr || list->is_null()) {
    return field_error("data.capabilities",
                       "is required: a list of the capabilities the client has (may be empty)");
  }
  const auto declared =
      reader.string_list("capabilities", kMaxHelloCapabilities, kMaxCapabilityBytes);
  if (!reader.ok()) return reader.error();
  for (const auto& name : *declared) {
    // Unknown names are a newer client's features: ignored, so old servers keep working.
    if (!is_server_capability(name)) continue;
    if (std::find(hello.capabilities.begin(), hello.capabilities.end(), name) ==
        hello.capabilities.end()) {
      hello.capabilities.push_back(name);
    }
  }
  return hello;
}

std::variant<std::int64_t, Error> check_protocol(std::int64_t client_protocol) {
  if (client_protocol < kOldestProtocolVersion) {
    return make_error(ErrorCode::kUnsupportedProtocol,
                      "Protocol " + std::to_string(client_protocol) +
                          " is not supported: this server speaks protocols " +
                          std::to_string(kOldestProtocolVersion) + " to " +
                          std::to_string(kProtocolVersion) +
                          "; send hello again with one of them, or send no hello to use the "
                          "protocol as the spec describes it",
                      json::object{{"protocol", client_protocol},
                                   {"oldest", kOldestProtocolVersion},
                                   {"newest", kProtocolVersion}});
  }
  return std::min(client_protocol, kProtocolVersion);
}

}  // namespace pa::protocol
