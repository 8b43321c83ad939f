// Server logs through spdlog: `json` (one object per line: timestamp, level, msg) or `text`,
// to stdout, stderr or a file. Never log tokens, prompts or file contents at info level.
#pragma once

#include <string>

#include "config/config.hpp"

namespace pa::ops {

// Throws std::runtime_error when the output file cannot be opened.
void setup_logging(const config::Config::Logging& logging);
// Reopens a file output (after logrotate moved it); a no-op for stdout/stderr.
void reopen_log_file();

}  // namespace pa::ops
