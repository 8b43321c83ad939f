#include "config/config.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/settings_table.hpp"
#include "version.hpp"

namespace pa::config {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// --- helpers --------------------------------------------------------------------------------

Loaded run(const std::vector<std::string>& args, const EnvLookup& env = {}) {
  std::vector<const char*> argv{"pocket-agent-server"};
  for (const auto& a : args) argv.push_back(a.c_str());
  return load(static_cast<int>(argv.size()), argv.data(), env);
}

// The ConfigError message of a load that must fail.
std::string error_of(const std::vector<std::string>& args, const EnvLookup& env = {}) {
  try {
    run(args, env);
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected ConfigError";
  return {};
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "pa-config-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string write(const std::string& name, const std::string& text) const {
    const auto file = path_ / name;
    std::ofstream(file) << text;
    return file.string();
  }
  std::string path(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Loads a config file given as text.
Loaded load_yaml(const std::string& text, const std::vector<std::string>& extra = {},
                 const EnvLookup& env = {}) {
  TempDir dir;
  std::vector<std::string> args{"--config", dir.write("config.yaml", text)};
  args.insert(args.end(), extra.begin(), extra.end());
  return run(args, env);
}

std::string yaml_error(const std::string& text) {
  try {
    load_yaml(text);
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected ConfigError for:\n" << text;
  return {};
}

// Compares every setting of the table (unredacted), optionally skipping some keys.
void expect_same(const Config& a, const Config& b, const std::set<std::string>& skip = {}) {
  for (const auto& s : detail::settings()) {
    if (skip.contains(std::string(s.key))) continue;
    EXPECT_EQ(detail::text_value(s, a), detail::text_value(s, b)) << s.key;
  }
  EXPECT_EQ(a.allow_insecure_remote, b.allow_insecure_remote);
}

// --- defaults ---------------------------------------------------------------------------------

TEST(ConfigDefaults, MatchTheSpec) {
  const Config c;
  EXPECT_EQ(c.server.host, "0.0.0.0");
  EXPECT_EQ(c.server.port, 8443);
  EXPECT_EQ(c.server.threads, 0u);
  EXPECT_TRUE(c.server.allowed_hosts.empty());
  EXPECT_TRUE(c.tls.enabled);
  EXPECT_EQ(c.tls.cert, "./certs/server.crt");
  EXPECT_EQ(c.tls.key, "./certs/server.key");
  EXPECT_EQ(c.tls.min_version, "1.2");
  EXPECT_TRUE(c.tls.cipher_suites.empty());
  EXPECT_EQ(c.data.dir, "./data");
  EXPECT_EQ(c.logging.level, "info");
  EXPECT_EQ(c.logging.format, "json");
  EXPECT_EQ(c.logging.output, "stdout");
  EXPECT_EQ(c.limits.max_connections, 100u);
  EXPECT_EQ(c.limits.max_projects, 100u);
  EXPECT_EQ(c.limits.message_size, 1048576u);
  EXPECT_EQ(c.limits.connection_rate, 10.0);
  EXPECT_EQ(c.timeouts.execution, 5min);
  EXPECT_EQ(c.timeouts.idle, 5min);
  EXPECT_EQ(c.timeouts.ping_interval, 30s);
  EXPECT_EQ(c.timeouts.pong_timeout, 30s);
  EXPECT_EQ(c.timeouts.slow_consumer, 60s);
  EXPECT_EQ(c.timeouts.shutdown_grace, 30s);  // "Wait for active executions to complete (max 30s)"
  EXPECT_EQ(c.log_rotation.size, 104857600u);
  EXPECT_EQ(c.log_rotation.count, 10000u);
  EXPECT_EQ(c.claude.binary, "claude");
  EXPECT_EQ(c.claude.default_model, "claude-3-5-sonnet-20241022");
  EXPECT_THAT(c.claude.allowed_tools, ElementsAre("read", "write", "run"));
  EXPECT_EQ(c.websocket.read_buffer, 4096u);
  EXPECT_EQ(c.websocket.write_buffer, 4096u);
  EXPECT_EQ(c.websocket.message_buffer, 100u);
  EXPECT_EQ(c.execution.max_concurrent, 10u);
  EXPECT_EQ(c.execution.queue_size, 100u);
  EXPECT_TRUE(c.auth.enabled);
  EXPECT_TRUE(c.auth.token.empty());
  EXPECT_FALSE(c.allow_insecure_remote);
}

TEST(ConfigDefaults, LoadWithNothingGivesDefaults) {
  const Loaded l = run({});
  EXPECT_EQ(l.action, Action::kRun);
  EXPECT_TRUE(l.warnings.empty());
  EXPECT_TRUE(l.config_path.empty());
  expect_same(l.config, Config{});
}

// --- the table ----------------------------------------------------------------------------------

// The spec's environment variables, which do not follow the PA_<SECTION>_<KEY> rule.
const std::map<std::string, std::string> kSpecEnv = {
    {"server.host", "PA_SERVER_HOST"},
    {"server.port", "PA_SERVER_PORT"},
    {"server.tls.cert", "PA_TLS_CERT"},
    {"server.tls.key", "PA_TLS_KEY"},
    {"data.dir", "PA_DATA_DIR"},
    {"projects.allowed_roots", "PA_PROJECTS_ALLOWED_ROOTS"},
    {"logging.level", "PA_LOG_LEVEL"},
    {"logging.format", "PA_LOG_FORMAT"},
    {"limits.max_connections", "PA_MAX_CONNECTIONS"},
    {"limits.max_projects", "PA_MAX_PROJECTS"},
    {"limits.message_size", "PA_MESSAGE_SIZE_LIMIT"},
    {"timeouts.execution", "PA_EXECUTION_TIMEOUT"},
    {"timeouts.idle", "PA_IDLE_TIMEOUT"},
    {"timeouts.ping_interval", "PA_PING_INTERVAL"},
    {"timeouts.pong_timeout", "PA_PONG_TIMEOUT"},
    {"log_rotation.size", "PA_LOG_ROTATION_SIZE"},
    {"log_rotation.count", "PA_LOG_ROTATION_COUNT"},
    {"auth.token", "PA_AUTH_TOKEN"},
};

// "server.tls.min_version" -> "tls.min_version" (TLS settings are named "tls" in env and flags).
std::string short_key(std::string_view key) {
  std::string k(key);
  if (k.starts_with("server.tls.")) k.erase(0, 7);
  return k;
}

TEST(ConfigTable, NamesFollowTheRules) {
  std::set<std::string> envs;
  std::set<std::string> flags;
  for (const auto& s : detail::settings()) {
    const std::string key(s.key);
    std::string env = "PA_" + short_key(key);
    std::string flag = "--" + short_key(key);
    for (char& c : env) c = c == '.' ? '_' : static_cast<char>(std::toupper(c));
    for (char& c : flag) c = (c == '.' || c == '_') ? '-' : c;
    if (kSpecEnv.contains(key)) env = kSpecEnv.at(key);
    EXPECT_EQ(s.env, env) << key;
    EXPECT_EQ(detail::canonical_flag(s), flag) << key;
    EXPECT_TRUE(envs.insert(std::string(s.env)).second) << "duplicate env " << s.env;
    std::stringstream names{std::string(s.flags)};
    for (std::string name; std::getline(names, name, ',');) {
      EXPECT_TRUE(flags.insert(name).second) << "duplicate flag " << name;
    }
    EXPECT_FALSE(s.help.empty()) << key;
    EXPECT_NE(s.field, nullptr) << key;
  }
  for (const auto& [key, env] : kSpecEnv) EXPECT_NE(detail::find_setting(key), nullptr) << key;
}

TEST(ConfigTable, CoversTheYamlSchema) {
  const std::vector<std::string> keys = {"server.host",
                                         "server.port",
                                         "server.threads",
                                         "server.allowed_hosts",
                                         "server.tls.enabled",
                                         "server.tls.cert",
                                         "server.tls.key",
                                         "server.tls.min_version",
                                         "server.tls.cipher_suites",
                                         "data.dir",
                                         "projects.allowed_roots",
                                         "logging.level",
                                         "logging.format",
                                         "logging.output",
                                         "limits.max_connections",
                                         "limits.max_projects",
                                         "limits.message_size",
                                         "limits.connection_rate",
                                         "limits.history_page_max",
                                         "limits.prompt_size",
                                         "limits.attachment_bytes",
                                         "limits.attachments_per_prompt",
                                         "timeouts.execution",
                                         "timeouts.execution_idle",
                                         "timeouts.idle",
                                         "timeouts.ping_interval",
                                         "timeouts.pong_timeout",
                                         "timeouts.slow_consumer",
                                         "timeouts.handshake",
                                         "timeouts.shutdown_grace",
                                         "timeouts.kill_grace",
                                         "timeouts.term_grace",
                                         "log_rotation.size",
                                         "log_rotation.count",
                                         "log_rotation.fsync_interval",
                                         "claude.binary",
                                         "claude.default_model",
                                         "claude.allowed_tools",
                                         "claude.max_line_bytes",
                                         "claude.env",
                                         "claude.home",
                                         "claude.allow_dangerous",
                                         "claude.permission_prompt",
                                         "claude.permission_timeout",
                                         "claude.permission_fallback",
                                         "websocket.read_buffer",
                                         "websocket.write_buffer",
                                         "websocket.message_buffer",
                                         "websocket.max_queue_bytes",
                                         "websocket.enable_compression",
                                         "websocket.compression_level",
                                         "execution.max_concurrent",
                                         "execution.queue_size",
                                         "auth.enabled",
                                         "auth.token",
                                         "auth.allowed_origins",
                                         "auth.max_failures",
                                         "metrics.enabled",
                                         "metrics.public",
                                         "metrics.port",
                                         "stats.interval",
                                         "shutdown.runs",
                                         "notify.vapid_subject",
                                         "notify.console_url",
                                         "notify.push_service_hosts",
                                         "notify.ca_file",
                                         "notify.timeout",
                                         "notify.targets",
                                         "budgets.project_daily_usd",
                                         "budgets.server_daily_usd",
                                         "cluster.redis_url",
                                         "cluster.node_name",
                                         "cluster.secret",
                                         "cluster.tls_ca_file",
                                         "cluster.heartbeat_ttl",
                                         "cluster.stream_maxlen",
                                         "cluster.request_timeout"};
  std::vector<std::string> table;
  for (const auto& s : detail::settings()) table.emplace_back(s.key);
  EXPECT_EQ(table, keys);
}

// Every setting accepts its own default, as text, from env and from its canonical flag.
TEST(ConfigTable, DefaultsRoundTripThroughEnvAndFlags) {
  const Config defaults;
  for (const auto& s : detail::settings()) {
    const std::string text = detail::text_value(s, defaults);
    if (text.empty()) continue;  // empty env = unset
    SCOPED_TRACE(std::string(s.key));
    expect_same(run({}, {{std::string(s.env), text}}).config, defaults);
    expect_same(run({detail::canonical_flag(s) + "=" + text}).config, defaults);
  }
}

// --- environment ------------------------------------------------------------------------------

TEST(ConfigEnv, SpecVariablesMapToTheirFields) {
  struct Case {
    std::string var, value;
    std::function<bool(const Config&)> check;
  };
  const std::vector<Case> cases = {
      {"PA_SERVER_HOST", "127.0.0.1", [](auto& c) { return c.server.host == "127.0.0.1"; }},
      {"PA_SERVER_PORT", "9000", [](auto& c) { return c.server.port == 9000; }},
      {"PA_TLS_CERT", "/etc/c.pem", [](auto& c) { return c.tls.cert == "/etc/c.pem"; }},
      {"PA_TLS_KEY", "/etc/k.pem", [](auto& c) { return c.tls.key == "/etc/k.pem"; }},
      {"PA_DATA_DIR", "/var/pa", [](auto& c) { return c.data.dir == "/var/pa"; }},
      {"PA_LOG_LEVEL", "debug", [](auto& c) { return c.logging.level == "debug"; }},
      {"PA_LOG_FORMAT", "text", [](auto& c) { return c.logging.format == "text"; }},
      {"PA_MAX_CONNECTIONS", "7", [](auto& c) { return c.limits.max_connections == 7; }},
      {"PA_MAX_PROJECTS", "8", [](auto& c) { return c.limits.max_projects == 8; }},
      {"PA_MESSAGE_SIZE_LIMIT", "2048", [](auto& c) { return c.limits.message_size == 2048; }},
      {"PA_EXECUTION_TIMEOUT", "10m", [](auto& c) { return c.timeouts.execution == 600s; }},
      {"PA_IDLE_TIMEOUT", "1h", [](auto& c) { return c.timeouts.idle == 3600s; }},
      {"PA_PING_INTERVAL", "15s", [](auto& c) { return c.timeouts.ping_interval == 15s; }},
      {"PA_PONG_TIMEOUT", "20", [](auto& c) { return c.timeouts.pong_timeout == 20s; }},
      {"PA_LOG_ROTATION_SIZE", "5000", [](auto& c) { return c.log_rotation.size == 5000; }},
      {"PA_LOG_ROTATION_COUNT", "50", [](auto& c) { return c.log_rotation.count == 50; }},
      {"PA_AUTH_TOKEN", "s3cret", [](auto& c) { return c.auth.token == "s3cret"; }},
      // A few PA_<SECTION>_<KEY> ones.
      {"PA_WEBSOCKET_MESSAGE_BUFFER", "5", [](auto& c) { return c.websocket.message_buffer == 5; }},
      {"PA_CLAUDE_BINARY", "/opt/claude", [](auto& c) { return c.claude.binary == "/opt/claude"; }},
      {"PA_TLS_ENABLED", "off", [](auto& c) { return !c.tls.enabled; }},
      {"PA_METRICS_PUBLIC", "yes", [](auto& c) { return c.metrics.is_public; }},
      {"PA_LOG_ROTATION_FSYNC_INTERVAL", "250ms",
       [](auto& c) { return c.log_rotation.fsync_interval == 250ms; }},
      {"PA_LIMITS_CONNECTION_RATE", "2.5", [](auto& c) { return c.limits.connection_rate == 2.5; }},
      {"PA_STATS_INTERVAL", "0", [](auto& c) { return c.stats.interval == 0s; }},
  };
  for (const auto& tc : cases) {
    const Loaded l = run({}, {{tc.var, tc.value}});
    EXPECT_TRUE(tc.check(l.config)) << tc.var << "=" << tc.value;
    EXPECT_TRUE(l.warnings.empty()) << tc.var;
  }
}

TEST(ConfigEnv, EmptyVariableCountsAsUnset) {
  const Loaded l = run({}, {{"PA_SERVER_PORT", ""}, {"PA_CONFIG", ""}});
  EXPECT_EQ(l.config.server.port, 8443);
  EXPECT_TRUE(l.config_path.empty());
}

TEST(ConfigEnv, UnknownPaVariableIsReported) {
  const Loaded l = run({}, {{"PA_SERVER_HOTS", "x"}, {"HOME", "/root"}});
  EXPECT_THAT(l.warnings, ElementsAre("environment: unknown variable PA_SERVER_HOTS (ignored)"));
}

TEST(ConfigEnv, ProcessEnvironmentReadsPaVariables) {
  ::setenv("PA_CONFIG_TEST_VARIABLE", "v=1", 1);
  ::setenv("NOT_PA_CONFIG_TEST_VARIABLE", "x", 1);
  const EnvLookup env = process_environment();
  ::unsetenv("PA_CONFIG_TEST_VARIABLE");
  ::unsetenv("NOT_PA_CONFIG_TEST_VARIABLE");
  ASSERT_TRUE(env.contains("PA_CONFIG_TEST_VARIABLE"));
  EXPECT_EQ(env.at("PA_CONFIG_TEST_VARIABLE"), "v=1");
  EXPECT_FALSE(env.contains("NOT_PA_CONFIG_TEST_VARIABLE"));
  for (const auto& [name, value] : env) EXPECT_TRUE(name.starts_with("PA_")) << name;
}

// --- precedence -------------------------------------------------------------------------------

TEST(ConfigPrecedence, FlagsBeatEnvBeatFileBeatDefaults) {
  TempDir dir;
  const std::string file = dir.write("config.yaml", R"(
server:
  port: 1000
logging:
  level: warn
timeouts:
  execution: 1m
claude:
  allowed_tools: [read]
)");
  const EnvLookup env = {{"PA_SERVER_PORT", "2000"},
                         {"PA_LOG_LEVEL", "error"},
                         {"PA_EXECUTION_TIMEOUT", "2m"},
                         {"PA_CLAUDE_ALLOWED_TOOLS", "write"}};
  const std::vector<std::string> flags = {"--port",
                                          "3000",
                                          "--log-level",
                                          "debug",
                                          "--execution-timeout",
                                          "3m",
                                          "--claude-allowed-tools",
                                          "run"};

  // defaults
  Config c = run({}).config;
  EXPECT_EQ(c.server.port, 8443);
  EXPECT_EQ(c.logging.level, "info");
  EXPECT_EQ(c.timeouts.execution, 5min);
  EXPECT_THAT(c.claude.allowed_tools, ElementsAre("read", "write", "run"));

  // file > defaults
  c = run({"--config", file}).config;
  EXPECT_EQ(c.server.port, 1000);
  EXPECT_EQ(c.logging.level, "warn");
  EXPECT_EQ(c.timeouts.execution, 1min);
  EXPECT_THAT(c.claude.allowed_tools, ElementsAre("read"));
  EXPECT_EQ(c.data.dir, "./data");  // not in the file: default

  // env > file
  c = run({"--config", file}, env).config;
  EXPECT_EQ(c.server.port, 2000);
  EXPECT_EQ(c.logging.level, "error");
  EXPECT_EQ(c.timeouts.execution, 2min);
  EXPECT_THAT(c.claude.allowed_tools, ElementsAre("write"));

  // flags > env
  std::vector<std::string> all = {"--config", file};
  all.insert(all.end(), flags.begin(), flags.end());
  c = run(all, env).config;
  EXPECT_EQ(c.server.port, 3000);
  EXPECT_EQ(c.logging.level, "debug");
  EXPECT_EQ(c.timeouts.execution, 3min);
  EXPECT_THAT(c.claude.allowed_tools, ElementsAre("run"));

  // flags > file without env
  all.assign({"--config", file, "--port", "3000"});
  EXPECT_EQ(run(all).config.server.port, 3000);
}

TEST(ConfigPrecedence, BoolNegationFlagBeatsEnv) {
  const Loaded l =
      run({"--no-tls", "--no-auth"}, {{"PA_TLS_ENABLED", "true"}, {"PA_AUTH_ENABLED", "1"}});
  EXPECT_FALSE(l.config.tls.enabled);
  EXPECT_FALSE(l.config.auth.enabled);
}

TEST(ConfigPrecedence, ConfigFlagBeatsPaConfig) {
  TempDir dir;
  const std::string a = dir.write("a.yaml", "server:\n  port: 1111\n");
  const std::string b = dir.write("b.yaml", "server:\n  port: 2222\n");
  Loaded l = run({}, {{"PA_CONFIG", a}});
  EXPECT_EQ(l.config.server.port, 1111);
  EXPECT_EQ(l.config_path, a);
  l = run({"--config", b}, {{"PA_CONFIG", a}});
  EXPECT_EQ(l.config.server.port, 2222);
  EXPECT_EQ(l.config_path, b);
}

TEST(ConfigPrecedence, MissingNamedFileIsAnError) {
  TempDir dir;
  const std::string missing = dir.path("nope.yaml");
  std::string msg = error_of({"--config", missing});
  EXPECT_THAT(msg, HasSubstr(missing));
  EXPECT_THAT(msg, HasSubstr("--config"));
  EXPECT_THAT(msg, HasSubstr("No such file"));
  msg = error_of({}, {{"PA_CONFIG", missing}});
  EXPECT_THAT(msg, HasSubstr(missing));
  EXPECT_THAT(msg, HasSubstr("PA_CONFIG"));
}

// --- flags ------------------------------------------------------------------------------------

TEST(ConfigFlags, SpecFlagsAndAliases) {
  const Loaded l = run({"--host",
                        "::1",
                        "--port",
                        "0",
                        "--data-dir",
                        "/d",
                        "--log-level",
                        "warn",
                        "--log-format",
                        "text",
                        "--max-connections",
                        "3",
                        "--max-projects",
                        "4",
                        "--message-size",
                        "512",
                        "--idle-timeout",
                        "0",
                        "--allowed-origins",
                        "https://a.example,https://b.example",
                        "--tls-cert",
                        "c",
                        "--tls-key",
                        "k",
                        "--websocket-message-buffer",
                        "9",
                        "--claude-binary",
                        "/bin/cl",
                        "--auth-token",
                        "tok",
                        "--ping-interval",
                        "1m",
                        "--pong-timeout",
                        "2m"});
  const Config& c = l.config;
  EXPECT_EQ(c.server.host, "::1");
  EXPECT_EQ(c.server.port, 0);
  EXPECT_EQ(c.data.dir, "/d");
  EXPECT_EQ(c.logging.level, "warn");
  EXPECT_EQ(c.logging.format, "text");
  EXPECT_EQ(c.limits.max_connections, 3u);
  EXPECT_EQ(c.limits.max_projects, 4u);
  EXPECT_EQ(c.limits.message_size, 512u);
  EXPECT_EQ(c.timeouts.idle, 0s);
  EXPECT_THAT(c.auth.allowed_origins, ElementsAre("https://a.example", "https://b.example"));
  EXPECT_EQ(c.tls.cert, "c");
  EXPECT_EQ(c.tls.key, "k");
  EXPECT_EQ(c.websocket.message_buffer, 9u);
  EXPECT_EQ(c.claude.binary, "/bin/cl");
  EXPECT_EQ(c.auth.token, "tok");
  EXPECT_EQ(c.timeouts.ping_interval, 60s);
  EXPECT_EQ(c.timeouts.pong_timeout, 120s);
}

TEST(ConfigFlags, CanonicalNames) {
  const Loaded l =
      run({"--server-host=h", "--server-port=1", "--logging-level=error", "--timeouts-execution=0",
           "--limits-message-size", "10", "--message-size-limit", "11",
           "--execution-max-concurrent", "2", "--stats-interval", "1h"});
  EXPECT_EQ(l.config.server.host, "h");
  EXPECT_EQ(l.config.server.port, 1);
  EXPECT_EQ(l.config.logging.level, "error");
  EXPECT_EQ(l.config.timeouts.execution, 0s);
  EXPECT_EQ(l.config.limits.message_size, 11u);  // last one wins
  EXPECT_EQ(l.config.execution.max_concurrent, 2u);
  EXPECT_EQ(l.config.stats.interval, 1h);
}

TEST(ConfigFlags, Booleans) {
  Config c = run({"--no-tls", "--no-auth", "--claude-allow-dangerous", "--metrics-enabled=no",
                  "--allow-insecure-remote"})
                 .config;
  EXPECT_FALSE(c.tls.enabled);
  EXPECT_FALSE(c.auth.enabled);
  EXPECT_TRUE(c.claude.allow_dangerous);
  EXPECT_FALSE(c.metrics.enabled);
  EXPECT_TRUE(c.allow_insecure_remote);
  c = run({"--tls-enabled=false", "--websocket-enable-compression=on"}).config;
  EXPECT_FALSE(c.tls.enabled);
  EXPECT_TRUE(c.websocket.enable_compression);
  EXPECT_TRUE(run({"--tls-enabled"}).config.tls.enabled);
}

TEST(ConfigFlags, UsageErrorsThrow) {
  EXPECT_THAT(error_of({"--bogus"}), HasSubstr("--bogus"));
  EXPECT_THAT(error_of({"stray"}), HasSubstr("stray"));
  EXPECT_THAT(error_of({"--port"}), HasSubstr("--server-port"));
  EXPECT_THAT(error_of({"--print-config", "token"}), HasSubstr("token"));
}

// --- actions ----------------------------------------------------------------------------------

TEST(ConfigActions, Help) {
  for (const char* flag : {"--help", "-h"}) {
    const Loaded l = run({flag});
    EXPECT_EQ(l.action, Action::kExit);
    EXPECT_EQ(l.exit_code, 0);
    EXPECT_THAT(l.output, HasSubstr("--config"));
    EXPECT_THAT(l.output, HasSubstr("--server-port,--port"));
    EXPECT_THAT(l.output, HasSubstr("PA_SERVER_PORT"));
    EXPECT_THAT(l.output, HasSubstr("--no-tls"));
    EXPECT_THAT(l.output, HasSubstr("token"));
  }
}

TEST(ConfigActions, Version) {
  const Loaded l = run({"--version"});
  EXPECT_EQ(l.action, Action::kExit);
  EXPECT_EQ(l.exit_code, 0);
  EXPECT_EQ(l.output, std::string("pocket-agent-server ") + pa::kVersion + "\n");
}

TEST(ConfigWarnings, IdleNotLongerThanThePingIntervalIsReported) {
  EXPECT_TRUE(run({}).warnings.empty()) << "the defaults (idle 5m, ping 30s) are fine";
  const Loaded l = run({"--idle-timeout", "20s", "--ping-interval", "30s"});
  ASSERT_EQ(l.warnings.size(), 1u);
  EXPECT_THAT(l.warnings[0], HasSubstr("timeouts.idle (20s)"));
  EXPECT_THAT(l.warnings[0], HasSubstr("timeouts.ping_interval (30s)"));
  EXPECT_TRUE(run({"--idle-timeout", "0"}).warnings.empty()) << "idle off";
}

TEST(ConfigActions, TokenSubcommand) {
  Loaded l = run({"token"});
  EXPECT_EQ(l.action, Action::kPrintToken);
  l = run({"token", "--data-dir", "/srv/pa"});
  EXPECT_EQ(l.action, Action::kPrintToken);
  EXPECT_EQ(l.config.data.dir, "/srv/pa");
  l = run({"--data-dir", "/srv/pb", "token"});
  EXPECT_EQ(l.action, Action::kPrintToken);
  EXPECT_EQ(l.config.data.dir, "/srv/pb");
}

TEST(ConfigActions, ReindexSubcommand) {
  Loaded l = run({"reindex", "--data-dir", "/srv/pa"});
  EXPECT_EQ(l.action, Action::kReindex);
  EXPECT_EQ(l.config.data.dir, "/srv/pa");
  EXPECT_EQ(run({"--data-dir", "/srv/pb", "reindex"}).action, Action::kReindex);
}

// The client subcommands take the server's settings anywhere on the line (cli/commands.hpp).
TEST(ConfigActions, PairAndDevicesSubcommands) {
  Loaded l = run({"pair"});
  EXPECT_EQ(l.action, Action::kPair);
  EXPECT_EQ(l.command.role, "operator") << "the least role that runs prompts";
  EXPECT_EQ(l.command.name, "") << "not sent: the device names itself";
  l = run(
      {"--data-dir", "/srv/pa", "pair", "--role", "viewer", "--name", "Kitchen", "--port", "9443"});
  EXPECT_EQ(l.action, Action::kPair);
  EXPECT_EQ(l.command.role, "viewer");
  EXPECT_EQ(l.command.name, "Kitchen");
  EXPECT_EQ(l.config.data.dir, "/srv/pa");
  EXPECT_EQ(l.config.server.port, 9443);
  EXPECT_THAT(error_of({"pair", "--role", "root"}), HasSubstr("root"));

  l = run({"devices", "list", "--port", "9443"});
  EXPECT_EQ(l.action, Action::kDeviceList);
  EXPECT_EQ(l.config.server.port, 9443);
  l = run({"devices", "revoke", "0b8f5c1e", "--data-dir", "/srv/pb"});
  EXPECT_EQ(l.action, Action::kDeviceRevoke);
  EXPECT_EQ(l.command.device_id, "0b8f5c1e");
  EXPECT_EQ(l.config.data.dir, "/srv/pb");
  EXPECT_THAT(error_of({"devices"}), HasSubstr("command line"));
  EXPECT_THAT(error_of({"devices", "revoke"}), HasSubstr("ID"));
  EXPECT_THAT(error_of({"devices", "forget", "x"}), HasSubstr("subcommand is required"));
  EXPECT_THAT(error_of({"--print-config", "pair"}), HasSubstr("pair"));

  l = run({"qr", "https://localhost:8443/"});
  EXPECT_EQ(l.action, Action::kPrintQr);
  EXPECT_EQ(l.command.text, "https://localhost:8443/");
  EXPECT_THAT(error_of({"qr"}), HasSubstr("TEXT"));
}

TEST(ConfigActions, ClientSubcommandHelpListsTheExitStatuses) {
  for (const std::vector<std::string>& args : {std::vector<std::string>{"pair", "--help"},
                                               {"devices", "--help"},
                                               {"devices", "revoke", "--help"}}) {
    const Loaded l = run(args);
    EXPECT_EQ(l.action, Action::kExit);
    EXPECT_THAT(l.output, HasSubstr("Exit status: 0 done"));
    EXPECT_THAT(l.output, HasSubstr("5 FORBIDDEN; 6 DEVICE_NOT_FOUND"));
    EXPECT_THAT(l.output, HasSubstr("--data-dir"));
  }
  EXPECT_THAT(run({"pair", "--help"}).output, HasSubstr("--role"));
}

TEST(ConfigActions, PrintConfigRedactsTheToken) {
  Loaded l = run({"--print-config", "--auth-token", "hunter2"});
  EXPECT_EQ(l.action, Action::kPrintConfig);
  EXPECT_EQ(l.config.auth.token, "hunter2");  // the config itself keeps it
  EXPECT_THAT(l.output, HasSubstr("token: \"<redacted>\""));
  EXPECT_THAT(l.output, Not(HasSubstr("hunter2")));
  EXPECT_EQ(l.output, to_yaml(l.config));

  l = run({"--print-config"}, {{"PA_AUTH_TOKEN", "from-env-secret"}});
  EXPECT_THAT(l.output, Not(HasSubstr("from-env-secret")));
  EXPECT_THAT(to_yaml(Config{}), HasSubstr("token: \"\""));
}

// --- parsing ----------------------------------------------------------------------------------

TEST(ConfigParse, Durations) {
  EXPECT_EQ(parse_duration("k", "250ms"), 250ms);
  EXPECT_EQ(parse_duration("k", "30s"), 30s);
  EXPECT_EQ(parse_duration("k", "5m"), 5min);
  EXPECT_EQ(parse_duration("k", "1h"), 1h);
  EXPECT_EQ(parse_duration("k", "45"), 45s);
  EXPECT_EQ(parse_duration("k", "0"), 0ms);
  EXPECT_EQ(parse_duration("k", " 2m "), 2min);
  for (const char* bad : {"5 minutes", "", "-5s", "1.5s", "5d", "s", "5S", "0x10",
                          "99999999999999999999h", "9999999999999999h"}) {
    try {
      parse_duration("timeouts.idle", bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const ConfigError& e) {
      EXPECT_THAT(e.what(), HasSubstr("timeouts.idle"));
      EXPECT_THAT(e.what(), HasSubstr("\"" + std::string(bad) + "\""));
      EXPECT_THAT(e.what(), HasSubstr("expected a duration"));
    }
  }
}

TEST(ConfigParse, Sizes) {
  EXPECT_EQ(parse_size("k", "1048576"), 1048576u);
  EXPECT_EQ(parse_size("k", "0"), 0u);
  EXPECT_EQ(parse_size("k", "18446744073709551615"), 18446744073709551615u);
  for (const char* bad : {"1MB", "-1", "18446744073709551616", "1e6", "", " ", "+5", "1.0"}) {
    try {
      parse_size("limits.message_size", bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const ConfigError& e) {
      EXPECT_THAT(e.what(), HasSubstr("limits.message_size"));
      EXPECT_THAT(e.what(), HasSubstr("\"" + std::string(bad) + "\""));
      EXPECT_THAT(e.what(), HasSubstr("bytes"));
    }
  }
}

TEST(ConfigParse, DurationFieldsRules) {
  EXPECT_EQ(run({}, {{"PA_EXECUTION_TIMEOUT", "0"}}).config.timeouts.execution, 0s);
  EXPECT_EQ(run({}, {{"PA_EXECUTION_TIMEOUT", "90"}}).config.timeouts.execution, 90s);
  EXPECT_THAT(error_of({}, {{"PA_PING_INTERVAL", "0"}}),
              HasSubstr("expected a duration greater than 0"));
  EXPECT_THAT(error_of({}, {{"PA_PONG_TIMEOUT", "0s"}}), HasSubstr("timeouts.pong_timeout"));
  EXPECT_THAT(error_of({}, {{"PA_IDLE_TIMEOUT", "1500ms"}}),
              HasSubstr("expected a whole number of seconds"));
  EXPECT_EQ(run({"--log-rotation-fsync-interval", "0"}).config.log_rotation.fsync_interval, 0ms);
  EXPECT_EQ(run({"--log-rotation-fsync-interval", "2"}).config.log_rotation.fsync_interval, 2s);
}

TEST(ConfigParse, Booleans) {
  for (const char* t : {"true", "yes", "1", "on", "TRUE", "Yes"}) {
    EXPECT_TRUE(run({}, {{"PA_CLAUDE_ALLOW_DANGEROUS", t}}).config.claude.allow_dangerous) << t;
  }
  for (const char* f : {"false", "no", "0", "off", "False"}) {
    EXPECT_FALSE(run({}, {{"PA_AUTH_ENABLED", f}}).config.auth.enabled) << f;
  }
  EXPECT_EQ(error_of({}, {{"PA_AUTH_ENABLED", "maybe"}}),
            "invalid value for auth.enabled (PA_AUTH_ENABLED): \"maybe\": expected true, false, "
            "yes, no, on, off, 1 or 0");
}

TEST(ConfigParse, Numbers) {
  EXPECT_EQ(run({}, {{"PA_WEBSOCKET_COMPRESSION_LEVEL", "9"}}).config.websocket.compression_level,
            9);
  EXPECT_THAT(error_of({}, {{"PA_WEBSOCKET_COMPRESSION_LEVEL", "10"}}),
              HasSubstr("expected a whole number from 1 to 9"));
  EXPECT_THAT(error_of({}, {{"PA_WEBSOCKET_COMPRESSION_LEVEL", "0"}}), HasSubstr("from 1 to 9"));
  EXPECT_EQ(error_of({"--port", "65536"}),
            "invalid value for server.port (--server-port): \"65536\": expected a port number "
            "from 0 to 65535");
  EXPECT_THAT(error_of({}, {{"PA_MAX_CONNECTIONS", "0"}}), HasSubstr(">= 1"));
  EXPECT_THAT(error_of({}, {{"PA_MESSAGE_SIZE_LIMIT", "1MB"}}),
              HasSubstr("expected a whole number of bytes >= 1 (no units)"));
  EXPECT_EQ(run({}, {{"PA_EXECUTION_QUEUE_SIZE", "0"}}).config.execution.queue_size, 0u);
  EXPECT_EQ(run({}, {{"PA_LIMITS_CONNECTION_RATE", "0"}}).config.limits.connection_rate, 0.0);
  EXPECT_EQ(run({}, {{"PA_LIMITS_CONNECTION_RATE", "0.25"}}).config.limits.connection_rate, 0.25);
  for (const char* bad : {"-1", "nan", "inf", "1e999", "fast", "1/s"}) {
    EXPECT_THAT(error_of({}, {{"PA_LIMITS_CONNECTION_RATE", bad}}), HasSubstr("a number >= 0"))
        << bad;
  }
}

TEST(ConfigParse, Choices) {
  EXPECT_EQ(error_of({}, {{"PA_LOG_LEVEL", "verbose"}}),
            "invalid value for logging.level (PA_LOG_LEVEL): \"verbose\": expected one of debug, "
            "info, warn, error or fatal");
  EXPECT_THAT(error_of({"--log-format", "xml"}), HasSubstr("one of json or text"));
  EXPECT_THAT(error_of({}, {{"PA_TLS_MIN_VERSION", "1.1"}}), HasSubstr("one of 1.2 or 1.3"));
  EXPECT_THAT(error_of({"--claude-permission-prompt", "always"}),
              HasSubstr("one of \"\" (empty), client or none"));
  EXPECT_EQ(run({"--claude-permission-prompt", "client"}).config.claude.permission_prompt,
            "client");
  EXPECT_EQ(run({"--claude-permission-prompt=client", "--claude-permission-prompt", ""})
                .config.claude.permission_prompt,
            "");
  EXPECT_EQ(run({}).config.claude.permission_fallback, "deny");
  EXPECT_EQ(run({}, {{"PA_CLAUDE_PERMISSION_FALLBACK", "cli"}}).config.claude.permission_fallback,
            "cli");
  EXPECT_THAT(error_of({"--claude-permission-fallback", "allow"}), HasSubstr("one of deny or cli"));
}

TEST(ConfigParse, Lists) {
  Config c = run({}, {{"PA_CLAUDE_ALLOWED_TOOLS", "read, write ,run"}}).config;
  EXPECT_THAT(c.claude.allowed_tools, ElementsAre("read", "write", "run"));
  c = run({"--claude-allowed-tools", ""}).config;
  EXPECT_TRUE(c.claude.allowed_tools.empty());
  c = run({"--tls-cipher-suites", "TLS_AES_256_GCM_SHA384"}).config;
  EXPECT_THAT(c.tls.cipher_suites, ElementsAre("TLS_AES_256_GCM_SHA384"));
  EXPECT_THAT(error_of({}, {{"PA_CLAUDE_ALLOWED_TOOLS", "a,,b"}}),
              HasSubstr("expected a comma-separated list without empty items"));
  EXPECT_THAT(error_of({"--allowed-origins", "a,"}), HasSubstr("auth.allowed_origins"));
}

TEST(ConfigParse, Maps) {
  Config c = run({}, {{"PA_CLAUDE_ENV", "A=1, B = x=y ,EMPTY="}}).config;
  EXPECT_EQ(c.claude.env,
            (std::map<std::string, std::string>{{"A", "1"}, {"B", "x=y"}, {"EMPTY", ""}}));
  c = run({"--claude-env", ""}).config;
  EXPECT_TRUE(c.claude.env.empty());
  for (const char* bad : {"A", "=1", "A=1,A=2", "A=1,,B=2", "A B=1"}) {
    const std::string msg = error_of({"--claude-env", bad});
    EXPECT_THAT(msg, HasSubstr("claude.env (--claude-env)")) << bad;
    EXPECT_THAT(msg, HasSubstr("NAME=VALUE")) << bad;
  }
  c = load_yaml("claude:\n  env:\n    FOO: bar\n    N: 3\n").config;
  EXPECT_EQ(c.claude.env, (std::map<std::string, std::string>{{"FOO", "bar"}, {"N", "3"}}));
}

// --- error messages ---------------------------------------------------------------------------

TEST(ConfigErrors, SpecExampleMessage) {
  EXPECT_EQ(error_of({}, {{"PA_EXECUTION_TIMEOUT", "5 minutes"}}),
            "invalid value for timeouts.execution (PA_EXECUTION_TIMEOUT): \"5 minutes\": expected "
            "a duration like 30s, 5m, 1h or 0");
}

// Every setting that can be given a bad value reports key, source and value on one line.
TEST(ConfigErrors, EveryErrorNamesKeySourceAndValue) {
  const std::vector<std::string> bad_values = {"bogus value",          "-1",   "1MB",
                                               "99999999999999999999", "a,,b", "x"};
  Config scratch;
  for (const auto& s : detail::settings()) {
    int rejected = 0;
    for (const auto& bad : bad_values) {
      for (const bool from_env : {true, false}) {
        const std::string source = from_env ? std::string(s.env) : detail::canonical_flag(s);
        try {
          if (from_env) {
            run({}, {{std::string(s.env), bad}});
          } else {
            run({detail::canonical_flag(s) + "=" + bad});
          }
          continue;
        } catch (const ConfigError& e) {
          ++rejected;
          const std::string msg = e.what();
          const std::string shown = s.secret ? "<redacted>" : "\"" + bad + "\"";
          EXPECT_THAT(msg, HasSubstr("invalid value for " + std::string(s.key) + " (" + source))
              << msg;
          EXPECT_THAT(msg, HasSubstr("): " + shown + ": expected ")) << msg;
          EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
        }
      }
    }
    const bool free_text =
        std::holds_alternative<std::string*>(s.field(scratch)) && s.choices.empty();
    if (!free_text) {
      EXPECT_GT(rejected, 0) << s.key << " accepts every bad value";
    }
  }
}

TEST(ConfigErrors, ValuesWithNewlinesStayOnOneLine) {
  const std::string msg = error_of({}, {{"PA_LOG_LEVEL", "info\nfatal \"x\""}});
  EXPECT_EQ(msg.find('\n'), std::string::npos);
  EXPECT_THAT(msg, HasSubstr(R"("info\nfatal \"x\"")"));
}

// --- YAML ---------------------------------------------------------------------------------------

TEST(ConfigYaml, SpecExampleFile) {
  const Loaded l = load_yaml(R"(
server:
  host: 0.0.0.0
  port: 8443
  tls:
    cert: ./certs/server.crt
    key: ./certs/server.key

data:
  dir: ./data

logging:
  level: info
  format: json
  output: stdout  # stdout, stderr, or file path

limits:
  max_connections: 100
  max_projects: 100
  message_size: 1048576
  
timeouts:
  execution: 5m
  idle: 5m
  ping_interval: 30s
  pong_timeout: 30s

log_rotation:
  size: 104857600
  count: 10000

claude:
  binary: claude  # Path to Claude CLI
  default_model: claude-3-5-sonnet-20241022
  allowed_tools:
    - read
    - write
    - run
)");
  EXPECT_TRUE(l.warnings.empty());
  expect_same(l.config, Config{});
}

TEST(ConfigYaml, PerformanceTuningSections) {
  const Config c = load_yaml(R"(
limits:
  max_connections: 200  # Increase if needed
  connection_rate: 10   # Connections per second
websocket:
  read_buffer: 8192
  write_buffer: 16384
  message_buffer: 50  # Per-connection queue
execution:
  max_concurrent: 4   # Parallel executions
  queue_size: 20      # Pending executions
metrics:
  public: true
  port: 9100
stats:
  interval: 1m
)")
                       .config;
  EXPECT_EQ(c.limits.max_connections, 200u);
  EXPECT_EQ(c.websocket.read_buffer, 8192u);
  EXPECT_EQ(c.websocket.write_buffer, 16384u);
  EXPECT_EQ(c.websocket.message_buffer, 50u);
  EXPECT_EQ(c.execution.max_concurrent, 4u);
  EXPECT_EQ(c.execution.queue_size, 20u);
  EXPECT_TRUE(c.metrics.is_public);
  EXPECT_EQ(c.metrics.port, 9100);
  EXPECT_EQ(c.stats.interval, 60s);
}

TEST(ConfigYaml, UnknownKeysAreWarnings) {
  TempDir dir;
  const std::string file = dir.write("config.yaml", R"(
server:
  hots: 127.0.0.1
  tls:
    certificate: x
tls:
  ciphers: [a]
bogus: 1
claude:
  binary: /x
)");
  const Loaded l = run({"--config", file});
  EXPECT_THAT(l.warnings, ElementsAre(file + ": unknown key 'server.hots' (ignored)",
                                      file + ": unknown key 'server.tls.certificate' (ignored)",
                                      file + ": unknown key 'tls.ciphers' (ignored)",
                                      file + ": unknown key 'bogus' (ignored)"));
  EXPECT_EQ(l.config.claude.binary, "/x");
  EXPECT_EQ(l.config.server.host, "0.0.0.0");
}

TEST(ConfigYaml, TopLevelTlsAlias) {
  const Config c = load_yaml(R"(
tls:
  min_version: "1.3"
  cipher_suites:
    - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
    - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
server:
  tls:
    cert: /c.pem
)")
                       .config;
  EXPECT_EQ(c.tls.min_version, "1.3");
  EXPECT_THAT(c.tls.cipher_suites, ElementsAre("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                                               "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"));
  EXPECT_EQ(c.tls.cert, "/c.pem");

  const std::string conflict = yaml_error(R"(
server:
  tls:
    min_version: "1.2"
tls:
  min_version: "1.3"
)");
  EXPECT_THAT(conflict, HasSubstr("server.tls.min_version is set twice"));
  EXPECT_THAT(conflict, HasSubstr("tls.min_version"));

  const std::string bad = yaml_error("tls:\n  min_version: \"1.1\"\n");
  EXPECT_THAT(bad, HasSubstr("invalid value for server.tls.min_version ("));
  EXPECT_THAT(bad, HasSubstr("line 2, as tls.min_version): \"1.1\": expected one of 1.2 or 1.3"));
}

TEST(ConfigYaml, WrongTypesAreErrors) {
  EXPECT_THAT(yaml_error("server: 5\n"), HasSubstr("invalid value for server ("));
  EXPECT_THAT(yaml_error("server: 5\n"),
              HasSubstr("line 1): \"5\": expected a mapping of server.* settings"));
  EXPECT_THAT(yaml_error("tls: [a]\n"), HasSubstr("invalid value for tls ("));
  EXPECT_THAT(yaml_error("tls: [a]\n"),
              HasSubstr("line 1): [a]: expected a mapping of server.tls.* settings"));
  EXPECT_THAT(yaml_error("- a\n- b\n"), HasSubstr("): [a, b]: expected a mapping of settings"));
  std::string msg = yaml_error("server:\n  port: [1, 2]\n");
  EXPECT_THAT(msg, HasSubstr("invalid value for server.port ("));
  EXPECT_THAT(msg, HasSubstr("line 2): [1, 2]: expected a port number"));
  EXPECT_THAT(yaml_error("server:\n  port: abc\n"),
              HasSubstr("line 2): \"abc\": expected a port number from 0 to 65535"));
  EXPECT_THAT(yaml_error("claude:\n  allowed_tools: read\n"),
              HasSubstr("expected a YAML list of strings"));
  EXPECT_THAT(yaml_error("claude:\n  allowed_tools: [read, [x]]\n"),
              HasSubstr("claude.allowed_tools"));
  EXPECT_THAT(yaml_error("claude:\n  env: [A=1]\n"), HasSubstr("expected a YAML mapping"));
  EXPECT_THAT(yaml_error("claude:\n  env:\n    A: {b: c}\n"), HasSubstr("claude.env"));
  EXPECT_THAT(yaml_error("data:\n  dir:\n"), HasSubstr("(empty): expected a string"));
  EXPECT_THAT(yaml_error("timeouts:\n  execution: 5 minutes\n"),
              HasSubstr("invalid value for timeouts.execution"));
  EXPECT_THAT(yaml_error("auth:\n  token: [a]\n"), HasSubstr("auth.token"));
  EXPECT_THAT(yaml_error("auth:\n  token: [a]\n"), Not(HasSubstr("[a]")));  // secrets never shown
  EXPECT_THAT(yaml_error("server:\n  port: 1\n  port: 2\n"), HasSubstr("set twice"));
  EXPECT_THAT(yaml_error("server: [\n"), HasSubstr("config.yaml: yaml-cpp"));
}

TEST(ConfigYaml, EmptyFileAndEmptySections) {
  EXPECT_TRUE(load_yaml("").warnings.empty());
  const Loaded l = load_yaml("# nothing\nclaude:\n  # binary: x\nserver:\n");
  EXPECT_TRUE(l.warnings.empty());
  expect_same(l.config, Config{});
}

// --- to_yaml ------------------------------------------------------------------------------------

TEST(ConfigToYaml, ListsEveryKeyInTableOrder) {
  const std::string yaml = to_yaml(Config{});
  std::size_t pos = 0;
  for (const auto& s : detail::settings()) {
    const std::string key(s.key);
    const std::string leaf = key.substr(key.rfind('.') + 1) + ":";
    const auto found = yaml.find(leaf, pos);
    ASSERT_NE(found, std::string::npos) << key << " missing or out of order in\n" << yaml;
    pos = found;
  }
  EXPECT_THAT(yaml, HasSubstr("execution: 5m"));
  EXPECT_THAT(yaml, HasSubstr("public: false"));
  EXPECT_THAT(yaml, HasSubstr("cipher_suites: []"));
  EXPECT_THAT(yaml, HasSubstr("env: {}"));
}

TEST(ConfigToYaml, RoundTripsDefaults) {
  const Loaded l = load_yaml(to_yaml(Config{}));
  EXPECT_TRUE(l.warnings.empty());
  expect_same(l.config, Config{});
}

TEST(ConfigToYaml, RoundTripsEverySetting) {
  Config c;
  c.server.host = "::1";
  c.server.port = 0;
  c.server.threads = 3;
  c.server.allowed_hosts = {"agent.example.com", "*.lan"};
  c.tls.enabled = false;
  c.tls.cert = "/etc/pa/my cert.pem";
  c.tls.key = "key: with # chars";
  c.tls.min_version = "1.3";
  c.tls.cipher_suites = {"TLS_AES_128_GCM_SHA256", "ECDHE-RSA-AES256-GCM-SHA384"};
  c.data.dir = "'quoted' \"dir\"";
  c.projects.allowed_roots = {"/srv/projects", "/home/a b/code"};
  c.logging.level = "fatal";
  c.logging.format = "text";
  c.logging.output = "/var/log/pa.log";
  c.limits.max_connections = 1;
  c.limits.max_projects = 18446744073709551615u;
  c.limits.message_size = 7;
  c.limits.connection_rate = 2.5;
  c.limits.history_page_max = 5;
  c.limits.prompt_size = 6;
  c.limits.attachment_bytes = 8;
  c.limits.attachments_per_prompt = 9;
  c.timeouts.execution = Seconds{0};
  c.timeouts.execution_idle = Seconds{90};
  c.timeouts.idle = Seconds{7200};
  c.timeouts.ping_interval = Seconds{1};
  c.timeouts.pong_timeout = Seconds{61};
  c.timeouts.slow_consumer = Seconds{95};
  c.timeouts.handshake = Seconds{2};
  c.timeouts.shutdown_grace = Seconds{0};
  c.timeouts.kill_grace = Seconds{4};
  c.timeouts.term_grace = Seconds{6};
  c.log_rotation.size = 1;
  c.log_rotation.count = 2;
  c.log_rotation.fsync_interval = Millis{1500};
  c.claude.binary = "/opt/claude bin/claude";
  c.claude.default_model = "true";  // would be a bool if emitted unquoted
  c.claude.allowed_tools = {};
  c.claude.max_line_bytes = 99;
  c.claude.env = {{"A", "1"}, {"B", "x=y, z"}, {"EMPTY", ""}};
  c.claude.home = "~";
  c.claude.allow_dangerous = true;
  c.claude.permission_prompt = "none";
  c.claude.permission_timeout = Seconds{45};
  c.claude.permission_fallback = "cli";
  c.websocket.read_buffer = 1;
  c.websocket.write_buffer = 16;
  c.websocket.message_buffer = 3;
  c.websocket.max_queue_bytes = 4;
  c.websocket.enable_compression = true;
  c.websocket.compression_level = 9;
  c.execution.max_concurrent = 5;
  c.execution.queue_size = 0;
  c.auth.enabled = false;
  c.auth.token = "secret-token";
  c.auth.allowed_origins = {"https://a.example:8443", "null"};
  c.auth.max_failures = 3;
  c.metrics.enabled = false;
  c.metrics.is_public = true;
  c.metrics.port = 65535;
  c.stats.interval = Seconds{0};
  c.shutdown.runs = "detach";
  c.notify.vapid_subject = "https://owner.example";
  c.notify.console_url = "https://pocket.lan:8443";
  c.notify.push_service_hosts = {"push.example"};
  c.notify.ca_file = "/etc/pa/ca.pem";
  c.notify.timeout = Seconds{3};
  c.notify.targets = {{.type = "ntfy", .url = "https://ntfy.sh/mine", .token = "tk_secret"},
                      {.type = "webhook",
                       .url = "http://127.0.0.1:9/hook",
                       .secret = "hmac-secret",
                       .events = {"run_failed", "server_problem"}}};
  c.budgets.project_daily_usd = 2.5;
  c.budgets.server_daily_usd = 0.125;
  c.cluster.redis_url = "rediss://:pw-secret@redis.lan:6380/2";
  c.cluster.node_name = "build-box";
  c.cluster.secret = "cluster-secret-0123456789abcdef0123";
  c.cluster.tls_ca_file = "/etc/pa/redis-ca.pem";
  c.cluster.heartbeat_ttl = Seconds{6};
  c.cluster.stream_maxlen = 5000;
  c.cluster.request_timeout = Seconds{12};

  // Every setting differs from its default, so the test covers the whole table.
  const Config defaults;
  for (const auto& s : detail::settings()) {
    EXPECT_NE(detail::text_value(s, c), detail::text_value(s, defaults)) << s.key;
  }

  const std::string yaml = to_yaml(c);
  EXPECT_THAT(yaml, Not(HasSubstr("secret-token")));
  EXPECT_THAT(yaml, Not(HasSubstr("tk_secret")));
  EXPECT_THAT(yaml, Not(HasSubstr("pw-secret")));
  EXPECT_THAT(yaml, Not(HasSubstr("cluster-secret-0123")));
  EXPECT_THAT(yaml, Not(HasSubstr("hmac-secret")));
  const Loaded l = load_yaml(yaml);
  EXPECT_TRUE(l.warnings.empty());
  expect_same(l.config, c, {"auth.token", "notify.targets", "cluster.redis_url", "cluster.secret"});
  EXPECT_EQ(l.config.auth.token, "<redacted>");
  EXPECT_EQ(l.config.cluster.redis_url, "<redacted>");
  EXPECT_EQ(l.config.cluster.secret, "<redacted>");
  // The targets come back whole but for their secrets.
  auto redacted = c.notify.targets;
  redacted[0].token = "<redacted>";
  redacted[1].secret = "<redacted>";
  EXPECT_EQ(l.config.notify.targets, redacted);
}

// --- notify.targets -------------------------------------------------------------------------

TEST(ConfigNotifyTargets, ReadsTheYamlList) {
  const Config c = load_yaml(
                       "notify:\n"
                       "  targets:\n"
                       "    - type: ntfy\n"
                       "      url: https://ntfy.sh/agent\n"
                       "      token: tk_abc\n"
                       "      events: [permission_request, run_failed]\n"
                       "    - {type: webhook, url: 'http://127.0.0.1:8080/hook', secret: s3}\n")
                       .config;
  ASSERT_EQ(c.notify.targets.size(), 2u);
  EXPECT_EQ(c.notify.targets[0], (NotifyTarget{.type = "ntfy",
                                               .url = "https://ntfy.sh/agent",
                                               .token = "tk_abc",
                                               .events = {"permission_request", "run_failed"}}));
  EXPECT_EQ(c.notify.targets[1],
            (NotifyTarget{.type = "webhook", .url = "http://127.0.0.1:8080/hook", .secret = "s3"}));
}

TEST(ConfigNotifyTargets, TheEnvironmentTakesTheSameListAsJson) {
  const Config c =
      run({}, {{"PA_NOTIFY_TARGETS", R"([{"type":"webhook","url":"https://h.example/x"}])"}})
          .config;
  ASSERT_EQ(c.notify.targets.size(), 1u);
  EXPECT_EQ(c.notify.targets[0].url, "https://h.example/x");
}

// A bad entry is named with its fault; the value (it may hold a token) never is.
TEST(ConfigNotifyTargets, ABadEntryNamesItsFaultNotItsValue) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"([{type: email, url: "https://x.example", token: tk_leak}])",
       "type must be ntfy or webhook"},
      {R"([{type: ntfy, url: "ftp://x.example", token: tk_leak}])", "url must be an http"},
      {R"([{type: ntfy, url: "https://x.example", token: tk_leak, extra: 1}])",
       "unknown field 'extra'"},
      {R"([{type: ntfy, url: "https://x.example", token: tk_leak, events: [everything]}])",
       "unknown event"},
      {R"([{type: webhook, url: "https://x.example", token: tk_leak}])", "token is for ntfy"},
      {R"({type: ntfy})", "not a list"},
  };
  for (const auto& [text, fault] : cases) {
    const std::string msg = error_of({"--notify-targets=" + text});
    EXPECT_THAT(msg, HasSubstr("notify.targets (--notify-targets): <redacted>")) << msg;
    EXPECT_THAT(msg, HasSubstr(fault)) << msg;
    EXPECT_THAT(msg, Not(HasSubstr("tk_leak"))) << msg;
  }
  const std::string from_file =
      yaml_error("notify:\n  targets:\n    - {type: ntfy, url: nowhere, token: tk_leak}\n");
  EXPECT_THAT(from_file, HasSubstr("entry 1 url must be an http")) << from_file;
  EXPECT_THAT(from_file, Not(HasSubstr("tk_leak"))) << from_file;
}

// --- docs ---------------------------------------------------------------------------------------

TEST(ConfigDocs, ReferenceTableMatchesTheCode) {
  std::ifstream in(std::string(PA_SOURCE_DIR) + "/docs/configuration.md");
  ASSERT_TRUE(in) << "docs/configuration.md missing";
  std::stringstream text;
  text << in.rdbuf();
  const std::string expected = detail::reference_markdown();
  EXPECT_THAT(text.str(), HasSubstr(expected))
      << "docs/configuration.md is out of date; its reference tables must read:\n"
      << expected;
}

// Every YAML example in docs/configuration.md loads without errors or warnings.
TEST(ConfigDocs, YamlExamplesLoad) {
  std::ifstream in(std::string(PA_SOURCE_DIR) + "/docs/configuration.md");
  ASSERT_TRUE(in);
  std::vector<std::string> blocks;
  std::string line;
  std::string block;
  std::size_t indent = 0;
  bool inside = false;
  while (std::getline(in, line)) {
    const auto first = line.find_first_not_of(' ');
    const bool fence = first != std::string::npos && line.compare(first, 3, "```") == 0;
    if (!inside && fence && line.substr(first) == "```yaml") {
      inside = true;
      indent = first;
      block.clear();
    } else if (inside && fence) {
      inside = false;
      blocks.push_back(block);
    } else if (inside) {
      block += (line.size() > indent ? line.substr(indent) : std::string()) + "\n";
    }
  }
  EXPECT_GE(blocks.size(), 4u);
  for (const auto& yaml : blocks) {
    try {
      const Loaded l = load_yaml(yaml);
      EXPECT_TRUE(l.warnings.empty()) << yaml;
    } catch (const ConfigError& e) {
      ADD_FAILURE() << e.what() << "\n" << yaml;
    }
  }
}

}  // namespace
}  // namespace pa::config
