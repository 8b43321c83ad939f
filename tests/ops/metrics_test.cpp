#include "ops/metrics.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace pa::ops {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// --- Counter, Gauge, Histogram ------------------------------------------------------------------

TEST(Counter, IncrementsByOneOrN) {
  Counter c;
  EXPECT_EQ(c.value(), 0u);
  c.inc();
  c.inc(5);
  c.inc(0);
  EXPECT_EQ(c.value(), 6u);
}

TEST(Gauge, SetAddSub) {
  Gauge g;
  EXPECT_EQ(g.value(), 0.0);
  g.set(10);
  g.add();
  g.add(2.5);
  g.sub();
  g.sub(0.25);
  EXPECT_DOUBLE_EQ(g.value(), 12.25);
  g.sub(20);
  EXPECT_DOUBLE_EQ(g.value(), -7.75);
  g.set(3);
  EXPECT_EQ(g.value(), 3.0);
}

TEST(Histogram, CountsIntoCumulativeBucketsWithInclusiveUpperBounds) {
  Histogram h({1, 2, 5});
  for (double v : {0.5, 1.0, 1.5, 5.0, 7.0, -3.0}) h.observe(v);
  const Histogram::Snapshot s = h.snapshot();
  EXPECT_EQ(s.upper_bounds, (std::vector<double>{1, 2, 5}));
  // <=1: 0.5, 1, -3; <=2: +1.5; <=5: +5; +Inf: +7.
  EXPECT_EQ(s.cumulative, (std::vector<std::uint64_t>{3, 4, 5, 6}));
  EXPECT_EQ(s.count, 6u);
  EXPECT_EQ(h.count(), 6u);
  EXPECT_DOUBLE_EQ(s.sum, 12.0);
  EXPECT_DOUBLE_EQ(h.sum(), 12.0);
}

TEST(Histogram, NanAndInfinityGoToTheInfBucket) {
  Histogram h({1});
  h.observe(std::numeric_limits<double>::infinity());
  h.observe(std::nan(""));
  h.observe(-std::numeric_limits<double>::infinity());
  const Histogram::Snapshot s = h.snapshot();
  EXPECT_EQ(s.cumulative, (std::vector<std::uint64_t>{1, 3}));
  EXPECT_TRUE(std::isnan(s.sum));
}

TEST(Histogram, WithoutBoundsHasOnlyTheInfBucket) {
  Histogram h({});
  h.observe(4);
  h.observe(-1);
  const Histogram::Snapshot s = h.snapshot();
  EXPECT_EQ(s.cumulative, (std::vector<std::uint64_t>{2}));
  EXPECT_EQ(s.count, 2u);
  EXPECT_DOUBLE_EQ(s.sum, 3.0);
}

TEST(Histogram, RejectsUnsortedDuplicateOrNonFiniteBounds) {
  EXPECT_THROW(Histogram({2, 1}), std::invalid_argument);
  EXPECT_THROW(Histogram({1, 1}), std::invalid_argument);
  EXPECT_THROW(Histogram({1, std::numeric_limits<double>::infinity()}), std::invalid_argument);
  EXPECT_THROW(Histogram({std::nan("")}), std::invalid_argument);
  EXPECT_NO_THROW(Histogram({-1, 0, 0.5}));
}

TEST(Metrics, ConcurrentUpdatesFromFourThreadsAreAllCounted) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 100'000;
  Counter counter;
  Gauge gauge;
  Histogram histogram({0.5, 1.5});
  CounterFamily family({"worker"});
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      Counter& shared = family.with("shared");
      Counter& own = family.with(std::to_string(t));
      for (int i = 0; i < kPerThread; ++i) {
        counter.inc();
        gauge.add(1);
        histogram.observe(i % 2);  // 0 and 1 alternate
        shared.inc();
        own.inc(2);
      }
    });
  }
  go = true;
  for (auto& th : threads) th.join();

  constexpr std::uint64_t kTotal = std::uint64_t{kThreads} * kPerThread;
  EXPECT_EQ(counter.value(), kTotal);
  EXPECT_EQ(gauge.value(), static_cast<double>(kTotal));
  const Histogram::Snapshot s = histogram.snapshot();
  EXPECT_EQ(s.cumulative, (std::vector<std::uint64_t>{kTotal / 2, kTotal, kTotal}));
  EXPECT_EQ(s.sum, static_cast<double>(kTotal / 2));
  EXPECT_EQ(family.with("shared").value(), kTotal);
  for (int t = 0; t < kThreads; ++t)
    EXPECT_EQ(family.with(std::to_string(t)).value(), 2 * kPerThread);
  EXPECT_EQ(family.children().size(), kThreads + 1u);
}

