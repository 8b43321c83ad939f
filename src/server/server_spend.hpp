// The server's spend of the day and the daily budgets (issue 19).
//
// The server's figure for a UTC day is the sum of its projects' (each project's ledger,
// projects/spend.hpp) plus what projects deleted that day had spent: that part is kept in
// <data_dir>/spend.json (written atomically, 0600), so deleting a project does not reset the
// server's budget. Thread-safe.
#pragma once

#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "config/config.hpp"
#include "projects/spend.hpp"
#include "protocol/envelope.hpp"

namespace pa::server {

class ProjectRegistry;

class ServerSpend {
 public:
  ServerSpend(const std::filesystem::path& data_dir, const ProjectRegistry& projects,
              const config::Config::Budgets& budgets);

  // Start-up: reads spend.json (a damaged one is noted in `warnings` and counts as nothing).
  void load(std::vector<std::string>& warnings);

  // The server's figures for the UTC day of `now`: every project's plus the deleted ones'.
  spend::Totals today(spend::SystemTime now) const;

  // project_delete (blocking: writes spend.json): the project's spend of the day stays counted.
  std::error_code project_deleted(const spend::Ledger& ledger, spend::SystemTime now);

  // The daily budget a project with `ledger` has reached, if any: BUDGET_EXCEEDED with details
  // {budget: "budgets.project_daily_usd"|"budgets.server_daily_usd", budget_usd, spent_usd,
  // resets_at, project_id}. `doing` says what is refused ("The execute is refused").
  std::optional<protocol::Error> budget_reached(const std::string& project_id,
                                                const spend::Ledger& ledger, spend::SystemTime now,
                                                std::string_view doing) const;

 private:
  const std::filesystem::path file_;
  const ProjectRegistry& projects_;
  const config::Config::Budgets budgets_;
  std::mutex write_mutex_;    // spend.json is written by one thread at a time
  mutable std::mutex mutex_;  // the figures below
  std::string deleted_day_;   // "YYYY-MM-DD" of deleted_
  spend::Totals deleted_;     // that day's spend of projects deleted since
};

}  // namespace pa::server
