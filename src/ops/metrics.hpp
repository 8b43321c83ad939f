// In-process metrics: counters, gauges and histograms (lock-free on the hot path), labelled
// families of them, a registry that renders the Prometheus text exposition format 0.0.4, and
// ServerMetrics, the one place that names every metric the server exports.
//
// Hot path: Counter::inc, Gauge::set/add/sub and Histogram::observe are relaxed atomics and never
// lock. Family::with() and Registry registration lock a mutex; look a labelled child up once and
// keep the reference (children and registered metrics live as long as their registry).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace pa::ops {

// Monotonic counter. value() may lag concurrent inc() calls by a few increments (relaxed order).
// alignas(64): counters never share a cache line, so unrelated counters do not slow each other.
class alignas(64) Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  void inc(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

// A value that goes up and down.
class alignas(64) Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void set(double v) noexcept { value_.store(v, std::memory_order_relaxed); }
  void add(double delta = 1.0) noexcept { value_.fetch_add(delta, std::memory_order_relaxed); }
  void sub(double delta = 1.0) noexcept { value_.fetch_sub(delta, std::memory_order_relaxed); }
  double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Observations counted into fixed buckets. Bucket i counts observations <= upper_bounds[i] (the
// Prometheus `le` semantics); an implicit last bucket (+Inf) takes the rest, including NaN.
class Histogram {
 public:
  struct Snapshot {
    std::vector<double> upper_bounds;       // the finite bounds, ascending
    std::vector<std::uint64_t> cumulative;  // upper_bounds.size() + 1 entries; last is +Inf
    double sum = 0;
    std::uint64_t count = 0;  // always == cumulative.back()
  };

  // Bounds must be finite and strictly increasing (may be empty: only the +Inf bucket); otherwise
  // throws std::invalid_argument.
  explicit Histogram(std::vector<double> upper_bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;
  // The constructor's check of the bounds.
  static void check_bounds(const std::vector<double>& upper_bounds);

  void observe(double v) noexcept;

  const std::vector<double>& upper_bounds() const noexcept { return bounds_; }
  // Cumulative counts, sum and count read together. Under concurrent observe() the buckets are
  // always cumulative and count equals the +Inf bucket; sum may lag or lead by in-flight values.
  Snapshot snapshot() const;
  std::uint64_t count() const noexcept;
  double sum() const noexcept { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // per bucket, not cumulative
  std::atomic<double> sum_{0.0};
};

// Label values of one child of a family: one or two values, in the family's label-name order
// (the second is empty for one-label families).
using LabelValues = std::array<std::string, 2>;

namespace detail {
// Orders label values lexicographically; transparent so lookups need no allocation.
struct LabelValuesLess {
  using is_transparent = void;
  using Views = std::array<std::string_view, 2>;
  static Views views(const LabelValues& v) noexcept { return {v[0], v[1]}; }
  static const Views& views(const Views& v) noexcept { return v; }
  template <class A, class B>
  bool operator()(const A& a, const B& b) const noexcept {
    return views(a) < views(b);
  }
};
// Throws std::invalid_argument unless 1 or 2 valid, distinct label names (`[a-zA-Z_][a-zA-Z0-9_]*`,
// not starting with "__"; "le" is reserved in histograms).
void check_label_names(const std::vector<std::string>& names, bool histogram);
[[noreturn]] void throw_label_arity(std::size_t expected, std::size_t given);
}  // namespace detail

// Children of one metric type keyed by label values, created on first use. with() locks a
// mutex: call it once per label set and keep the returned reference, which stays valid for the
// family's (= the registry's) lifetime.
template <class Metric>
class Family {
 public:
  // bounds are used by histogram families only.
  explicit Family(std::vector<std::string> label_names, std::vector<double> bounds = {})
      : label_names_(std::move(label_names)), bounds_(std::move(bounds)) {
    detail::check_label_names(label_names_, std::is_same_v<Metric, Histogram>);
    if constexpr (std::is_same_v<Metric, Histogram>) Histogram::check_bounds(bounds_);
  }
  Family(const Family&) = delete;
  Family& operator=(const Family&) = delete;

  // Throws std::invalid_argument when the number of values differs from the label names.
  Metric& with(std::string_view value) { return find_or_create(1, {value, {}}); }
  Metric& with(std::string_view value1, std::string_view value2) {
    return find_or_create(2, {value1, value2});
  }

  const std::vector<std::string>& label_names() const noexcept { return label_names_; }
  // Children sorted by label values.
  std::vector<std::pair<LabelValues, const Metric*>> children() const {
    std::lock_guard lock(mutex_);
    std::vector<std::pair<LabelValues, const Metric*>> out;
    out.reserve(children_.size());
    for (const auto& [labels, metric] : children_) out.emplace_back(labels, metric.get());
    return out;
  }

 private:
  Metric& find_or_create(std::size_t arity, const detail::LabelValuesLess::Views& key) {
    if (arity != label_names_.size()) detail::throw_label_arity(label_names_.size(), arity);
    std::lock_guard lock(mutex_);
    auto it = children_.find(key);
    if (it == children_.end()) {
      std::unique_ptr<Metric> metric;
      if constexpr (std::is_same_v<Metric, Histogram>) {
        metric = std::make_unique<Histogram>(bounds_);
      } else {
        metric = std::make_unique<Metric>();
      }
      it = children_
               .emplace(LabelValues{std::string(key[0]), std::string(key[1])}, std::move(metric))
               .first;
    }
    return *it->second;
  }

  const std::vector<std::string> label_names_;
  const std::vector<double> bounds_;
  mutable std::mutex mutex_;
  std::map<LabelValues, std::unique_ptr<Metric>, detail::LabelValuesLess> children_;
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

// Owns registered metrics and renders them. Every method is thread-safe. Registration throws
// std::invalid_argument for an invalid metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`) or one that
// collides with an already exported series name (a histogram `x` also takes x_bucket, x_sum and
// x_count). By convention counter names end in `_total`; this is not enforced.
class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  Counter& counter(std::string name, std::string help);
  Gauge& gauge(std::string name, std::string help);
  Histogram& histogram(std::string name, std::string help, std::vector<double> upper_bounds);
  CounterFamily& counter_family(std::string name, std::string help,
                                std::vector<std::string> label_names);
  GaugeFamily& gauge_family(std::string name, std::string help,
                            std::vector<std::string> label_names);
  HistogramFamily& histogram_family(std::string name, std::string help,
                                    std::vector<std::string> label_names,
                                    std::vector<double> upper_bounds);
  // A gauge whose value is computed by `fn` at every render(). fn runs without any registry lock
  // held, possibly concurrently from several render() calls; an exception from it renders NaN.
  void gauge_callback(std::string name, std::string help, std::function<double()> fn);
  // A counter family whose children and values `fn` computes at every render() (from state
  // kept elsewhere, e.g. the projects' persisted spend): one sample per returned entry, in the
  // order returned. Same rules for fn as gauge_callback; an exception renders no samples.
  using LabelledValues = std::vector<std::pair<LabelValues, double>>;
  void counter_callback_family(std::string name, std::string help,
                               std::vector<std::string> label_names,
                               std::function<LabelledValues()> fn);

  // Prometheus text exposition format 0.0.4 (Content-Type: text/plain; version=0.0.4), metrics in
  // registration order, children of a family sorted by label values. A family without children
  // is omitted entirely.
  std::string render() const;

 private:
  struct Entry;
  void add(std::unique_ptr<Entry> entry);

  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Entry>> entries_;
  std::set<std::string, std::less<>> series_names_;
};

// Prometheus spelling of a sample value: integral values without a fraction ("42"), otherwise the
// shortest round-trip form ("0.1", "1e-07"), and "+Inf", "-Inf", "NaN".
std::string format_metric_value(double v);

enum class ExecutionOutcome { kSuccess, kFailed, kTimeout, kKilled };

// Inputs of the server_stats message.
struct StatsSnapshot {
  std::int64_t executions_active = 0;
  std::int64_t executions_queued = 0;
  std::uint64_t executions_total = 0;    // finished runs: success + failed + timeout + killed
  std::uint64_t executions_success = 0;  // per outcome; failed is outcome "failed" only
  std::uint64_t executions_failed = 0;
  std::uint64_t executions_timeout = 0;
  std::uint64_t executions_killed = 0;
  std::int64_t avg_duration_ms = 0;  // mean duration of finished runs, rounded; 0 before the first
  std::uint64_t messages_sent = 0;
  std::uint64_t messages_received = 0;
  // (sent + received) messages per second since the previous stats_snapshot() call (the first
  // call: since construction), rounded to one decimal; 0 when no time has passed.
  double messages_rate_per_sec = 0;
};

// Every metric the server exports, registered in `registry` in this order. Update the plain
// gauges where their source changes (or just before rendering); uptime is computed at render.
struct ServerMetrics {
  using Clock = std::chrono::steady_clock;

  explicit ServerMetrics(std::function<Clock::time_point()> now = &Clock::now);
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // Counts the outcome and observes the duration.
  void execution_finished(ExecutionOutcome outcome, double duration_seconds) noexcept;
  // A run that never started (spawn failure, refused directory, ...): counted as failed, with
  // no duration (the histogram and avg_duration_ms describe runs that ran).
  void execution_not_started() noexcept { executions_failed.inc(); }
  // The counter of one error code (e.g. "INVALID_MESSAGE"); locks, so prefer keeping the
  // reference for a hot code. Pass only protocol error codes: each distinct value is a series.
  Counter& error(std::string_view code) { return errors.with(code); }

  // Thread-safe. Each call starts a new rate interval for every caller: call it from one place
  // (the server_stats timer).
  StatsSnapshot stats_snapshot();
  std::string render() const { return registry.render(); }

  static constexpr std::array<double, 12> kExecutionDurationBuckets = {
      0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800};

  Registry registry;

  Gauge& connections_active;            // pocket_agent_connections_active
  Gauge& projects;                      // pocket_agent_projects_total (a gauge despite the name)
  CounterFamily& executions;            // pocket_agent_executions_total{outcome}
  Counter& executions_success;          //   outcome="success"
  Counter& executions_failed;           //   outcome="failed"
  Counter& executions_timeout;          //   outcome="timeout"
  Counter& executions_killed;           //   outcome="killed"
  Histogram& execution_duration;        // pocket_agent_execution_duration_seconds
  CounterFamily& messages;              // pocket_agent_messages_total{direction}
  Counter& messages_sent;               //   direction="sent"
  Counter& messages_received;           //   direction="received"
  CounterFamily& errors;                // pocket_agent_errors_total{code}
  Gauge& queue_depth;                   // pocket_agent_queue_depth
  Counter& slow_consumer_closes;        // pocket_agent_slow_consumer_closes_total
  Counter& frames_deferred_to_history;  // pocket_agent_catch_up_deferred_total
  Counter& catch_up_pages;              // pocket_agent_catch_up_pages_total
  Counter& bytes_sent;                  // pocket_agent_bytes_sent_total
  Counter& history_bytes_written;       // pocket_agent_history_bytes_written_total
  Gauge& executions_active;             // pocket_agent_executions_active
  Gauge& executions_queued;             // pocket_agent_executions_queued
  Counter& connections_accepted;        // pocket_agent_connections_total
  // Notifications (issue 17).
  Gauge& push_subscriptions;            // pocket_agent_push_subscriptions
  CounterFamily& notifications_sent;    // pocket_agent_notifications_sent_total{channel}
  CounterFamily& notifications_failed;  // pocket_agent_notifications_failed_total{channel}
  Counter& notifications_dropped;       // pocket_agent_notifications_dropped_total
  Counter& notifications_suppressed;    // pocket_agent_notifications_suppressed_total
  Counter& push_subscriptions_removed;  // pocket_agent_push_subscriptions_removed_total
  CounterFamily& requests;              // pocket_agent_requests_total{role}
  // pocket_agent_uptime_seconds: a callback gauge, seconds since construction.

 private:
  const std::function<Clock::time_point()> now_;
  const Clock::time_point start_;
  std::mutex stats_mutex_;
  Clock::time_point last_stats_time_;
  std::uint64_t last_stats_messages_ = 0;
};

}  // namespace pa::ops