// --- Families ---------------------------------------------------------------------------------

TEST(Family, CreatesEachChildOnceAndKeepsItsAddress) {
  CounterFamily f({"outcome"});
  Counter& a = f.with("success");
  a.inc();
  // Many more children: existing references must stay valid (no reallocation moves them).
  for (int i = 0; i < 1000; ++i) f.with("v" + std::to_string(i)).inc();
  Counter& again = f.with(std::string("success"));
  EXPECT_EQ(&a, &again);
  EXPECT_EQ(again.value(), 1u);
  EXPECT_NE(&f.with("failed"), &a);
  EXPECT_EQ(f.children().size(), 1002u);
}

TEST(Family, TwoLabelsAndSortedChildren) {
  GaugeFamily f({"method", "code"});
  f.with("post", "200").set(1);
  f.with("get", "500").set(2);
  f.with("get", "200").set(3);
  EXPECT_EQ(&f.with("get", "500"), &f.with("get", "500"));
  EXPECT_NE(&f.with("get", "500"), &f.with("500", "get"));
  const auto children = f.children();
  ASSERT_EQ(children.size(), 4u);  // incl. ("500", "get") created above
  EXPECT_EQ(children[0].first, (LabelValues{"500", "get"}));
  EXPECT_EQ(children[1].first, (LabelValues{"get", "200"}));
  EXPECT_EQ(children[1].second->value(), 3.0);
  EXPECT_EQ(children[2].first, (LabelValues{"get", "500"}));
  EXPECT_EQ(children[3].first, (LabelValues{"post", "200"}));
}

TEST(Family, RejectsWrongLabelCountsAndNames) {
  CounterFamily one({"a"});
  EXPECT_THROW(one.with("x", "y"), std::invalid_argument);
  CounterFamily two({"a", "b"});
  EXPECT_THROW(two.with("x"), std::invalid_argument);
  EXPECT_THROW(CounterFamily({}), std::invalid_argument);
  EXPECT_THROW(CounterFamily({"a", "b", "c"}), std::invalid_argument);
  EXPECT_THROW(CounterFamily({"a", "a"}), std::invalid_argument);
  EXPECT_THROW(CounterFamily({"1a"}), std::invalid_argument);
  EXPECT_THROW(CounterFamily({"a-b"}), std::invalid_argument);
  EXPECT_THROW(CounterFamily({"__name"}), std::invalid_argument);
  EXPECT_THROW(CounterFamily({""}), std::invalid_argument);
  EXPECT_THROW(HistogramFamily({"le"}, {1}), std::invalid_argument);
  EXPECT_THROW(HistogramFamily({"x"}, {2, 1}), std::invalid_argument);
  EXPECT_NO_THROW(CounterFamily({"le"}));
  EXPECT_NO_THROW(CounterFamily({"_a9", "B"}));
}

TEST(Family, HistogramChildrenShareTheBounds) {
  HistogramFamily f({"kind"}, {1, 10});
  f.with("a").observe(5);
  EXPECT_EQ(f.with("b").upper_bounds(), (std::vector<double>{1, 10}));
  EXPECT_EQ(f.with("a").snapshot().cumulative, (std::vector<std::uint64_t>{0, 1, 1}));
}

// --- Registry and rendering ---------------------------------------------------------------------

