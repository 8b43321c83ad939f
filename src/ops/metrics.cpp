#include "ops/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>
#include <system_error>
#include <variant>

namespace pa::ops {

namespace {

bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool valid_metric_name(std::string_view name) {
  if (name.empty() || !(is_name_start(name[0]) || name[0] == ':')) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return is_name_start(c) || is_digit(c) || c == ':'; });
}

bool valid_label_name(std::string_view name) {
  if (name.empty() || !is_name_start(name[0]) || name.starts_with("__")) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return is_name_start(c) || is_digit(c); });
}

// Length of the valid UTF-8 sequence at s[i], or 0 when it is not one.
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  std::size_t len = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;  // no overlong forms
    if (c == 0xED) hi = 0x9F;  // no surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;  // <= U+10FFFF
  } else {
    return 0;
  }
  if (i + len > s.size() || b(1) < lo || b(1) > hi) return 0;
  for (std::size_t k = 2; k < len; ++k) {
    if (b(k) < 0x80 || b(k) > 0xBF) return 0;
  }
  return len;
}

// Escapes backslash and newline (and double quote in label values); replaces invalid UTF-8 with
// U+FFFD, which the format requires.
void append_escaped(std::string& out, std::string_view s, bool quote) {
  for (std::size_t i = 0; i < s.size();) {
    const char c = s[i];
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      const std::size_t len = utf8_sequence_length(s, i);
      if (len == 0) {
        out += "\xEF\xBF\xBD";
        ++i;
        continue;
      }
      out.append(s.substr(i, len));
      i += len;
      continue;
    }
    ++i;
  }
}

void append_uint(std::string& out, std::uint64_t v) {
  char buf[24];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, res.ptr);
}

void append_double(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else if (v == 0) {
    out += '0';  // also for -0
  } else {
    char buf[64];
    // Integral values as integers ("1800", not "1.8e+03"); others in the shortest form that
    // reads back as the same double.
    const bool integral = std::trunc(v) == v && std::fabs(v) < 1e15;
    const auto res = integral ? std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed)
                              : std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, res.ptr);
  }
}

// {name="value",...[,le="bound"]} or nothing when there are no labels.
void append_labels(std::string& out, const std::vector<std::string>& names,
                   const LabelValues& values, std::string_view le = {}) {
  if (names.empty() && le.empty()) return;
  out += '{';
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ',';
    out += names[i];
    out += "=\"";
    append_escaped(out, values[i], true);
    out += '"';
  }
  if (!le.empty()) {
    if (!names.empty()) out += ',';
    out += "le=\"";
    out += le;
    out += '"';
  }
  out += '}';
}

void append_sample_uint(std::string& out, std::string_view name, std::string_view suffix,
                        const std::vector<std::string>& label_names, const LabelValues& values,
                        std::uint64_t v, std::string_view le = {}) {
  out += name;
  out += suffix;
  append_labels(out, label_names, values, le);
  out += ' ';
  append_uint(out, v);
  out += '\n';
}

void append_sample_double(std::string& out, std::string_view name, std::string_view suffix,
                          const std::vector<std::string>& label_names, const LabelValues& values,
                          double v) {
  out += name;
  out += suffix;
  append_labels(out, label_names, values);
  out += ' ';
  append_double(out, v);
  out += '\n';
}

void append_histogram(std::string& out, std::string_view name,
                      const std::vector<std::string>& label_names, const LabelValues& values,
                      const Histogram& h) {
  const Histogram::Snapshot snap = h.snapshot();
  for (std::size_t i = 0; i < snap.cumulative.size(); ++i) {
    std::string le;
    if (i < snap.upper_bounds.size()) {
      append_double(le, snap.upper_bounds[i]);
    } else {
      le = "+Inf";
    }
    append_sample_uint(out, name, "_bucket", label_names, values, snap.cumulative[i], le);
  }
  append_sample_double(out, name, "_sum", label_names, values, snap.sum);
  append_sample_uint(out, name, "_count", label_names, values, snap.count);
}

