#include "config/config.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>
#include <string_view>
#include <utility>

#include <yaml-cpp/yaml.h>
#include <CLI/CLI.hpp>

#include "cli/exit_codes.hpp"
#include "config/settings_table.hpp"
#include "version.hpp"

extern char** environ;  // NOLINT: POSIX

namespace pa::config {
namespace {

using detail::Setting;

constexpr std::string_view kConfigEnv = "PA_CONFIG";

std::string read_config_file(const std::string& path, const std::string& named_by) {
  auto fail = [&](int err) {
    return ConfigError("cannot read config file \"" + path + "\" (" + named_by +
                       "): " + std::strerror(err));
  };
  if (path.empty()) throw ConfigError("config file name is empty (" + named_by + ")");
  struct Closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, Closer> file(std::fopen(path.c_str(), "rb"));
  if (!file) throw fail(errno);
  std::string data;
  char buf[8192];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, file.get())) > 0) data.append(buf, n);
  if (std::ferror(file.get())) throw fail(errno != 0 ? errno : EIO);
  return data;
}

// Applies config.yaml. Keys are matched against the table; a top-level `tls:` block is an alias
// for `server.tls`. Unknown keys become warnings; a key set twice (e.g. via the alias) is an error.
class YamlLoader {
 public:
  YamlLoader(const std::string& path, Config& config, std::vector<std::string>& warnings)
      : path_(path), config_(config), warnings_(warnings) {}

  void load(const std::string& text) {
    YAML::Node root;
    try {
      root = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      throw ConfigError(path_ + ": " + e.what());
    }
    if (!root.IsDefined() || root.IsNull()) return;  // empty file
    if (!root.IsMap()) {
      throw ConfigError("invalid value for the top level (" + path_ +
                        "): " + detail::show_yaml_value(root) + ": expected a mapping of settings");
    }
    walk(root, "", "");
  }

 private:
  static bool is_section(std::string_view name) {
    for (const auto& s : detail::settings()) {
      if (s.key.size() > name.size() && s.key.starts_with(name) && s.key[name.size()] == '.') {
        return true;
      }
    }
    return false;
  }

  std::string where(const YAML::Node& node) const {
    return path_ + " line " + std::to_string(node.Mark().line + 1);
  }

  // `prefix` is the real key prefix ("server.tls."), `shown` the one written in the file ("tls.").
  void walk(const YAML::Node& map, const std::string& prefix, const std::string& shown) {
    for (const auto& entry : map) {
      if (!entry.first.IsScalar()) {
        throw ConfigError(where(entry.first) + ": keys must be plain names");
      }
      const std::string name = entry.first.Scalar();
      const std::string key = prefix + name;
      const std::string written = shown + name;
      const YAML::Node& value = entry.second;
      if (const Setting* s = detail::find_setting(key)) {
        const auto [it, fresh] = seen_.emplace(s, written);
        if (!fresh) {
          throw ConfigError(where(entry.first) + ": " + key + " is set twice (as " + it->second +
                            " and as " + written + ")");
        }
        std::string source = where(entry.first);
        if (written != key) source += ", as " + written;
        detail::apply_yaml(*s, config_, value, source);
      } else if (is_section(key) || (prefix.empty() && name == "tls")) {
        const std::string real = is_section(key) ? key : "server.tls";
        if (value.IsNull()) continue;  // a section with every key commented out
        if (!value.IsMap()) {
          throw ConfigError("invalid value for " + written + " (" + where(entry.first) +
                            "): " + detail::show_yaml_value(value) + ": expected a mapping of " +
                            real + ".* settings");
        }
        walk(value, real + ".", written + ".");
      } else {
        warnings_.push_back(path_ + ": unknown key '" + written + "' (ignored)");
      }
    }
  }

  const std::string& path_;
  Config& config_;
  std::vector<std::string>& warnings_;
  std::map<const Setting*, std::string> seen_;  // setting -> key as written
};

std::string option_help(const Setting& s) {
  const Config defaults;
  std::string text(s.help);
  if (const std::string allowed = detail::brief_allowed(s); !allowed.empty()) {
    text += "; " + allowed;
  }
  text += " [env " + std::string(s.env);
  if (!s.secret) {
    const std::string def = detail::text_value(s, defaults);
    text += ", default " + (def.empty() ? std::string("empty") : def);
  }
  return text + "]";
}

}  // namespace

void apply_yaml_text(const std::string& text, const std::string& name, Config& config,
                     std::vector<std::string>& warnings) {
  YamlLoader(name, config, warnings).load(text);
}

EnvLookup process_environment() {
  EnvLookup env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const auto eq = entry.find('=');
    if (eq == std::string_view::npos || !entry.starts_with("PA_")) continue;
    env.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  return env;
}

