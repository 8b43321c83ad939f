// The settings table: every configurable value described once (YAML key, environment variable,
// flags, type, limits, help). Flags, environment, config.yaml, --print-config and the reference
// table in docs/configuration.md are all driven by it. Internal to the config module and its tests.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "config/config.hpp"

namespace pa::config::detail {

// A pointer to the Config field a setting controls; its type selects the parser.
using FieldRef = std::variant<std::string*, bool*, std::uint16_t*, unsigned*, int*, std::uint64_t*,
                              double*, Seconds*, Millis*, std::vector<std::string>*,
                              std::map<std::string, std::string>*, std::vector<NotifyTarget>*>;

struct Setting {
  std::string_view key{};       // YAML path, e.g. "server.tls.cert"
  std::string_view env{};       // environment variable, e.g. "PA_TLS_CERT"
  std::string_view flags{};     // CLI11 names, canonical first: "--server-port,--port"
  std::string_view negation{};  // bool settings only: a flag that sets false, e.g. "--no-tls"
  FieldRef (*field)(Config&) = nullptr;
  // Integers and durations: inclusive bounds (durations: min 1 = must be > 0).
  std::uint64_t min = 0;
  std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  bool bytes = false;                       // integer is a size in bytes (docs and messages)
  std::vector<std::string_view> choices{};  // strings: the allowed values (empty = any)
  std::string_view zero{};                  // numbers/durations: what 0 means, if special
  bool secret = false;                      // never printed (auth.token)
  std::string_view help{};
};

// All settings, grouped by section, in the order of the YAML file.
const std::vector<Setting>& settings();
const Setting* find_setting(std::string_view key);

// The first (canonical) flag of a setting, e.g. "--server-port".
std::string canonical_flag(const Setting& s);
// The section a key belongs to: "server.tls.cert" -> "server.tls".
std::string_view section_of(std::string_view key);
// Title of a section for help output and docs, e.g. "server.tls" -> "TLS".
std::string_view section_title(std::string_view section);

// Applies a text value (flag or environment variable) to `config`. `source` names where the
// text came from (flag or variable name) for error messages. Throws ConfigError.
void apply_text(const Setting& s, Config& config, const std::string& text,
                const std::string& source);
// Applies a YAML node. `source` is e.g. "config.yaml line 4". Throws ConfigError.
void apply_yaml(const Setting& s, Config& config, const YAML::Node& node,
                const std::string& source);

// The value of a setting as text that apply_text() accepts back (lists comma-joined, maps
// "K=V,K2=V2", durations "5m"). Secrets are not redacted here.
std::string text_value(const Setting& s, const Config& config);
// A YAML value for error messages, on one line: a scalar quoted, anything else in flow style
// (shortened when long), a missing value as "(empty)".
std::string show_yaml_value(const YAML::Node& node);
// Emits the value of a setting into a YAML emitter (secrets redacted).
void emit_yaml(const Setting& s, const Config& config, YAML::Emitter& out);

// Short type name for help and docs: TEXT, BOOL, PORT, INT, BYTES, NUMBER, DURATION, LIST, MAP,
// TARGETS.
std::string type_name(const Setting& s);
// What values are allowed, for help and docs, e.g. "debug, info, warn, error, fatal".
std::string allowed_values(const Setting& s);

// A short form of allowed_values() for --help (empty when the type name says it all).
std::string brief_allowed(const Setting& s);

// The reference tables of docs/configuration.md (one Markdown table per section).
std::string reference_markdown();

}  // namespace pa::config::detail
