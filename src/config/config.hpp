// Effective server configuration: defaults < config.yaml < PA_* environment < command-line flags.
// Every setting is described once in a table (config.cpp) that gives its YAML key, environment
// variable, flag, type, default and allowed values; docs/configuration.md mirrors that table.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace pa::config {

using Seconds = std::chrono::seconds;
using Millis = std::chrono::milliseconds;

// One ntfy topic or webhook that receives notifications (`notify.targets`).
struct NotifyTarget {
  std::string type{};                 // "ntfy" or "webhook"
  std::string url{};                  // http:// or https://
  std::string token{};                // ntfy: Authorization: Bearer <token>; may be empty
  std::string secret{};               // webhook: HMAC-SHA256 key of the signature; may be empty
  std::vector<std::string> events{};  // empty = every event
  bool operator==(const NotifyTarget&) const = default;
};

struct Config {
  struct Server {
    std::string host = "0.0.0.0";
    std::uint16_t port = 8443;  // 0 = pick a free port (tests)
    unsigned threads = 0;       // I/O threads; 0 = one per core
    // Host names browsers may use for this server besides its own (localhost, IP addresses, the
    // machine's name, the certificate's names, auth.allowed_origins); "*" = any (DNS rebinding).
    std::vector<std::string> allowed_hosts;
  } server;

  struct Tls {
    bool enabled = true;  // false = plaintext, only for a TLS-terminating proxy
    std::string cert = "./certs/server.crt";
    std::string key = "./certs/server.key";
    std::string min_version = "1.2";         // "1.2" or "1.3"
    std::vector<std::string> cipher_suites;  // IANA or OpenSSL names; empty = OpenSSL defaults
  } tls;

  struct Data {
    std::string dir = "./data";
  } data;

  struct Projects {
    std::vector<std::string> allowed_roots;  // empty = anywhere not on the built-in deny list
  } projects;

  struct Logging {
    std::string level = "info";     // debug, info, warn, error, fatal
    std::string format = "json";    // json, text
    std::string output = "stdout";  // stdout, stderr or a file path
  } logging;

  struct Limits {
    std::uint64_t max_connections = 100;
    std::uint64_t max_projects = 100;
    std::uint64_t message_size = 1048576;   // bytes, largest inbound WebSocket message
    double connection_rate = 10;            // new connections per second per address; 0 = off
    std::uint64_t history_page_max = 1000;  // cap on get_messages limit
    std::uint64_t prompt_size = 262144;     // bytes
    // execute.data.attachments (issue 19): each one's decoded size, and how many per prompt.
    std::uint64_t attachment_bytes = 5242880;
    std::uint64_t attachments_per_prompt = 10;
    // Not settings: set at start when the open file limit caps max_connections (which then
    // holds the effective value; net/descriptor_plan.hpp). 0 = not capped.
    std::uint64_t configured_max_connections = 0;
    std::uint64_t open_file_limit = 0;
  } limits;

  struct Timeouts {
    Seconds execution{300};     // 0 = none
    Seconds execution_idle{0};  // no CLI output for this long; 0 = off
    Seconds idle{300};          // connection idle; 0 = off
    Seconds ping_interval{30};
    Seconds pong_timeout{30};
    Seconds slow_consumer{60};   // no write progress for this long: close 1013
    Seconds handshake{10};       // TLS + HTTP upgrade must finish within this
    Seconds shutdown_grace{30};  // graceful shutdown waits this long for runs
    Seconds kill_grace{3};       // after interrupt, before SIGTERM
    Seconds term_grace{5};       // after SIGTERM, before SIGKILL
  } timeouts;

  struct LogRotation {
    std::uint64_t size = 104857600;  // bytes per history file
    std::uint64_t count = 10000;     // entries per history file
    Millis fsync_interval{1000};     // 0 = fsync every entry
  } log_rotation;

  struct Claude {
    std::string binary = "claude";
    std::string default_model = "claude-3-5-sonnet-20241022";
    std::vector<std::string> allowed_tools = {"read", "write", "run"};
    std::uint64_t max_line_bytes = 16777216;
    std::map<std::string, std::string> env;  // extra environment for the CLI
    std::string home;                        // HOME for the CLI; empty = inherit
    bool allow_dangerous = false;
    std::string permission_prompt;  // "", "client" or "none"
    Seconds permission_timeout{300};
    // No subscriber declared `permissions` in hello: "deny" asks at once, or "cli" (the CLI's
    // own permission mode decides; the run starts without the permission prompt tool).
    std::string permission_fallback = "deny";
  } claude;

  struct WebSocket {
    std::uint64_t read_buffer = 4096;
    std::uint64_t write_buffer = 4096;
    std::uint64_t message_buffer = 100;        // queued outbound messages per connection
    std::uint64_t max_queue_bytes = 16777216;  // queued outbound bytes per connection
    bool enable_compression = false;
    int compression_level = 6;  // 1..9
  } websocket;

  struct Execution {
    std::uint64_t max_concurrent = 10;
    std::uint64_t queue_size = 100;
  } execution;

  struct Auth {
    bool enabled = true;
    std::string token;  // empty = generated and kept in <data_dir>/auth_token
    std::vector<std::string> allowed_origins;  // empty = the server's own origin only
    std::uint64_t max_failures = 10;           // per address per minute before 429
  } auth;

