#include "projects/spend.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "protocol/clock.hpp"

namespace pa::spend {

namespace json = boost::json;

Totals& Totals::operator+=(const Totals& other) {
  cost_usd += other.cost_usd;
  input_tokens += other.input_tokens;
  output_tokens += other.output_tokens;
  cache_read_tokens += other.cache_read_tokens;
  cache_creation_tokens += other.cache_creation_tokens;
  runs += other.runs;
  return *this;
}

json::object to_json(const Totals& t) {
  return json::object{{"cost_usd", t.cost_usd},
                      {"input_tokens", t.input_tokens},
                      {"output_tokens", t.output_tokens},
                      {"cache_read_tokens", t.cache_read_tokens},
                      {"cache_creation_tokens", t.cache_creation_tokens},
                      {"runs", t.runs}};
}

std::string utc_day(SystemTime now) {
  const std::chrono::year_month_day ymd{std::chrono::floor<std::chrono::days>(now)};
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return buf;
}

std::string next_utc_midnight(SystemTime now) {
  const auto midnight = std::chrono::floor<std::chrono::days>(now) + std::chrono::days(1);
  // "2026-12-08T00:00:00.000Z" -> "2026-12-08T00:00:00Z": a whole second needs no fraction.
  std::string text = protocol::format_rfc3339(midnight);
  return text.substr(0, 19) + "Z";
}

Totals today(const Ledger& ledger, SystemTime now) {
  return ledger.day == utc_day(now) ? ledger.day_totals : Totals{};
}

const Totals* session_totals(const Ledger& ledger, const std::string& session_id) {
  for (const auto& s : ledger.sessions) {
    if (s.id == session_id) return &s.totals;
  }
  return nullptr;
}

bool record_result(Ledger& ledger, const std::string& run_id, std::uint64_t offset,
                   const std::string& session_id, const ResultUsage& usage, SystemTime now) {
  const bool same_run = ledger.run_id == run_id;
  if (same_run && offset <= ledger.run_offset) return false;
  Totals added;
  // Cumulative within the process: only what is new since the run's last result. A lower
  // figure (never seen from the CLI) adds nothing rather than taking spend back.
  const double before = same_run ? ledger.run_totals.cost_usd : 0;
  added.cost_usd = std::max(0.0, usage.total_cost_usd - before);
  added.input_tokens = usage.input_tokens;
  added.output_tokens = usage.output_tokens;
  added.cache_read_tokens = usage.cache_read_tokens;
  added.cache_creation_tokens = usage.cache_creation_tokens;
  added.runs = same_run ? 0 : 1;

  if (!same_run) {
    ledger.run_id = run_id;
    ledger.run_totals = Totals{};
  }
  ledger.run_offset = offset;
  ledger.run_totals += added;
  ledger.totals += added;
  const std::string day = utc_day(now);
  if (ledger.day != day) {
    ledger.day = day;
    ledger.day_totals = Totals{};
  }
  ledger.day_totals += added;
  if (!session_id.empty()) {
    auto it = std::find_if(ledger.sessions.begin(), ledger.sessions.end(),
                           [&](const Ledger::Session& s) { return s.id == session_id; });
    Ledger::Session session{session_id, {}};
    if (it != ledger.sessions.end()) {
      session = std::move(*it);
      ledger.sessions.erase(it);
    }
    // A session's `runs` counts the runs that reported in it.
    Totals for_session = added;
    if (same_run && session.totals == Totals{}) for_session.runs = 1;
    session.totals += for_session;
    ledger.sessions.push_back(std::move(session));
    if (ledger.sessions.size() > Ledger::kSessionsKept)
      ledger.sessions.erase(ledger.sessions.begin());
  }
  return true;
}

namespace {
std::uint64_t read_count(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr) return 0;
  if (v->is_uint64()) return v->get_uint64();
  if (v->is_int64() && v->get_int64() > 0) return static_cast<std::uint64_t>(v->get_int64());
  return 0;
}

Totals totals_from_json(const json::value* value) {
  Totals t;
  if (value == nullptr || !value->is_object()) return t;
  const auto& o = value->get_object();
  if (const auto* c = o.if_contains("cost_usd"); c != nullptr && c->is_number()) {
    const double cost = c->to_number<double>();
    if (std::isfinite(cost) && cost > 0) t.cost_usd = cost;
  }
  t.input_tokens = read_count(o, "input_tokens");
  t.output_tokens = read_count(o, "output_tokens");
  t.cache_read_tokens = read_count(o, "cache_read_tokens");
  t.cache_creation_tokens = read_count(o, "cache_creation_tokens");
  t.runs = read_count(o, "runs");
  return t;
}

std::string string_of(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}
}  // namespace

json::object to_stored_json(const Ledger& ledger) {
  json::array sessions;
  for (const auto& s : ledger.sessions)
    sessions.push_back(json::object{{"id", s.id}, {"totals", to_json(s.totals)}});
  return json::object{{"totals", to_json(ledger.totals)},
                      {"day", ledger.day},
                      {"day_totals", to_json(ledger.day_totals)},
                      {"sessions", std::move(sessions)},
                      {"run", json::object{{"id", ledger.run_id},
                                           {"offset", ledger.run_offset},
                                           {"totals", to_json(ledger.run_totals)}}}};
}

Ledger ledger_from_json(const json::value* value) {
  Ledger ledger;
  if (value == nullptr || !value->is_object()) return ledger;
  const auto& o = value->get_object();
  ledger.totals = totals_from_json(o.if_contains("totals"));
  ledger.day = string_of(o, "day");
  ledger.day_totals = totals_from_json(o.if_contains("day_totals"));
  if (const auto* s = o.if_contains("sessions"); s != nullptr && s->is_array()) {
    for (const auto& item : s->get_array()) {
      if (!item.is_object()) continue;
      const std::string id = string_of(item.get_object(), "id");
      if (id.empty()) continue;
      ledger.sessions.push_back({id, totals_from_json(item.get_object().if_contains("totals"))});
      if (ledger.sessions.size() == Ledger::kSessionsKept) break;
    }
  }
  if (const auto* r = o.if_contains("run"); r != nullptr && r->is_object()) {
    ledger.run_id = string_of(r->get_object(), "id");
    ledger.run_offset = read_count(r->get_object(), "offset");
    ledger.run_totals = totals_from_json(r->get_object().if_contains("totals"));
  }
  return ledger;
}

}  // namespace pa::spend