const std::vector<std::string> kNoLabels;
const LabelValues kNoValues;

}  // namespace

std::string format_metric_value(double v) {
  std::string out;
  append_double(out, v);
  return out;
}

// --- Histogram --------------------------------------------------------------------------------

void Histogram::check_bounds(const std::vector<double>& upper_bounds) {
  for (std::size_t i = 0; i < upper_bounds.size(); ++i) {
    if (!std::isfinite(upper_bounds[i])) {
      throw std::invalid_argument("histogram bucket bounds must be finite");
    }
    if (i > 0 && !(upper_bounds[i - 1] < upper_bounds[i])) {
      throw std::invalid_argument("histogram bucket bounds must be strictly increasing");
    }
  }
}

Histogram::Histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)) {
  check_bounds(bounds_);
  buckets_ = std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1);
}

void Histogram::observe(double v) noexcept {
  // First bucket whose bound is >= v; NaN (comparing false with everything) goes to +Inf.
  const std::size_t i =
      std::isnan(v) ? bounds_.size()
                    : static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) -
                                               bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot snap;
  snap.upper_bounds = bounds_;
  snap.cumulative.resize(bounds_.size() + 1);
  std::uint64_t total = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    snap.cumulative[i] = total;
  }
  snap.count = total;
  snap.sum = sum_.load(std::memory_order_relaxed);
  return snap;
}

std::uint64_t Histogram::count() const noexcept {
  std::uint64_t total = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
  }
  return total;
}

// --- Families ---------------------------------------------------------------------------------

namespace detail {

void check_label_names(const std::vector<std::string>& names, bool histogram) {
  if (names.empty() || names.size() > 2) {
    throw std::invalid_argument("a metric family has 1 or 2 label names");
  }
  for (const auto& name : names) {
    if (!valid_label_name(name)) throw std::invalid_argument("invalid label name: " + name);
    if (histogram && name == "le") {
      throw std::invalid_argument("label name \"le\" is reserved in histograms");
    }
  }
  if (names.size() == 2 && names[0] == names[1]) {
    throw std::invalid_argument("duplicate label name: " + names[0]);
  }
}

void throw_label_arity(std::size_t expected, std::size_t given) {
  throw std::invalid_argument("metric family has " + std::to_string(expected) +
                              " label name(s), got " + std::to_string(given) + " value(s)");
}

}  // namespace detail

// --- Registry ---------------------------------------------------------------------------------

struct CounterCallbackFamily {
  std::vector<std::string> label_names;
  std::function<Registry::LabelledValues()> fn;
};

struct Registry::Entry {
  std::string name;
  std::string help;
  std::variant<std::unique_ptr<Counter>, std::unique_ptr<Gauge>, std::unique_ptr<Histogram>,
               std::unique_ptr<CounterFamily>, std::unique_ptr<GaugeFamily>,
               std::unique_ptr<HistogramFamily>, std::function<double()>, CounterCallbackFamily>
      metric;

  std::string_view type() const {
    switch (metric.index()) {
      case 0:
      case 3:
      case 7:
        return "counter";
      case 2:
      case 5:
        return "histogram";
      default:
        return "gauge";
    }
  }
  bool is_histogram() const { return type() == "histogram"; }
};

Registry::Registry() = default;
Registry::~Registry() = default;

void Registry::add(std::unique_ptr<Entry> entry) {
  if (!valid_metric_name(entry->name)) {
    throw std::invalid_argument("invalid metric name: " + entry->name);
  }
  std::vector<std::string> series{entry->name};
  if (entry->is_histogram()) {
    for (const char* suffix : {"_bucket", "_sum", "_count"}) series.push_back(entry->name + suffix);
  }
  std::lock_guard lock(mutex_);
  for (const auto& s : series) {
    if (series_names_.contains(s)) {
      throw std::invalid_argument("metric name already registered: " + s);
    }
  }
  series_names_.insert(series.begin(), series.end());
  entries_.push_back(std::move(entry));
}

