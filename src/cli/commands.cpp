#include "cli/commands.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/admin_client.hpp"
#include "cli/exit_codes.hpp"
#include "devices/qr.hpp"

namespace pa::cli {

namespace json = boost::json;

namespace {

// Text from the network goes to a terminal: control characters (escape sequences) become '?'.
std::string printable(std::string_view text) {
  std::string out;
  for (const char c : text) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  return out;
}

// A string field of an answer; a missing or mistyped one means the server is not ours.
std::string required_string(const json::object& o, std::string_view key, std::string_view what) {
  const auto* v = o.if_contains(key);
  if (!v || !v->is_string())
    throw CliError(kExitFailed,
                   "the server's " + std::string(what) + " has no string " + std::string(key));
  return std::string(v->get_string());
}

devices::QrStyle qr_style(bool terminal) {
  return terminal ? devices::QrStyle::kAnsiColours : devices::QrStyle::kPlain;
}

int pair(AdminClient& client, const config::ClientCommand& command, std::ostream& out,
         bool terminal) {
  json::object data{{"role", command.role}};
  if (!command.name.empty()) data["name"] = command.name;
  const json::object answer = client.request("device_pair", data, "device_pairing");
  const std::string url = required_string(answer, "url", "device_pairing");
  const std::string expires_at = required_string(answer, "expires_at", "device_pairing");
  // The QR code must hold exactly what the line says: a URL with control characters is refused.
  if (url.empty() || printable(url) != url)
    throw CliError(kExitFailed, "the server's pairing URL is empty or has control characters");
  std::string qr;
  try {
    qr = devices::qr_terminal(url, qr_style(terminal));
  } catch (const std::invalid_argument& e) {
    throw CliError(kExitFailed,
                   std::string("cannot draw the pairing URL as a QR code: ") + e.what());
  }
  out << "Pair URL: " << url << "\n"
      << "Expires: " << printable(expires_at) << " (the code works once)\n"
      << "Role: " << command.role << "\n\n"
      << qr << "\n"
      << "Scan the QR code with the device's camera, or open the URL on it.\n";
  return kExitOk;
}

// Columns padded by code points, so names in UTF-8 line up.
std::size_t display_width(const std::string& text) {
  std::size_t n = 0;
  for (const char c : text) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

int list(AdminClient& client, std::ostream& out) {
  const json::object answer = client.request("device_list", {}, "device_list_response");
  const auto* devices = answer.if_contains("devices");
  if (!devices || !devices->is_array())
    throw CliError(kExitFailed, "the server's device_list_response has no devices list");
  std::vector<std::vector<std::string>> rows{{"ID", "NAME", "ROLE", "CREATED", "LAST SEEN"}};
  for (const auto& entry : devices->get_array()) {
    if (!entry.is_object())
      throw CliError(kExitFailed, "the server's device list has an entry that is not an object");
    const auto& d = entry.get_object();
    const auto* seen = d.if_contains("last_seen_at");
    rows.push_back({printable(required_string(d, "device_id", "device")),
                    printable(required_string(d, "name", "device")),
                    printable(required_string(d, "role", "device")),
                    printable(required_string(d, "created_at", "device")),
                    seen && seen->is_string() ? printable(seen->get_string()) : "never"});
  }
  if (rows.size() == 1) {
    out << "No paired devices. Pair one with `pocket-agent-server pair`.\n";
    return kExitOk;
  }
  std::vector<std::size_t> widths(rows[0].size(), 0);
  for (const auto& row : rows)
    for (std::size_t i = 0; i < row.size(); ++i)
      widths[i] = std::max(widths[i], display_width(row[i]));
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - display_width(row[i]) + 2, ' ');
    }
    out << line << "\n";
  }
  return kExitOk;
}

int revoke(AdminClient& client, const std::string& device_id, std::ostream& out) {
  client.request("device_revoke", {{"device_id", device_id}}, "device_revoked");
  out << "Revoked device " << printable(device_id)
      << ": its token no longer works and its connections were closed.\n";
  return kExitOk;
}

}  // namespace

int run_client_command(const config::Loaded& loaded, std::ostream& out, std::ostream& err,
                       bool out_is_terminal) {
  try {
    if (loaded.action == config::Action::kPrintQr) {
      try {
        out << devices::qr_terminal(loaded.command.text, qr_style(out_is_terminal));
      } catch (const std::invalid_argument& e) {
        throw CliError(kExitUsage, e.what());
      }
      return kExitOk;
    }
    AdminClient client(endpoint_of(loaded.config));
    client.connect();
    int status = kExitFailed;
    switch (loaded.action) {
      case config::Action::kPair:
        status = pair(client, loaded.command, out, out_is_terminal);
        break;
      case config::Action::kDeviceList:
        status = list(client, out);
        break;
      case config::Action::kDeviceRevoke:
        status = revoke(client, loaded.command.device_id, out);
        break;
      default:
        throw std::logic_error("run_client_command: not a client action");
    }
    client.close();
    return status;
  } catch (const CliError& e) {
    err << "pocket-agent-server: " << e.what() << "\n";
    return e.exit_code();
  }
}

}  // namespace pa::cli