TEST(Registry, RendersTheExpositionFormatExactly) {
  Registry r;
  r.counter("app_requests_total", "Requests handled.").inc(3);
  r.gauge("app_temperature", "Current temperature.").set(-1.5);
  auto& calls =
      r.counter_family("app_calls_total", "Calls by method and code.", {"method", "code"});
  calls.with("post", "200").inc(2);
  calls.with("get", "500").inc();
  calls.with("get", "200").inc(7);
  auto& latency = r.histogram("app_latency_seconds", "Latency.", {0.5, 1});
  latency.observe(0.25);
  latency.observe(0.5);
  latency.observe(3.5);
  r.counter_family("app_unused_total", "Never used, so not rendered.", {"x"});
  r.gauge_family("app_queue", "Queue length.", {"q"}).with("x").set(0.125);
  r.histogram_family("app_size_bytes", "Sizes.", {"kind"}, {10}).with("a").observe(4);
  r.gauge_callback("app_answer", "The answer.", [] { return 42.0; });

  EXPECT_EQ(r.render(),
            "# HELP app_requests_total Requests handled.\n"
            "# TYPE app_requests_total counter\n"
            "app_requests_total 3\n"
            "# HELP app_temperature Current temperature.\n"
            "# TYPE app_temperature gauge\n"
            "app_temperature -1.5\n"
            "# HELP app_calls_total Calls by method and code.\n"
            "# TYPE app_calls_total counter\n"
            "app_calls_total{method=\"get\",code=\"200\"} 7\n"
            "app_calls_total{method=\"get\",code=\"500\"} 1\n"
            "app_calls_total{method=\"post\",code=\"200\"} 2\n"
            "# HELP app_latency_seconds Latency.\n"
            "# TYPE app_latency_seconds histogram\n"
            "app_latency_seconds_bucket{le=\"0.5\"} 2\n"
            "app_latency_seconds_bucket{le=\"1\"} 2\n"
            "app_latency_seconds_bucket{le=\"+Inf\"} 3\n"
            "app_latency_seconds_sum 4.25\n"
            "app_latency_seconds_count 3\n"
            "# HELP app_queue Queue length.\n"
            "# TYPE app_queue gauge\n"
            "app_queue{q=\"x\"} 0.125\n"
            "# HELP app_size_bytes Sizes.\n"
            "# TYPE app_size_bytes histogram\n"
            "app_size_bytes_bucket{kind=\"a\",le=\"10\"} 1\n"
            "app_size_bytes_bucket{kind=\"a\",le=\"+Inf\"} 1\n"
            "app_size_bytes_sum{kind=\"a\"} 4\n"
            "app_size_bytes_count{kind=\"a\"} 1\n"
            "# HELP app_answer The answer.\n"
            "# TYPE app_answer gauge\n"
            "app_answer 42\n");
}

TEST(Registry, EmptyRegistryRendersNothing) {
  EXPECT_EQ(Registry().render(), "");
}

TEST(Registry, EscapesHelpAndLabelValues) {
  Registry r;
  auto& f = r.counter_family("esc_total", "Back\\slash, \"quotes\" and\nnewline.", {"v"});
  f.with("a\\b\"c\nd").inc();
  f.with(std::string("bad\xff utf8")).inc();
  EXPECT_EQ(r.render(),
            "# HELP esc_total Back\\\\slash, \"quotes\" and\\nnewline.\n"
            "# TYPE esc_total counter\n"
            "esc_total{v=\"a\\\\b\\\"c\\nd\"} 1\n"
            "esc_total{v=\"bad\xEF\xBF\xBD utf8\"} 1\n");
}

TEST(Registry, KeepsValidUtf8InLabelValues) {
  Registry r;
  r.gauge_family("u", "h", {"v"}).with("caf\xC3\xA9 \xF0\x9F\x98\x80").set(1);
  EXPECT_NE(r.render().find("u{v=\"caf\xC3\xA9 \xF0\x9F\x98\x80\"} 1\n"), std::string::npos);
}