namespace {

template <class Metric, class... Args>
std::unique_ptr<Metric> make(Args&&... args) {
  return std::make_unique<Metric>(std::forward<Args>(args)...);
}

}  // namespace

Counter& Registry::counter(std::string name, std::string help) {
  auto metric = make<Counter>();
  Counter& ref = *metric;
  add(std::make_unique<Entry>(Entry{std::move(name), std::move(help), std::move(metric)}));
  return ref;
}

Gauge& Registry::gauge(std::string name, std::string help) {
  auto metric = make<Gauge>();
  Gauge& ref = *metric;
  add(std::make_unique<Entry>(Entry{std::move(name), std::move(help), std::move(metric)}));
  return ref;
}

Histogram& Registry::histogram(std::string name, std::string help,
                               std::vector<double> upper_bounds) {
  auto metric = make<Histogram>(std::move(upper_bounds));
  Histogram& ref = *metric;
  add(std::make_unique<Entry>(Entry{std::move(name), std::move(help), std::move(metric)}));
  return ref;
}

CounterFamily& Registry::counter_family(std::string name, std::string help,
                                        std::vector<std::string> label_names) {
  auto metric = make<CounterFamily>(std::move(label_names));
  CounterFamily& ref = *metric;
  add(std::make_unique<Entry>(Entry{std::move(name), std::move(help), std::move(metric)}));
  return ref;
}

GaugeFamily& Registry::gauge_family(std::string name, std::string help,
                                    std::vector<std::string> label_names) {
  auto metric = make<GaugeFamily>(std::move(label_names));
  GaugeFamily& ref = *metric;
  add(std::make_unique<Entry>(Entry{std::move(name), std::move(help), std::move(metric)}));
  return ref;
}

HistogramFamily& Registry::histogram_family(std::string name, std::string help,
                                            std::vector<std::string> label_names,
                                            std::vector<double> upper_bounds) {
  auto metric = make<HistogramFamily>(std::move(label_names), std::move(upper_bounds));
  HistogramFamily& ref = *metric;
  add(std::make_unique<Entry>(Entry{std::move(name), std::move(help), std::move(metric)}));
  return ref;
}

void Registry::gauge_callback(std::string name, std::string help, std::function<double()> fn) {
  if (!fn) throw std::invalid_argument("gauge callback is empty");
  add(std::make_unique<Entry>(Entry{std::move(name), std::move(help), std::move(fn)}));
}

void Registry::counter_callback_family(std::string name, std::string help,
                                       std::vector<std::string> label_names,
                                       std::function<LabelledValues()> fn) {
  if (!fn) throw std::invalid_argument("counter callback is empty");
  detail::check_label_names(label_names, false);
  add(std::make_unique<Entry>(Entry{std::move(name), std::move(help),
                                    CounterCallbackFamily{std::move(label_names), std::move(fn)}}));
}

