#include "ops/logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/dist_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <iostream>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace pa::ops {

namespace {

std::string_view level_name(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "fatal";
    default:
      return "info";
  }
}

// %* : the message as a JSON string (quoted and escaped).
class JsonMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const std::string quoted =
        boost::json::serialize(boost::json::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(quoted.data(), quoted.data() + quoted.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

// Fields of the line being logged, set by log_event on this thread (sinks are synchronous).
thread_local const boost::json::object* t_fields = nullptr;

// %F : the fields, as `,"key":value` (json) or ` key=value` (text).
class FieldsFlag : public spdlog::custom_flag_formatter {
 public:
  explicit FieldsFlag(bool json) : json_(json) {}
  void format(const spdlog::details::log_msg&, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    if (t_fields == nullptr) return;
    std::string out;
    for (const auto& kv : *t_fields) {
      const std::string value = boost::json::serialize(kv.value());
      if (json_) {
        out += "," + boost::json::serialize(boost::json::string_view(kv.key())) + ":" + value;
      } else {
        out += " " + std::string(kv.key()) + "=" + value;
      }
    }
    dest.append(out.data(), out.data() + out.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<FieldsFlag>(json_);
  }

 private:
  bool json_;
};

// %L : our level names (debug, info, warn, error, fatal).
class LevelFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const auto name = level_name(msg.level);
    dest.append(name.data(), name.data() + name.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<LevelFlag>();
  }
};

spdlog::level::level_enum parse_level(const std::string& level) {
  if (level == "debug") return spdlog::level::debug;
  if (level == "warn") return spdlog::level::warn;
  if (level == "error") return spdlog::level::err;
  if (level == "fatal") return spdlog::level::critical;
  return spdlog::level::info;
}

std::unique_ptr<spdlog::formatter> make_formatter(const std::string& format) {
  auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  formatter->add_flag<JsonMessageFlag>('*');
  formatter->add_flag<LevelFlag>('L');
  formatter->add_flag<FieldsFlag>('F', format == "json");
  if (format == "json") {
    formatter->set_pattern(R"({"timestamp":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%L","msg":%*%F})");
  } else {
    formatter->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %L %v%F");
  }
  return formatter;
}

// The sinks for `logging`, each with its own formatter. A file output also sends fatal lines to
// stderr, so a server that cannot start says why where the person starting it looks.
std::vector<spdlog::sink_ptr> make_sinks(const config::Config::Logging& logging) {
  std::vector<spdlog::sink_ptr> sinks;
  if (logging.output == "stdout") {
    sinks.push_back(std::make_shared<spdlog::sinks::stdout_sink_mt>());
  } else if (logging.output == "stderr") {
    sinks.push_back(std::make_shared<spdlog::sinks::stderr_sink_mt>());
  } else {
    try {
      sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(logging.output, false));
    } catch (const spdlog::spdlog_ex& e) {
      throw std::runtime_error("cannot open log file " + logging.output + ": " + e.what());
    }
    auto fatal = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    fatal->set_level(spdlog::level::critical);
    sinks.push_back(std::move(fatal));
  }
  for (auto& sink : sinks) sink->set_formatter(make_formatter(logging.format));
  return sinks;
}

// One logger for the life of the process, installed as spdlog's default once: spdlog::info()
// reads the default logger through a raw pointer without a lock, so replacing the logger while
// other threads log would free it under them. Its only sink is a distributing sink; a reload
// swaps the sinks inside it (under the sink's mutex) and sets the level (an atomic).
struct ProcessLogger {
  std::shared_ptr<spdlog::sinks::dist_sink_mt> dist =
      std::make_shared<spdlog::sinks::dist_sink_mt>();
  std::shared_ptr<spdlog::logger> logger = std::make_shared<spdlog::logger>("pocket-agent", dist);
};

std::mutex g_mutex;  // serializes setup_logging and reopen_log_file; guards the two below
config::Config::Logging g_logging;
bool g_configured = false;

ProcessLogger& process_logger() {
  static ProcessLogger* instance = [] {
    auto* p = new ProcessLogger;  // never destroyed: threads may log during static destruction
    p->logger->flush_on(spdlog::level::trace);  // every line: logs must survive a crash
    spdlog::set_default_logger(p->logger);
    return p;
  }();
  return *instance;
}

void install(const config::Config::Logging& logging, std::vector<spdlog::sink_ptr> sinks) {
  auto& p = process_logger();
  p.dist->set_sinks(std::move(sinks));  // the old sinks are closed here, under the sink's mutex
  p.logger->set_level(parse_level(logging.level));
  g_logging = logging;
  g_configured = true;
}

}  // namespace

void setup_logging(const config::Config::Logging& logging) {
  auto sinks = make_sinks(logging);  // may throw: the current output stays
  std::lock_guard lock(g_mutex);
  install(logging, std::move(sinks));
}

void log_event(spdlog::level::level_enum level, std::string_view message,
               const boost::json::object& fields) {
  t_fields = &fields;
  spdlog::log(level, "{}", message);
  t_fields = nullptr;
}

void reopen_log_file() {
  std::lock_guard lock(g_mutex);
  if (!g_configured || g_logging.output == "stdout" || g_logging.output == "stderr") return;
  // A fresh sink opens the path again (in append mode): after logrotate moved the old file,
  // logging continues in a new one.
  try {
    install(g_logging, make_sinks(g_logging));
  } catch (const std::exception& e) {
    spdlog::error("cannot reopen log file: {}", e.what());
  }
}

void log_fatal(std::string_view message) {
  bool configured = false;
  bool on_stderr = false;
  {
    std::lock_guard lock(g_mutex);
    configured = g_configured;
    on_stderr = g_configured && g_logging.output != "stdout";
  }
  if (configured) spdlog::critical("{}", message);
  if (!on_stderr) std::cerr << "pocket-agent-server: " << message << "\n";
}

}  // namespace pa::ops