TEST(Registry, RejectsInvalidAndCollidingNames) {
  Registry r;
  EXPECT_THROW(r.counter("", "h"), std::invalid_argument);
  EXPECT_THROW(r.counter("1abc", "h"), std::invalid_argument);
  EXPECT_THROW(r.gauge("a-b", "h"), std::invalid_argument);
  EXPECT_THROW(r.gauge("a b", "h"), std::invalid_argument);
  EXPECT_NO_THROW(r.gauge("ns:sub_name", "h"));
  r.counter("x_total", "h");
  EXPECT_THROW(r.counter("x_total", "h"), std::invalid_argument);
  EXPECT_THROW(r.gauge("x_total", "h"), std::invalid_argument);
  r.histogram("lat", "h", {1});
  EXPECT_THROW(r.gauge("lat_count", "h"), std::invalid_argument);
  EXPECT_THROW(r.gauge("lat_bucket", "h"), std::invalid_argument);
  r.gauge("size_sum", "h");
  EXPECT_THROW(r.histogram("size", "h", {1}), std::invalid_argument);
  EXPECT_THROW(r.gauge_callback("cb", "h", nullptr), std::invalid_argument);
  // A failed registration leaves nothing behind.
  EXPECT_NO_THROW(r.histogram_family("size2", "h", {"k"}, {1}));
  EXPECT_EQ(r.render().find("size "), std::string::npos);
}

TEST(Registry, ThrowingCallbackRendersNaN) {
  Registry r;
  r.gauge_callback("broken", "h", []() -> double { throw std::runtime_error("boom"); });
  EXPECT_EQ(r.render(), "# HELP broken h\n# TYPE broken gauge\nbroken NaN\n");
}

// Series computed at each render from state kept elsewhere (the projects' spend, issue 19): they
// follow that state, a child that is gone is gone, and none at all renders nothing.
TEST(Registry, CounterCallbackFamilyRendersWhatTheCallbackReturns) {
  Registry r;
  Registry::LabelledValues now = {{{"p1", "input"}, 12}, {{"p2", "output"}, 0.25}};
  r.counter_callback_family("app_spend_total", "Spend.", {"project_id", "kind"},
                            [&] { return now; });
  EXPECT_EQ(r.render(),
            "# HELP app_spend_total Spend.\n"
            "# TYPE app_spend_total counter\n"
            "app_spend_total{project_id=\"p1\",kind=\"input\"} 12\n"
            "app_spend_total{project_id=\"p2\",kind=\"output\"} 0.25\n");
  now.erase(now.begin());
  EXPECT_EQ(r.render().find("p1"), std::string::npos);
  now.clear();
  EXPECT_EQ(r.render(), "");
  r.counter_callback_family("broken_total", "h", {"x"},
                            []() -> Registry::LabelledValues { throw std::runtime_error("boom"); });
  EXPECT_EQ(r.render(), "");
  EXPECT_THROW(r.counter_callback_family("cb_total", "h", {"x"}, nullptr), std::invalid_argument);
  EXPECT_THROW(
      r.counter_callback_family("cb2_total", "h", {}, [] { return Registry::LabelledValues{}; }),
      std::invalid_argument);
}

TEST(Registry, EmptyHelpHasNoTrailingBlank) {
  Registry r;
  r.counter("n_total", "");
  EXPECT_EQ(r.render(), "# HELP n_total\n# TYPE n_total counter\nn_total 0\n");
}

TEST(Registry, RenderIsSafeWhileMetricsChangeAndRegister) {
  Registry r;
  auto& f = r.counter_family("c_total", "h", {"k"});
  auto& h = r.histogram("h", "h", {1, 2});
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    int i = 0;
    while (!stop.load()) {
      f.with(std::to_string(i % 50)).inc();
      h.observe(i % 3);
      if (i < 100) r.gauge("g" + std::to_string(i), "h").set(i);
      ++i;
    }
  });
  const auto value_after = [](const std::string& text, const std::string& prefix) {
    const auto at = text.find(prefix);
    if (at == std::string::npos) return std::string("missing");
    const auto begin = at + prefix.size();
    return text.substr(begin, text.find('\n', begin) - begin);
  };
  for (int i = 0; i < 200; ++i) {
    const std::string text = r.render();
    // Buckets and count come from one snapshot: +Inf always equals _count.
    EXPECT_EQ(value_after(text, "\nh_bucket{le=\"+Inf\"} "), value_after(text, "\nh_count "));
  }
  stop = true;
  writer.join();
}