std::string Registry::render() const {
  // Entries are never removed or changed once added, so they are rendered without the lock
  // (callbacks may take their own locks; families lock themselves).
  std::vector<const Entry*> entries;
  {
    std::lock_guard lock(mutex_);
    entries.reserve(entries_.size());
    for (const auto& e : entries_) entries.push_back(e.get());
  }

  std::string out;
  std::string body;
  for (const Entry* e : entries) {
    body.clear();
    const std::string& name = e->name;
    std::visit(
        [&](const auto& m) {
          using M = std::decay_t<decltype(m)>;
          if constexpr (std::is_same_v<M, std::unique_ptr<Counter>>) {
            append_sample_uint(body, name, "", kNoLabels, kNoValues, m->value());
          } else if constexpr (std::is_same_v<M, std::unique_ptr<Gauge>>) {
            append_sample_double(body, name, "", kNoLabels, kNoValues, m->value());
          } else if constexpr (std::is_same_v<M, std::unique_ptr<Histogram>>) {
            append_histogram(body, name, kNoLabels, kNoValues, *m);
          } else if constexpr (std::is_same_v<M, std::unique_ptr<CounterFamily>>) {
            for (const auto& [values, c] : m->children()) {
              append_sample_uint(body, name, "", m->label_names(), values, c->value());
            }
          } else if constexpr (std::is_same_v<M, std::unique_ptr<GaugeFamily>>) {
            for (const auto& [values, g] : m->children()) {
              append_sample_double(body, name, "", m->label_names(), values, g->value());
            }
          } else if constexpr (std::is_same_v<M, std::unique_ptr<HistogramFamily>>) {
            for (const auto& [values, h] : m->children()) {
              append_histogram(body, name, m->label_names(), values, *h);
            }
          } else if constexpr (std::is_same_v<M, CounterCallbackFamily>) {
            LabelledValues samples;
            try {
              samples = m.fn();
            } catch (...) {
              samples.clear();
            }
            for (const auto& [values, v] : samples)
              append_sample_double(body, name, "", m.label_names, values, v);
          } else {
            double v = 0;
            try {
              v = m();
            } catch (...) {
              v = std::nan("");
            }
            append_sample_double(body, name, "", kNoLabels, kNoValues, v);
          }
        },
        e->metric);
    if (body.empty()) continue;  // a family without children
    out += "# HELP ";
    out += name;
    if (!e->help.empty()) {
      out += ' ';
      append_escaped(out, e->help, false);
    }
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += e->type();
    out += '\n';
    out += body;
  }
  return out;
}

// --- ServerMetrics ----------------------------------------------------------------------------

ServerMetrics::ServerMetrics(std::function<Clock::time_point()> now)
    : connections_active(
          registry.gauge("pocket_agent_connections_active", "Open WebSocket connections")),
      projects(registry.gauge("pocket_agent_projects_total", "Number of registered projects")),
      executions(registry.counter_family("pocket_agent_executions_total",
                                         "Finished agent runs by outcome", {"outcome"})),
      executions_success(executions.with("success")),
      executions_failed(executions.with("failed")),
      executions_timeout(executions.with("timeout")),
      executions_killed(executions.with("killed")),
      execution_duration(registry.histogram(
          "pocket_agent_execution_duration_seconds", "Duration of finished agent runs in seconds",
          {kExecutionDurationBuckets.begin(), kExecutionDurationBuckets.end()})),
      messages(registry.counter_family("pocket_agent_messages_total",
                                       "WebSocket messages by direction", {"direction"})),
      messages_sent(messages.with("sent")),
      messages_received(messages.with("received")),
      errors(registry.counter_family("pocket_agent_errors_total",
                                     "Errors reported to clients by error code", {"code"})),
      queue_depth(registry.gauge("pocket_agent_queue_depth",
                                 "Outbound messages queued across all connections")),
      slow_consumer_closes(
          registry.counter("pocket_agent_slow_consumer_closes_total",
                           "Connections closed because their writes made no progress for "
                           "timeouts.slow_consumer (or replies piled up unread)")),
      frames_deferred_to_history(registry.counter(
          "pocket_agent_catch_up_deferred_total",
          "Broadcasts a lagging connection declined, to get them from history instead")),
      catch_up_pages(registry.counter("pocket_agent_catch_up_pages_total",
                                      "History pages sent to connections catching up")),
      bytes_sent(registry.counter("pocket_agent_bytes_sent_total",
                                  "Bytes of WebSocket messages sent to clients")),
      history_bytes_written(registry.counter("pocket_agent_history_bytes_written_total",
                                             "Bytes appended to message history files")),
      executions_active(registry.gauge("pocket_agent_executions_active", "Agent runs in progress")),
      executions_queued(
          registry.gauge("pocket_agent_executions_queued", "Agent runs waiting for a free slot")),
      connections_accepted(
          registry.counter("pocket_agent_connections_total", "Accepted WebSocket connections")),
      push_subscriptions(registry.gauge("pocket_agent_push_subscriptions",
                                        "Web Push subscriptions of this server's devices")),
      notifications_sent(registry.counter_family(
          "pocket_agent_notifications_sent_total",
          "Notifications accepted by a push service, ntfy or a webhook, by channel", {"channel"})),
      notifications_failed(registry.counter_family(
          "pocket_agent_notifications_failed_total",
          "Notifications given up after a refusal or the last retry, by channel", {"channel"})),
      notifications_dropped(
          registry.counter("pocket_agent_notifications_dropped_total",
                           "Notifications not sent because the send queue was full")),
      notifications_suppressed(registry.counter(
          "pocket_agent_notifications_suppressed_total",
          "Web Push notifications not sent because the device had the project on screen")),
      push_subscriptions_removed(registry.counter(
          "pocket_agent_push_subscriptions_removed_total",
          "Web Push subscriptions removed because their push service answered 404 or 410")),
      requests(registry.counter_family("pocket_agent_requests_total",
                                       "Client requests by the sender's role", {"role"})),
      now_(now ? std::move(now) : throw std::invalid_argument("ServerMetrics: empty clock")),
      start_(now_()),
      last_stats_time_(start_) {
  // Every channel's series exists from the start at 0 (rate() then sees the first send).
  for (const char* channel : {"web_push", "ntfy", "webhook"}) {
    notifications_sent.with(channel);
    notifications_failed.with(channel);
  }
  registry.gauge_callback(
      "pocket_agent_uptime_seconds", "Seconds since the server started",
      [this] { return std::chrono::duration<double>(now_() - start_).count(); });
}

