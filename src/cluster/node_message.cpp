#include "cluster/node_message.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <charconv>

#include "common/hex.hpp"

namespace pa::cluster {

namespace {
constexpr std::size_t kMaxFieldBytes = 512u << 20;  // Redis's own string limit

void add_field(std::string& text, std::string_view value) {
  // Length-prefixed, so no field can run into the next one.
  text += std::to_string(value.size());
  text += ':';
  text += value;
}
}  // namespace

std::int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string random_id(std::size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1) {
    // OpenSSL's generator failing is not something to run on; a fixed id would collide.
    std::abort();
  }
  return common::to_hex(raw);
}

namespace {
std::string hmac_hex(const std::string& secret, std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest, &length);
  return common::to_hex(std::string_view(reinterpret_cast<const char*>(digest), length));
}

bool same_mac(std::string_view given, std::string_view expected) {
  return given.size() == expected.size() &&
         CRYPTO_memcmp(given.data(), expected.data(), expected.size()) == 0;
}
}  // namespace

std::string NodeSigner::sign(std::string_view key, std::string_view text) const {
  std::string input;
  add_field(input, "value");
  add_field(input, key);
  add_field(input, text);
  return hmac_hex(secret_, input);
}

bool NodeSigner::verify(std::string_view key, std::string_view text, std::string_view mac) const {
  return same_mac(mac, sign(key, text));
}

std::string NodeSigner::mac(std::string_view stream, const NodeMessage& m) const {
  std::string text;
  text.reserve(64 + m.body.size() + m.frame.size());
  add_field(text, stream);
  add_field(text, m.kind);
  add_field(text, m.from);
  add_field(text, m.boot);
  add_field(text, std::to_string(m.ts_ms));
  add_field(text, m.body);
  add_field(text, m.frame);
  return hmac_hex(secret_, text);
}

std::vector<std::string> NodeSigner::xadd(std::string_view stream, NodeMessage m,
                                          std::uint64_t maxlen) const {
  m.ts_ms = unix_ms_now();
  std::vector<std::string> argv{"XADD", std::string(stream)};
  if (maxlen != 0) {
    argv.insert(argv.end(), {"MAXLEN", "~", std::to_string(maxlen)});
  }
  argv.emplace_back("*");
  argv.insert(argv.end(),
              {"k", m.kind, "from", m.from, "boot", m.boot, "ts", std::to_string(m.ts_ms)});
  if (!m.body.empty()) argv.insert(argv.end(), {"b", m.body});
  if (!m.frame.empty()) argv.insert(argv.end(), {"f", m.frame});
  argv.insert(argv.end(), {"m", mac(stream, m)});
  return argv;
}

std::optional<NodeMessage> NodeSigner::open(std::string_view stream, const redis::Reply& fields,
                                            std::string& why) const {
  if (fields.type != redis::Reply::Type::kArray || fields.elements.size() % 2 != 0) {
    why = "not a field list";
    return std::nullopt;
  }
  NodeMessage m;
  std::string ts, given_mac;
  bool has_kind = false, has_from = false, has_boot = false, has_ts = false;
  for (std::size_t i = 0; i < fields.elements.size(); i += 2) {
    const auto& name = fields.elements[i];
    const auto& value = fields.elements[i + 1];
    if (name.type != redis::Reply::Type::kString || value.type != redis::Reply::Type::kString ||
        value.str.size() > kMaxFieldBytes) {
      why = "a field is not a string";
      return std::nullopt;
    }
    std::string* target = nullptr;
    bool* seen = nullptr;
    if (name.str == "k") {
      target = &m.kind, seen = &has_kind;
    } else if (name.str == "from") {
      target = &m.from, seen = &has_from;
    } else if (name.str == "boot") {
      target = &m.boot, seen = &has_boot;
    } else if (name.str == "ts") {
      target = &ts, seen = &has_ts;
    } else if (name.str == "b") {
      target = &m.body;
    } else if (name.str == "f") {
      target = &m.frame;
    } else if (name.str == "m") {
      target = &given_mac;
    } else {
      why = "unknown field '" + name.str.substr(0, 32) + "'";
      return std::nullopt;
    }
    *target = value.str;
    if (seen) *seen = true;
  }
  if (!has_kind || !has_from || !has_boot || !has_ts || given_mac.empty()) {
    why = "a field is missing";
    return std::nullopt;
  }
  const auto [end, ec] = std::from_chars(ts.data(), ts.data() + ts.size(), m.ts_ms);
  if (ec != std::errc() || end != ts.data() + ts.size()) {
    why = "ts is not a number";
    return std::nullopt;
  }
  if (!same_mac(given_mac, mac(stream, m))) {
    why = "bad MAC (not signed with this cluster's secret)";
    return std::nullopt;
  }
  return m;
}

std::vector<StreamEntry> stream_entries(const redis::Reply& reply) {
  std::vector<StreamEntry> entries;
  if (reply.type != redis::Reply::Type::kArray) return entries;
  for (const auto& stream : reply.elements) {
    if (stream.type != redis::Reply::Type::kArray || stream.elements.size() != 2 ||
        stream.elements[0].type != redis::Reply::Type::kString ||
        stream.elements[1].type != redis::Reply::Type::kArray)
      continue;
    for (const auto& entry : stream.elements[1].elements) {
      if (entry.type != redis::Reply::Type::kArray || entry.elements.size() != 2 ||
          entry.elements[0].type != redis::Reply::Type::kString)
        continue;
      entries.push_back({stream.elements[0].str, entry.elements[0].str, &entry.elements[1]});
    }
  }
  return entries;
}

std::string last_entry_id(const redis::Reply& reply) {
  if (reply.type == redis::Reply::Type::kArray && !reply.elements.empty()) {
    const auto& entry = reply.elements.front();
    if (entry.type == redis::Reply::Type::kArray && !entry.elements.empty() &&
        entry.elements.front().type == redis::Reply::Type::kString)
      return entry.elements.front().str;
  }
  return "0-0";
}

}  // namespace pa::cluster