TEST(FormatMetricValue, IntegersPlainOthersShortestAndSpecials) {
  EXPECT_EQ(format_metric_value(0), "0");
  EXPECT_EQ(format_metric_value(-0.0), "0");
  EXPECT_EQ(format_metric_value(1800), "1800");
  EXPECT_EQ(format_metric_value(-3), "-3");
  EXPECT_EQ(format_metric_value(1e6), "1000000");
  EXPECT_EQ(format_metric_value(0.1), "0.1");
  EXPECT_EQ(format_metric_value(2.5), "2.5");
  EXPECT_EQ(format_metric_value(1.0 / 3), "0.3333333333333333");
  EXPECT_EQ(format_metric_value(1e-7), "1e-07");
  EXPECT_EQ(format_metric_value(1e20), "1e+20");
  EXPECT_EQ(format_metric_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_metric_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(format_metric_value(std::nan("")), "NaN");
  // Every finite value reads back exactly.
  for (double v : {0.1, 1.0 / 3, 123.456e-10, 9007199254740993.0, -2.2250738585072014e-308}) {
    EXPECT_EQ(std::stod(format_metric_value(v)), v) << v;
  }
}

// --- ServerMetrics ------------------------------------------------------------------------------

struct FakeClock {
  std::chrono::steady_clock::time_point t{std::chrono::steady_clock::time_point{} + 1000s};
  std::function<std::chrono::steady_clock::time_point()> fn() {
    return [this] { return t; };
  }
};

TEST(ServerMetrics, RegistersEveryServerMetric) {
  ServerMetrics m;
  m.execution_finished(ExecutionOutcome::kSuccess, 1);
  m.error("INVALID_MESSAGE").inc();
  const std::string text = m.render();
  for (const char* line : {
           "# TYPE pocket_agent_connections_active gauge\n",
           "# TYPE pocket_agent_projects_total gauge\n",
           "# TYPE pocket_agent_executions_total counter\n",
           "pocket_agent_executions_total{outcome=\"success\"} 1\n",
           "pocket_agent_executions_total{outcome=\"failed\"} 0\n",
           "pocket_agent_executions_total{outcome=\"timeout\"} 0\n",
           "pocket_agent_executions_total{outcome=\"killed\"} 0\n",
           "# TYPE pocket_agent_execution_duration_seconds histogram\n",
           "pocket_agent_execution_duration_seconds_bucket{le=\"0.1\"} 0\n",
           "pocket_agent_execution_duration_seconds_bucket{le=\"1\"} 1\n",
           "pocket_agent_execution_duration_seconds_bucket{le=\"1800\"} 1\n",
           "pocket_agent_execution_duration_seconds_bucket{le=\"+Inf\"} 1\n",
           "pocket_agent_messages_total{direction=\"received\"} 0\n",
           "pocket_agent_messages_total{direction=\"sent\"} 0\n",
           "pocket_agent_errors_total{code=\"INVALID_MESSAGE\"} 1\n",
           "# TYPE pocket_agent_queue_depth gauge\n",
           "# TYPE pocket_agent_slow_consumer_closes_total counter\n",
           "# TYPE pocket_agent_bytes_sent_total counter\n",
           "# TYPE pocket_agent_history_bytes_written_total counter\n",
           "# TYPE pocket_agent_executions_active gauge\n",
           "# TYPE pocket_agent_executions_queued gauge\n",
           "# TYPE pocket_agent_connections_total counter\n",
           "# TYPE pocket_agent_uptime_seconds gauge\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line;
  }
  const auto buckets = m.execution_duration.upper_bounds();
  EXPECT_EQ(buckets, (std::vector<double>{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800}));
  EXPECT_EQ(&m.error("INVALID_MESSAGE"), &m.errors.with("INVALID_MESSAGE"));
}

TEST(ServerMetrics, UptimeUsesTheInjectedClock) {
  FakeClock clock;
  ServerMetrics m(clock.fn());
  clock.t += 90s + 500ms;
  EXPECT_NE(m.render().find("\npocket_agent_uptime_seconds 90.5\n"), std::string::npos);
}

TEST(ServerMetrics, StatsSnapshotCountsAndRatePerInterval) {
  FakeClock clock;
  ServerMetrics m(clock.fn());

  // First call: the rate since construction.
  clock.t += 2s;
  m.messages_sent.inc(10);
  m.messages_received.inc(6);
  StatsSnapshot s = m.stats_snapshot();
  EXPECT_EQ(s.messages_sent, 10u);
  EXPECT_EQ(s.messages_received, 6u);
  EXPECT_DOUBLE_EQ(s.messages_rate_per_sec, 8.0);

  // Then the change since the previous call.
  clock.t += 4s;
  m.messages_sent.inc(15);
  m.messages_received.inc(5);
  s = m.stats_snapshot();
  EXPECT_EQ(s.messages_sent, 25u);
  EXPECT_EQ(s.messages_received, 11u);
  EXPECT_DOUBLE_EQ(s.messages_rate_per_sec, 5.0);

  // Nothing new.
  clock.t += 500ms;
  EXPECT_DOUBLE_EQ(m.stats_snapshot().messages_rate_per_sec, 0.0);
  // No time passed: 0, and the messages count towards the next interval.
  m.messages_sent.inc(3);
  EXPECT_DOUBLE_EQ(m.stats_snapshot().messages_rate_per_sec, 0.0);
  clock.t += 1500ms;
  m.messages_received.inc(3);
  EXPECT_DOUBLE_EQ(m.stats_snapshot().messages_rate_per_sec, 4.0);
}

TEST(ServerMetrics, StatsSnapshotExecutions) {
  FakeClock clock;
  ServerMetrics m(clock.fn());
  StatsSnapshot s = m.stats_snapshot();
  EXPECT_EQ(s.executions_total, 0u);
  EXPECT_EQ(s.avg_duration_ms, 0.0);

  m.executions_active.set(2);
  m.executions_queued.set(1);
  m.execution_finished(ExecutionOutcome::kSuccess, 1.5);
  m.execution_finished(ExecutionOutcome::kSuccess, 0.25);
  m.execution_finished(ExecutionOutcome::kFailed, 0.5);
  m.execution_finished(ExecutionOutcome::kTimeout, 3);
  m.execution_finished(ExecutionOutcome::kKilled, 0.75);
  s = m.stats_snapshot();
  EXPECT_EQ(s.executions_active, 2);
  EXPECT_EQ(s.executions_queued, 1);
  EXPECT_EQ(s.executions_total, 5u);
  EXPECT_EQ(s.executions_success, 2u);
  EXPECT_EQ(s.executions_failed, 1u);
  EXPECT_EQ(s.executions_timeout, 1u);
  EXPECT_EQ(s.executions_killed, 1u);
  EXPECT_DOUBLE_EQ(s.avg_duration_ms, 1200.0);
}

TEST(ServerMetrics, StatsSnapshotIsThreadSafe) {
  ServerMetrics m;
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    while (!stop.load()) m.messages_sent.inc();
  });
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        const StatsSnapshot s = m.stats_snapshot();
        ASSERT_GE(s.messages_rate_per_sec, 0.0);
        ASSERT_TRUE(std::isfinite(s.messages_rate_per_sec));
      }
    });
  }
  for (auto& r : readers) r.join();
  stop = true;
  writer.join();
}