  struct Metrics {
    bool enabled = true;
    bool is_public = false;  // YAML key "public"
    std::uint16_t port = 0;  // separate loopback-only port; 0 = same listener only
  } metrics;

  struct Stats {
    Seconds interval{10};  // server_stats broadcast; 0 = off
  } stats;

  struct Shutdown {
    std::string runs = "stop";  // "stop" or "detach"
  } shutdown;

  // Notifications (issue 17): Web Push to subscribed browsers, and the targets below.
  struct Notify {
    std::string vapid_subject = "mailto:pocket-agent@localhost";  // who push services may contact
    std::string console_url;  // absolute base of links in notifications; empty = relative links
    // Hosts a Web Push endpoint may name (equal, or a subdomain): the browsers' push services.
    std::vector<std::string> push_service_hosts = {
        "fcm.googleapis.com", "push.services.mozilla.com", "notify.windows.com", "push.apple.com"};
    std::string ca_file;  // extra CA certificates trusted for notification HTTPS
    Seconds timeout{10};  // one HTTP exchange with a push service, ntfy or a webhook
    std::vector<NotifyTarget> targets;
  } notify;

  // Daily spend caps in USD per UTC day (issue 19): an execute over one is refused
  // (BUDGET_EXCEEDED), a run that crosses one is interrupted. 0 = no cap.
  struct Budgets {
    double project_daily_usd = 0;
    double server_daily_usd = 0;
  } budgets;

  // Cluster mode (issue 20): several hosts behind one console, sharing state through Redis.
  // Off (and no Redis needed) while redis_url is empty.
  struct Cluster {
    std::string redis_url;      // redis://[user:password@]host[:port][/db] or rediss://…
    std::string node_name;      // this host's name in the cluster; empty = the machine's host name
    std::string secret;         // shared by every node: HMAC key of node-to-node messages
    std::string tls_ca_file;    // rediss://: CA certificates to verify Redis with (else system's)
    Seconds heartbeat_ttl{10};  // a node not heard from this long is UNAVAILABLE
    std::uint64_t stream_maxlen = 100000;  // entries kept per project event stream (MAXLEN ~)
    Seconds request_timeout{30};           // a request forwarded to another node and not answered
  } cluster;

  bool allow_insecure_remote = false;  // --allow-insecure-remote
  bool allow_root = false;             // --allow-root
};

// A bad value, key or flag. what() is one line naming the key, the value and what is allowed.
// Usage errors (unknown flag, stray argument) are ConfigErrors too, starting "command line:".
// main() prints what() and exits with status 2.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What main() should do after the command line is read.
// kPair, kDeviceList and kDeviceRevoke talk to the running server (src/cli); kPrintQr draws
// `ClientCommand::text` as a QR code.
enum class Action {
  kRun,
  kPrintConfig,
  kPrintToken,
  kPair,
  kDeviceList,
  kDeviceRevoke,
  kPrintQr,
  kReindex,  // rebuild the search index from the logs (src/cli/reindex.hpp)
  kExit
};

// The arguments of the client subcommands (`pair`, `devices revoke`, `qr`).
struct ClientCommand {
  std::string role;       // pair --role (default operator)
  std::string name;       // pair --name; empty = not sent (the device names itself)
  std::string device_id;  // devices revoke ID
  std::string text;       // qr TEXT
};

struct Loaded {
  Config config;
  Action action = Action::kRun;
  int exit_code = 0;                  // for Action::kExit (help, version); usage errors throw
  std::string output;                 // text to print for kExit (help/version); kPrintConfig: YAML
  std::vector<std::string> warnings;  // e.g. unknown YAML keys; logged at start
  std::string config_path;            // the file that was read, if any
  ClientCommand command;              // for kPair, kDeviceRevoke, kPrintQr
};

// Environment lookup; tests pass a map instead of the process environment.
using EnvLookup = std::map<std::string, std::string>;
EnvLookup process_environment();

// Reads flags (CLI11), the YAML file named by --config or PA_CONFIG (if any), and the environment.
// Subcommand "token" selects Action::kPrintToken; "pair", "devices list|revoke" and "qr" the
// client actions (their help lists the exit statuses, cli/exit_codes.hpp). Throws ConfigError on
// any invalid input.
Loaded load(int argc, const char* const* argv, const EnvLookup& env);

// What load() does with the text of the config file: applies it onto `config` (`name` is the file
// name for messages; unknown keys are appended to `warnings`). Throws ConfigError.
void apply_yaml_text(const std::string& text, const std::string& name, Config& config,
                     std::vector<std::string>& warnings);

// Parsers shared with the table; throw ConfigError naming `key`.
// Durations: "250ms", "30s", "5m", "1h", or a plain number of seconds; "0" = off where allowed.
Millis parse_duration(const std::string& key, const std::string& text);
std::uint64_t parse_size(const std::string& key, const std::string& text);  // plain bytes

// The effective configuration as YAML with secrets (auth.token) redacted.
std::string to_yaml(const Config& config);

// Formats a duration the way the parser reads it: "0", "250ms", "30s", "5m", "1h".
std::string format_duration(Millis d);

}  // namespace pa::config
