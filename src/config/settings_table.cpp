#include "config/settings_table.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <optional>
#include <sstream>
#include <system_error>
#include <type_traits>
#include <utility>

#include "config/notify_targets.hpp"

namespace pa::config {
namespace detail {
namespace {

// FIELD(server.port) -> a function returning a pointer to that Config member.
#define FIELD(path) [](Config& c) -> FieldRef { return &c.path; }

const std::vector<Setting> kSettings = {
    // --- server ---------------------------------------------------------------------------
    {.key = "server.host",
     .env = "PA_SERVER_HOST",
     .flags = "--server-host,--host",
     .field = FIELD(server.host),
     .help = "Address to listen on (IP address or host name)"},
    {.key = "server.port",
     .env = "PA_SERVER_PORT",
     .flags = "--server-port,--port",
     .field = FIELD(server.port),
     .zero = "pick a free port (tests)",
     .help = "TCP port to listen on"},
    {.key = "server.threads",
     .env = "PA_SERVER_THREADS",
     .flags = "--server-threads",
     .field = FIELD(server.threads),
     .max = 1024,
     .zero = "one per CPU core",
     .help = "Number of I/O threads"},
    {.key = "server.allowed_hosts",
     .env = "PA_SERVER_ALLOWED_HOSTS",
     .flags = "--server-allowed-hosts,--allowed-hosts",
     .field = FIELD(server.allowed_hosts),
     .help = "Host names a request's Host header may carry besides localhost, IP addresses, the "
             "machine's name, the certificate's names and the hosts of auth.allowed_origins "
             "(others get 403: DNS rebinding); *.example.com = its subdomains, * = any"},
    // --- server.tls (also accepted as a top-level `tls:` block in YAML) -------------------
    {.key = "server.tls.enabled",
     .env = "PA_TLS_ENABLED",
     .flags = "--tls-enabled",
     .negation = "--no-tls",
     .field = FIELD(tls.enabled),
     .help = "Serve TLS (wss://); false = plaintext, only behind a TLS-terminating proxy"},
    {.key = "server.tls.cert",
     .env = "PA_TLS_CERT",
     .flags = "--tls-cert",
     .field = FIELD(tls.cert),
     .help = "TLS certificate (PEM) file"},
    {.key = "server.tls.key",
     .env = "PA_TLS_KEY",
     .flags = "--tls-key",
     .field = FIELD(tls.key),
     .help = "TLS private key (PEM) file"},
    {.key = "server.tls.min_version",
     .env = "PA_TLS_MIN_VERSION",
     .flags = "--tls-min-version",
     .field = FIELD(tls.min_version),
     .choices = {"1.2", "1.3"},
     .help = "Lowest TLS protocol version accepted"},
    {.key = "server.tls.cipher_suites",
     .env = "PA_TLS_CIPHER_SUITES",
     .flags = "--tls-cipher-suites",
     .field = FIELD(tls.cipher_suites),
     .help = "Cipher suites (IANA or OpenSSL names); empty = OpenSSL defaults"},
    // --- data -----------------------------------------------------------------------------
    {.key = "data.dir",
     .env = "PA_DATA_DIR",
     .flags = "--data-dir",
     .field = FIELD(data.dir),
     .help = "Data directory: projects, message history, generated auth token"},
    // --- projects -------------------------------------------------------------------------
    {.key = "projects.allowed_roots",
     .env = "PA_PROJECTS_ALLOWED_ROOTS",
     .flags = "--projects-allowed-roots,--allowed-roots",
     .field = FIELD(projects.allowed_roots),
     .help = "Directories projects and add_dirs must be inside; empty = anywhere not on the "
             "built-in deny list"},
    // --- logging --------------------------------------------------------------------------
    {.key = "logging.level",
     .env = "PA_LOG_LEVEL",
     .flags = "--logging-level,--log-level",
     .field = FIELD(logging.level),
     .choices = {"debug", "info", "warn", "error", "fatal"},
     .help = "Lowest level of server log messages written"},
    {.key = "logging.format",
     .env = "PA_LOG_FORMAT",
     .flags = "--logging-format,--log-format",
     .field = FIELD(logging.format),
     .choices = {"json", "text"},
     .help = "Server log format"},
    {.key = "logging.output",
     .env = "PA_LOGGING_OUTPUT",
     .flags = "--logging-output",
     .field = FIELD(logging.output),
     .help = "Where server logs go: stdout, stderr or a file path"},
    // --- limits ---------------------------------------------------------------------------
    {.key = "limits.max_connections",
     .env = "PA_MAX_CONNECTIONS",
     .flags = "--limits-max-connections,--max-connections",
     .field = FIELD(limits.max_connections),
     .min = 1,
     .help = "Maximum concurrent WebSocket connections; lowered at start, with a warning, to what "
             "the open file limit holds besides the descriptors reserved for runs and history"},
    {.key = "limits.max_projects",
     .env = "PA_MAX_PROJECTS",
     .flags = "--limits-max-projects,--max-projects",
     .field = FIELD(limits.max_projects),
     .min = 1,
     .help = "Maximum number of projects"},
    {.key = "limits.message_size",
     .env = "PA_MESSAGE_SIZE_LIMIT",
     .flags = "--limits-message-size,--message-size,--message-size-limit",
     .field = FIELD(limits.message_size),
     .min = 1,
     .bytes = true,
     .help = "Largest inbound WebSocket message"},
    {.key = "limits.connection_rate",
     .env = "PA_LIMITS_CONNECTION_RATE",
     .flags = "--limits-connection-rate",
     .field = FIELD(limits.connection_rate),
     .zero = "off",
     .help = "New connections per second per client address"},
    {.key = "limits.history_page_max",
     .env = "PA_LIMITS_HISTORY_PAGE_MAX",
     .flags = "--limits-history-page-max",
     .field = FIELD(limits.history_page_max),
     .min = 1,
     .help = "Cap on the limit of one get_messages request"},
    {.key = "limits.prompt_size",
     .env = "PA_LIMITS_PROMPT_SIZE",
     .flags = "--limits-prompt-size",
     .field = FIELD(limits.prompt_size),
     .min = 1,
     .bytes = true,
     .help = "Largest prompt accepted for an execution"},
    {.key = "limits.attachment_bytes",
     .env = "PA_LIMITS_ATTACHMENT_BYTES",
     .flags = "--limits-attachment-bytes",
     .field = FIELD(limits.attachment_bytes),
     .min = 1,
     .bytes = true,
     .help = "Largest attachment of an execution (decoded size); the whole message is still "
             "bounded by limits.message_size"},
    {.key = "limits.attachments_per_prompt",
     .env = "PA_LIMITS_ATTACHMENTS_PER_PROMPT",
     .flags = "--limits-attachments-per-prompt",
     .field = FIELD(limits.attachments_per_prompt),
     .min = 1,
     .help = "Most attachments one execution may carry"},
    // --- timeouts -------------------------------------------------------------------------
    {.key = "timeouts.execution",
     .env = "PA_EXECUTION_TIMEOUT",
     .flags = "--timeouts-execution,--execution-timeout",
     .field = FIELD(timeouts.execution),
     .zero = "no limit",
     .help = "Longest a Claude execution may run"},
    {.key = "timeouts.execution_idle",
     .env = "PA_TIMEOUTS_EXECUTION_IDLE",
     .flags = "--timeouts-execution-idle",
     .field = FIELD(timeouts.execution_idle),
     .zero = "off",
     .help = "Stop an execution whose CLI printed nothing for this long"},
    {.key = "timeouts.idle",
     .env = "PA_IDLE_TIMEOUT",
     .flags = "--timeouts-idle,--idle-timeout",
     .field = FIELD(timeouts.idle),
     .zero = "off",
     .help = "Close (1000) a connection from which nothing at all arrives for this long: no "
             "message, no pong. A client answering pings is not idle unless this is shorter "
             "than timeouts.ping_interval"},
    {.key = "timeouts.ping_interval",
     .env = "PA_PING_INTERVAL",
     .flags = "--timeouts-ping-interval,--ping-interval",
     .field = FIELD(timeouts.ping_interval),
     .min = 1,
     .help = "The server pings each connection at least this often (with the server_stats tick "
             "at or before the ping is due, while stats.interval is at most this)"},
    {.key = "timeouts.pong_timeout",
     .env = "PA_PONG_TIMEOUT",
     .flags = "--timeouts-pong-timeout,--pong-timeout",
     .field = FIELD(timeouts.pong_timeout),
     .min = 1,
     .help = "A peer that has not answered a ping with a pong (or sent anything) this long "
             "after it was sent is dropped (TCP closed without a close frame); pings go on "
             "meanwhile"},
    {.key = "timeouts.slow_consumer",
     .env = "PA_TIMEOUTS_SLOW_CONSUMER",
     .flags = "--timeouts-slow-consumer",
     .field = FIELD(timeouts.slow_consumer),
     .min = 1,
     .help = "A connection whose outbound writes make no progress at all for this long (the "
             "client stopped reading) is closed with 1013; one that reads slowly is fed from "
             "history and never closed for it"},
    {.key = "timeouts.handshake",
     .env = "PA_TIMEOUTS_HANDSHAKE",
     .flags = "--timeouts-handshake",
     .field = FIELD(timeouts.handshake),
     .min = 1,
     .help = "TLS and HTTP upgrade must finish within this"},
    {.key = "timeouts.shutdown_grace",
     .env = "PA_TIMEOUTS_SHUTDOWN_GRACE",
     .flags = "--timeouts-shutdown-grace",
     .field = FIELD(timeouts.shutdown_grace),
     .help = "Graceful shutdown waits this long for running executions"},
    {.key = "timeouts.kill_grace",
     .env = "PA_TIMEOUTS_KILL_GRACE",
     .flags = "--timeouts-kill-grace",
     .field = FIELD(timeouts.kill_grace),
     .help = "After interrupting the CLI, wait this long before SIGTERM"},
    {.key = "timeouts.term_grace",
     .env = "PA_TIMEOUTS_TERM_GRACE",
     .flags = "--timeouts-term-grace",
     .field = FIELD(timeouts.term_grace),
     .help = "After SIGTERM, wait this long before SIGKILL"},
    // --- log_rotation (message history files) ---------------------------------------------
    {.key = "log_rotation.size",
     .env = "PA_LOG_ROTATION_SIZE",
     .flags = "--log-rotation-size",
     .field = FIELD(log_rotation.size),
     .min = 1,
     .bytes = true,
     .help = "Rotate a message history file at this size"},
    {.key = "log_rotation.count",
     .env = "PA_LOG_ROTATION_COUNT",
     .flags = "--log-rotation-count",
     .field = FIELD(log_rotation.count),
     .min = 1,
     .help = "Rotate a message history file after this many messages"},
    {.key = "log_rotation.fsync_interval",
     .env = "PA_LOG_ROTATION_FSYNC_INTERVAL",
     .flags = "--log-rotation-fsync-interval",
     .field = FIELD(log_rotation.fsync_interval),
     .zero = "fsync every entry",
     .help = "How often message history is fsynced"},
    // --- claude ---------------------------------------------------------------------------
    {.key = "claude.binary",
     .env = "PA_CLAUDE_BINARY",
     .flags = "--claude-binary",
     .field = FIELD(claude.binary),
     .help = "Claude CLI executable (path, or name looked up in PATH)"},
    {.key = "claude.default_model",
     .env = "PA_CLAUDE_DEFAULT_MODEL",
     .flags = "--claude-default-model",
     .field = FIELD(claude.default_model),
     .help = "Model used when a request names none"},
    {.key = "claude.allowed_tools",
     .env = "PA_CLAUDE_ALLOWED_TOOLS",
     .flags = "--claude-allowed-tools",
     .field = FIELD(claude.allowed_tools),
     .help = "Tools the CLI may use"},
    {.key = "claude.max_line_bytes",
     .env = "PA_CLAUDE_MAX_LINE_BYTES",
     .flags = "--claude-max-line-bytes",
     .field = FIELD(claude.max_line_bytes),
     .min = 1,
     .bytes = true,
     .help = "Longest line of CLI output accepted"},
    {.key = "claude.env",
     .env = "PA_CLAUDE_ENV",
     .flags = "--claude-env",
     .field = FIELD(claude.env),
     .help = "Extra environment variables for the CLI"},
    {.key = "claude.home",
     .env = "PA_CLAUDE_HOME",
     .flags = "--claude-home",
     .field = FIELD(claude.home),
     .help = "HOME for the CLI; empty = inherit the server's"},
    {.key = "claude.allow_dangerous",
     .env = "PA_CLAUDE_ALLOW_DANGEROUS",
     .flags = "--claude-allow-dangerous",
     .field = FIELD(claude.allow_dangerous),
     .help = "Allow running the CLI without its permission checks"},
    {.key = "claude.permission_prompt",
     .env = "PA_CLAUDE_PERMISSION_PROMPT",
     .flags = "--claude-permission-prompt",
     .field = FIELD(claude.permission_prompt),
     .choices = {"", "client", "none"},
     .help = "Who approves tool calls: client (--permission-prompt-tool stdio, asked to "
             "subscribers) or none (the CLI alone); empty = client unless allow_dangerous"},
    {.key = "claude.permission_timeout",
     .env = "PA_CLAUDE_PERMISSION_TIMEOUT",
     .flags = "--claude-permission-timeout",
     .field = FIELD(claude.permission_timeout),
     .min = 1,
     .help = "A tool permission request nobody answers is denied after this long"},
    {.key = "claude.permission_fallback",
     .env = "PA_CLAUDE_PERMISSION_FALLBACK",
     .flags = "--claude-permission-fallback",
     .field = FIELD(claude.permission_fallback),
     .choices = {"deny", "cli"},
     .help = "When no subscriber declared the permissions capability in hello and no "
             "notification of permission requests reaches anyone: deny (each tool permission "
             "request is denied at once) or cli (the run starts without the permission prompt "
             "tool: the CLI's permission mode decides)"},
    // --- websocket ------------------------------------------------------------------------
    {.key = "websocket.read_buffer",
     .env = "PA_WEBSOCKET_READ_BUFFER",
     .flags = "--websocket-read-buffer",
     .field = FIELD(websocket.read_buffer),
     .min = 1,
     .bytes = true,
     .help = "Initial size of each connection's read buffer"},
    {.key = "websocket.write_buffer",
     .env = "PA_WEBSOCKET_WRITE_BUFFER",
     .flags = "--websocket-write-buffer",
     .field = FIELD(websocket.write_buffer),
     .min = 8,
     .bytes = true,
     .help =
         "Size of the WebSocket write buffer (larger messages are sent in frames of this size)"},
    {.key = "websocket.message_buffer",
     .env = "PA_WEBSOCKET_MESSAGE_BUFFER",
     .flags = "--websocket-message-buffer",
     .field = FIELD(websocket.message_buffer),
     .min = 1,
     .help = "Queued outbound messages per connection"},
    {.key = "websocket.max_queue_bytes",
     .env = "PA_WEBSOCKET_MAX_QUEUE_BYTES",
     .flags = "--websocket-max-queue-bytes",
     .field = FIELD(websocket.max_queue_bytes),
     .min = 1,
     .bytes = true,
     .help = "Outbound bytes that may wait behind the message being written, per connection; "
             "a message always fits when none waits"},
    {.key = "websocket.enable_compression",
     .env = "PA_WEBSOCKET_ENABLE_COMPRESSION",
     .flags = "--websocket-enable-compression",
     .field = FIELD(websocket.enable_compression),
     .help = "Offer permessage-deflate compression"},
    {.key = "websocket.compression_level",
     .env = "PA_WEBSOCKET_COMPRESSION_LEVEL",
     .flags = "--websocket-compression-level",
     .field = FIELD(websocket.compression_level),
     .min = 1,
     .max = 9,
     .help = "Deflate compression level"},
    // --- execution ------------------------------------------------------------------------
    {.key = "execution.max_concurrent",
     .env = "PA_EXECUTION_MAX_CONCURRENT",
     .flags = "--execution-max-concurrent",
     .field = FIELD(execution.max_concurrent),
     .min = 1,
     .help = "Executions running in parallel"},
    {.key = "execution.queue_size",
     .env = "PA_EXECUTION_QUEUE_SIZE",
     .flags = "--execution-queue-size",
     .field = FIELD(execution.queue_size),
     .help = "Executions that may wait for a free slot"},
    // --- auth -----------------------------------------------------------------------------
    {.key = "auth.enabled",
     .env = "PA_AUTH_ENABLED",
     .flags = "--auth-enabled",
     .negation = "--no-auth",
     .field = FIELD(auth.enabled),
     .help = "Require the auth token from clients"},
    {.key = "auth.token",
     .env = "PA_AUTH_TOKEN",
     .flags = "--auth-token",
     .field = FIELD(auth.token),
     .secret = true,
     .help = "Auth token; empty = generated and kept in <data.dir>/auth_token"},
    {.key = "auth.allowed_origins",
     .env = "PA_AUTH_ALLOWED_ORIGINS",
     .flags = "--auth-allowed-origins,--allowed-origins",
     .field = FIELD(auth.allowed_origins),
     .help = "Origins allowed to connect besides the server's own (always allowed)"},
    {.key = "auth.max_failures",
     .env = "PA_AUTH_MAX_FAILURES",
     .flags = "--auth-max-failures",
     .field = FIELD(auth.max_failures),
     .min = 1,
     .help = "Wrong or missing tokens per address per minute; past it those get HTTP 429 for a "
             "minute (the right token always passes)"},
    // --- metrics --------------------------------------------------------------------------
    {.key = "metrics.enabled",
     .env = "PA_METRICS_ENABLED",
     .flags = "--metrics-enabled",
     .field = FIELD(metrics.enabled),
     .help = "Serve metrics"},
    {.key = "metrics.public",
     .env = "PA_METRICS_PUBLIC",
     .flags = "--metrics-public",
     .field = FIELD(metrics.is_public),
     .help = "Serve /metrics without the token, to every client that can reach the port"},
    {.key = "metrics.port",
     .env = "PA_METRICS_PORT",
     .flags = "--metrics-port",
     .field = FIELD(metrics.port),
     .zero = "metrics only on the main listener",
     .help = "Separate loopback-only metrics port"},
    // --- stats ----------------------------------------------------------------------------
    {.key = "stats.interval",
     .env = "PA_STATS_INTERVAL",
     .flags = "--stats-interval",
     .field = FIELD(stats.interval),
     .zero = "off",
     .help = "Interval of server_stats broadcasts"},
    // --- shutdown -------------------------------------------------------------------------
    {.key = "shutdown.runs",
     .env = "PA_SHUTDOWN_RUNS",
     .flags = "--shutdown-runs",
     .field = FIELD(shutdown.runs),
     .choices = {"stop", "detach"},
     .help = "On SIGTERM/SIGINT: stop runs (graceful shutdown), or detach (leave them running "
             "under their supervisors for the next server start to take over: restarts and "
             "upgrades keep runs)"},
    // --- notify ---------------------------------------------------------------------------
    {.key = "notify.vapid_subject",
     .env = "PA_NOTIFY_VAPID_SUBJECT",
     .flags = "--notify-vapid-subject",
     .field = FIELD(notify.vapid_subject),
     .help = "Contact push services may use about this server's Web Push messages (VAPID "
             "subject): mailto:you@example.com or an https URL; Apple's service wants a real one"},
    {.key = "notify.console_url",
     .env = "PA_NOTIFY_CONSOLE_URL",
     .flags = "--notify-console-url",
     .field = FIELD(notify.console_url),
     .help = "The console's address as devices reach it, e.g. https://myhost:8443: links in "
             "notifications (ntfy Click, webhook url) start with it; empty = relative links "
             "(enough for Web Push)"},
    {.key = "notify.push_service_hosts",
     .env = "PA_NOTIFY_PUSH_SERVICE_HOSTS",
     .flags = "--notify-push-service-hosts",
     .field = FIELD(notify.push_service_hosts),
     .help = "Hosts a Web Push subscription's endpoint may name (the host or a subdomain of "
             "it): the browsers' push services; the server posts nowhere else"},
    {.key = "notify.ca_file",
     .env = "PA_NOTIFY_CA_FILE",
     .flags = "--notify-ca-file",
     .field = FIELD(notify.ca_file),
     .help = "Extra CA certificates (PEM) trusted for notification HTTPS besides the system's "
             "(a self-hosted ntfy with a local CA)"},
    {.key = "notify.timeout",
     .env = "PA_NOTIFY_TIMEOUT",
     .flags = "--notify-timeout",
     .field = FIELD(notify.timeout),
     .min = 1,
     .help = "One HTTP exchange with a push service, ntfy or a webhook; then it is retried"},
    {.key = "notify.targets",
     .env = "PA_NOTIFY_TARGETS",
     .flags = "--notify-targets",
     .field = FIELD(notify.targets),
     .secret = true,
     .help = "ntfy topics and webhooks that receive notifications: a YAML list of {type: "
             "ntfy|webhook, url, token?, secret?, events?}; tokens and secrets are never printed"},
    // --- budgets --------------------------------------------------------------------------
    {.key = "budgets.project_daily_usd",
     .env = "PA_BUDGETS_PROJECT_DAILY_USD",
     .flags = "--budgets-project-daily-usd",
     .field = FIELD(budgets.project_daily_usd),
     .zero = "no cap",
     .help = "What one project may spend per UTC day, in USD (the CLI's total_cost_usd): an "
             "execute when it is reached is refused with BUDGET_EXCEEDED, a run that reaches it "
             "is interrupted"},
    {.key = "budgets.server_daily_usd",
     .env = "PA_BUDGETS_SERVER_DAILY_USD",
     .flags = "--budgets-server-daily-usd",
     .field = FIELD(budgets.server_daily_usd),
     .zero = "no cap",
     .help = "What all projects together may spend per UTC day, in USD (deleted projects' "
             "spend of the day included); the same refusal and interrupt"},
    // --- cluster (issue 20) ----------------------------------------------------------------
    {.key = "cluster.redis_url",
     .env = "PA_CLUSTER_REDIS_URL",
     .flags = "--cluster-redis-url",
     .field = FIELD(cluster.redis_url),
     .secret = true,
     .help = "Join a cluster of hosts sharing this Redis: redis://[user:password@]host[:port][/db] "
             "or rediss:// (TLS). Empty = a single host, no Redis"},
    {.key = "cluster.node_name",
     .env = "PA_CLUSTER_NODE_NAME",
     .flags = "--cluster-node-name",
     .field = FIELD(cluster.node_name),
     .help = "This host's name in the cluster (letters, digits, . _ -; at most 64); empty = "
             "the machine's host name"},
    {.key = "cluster.secret",
     .env = "PA_CLUSTER_SECRET",
     .flags = "--cluster-secret",
     .field = FIELD(cluster.secret),
     .secret = true,
     .help = "The secret every node shares (at least 32 characters): node-to-node messages "
             "carry its HMAC, others are refused. Required with cluster.redis_url"},
    {.key = "cluster.tls_ca_file",
     .env = "PA_CLUSTER_TLS_CA_FILE",
     .flags = "--cluster-tls-ca-file",
     .field = FIELD(cluster.tls_ca_file),
     .help = "rediss://: CA certificates (PEM) to verify Redis with; empty = the system's"},
    {.key = "cluster.heartbeat_ttl",
     .env = "PA_CLUSTER_HEARTBEAT_TTL",
     .flags = "--cluster-heartbeat-ttl",
     .field = FIELD(cluster.heartbeat_ttl),
     .min = 2,
     .help = "A node whose heartbeat is older than this is shown UNAVAILABLE (each node writes "
             "its heartbeat, and checks the others', every quarter of it)"},
    {.key = "cluster.stream_maxlen",
     .env = "PA_CLUSTER_STREAM_MAXLEN",
     .flags = "--cluster-stream-maxlen",
     .field = FIELD(cluster.stream_maxlen),
     .min = 100,
     .help = "Broadcasts kept per project in its Redis stream (MAXLEN ~); a node that falls "
             "further behind fills in from the owner's history"},
    {.key = "cluster.request_timeout",
     .env = "PA_CLUSTER_REQUEST_TIMEOUT",
     .flags = "--cluster-request-timeout",
     .field = FIELD(cluster.request_timeout),
     .min = 1,
     .help = "A request forwarded to another node that is not answered in this time fails with "
             "NODE_UNAVAILABLE"},
};

#undef FIELD

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

constexpr std::uint64_t kMaxU64 = std::numeric_limits<std::uint64_t>::max();

// Reading a field through a const Config: the accessor only takes its address.
FieldRef read_field(const Setting& s, const Config& config) {
  return s.field(const_cast<Config&>(config));
}

std::string_view trim(std::string_view t) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!t.empty() && space(t.front())) t.remove_prefix(1);
  while (!t.empty() && space(t.back())) t.remove_suffix(1);
  return t;
}

// "..." with quotes, backslashes and control characters escaped so the message stays one line.
std::string quoted(std::string_view v) {
  std::string out = "\"";
  for (char c : v) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

// Where a value came from, for error messages.
struct Origin {
  std::string_view key;
  std::string_view source;  // flag, variable or "file line N"; may be empty
  bool secret = false;
};

[[noreturn]] void invalid_shown(const Origin& at, std::string_view shown,
                                std::string_view expected) {
  std::string msg = "invalid value for " + std::string(at.key);
  if (!at.source.empty()) msg += " (" + std::string(at.source) + ")";
  msg += ": ";
  msg += at.secret ? std::string("<redacted>") : std::string(shown);
  msg += ": expected ";
  msg += expected;
  throw ConfigError(msg);
}

[[noreturn]] void invalid(const Origin& at, std::string_view value, std::string_view expected) {
  invalid_shown(at, quoted(value), expected);
}

std::optional<std::uint64_t> read_uint(std::string_view t) {
  t = trim(t);
  if (t.empty()) return std::nullopt;
  for (char c : t) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc() || end != t.data() + t.size()) return std::nullopt;
  return v;
}

std::optional<Millis> read_duration(std::string_view t) {
  t = trim(t);
  std::size_t digits = 0;
  while (digits < t.size() && t[digits] >= '0' && t[digits] <= '9') ++digits;
  if (digits == 0) return std::nullopt;
  std::uint64_t n = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + digits, n);
  if (ec != std::errc() || end != t.data() + digits) return std::nullopt;
  const std::string_view unit = t.substr(digits);
  std::uint64_t scale = 0;
  if (unit.empty() || unit == "s") {
    scale = 1000;
  } else if (unit == "ms") {
    scale = 1;
  } else if (unit == "m") {
    scale = 60'000;
  } else if (unit == "h") {
    scale = 3'600'000;
  } else {
    return std::nullopt;
  }
  constexpr auto kMaxMs = static_cast<std::uint64_t>(std::numeric_limits<Millis::rep>::max());
  if (n > kMaxMs / scale) return std::nullopt;
  return Millis(static_cast<Millis::rep>(n * scale));
}