// --- The exposition passes the strict linter
// ------------------------------------------------------

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = fs::temp_directory_path() /
            ("pa_metrics_test_" + std::to_string(rd()) + "_" + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

struct LintResult {
  int exit_code = -1;
  std::string message;  // the linter's stderr
};

// Runs the linter on `text` given on stdin, or on the files made from `texts` (named
// case0.txt, case1.txt, ... in the order given).
LintResult run_lint(const std::string* text, const std::vector<std::string>& texts = {}) {
  TempDir dir;
  const auto write = [](const fs::path& path, const std::string& content) {
    std::ofstream out(path, std::ios::binary);
    out << content;
  };
  std::string command = std::string("python3 '") + PA_SOURCE_DIR + "/tests/ops/prometheus_lint.py'";
  if (text != nullptr) {
    write(dir.path() / "stdin.txt", *text);
    command += " < '" + (dir.path() / "stdin.txt").string() + "'";
  }
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const fs::path file = dir.path() / ("case" + std::to_string(i) + ".txt");
    write(file, texts[i]);
    command += " '" + file.string() + "'";
  }
  const fs::path err = dir.path() / "stderr.txt";
  command += " 2> '" + err.string() + "'";
  const int status = std::system(command.c_str());
  LintResult result;
  if (status != -1 && WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  std::ifstream e(err);
  std::stringstream ss;
  ss << e.rdbuf();
  result.message = ss.str();
  return result;
}

LintResult run_lint(const std::string& text) {
  return run_lint(&text);
}

TEST(PrometheusLint, FullyPopulatedServerMetricsAreValid) {
  FakeClock clock;
  ServerMetrics m(clock.fn());
  m.connections_active.set(3);
  m.projects.set(12);
  m.execution_finished(ExecutionOutcome::kSuccess, 0.05);
  m.execution_finished(ExecutionOutcome::kSuccess, 42);
  m.execution_finished(ExecutionOutcome::kFailed, 2.5);
  m.execution_finished(ExecutionOutcome::kTimeout, 1800);
  m.execution_finished(ExecutionOutcome::kKilled, 5000);
  m.messages_sent.inc(1234);
  m.messages_received.inc(567);
  for (const char* code : {"INVALID_MESSAGE", "PROJECT_NOT_FOUND", "EXECUTION_TIMEOUT",
                           "INTERNAL_ERROR", "odd \"code\"\\\n"}) {
    m.error(code).inc();
  }
  m.queue_depth.set(17);
  m.slow_consumer_closes.inc();
  m.bytes_sent.inc(1 << 20);
  m.history_bytes_written.inc(98765);
  m.executions_active.set(2);
  m.executions_queued.set(1);
  m.connections_accepted.inc(9);
  clock.t += 3723s;

  const std::string text = m.render();
  const LintResult r = run_lint(text);
  EXPECT_EQ(r.exit_code, 0) << r.message << "\n" << text;
  EXPECT_EQ(r.message, "");
}

TEST(PrometheusLint, OtherRendersAreValid) {
  Registry r;
  r.counter("a_total", "Help with \\ and\nnewline").inc();
  r.gauge("b", "h").set(-std::numeric_limits<double>::infinity());
  r.gauge("c", "h").set(std::nan(""));
  r.histogram("d", "h", {}).observe(std::nan(""));
  r.histogram_family("e", "h", {"x", "y"}, {-1, 0, 1.5}).with("p\"q", "r\ns").observe(0);
  r.gauge_family("f", "", {"v"}).with("bad\xff").set(1e-300);
  const std::vector<std::string> texts = {r.render(), Registry().render(),
                                          ServerMetrics().render()};
  const LintResult res = run_lint(nullptr, texts);
  EXPECT_EQ(res.exit_code, 0) << res.message << "\n" << texts[0];
}

TEST(PrometheusLint, RejectsBrokenExpositions) {
  // On stdin, as the documented usage.
  const LintResult on_stdin = run_lint("# HELP x h\n# TYPE x gauge\nx 1\nx 2\n");
  EXPECT_EQ(on_stdin.exit_code, 1);
  EXPECT_EQ(on_stdin.message, "prometheus_lint: line 4: duplicate series x\n");

  // Many at once (one interpreter start): each file must fail, for the expected reason.
  struct Case {
    std::string text;
    std::string reason;  // part of the linter's message
  };
  const std::string x = "# HELP x h\n# TYPE x gauge\n";
  const std::string h = "# HELP h h\n# TYPE h histogram\n";
  const std::vector<Case> cases = {
      {"# HELP x h\nx 1\n", "no # TYPE line"},
      {"# TYPE x gauge\nx 1\n", "no # HELP line"},
      {"x 1\n", "no # HELP and # TYPE lines"},
      {"# HELP x h\nx 1\n# TYPE x gauge\n", "no # TYPE line"},
      {x + "x 1\n# HELP x again\n", "after its samples"},
      {"# HELP x h\n# HELP x h\n# TYPE x gauge\nx 1\n", "second # HELP"},
      {"# HELP x h\n# TYPE x thing\nx 1\n", "must be one of"},
      {"# HELP 1x h\n# TYPE 1x gauge\n1x 1\n", "invalid metric name"},
      {x + "x one\n", "is not a number"},
      {x + "x inf\n", "is not a number"},
      {x + "x 1_000\n", "is not a number"},
      {x + "x\n", "expected a blank and a value"},
      {x + "x 1 2 3\n", "a sample is"},
      {x + "x 1 1.5\n", "timestamp"},
      {x + "x 1 \n", "trailing blank"},
      {x + "x 1", "does not end with a line feed"},
      {x + "x 1\r\n", "carriage return"},
      {x + "x{a=\"\\t\"} 1\n", "invalid escape"},
      {x + "x{a=\"b} 1\n", "unterminated"},
      {x + "x{a=\"b\" 1\n", "expected ','"},
      {x + "x{1a=\"b\"} 1\n", "invalid label name"},
      {x + "x{__a=\"b\"} 1\n", "reserved"},
      {x + "x{a=\"b\",a=\"c\"} 1\n", "duplicate label name"},
      {x + "x{a=\"b\",c=\"d\"} 1\nx{c=\"d\",a=\"b\"} 2\n", "duplicate series"},
      {"# HELP x a\\tb\n# TYPE x gauge\nx 1\n", "invalid escape in HELP"},
      {x + "x{a=\"\xff\"} 1\n", "not UTF-8"},
      {x + "x{a=\"1\"} 1\n# HELP y h\n# TYPE y gauge\ny 1\nx{a=\"2\"} 1\n", "not one contiguous"},
      {"# HELP c_total h\n# TYPE c_total counter\nc_total -1\n", "negative or NaN"},
      {"# HELP c_total h\n# TYPE c_total counter\nc_total NaN\n", "negative or NaN"},
      {h + "h_bucket{le=\"1\"} 5\nh_bucket{le=\"2\"} 4\nh_bucket{le=\"+Inf\"} 5\nh_sum 3\n"
           "h_count 5\n",
       "not cumulative"},
      {h + "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 3\n", "!= +Inf bucket"},
      {h + "h_bucket{le=\"1\"} 1\nh_sum 3\nh_count 1\n", "does not end with an le=\"+Inf\""},
      {h + "h_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 3\n"
           "h_count 1\n",
       "out of order"},
      {h + "h_bucket{le=\"+Inf\"} 1\nh_sum 3\n", "no h_count"},
      {h + "h_bucket{le=\"+Inf\"} 1\nh_count 1\n", "no h_sum"},
      {h + "h_bucket 1\nh_sum 3\nh_count 1\n", "has no le label"},
      {h + "h_bucket{le=\"x\"} 1\nh_sum 3\nh_count 1\n", "is not a number"},
      {h + "h_bucket{le=\"+Inf\"} 1\nh_sum{le=\"1\"} 3\nh_count 1\n", "must not have an le"},
      {h + "h 1\n", "no # HELP and # TYPE lines"},
      {h + "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n# HELP h_count h\n# TYPE h_count gauge\n"
           "h_count{a=\"b\"} 1\n",
       "belongs to both"},
  };
  std::vector<std::string> texts;
  for (const auto& c : cases) texts.push_back(c.text);
  const LintResult r = run_lint(nullptr, texts);
  EXPECT_EQ(r.exit_code, 1);
  std::istringstream lines(r.message);
  std::vector<std::string> messages;
  for (std::string line; std::getline(lines, line);) messages.push_back(line);
  ASSERT_EQ(messages.size(), cases.size()) << r.message;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const std::string file = "case" + std::to_string(i) + ".txt: ";
    EXPECT_NE(messages[i].find(file), std::string::npos) << messages[i];
    EXPECT_NE(messages[i].find(cases[i].reason), std::string::npos)
        << "case " << i << ": " << messages[i] << "\n"
        << cases[i].text;
  }
}

}  // namespace
}  // namespace pa::ops
