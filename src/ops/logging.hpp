// Server logs through spdlog: `json` (one object per line: timestamp, level, msg) or `text`,
// to stdout, stderr or a file. Never log tokens, prompts or file contents at info level.
#pragma once

#include <spdlog/common.h>
#include <boost/json/object.hpp>
#include <string>

#include "config/config.hpp"

namespace pa::ops {

// Applies the logging settings; may be called again at any time (SIGHUP) while other threads
// log: the process keeps one logger and only its sinks and level change. With a file output,
// fatal lines also go to stderr. Throws std::runtime_error when the output file cannot be opened
// (the current output then stays).
void setup_logging(const config::Config::Logging& logging);
// A log line with structured fields: in `json` format they are keys of the line's object
// (e.g. correlation_id, project_id, session_id, duration_ms, exit_code, prompt_length,
// response_length); in `text` format they follow the message as key=value.
void log_event(spdlog::level::level_enum level, std::string_view message,
               const boost::json::object& fields);

// Reopens a file output (after logrotate moved it); a no-op for stdout/stderr.
void reopen_log_file();

// A fatal error: logged at `fatal` once logging is set up, and written to stderr unless that
// line already went there (output stderr, or a file: see setup_logging).
void log_fatal(std::string_view message);

}  // namespace pa::ops