std::optional<bool> read_bool(std::string_view t) {
  std::string v(trim(t));
  std::transform(v.begin(), v.end(), v.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (v == "true" || v == "yes" || v == "on" || v == "1") return true;
  if (v == "false" || v == "no" || v == "off" || v == "0") return false;
  return std::nullopt;
}

std::optional<double> read_number(std::string_view t) {
  t = trim(t);
  if (t.empty()) return std::nullopt;
  double v = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc() || end != t.data() + t.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

template <class Int>
std::uint64_t max_of(const Setting& s) {
  return std::min<std::uint64_t>(s.max,
                                 static_cast<std::uint64_t>(std::numeric_limits<Int>::max()));
}

template <class Int>
std::string int_expectation(const Setting& s) {
  const std::uint64_t hi = max_of<Int>(s);
  if constexpr (std::is_same_v<Int, std::uint16_t>) {
    return "a port number from " + std::to_string(s.min) + " to " + std::to_string(hi);
  }
  std::string what = s.bytes ? "a whole number of bytes" : "a whole number";
  if (hi == kMaxU64) {
    what += " >= " + std::to_string(s.min);
  } else {
    what += " from " + std::to_string(s.min) + " to " + std::to_string(hi);
  }
  if (s.bytes) what += " (no units)";
  return what;
}

std::string seconds_expectation(const Setting& s) {
  return s.min > 0 ? "a duration greater than 0 like 30s, 5m or 1h"
                   : "a duration like 30s, 5m, 1h or 0";
}
constexpr std::string_view kMillisExpectation = "a duration like 250ms, 1s, 5m or 0";
constexpr std::string_view kBoolExpectation = "true, false, yes, no, on, off, 1 or 0";
constexpr std::string_view kListExpectation = "a comma-separated list without empty items";
constexpr std::string_view kMapExpectation =
    "NAME=VALUE pairs separated by commas, each NAME non-empty and given once";

std::string choice_expectation(const Setting& s) {
  std::string out = "one of ";
  for (std::size_t i = 0; i < s.choices.size(); ++i) {
    if (i > 0) out += i + 1 == s.choices.size() ? " or " : ", ";
    out += s.choices[i].empty() ? std::string("\"\" (empty)") : std::string(s.choices[i]);
  }
  return out;
}

template <class Int>
void set_int(const Setting& s, const Origin& at, Int* field, const std::string& text) {
  const auto v = read_uint(text);
  if (!v || *v < s.min || *v > max_of<Int>(s)) invalid(at, text, int_expectation<Int>(s));
  *field = static_cast<Int>(*v);
}

std::vector<std::string> split_list(const Origin& at, const std::string& text) {
  std::vector<std::string> items;
  if (trim(text).empty()) return items;
  std::string_view rest = text;
  while (true) {
    const auto comma = rest.find(',');
    const std::string_view item = trim(rest.substr(0, comma));
    if (item.empty()) invalid(at, text, kListExpectation);
    items.emplace_back(item);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return items;
}

std::map<std::string, std::string> split_map(const Origin& at, const std::string& text) {
  std::map<std::string, std::string> out;
  if (trim(text).empty()) return out;
  std::string_view rest = text;
  while (true) {
    const auto comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    const auto eq = item.find('=');
    if (eq == std::string_view::npos) invalid(at, text, kMapExpectation);
    const std::string name(trim(item.substr(0, eq)));
    if (name.empty() || name.find_first_of(" \t") != std::string::npos ||
        !out.emplace(name, std::string(trim(item.substr(eq + 1)))).second) {
      invalid(at, text, kMapExpectation);
    }
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return out;
}

// notify.targets from a flag or variable: the YAML list in flow style (JSON is YAML too).
std::vector<NotifyTarget> targets_from_text(const Origin& at, const std::string& text) {
  YAML::Node node;
  try {
    node = YAML::Load(text);
  } catch (const YAML::Exception&) {
    invalid(at, text, kTargetsExpectation);
  }
  // The setting is secret (tokens): the message names the fault, never the value.
  std::string error;
  auto targets = parse_notify_targets(node, error);
  if (!targets) invalid(at, text, std::string(kTargetsExpectation) + " (" + error + ")");
  return std::move(*targets);
}

void set_from_text(const Setting& s, Config& config, const std::string& text, const Origin& at) {
  std::visit(Overloaded{
                 [&](std::string* f) {
                   if (!s.choices.empty() &&
                       std::find(s.choices.begin(), s.choices.end(), text) == s.choices.end()) {
                     invalid(at, text, choice_expectation(s));
                   }
                   *f = text;
                 },
                 [&](bool* f) {
                   const auto v = read_bool(text);
                   if (!v) invalid(at, text, kBoolExpectation);
                   *f = *v;
                 },
                 [&](std::uint16_t* f) { set_int(s, at, f, text); },
                 [&](unsigned* f) { set_int(s, at, f, text); },
                 [&](int* f) { set_int(s, at, f, text); },
                 [&](std::uint64_t* f) { set_int(s, at, f, text); },
                 [&](double* f) {
                   const auto v = read_number(text);
                   if (!v || *v < static_cast<double>(s.min)) {
                     invalid(at, text, "a number >= " + std::to_string(s.min));
                   }
                   *f = *v;
                 },
                 [&](Seconds* f) {
                   const auto v = read_duration(text);
                   if (!v || (s.min > 0 && v->count() == 0))
                     invalid(at, text, seconds_expectation(s));
                   if (v->count() % 1000 != 0) {
                     invalid(at, text, "a whole number of seconds like 30s, 5m, 1h or 0");
                   }
                   *f = std::chrono::duration_cast<Seconds>(*v);
                 },
                 [&](Millis* f) {
                   const auto v = read_duration(text);
                   if (!v || (s.min > 0 && v->count() == 0)) invalid(at, text, kMillisExpectation);
                   *f = *v;
                 },
                 [&](std::vector<std::string>* f) { *f = split_list(at, text); },
                 [&](std::map<std::string, std::string>* f) { *f = split_map(at, text); },
                 [&](std::vector<NotifyTarget>* f) { *f = targets_from_text(at, text); },
             },
             s.field(config));
}

std::string scalar_expectation(const Setting& s, Config& scratch) {
  return std::visit(
      Overloaded{
          [&](std::string*) {
            return s.choices.empty() ? std::string("a string") : choice_expectation(s);
          },
          [&](bool*) { return std::string(kBoolExpectation); },
          [&](std::uint16_t*) { return int_expectation<std::uint16_t>(s); },
          [&](unsigned*) { return int_expectation<unsigned>(s); },
          [&](int*) { return int_expectation<int>(s); },
          [&](std::uint64_t*) { return int_expectation<std::uint64_t>(s); },
          [&](double*) { return "a number >= " + std::to_string(s.min); },
          [&](Seconds*) { return seconds_expectation(s); },
          [&](Millis*) { return std::string(kMillisExpectation); },
          [&](std::vector<std::string>*) { return std::string("a YAML list of strings"); },
          [&](std::map<std::string, std::string>*) {
            return std::string("a YAML mapping of names to strings");
          },
          [&](std::vector<NotifyTarget>*) { return std::string(kTargetsExpectation); },
      },
      s.field(scratch));
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += sep;
    out += item;
  }
  return out;
}

}  // namespace

const std::vector<Setting>& settings() {
  return kSettings;
}

const Setting* find_setting(std::string_view key) {
  for (const auto& s : kSettings) {
    if (s.key == key) return &s;
  }
  return nullptr;
}

std::string canonical_flag(const Setting& s) {
  return std::string(s.flags.substr(0, s.flags.find(',')));
}

std::string_view section_of(std::string_view key) {
  const auto dot = key.rfind('.');
  return dot == std::string_view::npos ? std::string_view() : key.substr(0, dot);
}

std::string_view section_title(std::string_view section) {
  static const std::array<std::pair<std::string_view, std::string_view>, 18> kTitles = {{
      {"server", "Server"},
      {"server.tls", "TLS"},
      {"data", "Data"},
      {"projects", "Projects"},
      {"logging", "Logging"},
      {"limits", "Limits"},
      {"timeouts", "Timeouts"},
      {"log_rotation", "Message history files"},
      {"claude", "Claude CLI"},
      {"websocket", "WebSocket"},
      {"execution", "Execution"},
      {"auth", "Authentication"},
      {"metrics", "Metrics"},
      {"stats", "Statistics"},
      {"shutdown", "Shutdown"},
      {"notify", "Notifications"},
      {"budgets", "Budgets"},
      {"cluster", "Cluster"},
  }};
  for (const auto& [name, title] : kTitles) {
    if (name == section) return title;
  }
  return section;
}

void apply_text(const Setting& s, Config& config, const std::string& text,
                const std::string& source) {
  set_from_text(s, config, text, Origin{s.key, source, s.secret});
}

void apply_yaml(const Setting& s, Config& config, const YAML::Node& node,
                const std::string& source) {
  const Origin at{s.key, source, s.secret};
  Config scratch;
  const FieldRef ref = s.field(config);
  if (auto* list = std::get_if<std::vector<std::string>*>(&ref)) {
    if (!node.IsSequence())
      invalid_shown(at, show_yaml_value(node), scalar_expectation(s, scratch));
    std::vector<std::string> items;
    for (const auto& item : node) {
      if (!item.IsScalar() || item.Scalar().empty()) {
        invalid_shown(at, show_yaml_value(node), "a YAML list of non-empty strings");
      }
      items.push_back(item.Scalar());
    }
    **list = std::move(items);
    return;
  }
  if (auto* targets = std::get_if<std::vector<NotifyTarget>*>(&ref)) {
    std::string error;
    auto parsed = parse_notify_targets(node, error);
    if (!parsed) invalid(at, "", std::string(kTargetsExpectation) + " (" + error + ")");
    **targets = std::move(*parsed);
    return;
  }
  if (auto* map = std::get_if<std::map<std::string, std::string>*>(&ref)) {
    if (!node.IsMap()) invalid_shown(at, show_yaml_value(node), scalar_expectation(s, scratch));
    std::map<std::string, std::string> entries;
    for (const auto& item : node) {
      if (!item.first.IsScalar() || !item.second.IsScalar() || item.first.Scalar().empty() ||
          !entries.emplace(item.first.Scalar(), item.second.Scalar()).second) {
        invalid_shown(at, show_yaml_value(node), "a YAML mapping of distinct names to strings");
      }
    }
    **map = std::move(entries);
    return;
  }
  if (!node.IsScalar()) invalid_shown(at, show_yaml_value(node), scalar_expectation(s, scratch));
  set_from_text(s, config, node.Scalar(), at);
}

std::string show_yaml_value(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return "(empty)";
  if (node.IsScalar()) return quoted(node.Scalar());
  YAML::Emitter out;
  out.SetMapFormat(YAML::Flow);
  out.SetSeqFormat(YAML::Flow);
  out << node;
  std::string text = out.c_str();
  std::replace(text.begin(), text.end(), '\n', ' ');
  constexpr std::size_t kMax = 80;
  if (text.size() > kMax) text = text.substr(0, kMax - 3) + "...";
  return text;
}

}  // namespace detail

std::string format_duration(Millis d) {
  const auto ms = d.count();
  if (ms == 0) return "0";
  if (ms % 1000 != 0) return std::to_string(ms) + "ms";
  const auto sec = ms / 1000;
  if (sec % 3600 == 0) return std::to_string(sec / 3600) + "h";
  if (sec % 60 == 0) return std::to_string(sec / 60) + "m";
  return std::to_string(sec) + "s";
}

namespace detail {

std::string text_value(const Setting& s, const Config& config) {
  return std::visit(Overloaded{
                        [](std::string* f) { return *f; },
                        [](bool* f) { return std::string(*f ? "true" : "false"); },
                        [](std::uint16_t* f) { return std::to_string(*f); },
                        [](unsigned* f) { return std::to_string(*f); },
                        [](int* f) { return std::to_string(*f); },
                        [](std::uint64_t* f) { return std::to_string(*f); },
                        [](double* f) {
                          char buf[64];
                          auto res = std::to_chars(buf, buf + sizeof buf, *f);
                          return std::string(buf, res.ptr);
                        },
                        [](Seconds* f) { return format_duration(*f); },
                        [](Millis* f) { return format_duration(*f); },
                        [](std::vector<std::string>* f) { return join(*f, ","); },
                        [](std::map<std::string, std::string>* f) {
                          std::vector<std::string> pairs;
                          for (const auto& [k, v] : *f) pairs.push_back(k + "=" + v);
                          return join(pairs, ",");
                        },
                        [](std::vector<NotifyTarget>* f) { return notify_targets_text(*f); },
                    },
                    read_field(s, config));
}

void emit_yaml(const Setting& s, const Config& config, YAML::Emitter& out) {
  std::visit(
      Overloaded{
          [&](std::string* f) {
            out << YAML::DoubleQuoted << (s.secret && !f->empty() ? std::string("<redacted>") : *f);
          },
          [&](bool* f) { out << *f; },
          [&](std::vector<std::string>* f) {
            if (f->empty()) {
              out << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
              return;
            }
            out << YAML::BeginSeq;
            for (const auto& item : *f) out << YAML::DoubleQuoted << item;
            out << YAML::EndSeq;
          },
          [&](std::map<std::string, std::string>* f) {
            if (f->empty()) {
              out << YAML::Flow << YAML::BeginMap << YAML::EndMap;
              return;
            }
            out << YAML::BeginMap;
            for (const auto& [k, v] : *f) {
              out << YAML::Key << YAML::DoubleQuoted << k << YAML::Value << YAML::DoubleQuoted << v;
            }
            out << YAML::EndMap;
          },
          [&](std::vector<NotifyTarget>* f) { emit_notify_targets(out, *f, true); },
          [&](auto*) { out << text_value(s, config); },
      },
      read_field(s, config));
}

std::string type_name(const Setting& s) {
  Config scratch;
  return std::visit(Overloaded{
                        [](std::string*) { return "TEXT"; },
                        [](bool*) { return "BOOL"; },
                        [](std::uint16_t*) { return "PORT"; },
                        [&](std::uint64_t*) { return s.bytes ? "BYTES" : "INT"; },
                        [](double*) { return "NUMBER"; },
                        [](Seconds*) { return "DURATION"; },
                        [](Millis*) { return "DURATION"; },
                        [](std::vector<std::string>*) { return "LIST"; },
                        [](std::map<std::string, std::string>*) { return "MAP"; },
                        [](std::vector<NotifyTarget>*) { return "TARGETS"; },
                        [](auto*) { return "INT"; },
                    },
                    s.field(scratch));
}

std::string allowed_values(const Setting& s) {
  Config scratch;
  std::string text = std::visit(
      Overloaded{
          [&](std::string*) {
            if (s.choices.empty()) return std::string("any text");
            std::string out;
            for (const auto& c : s.choices) {
              if (!out.empty()) out += ", ";
              out += c.empty() ? std::string("\"\"") : std::string(c);
            }
            return out;
          },
          [](bool*) { return std::string("true/false (also yes/no, on/off, 1/0)"); },
          [&](std::uint16_t*) {
            return std::to_string(s.min) + ".." + std::to_string(max_of<std::uint16_t>(s));
          },
          [&](unsigned*) {
            return std::to_string(s.min) + ".." + std::to_string(max_of<unsigned>(s));
          },
          [&](int*) { return std::to_string(s.min) + ".." + std::to_string(max_of<int>(s)); },
          [&](std::uint64_t*) {
            return ">= " + std::to_string(s.min) + (s.bytes ? " bytes, no units" : "");
          },
          [&](double*) { return "number >= " + std::to_string(s.min); },
          [&](Seconds*) {
            return std::string(s.min > 0 ? "duration > 0" : "duration") +
                   " (30s, 5m, 1h; plain number = seconds)";
          },
          [](Millis*) { return std::string("duration (250ms, 1s, 5m; plain number = seconds)"); },
          [](std::vector<std::string>*) {
            return std::string("list: comma-separated in env/flags, YAML sequence in the file");
          },
          [](std::map<std::string, std::string>*) {
            return std::string(
                "map: NAME=VALUE,NAME2=VALUE2 in env/flags, YAML mapping in the file");
          },
          [](std::vector<NotifyTarget>*) {
            return std::string(
                "YAML list of {type: ntfy or webhook, url, token?, secret?, events?}; in "
                "env/flags the same list in YAML flow or JSON form");
          },
      },
      s.field(scratch));
  if (!s.zero.empty()) text += "; 0 = " + std::string(s.zero);
  return text;
}

std::string brief_allowed(const Setting& s) {
  Config scratch;
  std::string text = std::visit(
      Overloaded{
          [&](std::string*) { return s.choices.empty() ? std::string() : choice_expectation(s); },
          [](bool*) { return std::string(); },
          [&](std::uint16_t*) { return allowed_values(s); },
          [&](unsigned*) { return allowed_values(s); },
          [&](int*) { return allowed_values(s); },
          [&](std::uint64_t*) { return ">= " + std::to_string(s.min); },
          [&](double*) { return ">= " + std::to_string(s.min); },
          [&](Seconds*) { return std::string(s.min > 0 ? "> 0" : ""); },
          [&](Millis*) { return std::string(s.min > 0 ? "> 0" : ""); },
          [](std::vector<std::string>*) { return std::string("comma-separated"); },
          [](std::map<std::string, std::string>*) { return std::string("NAME=VALUE,..."); },
          [](std::vector<NotifyTarget>*) { return std::string("YAML flow list"); },
      },
      s.field(scratch));
  if (!s.zero.empty() && text.find("0 = ") == std::string::npos) {
    text += (text.empty() ? "" : "; ") + ("0 = " + std::string(s.zero));
  }
  return text;
}

std::string reference_markdown() {
  const Config defaults;
  std::ostringstream md;
  std::string_view section;
  auto cell = [](std::string text) {
    std::string out;
    for (char c : text) {
      if (c == '|') out += '\\';
      out += c;
    }
    return out;
  };
  for (const auto& s : kSettings) {
    if (section_of(s.key) != section) {
      section = section_of(s.key);
      if (md.tellp() > 0) md << "\n";
      md << "### " << section_title(section) << " (`" << section << "`)\n\n"
         << "| Key | Environment | Flags | Type | Default | Allowed values | Meaning |\n"
         << "|-----|-------------|-------|------|---------|----------------|---------|\n";
    }
    std::string flags;
    std::string_view rest = s.flags;
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      if (!flags.empty()) flags += ", ";
      flags += "`" + std::string(rest.substr(0, comma));
      if (std::holds_alternative<bool*>(read_field(s, defaults))) flags += "[=BOOL]";
      flags += "`";
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
    if (!s.negation.empty()) flags += ", `" + std::string(s.negation) + "`";
    const std::string def = text_value(s, defaults);
    md << "| `" << s.key << "` | `" << s.env << "` | " << flags << " | " << type_name(s) << " | "
       << (def.empty() ? std::string("(empty)") : "`" + cell(def) + "`") << " | "
       << cell(allowed_values(s)) << " | " << cell(std::string(s.help)) << " |\n";
  }
  return md.str();
}

}  // namespace detail

Millis parse_duration(const std::string& key, const std::string& text) {
  const auto v = detail::read_duration(text);
  if (!v) detail::invalid(detail::Origin{key, {}}, text, "a duration like 250ms, 30s, 5m, 1h or 0");
  return *v;
}

std::uint64_t parse_size(const std::string& key, const std::string& text) {
  const auto v = detail::read_uint(text);
  if (!v) detail::invalid(detail::Origin{key, {}}, text, "a whole number of bytes (no units)");
  return *v;
}

}  // namespace pa::config