void ServerMetrics::execution_finished(ExecutionOutcome outcome, double duration_seconds) noexcept {
  switch (outcome) {
    case ExecutionOutcome::kSuccess:
      executions_success.inc();
      break;
    case ExecutionOutcome::kFailed:
      executions_failed.inc();
      break;
    case ExecutionOutcome::kTimeout:
      executions_timeout.inc();
      break;
    case ExecutionOutcome::kKilled:
      executions_killed.inc();
      break;
  }
  execution_duration.observe(duration_seconds);
}

StatsSnapshot ServerMetrics::stats_snapshot() {
  StatsSnapshot s;
  s.executions_active = std::llround(executions_active.value());
  s.executions_queued = std::llround(executions_queued.value());
  s.executions_success = executions_success.value();
  s.executions_failed = executions_failed.value();
  s.executions_timeout = executions_timeout.value();
  s.executions_killed = executions_killed.value();
  s.executions_total =
      s.executions_success + s.executions_failed + s.executions_timeout + s.executions_killed;
  const std::uint64_t runs = execution_duration.count();
  if (runs > 0) {
    s.avg_duration_ms = std::llround(execution_duration.sum() / static_cast<double>(runs) * 1000.0);
  }

  std::lock_guard lock(stats_mutex_);
  // Read under the lock so concurrent callers see non-decreasing baselines.
  const Clock::time_point now = now_();
  s.messages_sent = messages_sent.value();
  s.messages_received = messages_received.value();
  const std::uint64_t total = s.messages_sent + s.messages_received;
  const double elapsed = std::chrono::duration<double>(now - last_stats_time_).count();
  if (elapsed > 0) {
    const std::uint64_t delta = total >= last_stats_messages_ ? total - last_stats_messages_ : 0;
    // One decimal (5.2): dividing by 10 gives the double nearest the decimal.
    s.messages_rate_per_sec = std::round(static_cast<double>(delta) / elapsed * 10.0) / 10.0;
    last_stats_time_ = now;
    last_stats_messages_ = total;
  }
  return s;
}

}  // namespace pa::ops