// The footer of the subcommands that talk to the running server.
constexpr std::string_view kClientHelp =
    "Connects to the server running on this machine (server.host's loopback address, server.port)\n"
    "with the master token (auth.token, else <data.dir>/auth_token), and over TLS expects the\n"
    "certificate server.tls.cert: give it the server's own settings (--config, or --data-dir,\n"
    "--port, --tls-cert, ...), before or after the subcommand.\n\n";

Loaded load(int argc, const char* const* argv, const EnvLookup& env) {
  const auto& table = detail::settings();
  Loaded result;

  CLI::App app{
      "Pocket Agent Server: runs the Claude CLI for remote clients over a WebSocket.\n"
      "Settings come from flags > PA_* environment > config file > defaults; "
      "see docs/configuration.md.",
      "pocket-agent-server"};
  app.set_help_flag("-h,--help", "Print this help and exit");
  app.get_formatter()->column_width(44);

  std::string config_path;
  CLI::Option* config_opt =
      app.add_option("--config", config_path, "YAML configuration file [env PA_CONFIG]")
          ->type_name("PATH")
          ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  bool version = false;
  bool print_config = false;
  bool insecure = false;
  bool allow_root = false;
  app.add_flag("--version", version, "Print the version and exit");
  app.add_flag("--print-config", print_config,
               "Print the effective configuration as YAML (token redacted) and exit");
  app.add_flag("--allow-insecure-remote", insecure,
               "Listen on a non-loopback address without TLS or without authentication");
  app.add_flag("--allow-root", allow_root,
               "Run as root (refused otherwise: the agent would act with root's rights)");

  std::vector<std::string> values(table.size());
  std::vector<CLI::Option*> options;
  options.reserve(table.size());
  {
    Config scratch;  // only to learn each field's type
    for (std::size_t i = 0; i < table.size(); ++i) {
      const Setting& s = table[i];
      CLI::Option* opt = nullptr;
      if (std::holds_alternative<bool*>(s.field(scratch))) {
        std::string names(s.flags);
        if (!s.negation.empty()) names += ",!" + std::string(s.negation);
        opt = app.add_flag(names, values[i], option_help(s));
      } else {
        opt = app.add_option(std::string(s.flags), values[i], option_help(s))
                  ->type_name(detail::type_name(s));
      }
      opt->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
      opt->group(std::string(detail::section_title(detail::section_of(s.key))));
      options.push_back(opt);
    }
  }

  CLI::App* token =
      app.add_subcommand("token", "Print the auth token clients must present and exit");
  token->fallthrough();

  // Client subcommands: they connect to the running server (settings as for the server itself).
  ClientCommand& command = result.command;
  command.role = "operator";
  CLI::App* pair = app.add_subcommand(
      "pair",
      "Ask the running server for a one-time pairing code (10 minutes) and print its URL and a QR "
      "code to scan with the new device");
  pair->fallthrough();
  pair->add_option("--role", command.role,
                   "What the device may do: viewer, operator (run prompts; the default), approver, "
                   "admin (see docs/protocol.md, roles)")
      ->check(CLI::IsMember({"viewer", "operator", "approver", "admin"}))
      ->type_name("ROLE");
  pair->add_option("--name", command.name,
                   "The device's name in `devices list` (default: the name the device gives "
                   "itself, else \"<role> device\")")
      ->type_name("NAME");
  pair->footer(std::string(kClientHelp) + cli::kExitCodesHelp);
  CLI::App* devices = app.add_subcommand("devices", "List or revoke the paired devices");
  devices->fallthrough();
  devices->require_subcommand(1, 1);
  devices->footer(std::string(kClientHelp) + cli::kExitCodesHelp);
  CLI::App* devices_list = devices->add_subcommand(
      "list", "Print the paired devices: id, name, role, created, last seen");
  devices_list->fallthrough();
  devices_list->footer(std::string(kClientHelp) + cli::kExitCodesHelp);
  CLI::App* devices_revoke = devices->add_subcommand(
      "revoke", "Revoke a device: its token stops working and its connections close (4401)");
  devices_revoke->fallthrough();
  devices_revoke->add_option("ID", command.device_id, "The device id, as `devices list` prints it")
      ->required();
  devices_revoke->footer(std::string(kClientHelp) + cli::kExitCodesHelp);
  CLI::App* qr = app.add_subcommand(
      "qr", "Print TEXT as a QR code for a terminal (colours only when stdout is one) and exit");
  qr->fallthrough();
  qr->add_option("TEXT", command.text, "What the QR code holds, e.g. the console's URL")
      ->required();
  CLI::App* reindex = app.add_subcommand(
      "reindex",
      "Rebuild the search index (<data_dir>/search/) from every project's history and exit; "
      "refused while the server runs (it rebuilds a missing index itself at start)");
  reindex->fallthrough();
  app.require_subcommand(0, 1);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    result.action = Action::kExit;
    result.output = app.help();
    return result;
  } catch (const CLI::CallForAllHelp&) {
    result.action = Action::kExit;
    result.output = app.help("", CLI::AppFormatMode::All);
    return result;
  } catch (const CLI::ParseError& e) {
    throw ConfigError(std::string("command line: ") + e.what() + " (see --help)");
  }

  if (version) {
    result.action = Action::kExit;
    result.output = std::string("pocket-agent-server ") + pa::kVersion + "\n";
    return result;
  }

  Config& config = result.config;

  // 1. config.yaml, named by --config or PA_CONFIG.
  std::string named_by;
  if (config_opt->count() > 0) {
    named_by = "--config";
  } else if (auto it = env.find(std::string(kConfigEnv)); it != env.end() && !it->second.empty()) {
    config_path = it->second;
    named_by = kConfigEnv;
  }
  if (!named_by.empty()) {
    apply_yaml_text(read_config_file(config_path, named_by), config_path, config, result.warnings);
    result.config_path = config_path;
  }

  // 2. Environment. An empty variable counts as unset.
  std::set<std::string_view> known{kConfigEnv};
  for (const Setting& s : table) {
    known.insert(s.env);
    const auto it = env.find(std::string(s.env));
    if (it != env.end() && !it->second.empty()) {
      detail::apply_text(s, config, it->second, std::string(s.env));
    }
  }
  for (const auto& [name, value] : env) {
    if (name.starts_with("PA_") && !known.contains(name)) {
      result.warnings.push_back("environment: unknown variable " + name + " (ignored)");
    }
  }

  // 3. Flags.
  for (std::size_t i = 0; i < table.size(); ++i) {
    if (options[i]->count() == 0) continue;
    const Setting& s = table[i];
    std::string source = detail::canonical_flag(s);
    if (!s.negation.empty()) source += " or " + std::string(s.negation);
    detail::apply_text(s, config, values[i], source);
  }
  config.allow_insecure_remote = insecure;
  config.allow_root = allow_root;
  // Allowed, but almost never meant: say so wherever warnings go (start-up log, --print-config).
  if (config.timeouts.idle.count() > 0 && config.timeouts.idle <= config.timeouts.ping_interval) {
    result.warnings.push_back("timeouts.idle (" + format_duration(config.timeouts.idle) +
                              ") is not longer than timeouts.ping_interval (" +
                              format_duration(config.timeouts.ping_interval) +
                              "): a client that only watches has no ping to answer and is "
                              "closed as idle");
  }

  const std::pair<CLI::App*, Action> subcommands[] = {{token, Action::kPrintToken},
                                                      {pair, Action::kPair},
                                                      {devices_list, Action::kDeviceList},
                                                      {devices_revoke, Action::kDeviceRevoke},
                                                      {qr, Action::kPrintQr},
                                                      {reindex, Action::kReindex}};
  for (const auto& [subcommand, action] : subcommands) {
    if (!subcommand->parsed()) continue;
    if (print_config)
      throw ConfigError("command line: --print-config cannot be used with " +
                        subcommand->get_name());
    result.action = action;
  }
  if (result.action == Action::kRun && print_config) {
    result.action = Action::kPrintConfig;
    result.output = to_yaml(config);
  }
  return result;
}

std::string to_yaml(const Config& config) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  std::vector<std::string> open;  // sections currently open, e.g. {"server", "tls"}
  for (const Setting& s : detail::settings()) {
    std::vector<std::string> parts;
    std::string_view rest = s.key;
    for (auto dot = rest.find('.'); dot != std::string_view::npos; dot = rest.find('.')) {
      parts.emplace_back(rest.substr(0, dot));
      rest.remove_prefix(dot + 1);
    }
    std::size_t common = 0;
    while (common < open.size() && common < parts.size() && open[common] == parts[common]) {
      ++common;
    }
    for (; open.size() > common; open.pop_back()) out << YAML::EndMap;
    for (; open.size() < parts.size(); open.push_back(parts[open.size()])) {
      out << YAML::Key << parts[open.size()] << YAML::Value << YAML::BeginMap;
    }
    out << YAML::Key << std::string(rest) << YAML::Value;
    detail::emit_yaml(s, config, out);
  }
  for (; !open.empty(); open.pop_back()) out << YAML::EndMap;
  out << YAML::EndMap;
  return std::string("# pocket-agent-server effective configuration\n") + out.c_str() + "\n";
}

}  // namespace pa::config
