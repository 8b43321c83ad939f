#include "server/server_spend.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cstdio>

#include "common/atomic_file.hpp"
#include "server/project.hpp"
#include "server/project_registry.hpp"

namespace pa::server {

namespace json = boost::json;

ServerSpend::ServerSpend(const std::filesystem::path& data_dir, const ProjectRegistry& projects,
                         const config::Config::Budgets& budgets)
    : file_(data_dir / "spend.json"), projects_(projects), budgets_(budgets) {}

void ServerSpend::load(std::vector<std::string>& warnings) {
  std::error_code ec;
  if (!std::filesystem::exists(file_, ec)) return;
  const std::string text = common::read_small_file(file_, ec);
  boost::system::error_code parse_ec;
  const json::value value = ec ? json::value() : json::parse(text, parse_ec);
  if (ec || parse_ec || !value.is_object()) {
    warnings.push_back(file_.string() + " cannot be read (" +
                       (ec ? ec.message() : std::string("not a JSON object")) +
                       "); today's spend of deleted projects counts as 0");
    return;
  }
  // The same shape as a ledger's day part: {"day", "day_totals"}.
  const spend::Ledger stored = spend::ledger_from_json(&value);
  std::lock_guard lock(mutex_);
  deleted_day_ = stored.day;
  deleted_ = stored.day_totals;
}

spend::Totals ServerSpend::today(spend::SystemTime now) const {
  spend::Totals sum;
  {
    std::lock_guard lock(mutex_);
    if (deleted_day_ == spend::utc_day(now)) sum = deleted_;
  }
  for (const auto& project : projects_.all()) sum += spend::today(project->snapshot().spend, now);
  return sum;
}

std::error_code ServerSpend::project_deleted(const spend::Ledger& ledger, spend::SystemTime now) {
  const spend::Totals gone = spend::today(ledger, now);
  if (gone == spend::Totals{}) return {};
  // Writes go one at a time, each with the figures as they are then; readers (today(), from
  // the stats timer on an I/O thread) never wait for the disk.
  std::lock_guard write_lock(write_mutex_);
  std::string text;
  {
    std::lock_guard lock(mutex_);
    const std::string day = spend::utc_day(now);
    if (deleted_day_ != day) {
      deleted_day_ = day;
      deleted_ = {};
    }
    deleted_ += gone;
    text = json::serialize(
               json::object{{"day", deleted_day_}, {"day_totals", spend::to_json(deleted_)}}) +
           "\n";
  }
  return common::write_file_atomically(file_, text, 0600);
}

namespace {
std::string dollars(double usd) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "$%.4f", usd);
  return buf;
}
}  // namespace

std::optional<protocol::Error> ServerSpend::budget_reached(const std::string& project_id,
                                                           const spend::Ledger& ledger,
                                                           spend::SystemTime now,
                                                           std::string_view doing) const {
  std::string_view budget;
  double budget_usd = 0, spent = 0;
  std::string whose;
  if (budgets_.project_daily_usd > 0) {
    spent = spend::today(ledger, now).cost_usd;
    if (spent >= budgets_.project_daily_usd) {
      budget = "budgets.project_daily_usd";
      budget_usd = budgets_.project_daily_usd;
      whose = "project " + project_id + " has";
    }
  }
  if (budget.empty() && budgets_.server_daily_usd > 0) {
    spent = today(now).cost_usd;
    if (spent >= budgets_.server_daily_usd) {
      budget = "budgets.server_daily_usd";
      budget_usd = budgets_.server_daily_usd;
      whose = "the server's projects have";
    }
  }
  if (budget.empty()) return std::nullopt;
  const std::string resets_at = spend::next_utc_midnight(now);
  return protocol::make_error(protocol::ErrorCode::kBudgetExceeded,
                              std::string(doing) + ": " + whose + " spent " + dollars(spent) +
                                  " today (UTC), and " + std::string(budget) + " is " +
                                  dollars(budget_usd) + ". It resets at " + resets_at +
                                  "; the server's operator can raise " + std::string(budget),
                              json::object{{"budget", budget},
                                           {"budget_usd", budget_usd},
                                           {"spent_usd", spent},
                                           {"resets_at", resets_at},
                                           {"project_id", project_id}});
}

}  // namespace pa::server
