// What a project's runs cost (issue 19), kept in project.json with the rest of its metadata.
// Every figure comes from the CLI's `result` lines. Within one CLI process total_cost_usd is
// cumulative over its turns while `usage` counts one turn only (stub-model transcript 03d), and a
// process that resumes a session starts again from 0 (02-print-resume): so a result adds its
// usage as it is, and its cost minus the cost the same run had reported before.
//
// A result is counted once even when a restarted server applies it again: the ledger remembers
// the last run and spool offset it counted, in the same atomic file as the totals.
#pragma once

#include <boost/json/object.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pa::spend {

using SystemTime = std::chrono::system_clock::time_point;

struct Totals {
  double cost_usd = 0;
  std::uint64_t input_tokens = 0, output_tokens = 0, cache_read_tokens = 0,
                cache_creation_tokens = 0;
  std::uint64_t runs = 0;  // runs that reported at least one result
  Totals& operator+=(const Totals& other);
  bool operator==(const Totals&) const = default;
};

// {cost_usd, input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens, runs}.
boost::json::object to_json(const Totals& totals);

// One result line's figures (agent::CliLine reads them; absent ones are 0).
struct ResultUsage {
  double total_cost_usd = 0;  // cumulative over the CLI process
  std::uint64_t input_tokens = 0, output_tokens = 0, cache_read_tokens = 0,
                cache_creation_tokens = 0;
};

struct Ledger {
  Totals totals;      // since the project was created
  std::string day;    // "YYYY-MM-DD" (UTC) that `day_totals` belongs to
  Totals day_totals;  // that day's
  struct Session {
    std::string id;
    Totals totals;
  };
  std::vector<Session> sessions;  // most recently used last; at most kSessionsKept
  static constexpr std::size_t kSessionsKept = 100;
  // The run counted last, up to which spool offset, and what it cost so far.
  std::string run_id;
  std::uint64_t run_offset = 0;
  Totals run_totals;
};

// "YYYY-MM-DD" of `now` in UTC, and the next UTC midnight after it (RFC 3339).
std::string utc_day(SystemTime now);
std::string next_utc_midnight(SystemTime now);

// The ledger's figures for the UTC day of `now` (zero when nothing was counted that day).
Totals today(const Ledger& ledger, SystemTime now);
// The totals of `session_id`, if the ledger has them.
const Totals* session_totals(const Ledger& ledger, const std::string& session_id);

// Counts the result line at `offset` of run `run_id` (session `session_id`, may be empty) on the
// day of `now`. False (and no change) when that line, or a later one of the run, was counted.
bool record_result(Ledger& ledger, const std::string& run_id, std::uint64_t offset,
                   const std::string& session_id, const ResultUsage& usage, SystemTime now);

// As project.json keeps it, and back (lenient: anything malformed reads as nothing counted).
boost::json::object to_stored_json(const Ledger& ledger);
Ledger ledger_from_json(const boost::json::value* value);

}  // namespace pa::spend
