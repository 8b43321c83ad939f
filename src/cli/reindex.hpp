// `pocket-agent-server reindex`: rebuilds the search index (<data_dir>/search/) from every
// project's history logs, with the server stopped (it takes the data directory's lock, so it
// refuses while a server runs). The server also rebuilds a missing or outdated index by itself
// at start, in the background; this is the way to do it at once, or after copying logs in.
#pragma once

#include <ostream>

#include "config/config.hpp"

namespace pa::cli {

// Returns the exit status: 0 done, 1 failed (the server runs, or the index cannot be written).
int reindex(const config::Config& config, std::ostream& out, std::ostream& err);

}  // namespace pa::cli
