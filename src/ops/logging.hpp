// Server logs through spdlog: `json` (one object per line: timestamp, level, msg) or `text`,
// to stdout, stderr or a file. Never log tokens, prompts or file contents at info level.
#pragma once

#include <spdlog/common.h>
#include <boost/json/object.hpp>
#include <string>

#include "config/config.hpp"

namespace pa::ops {

// Throws std::runtime_error when the output file cannot be opened.
void setup_logging(const config::Config::Logging& logging);
// A log line with structured fields: in `json` format they are keys of the line's object
// (e.g. correlation_id, project_id, session_id, duration_ms, exit_code, prompt_length,
// response_length); in `text` format they follow the message as key=value.
void log_event(spdlog::level::level_enum level, std::string_view message,
               const boost::json::object& fields);

// Reopens a file output (after logrotate moved it); a no-op for stdout/stderr.
void reopen_log_file();

}  // namespace pa::ops
