// History: append with and without fdatasync, and get_messages page lookups by after_seq and
// since from the start, middle and end of a rotated multi-file history.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "history/message_log.hpp"

namespace {

namespace fs = std::filesystem;
using pa::history::Direction;
using pa::history::MessageLog;

// Benchmarks write under $PA_BENCH_TMPDIR (default: the system temp dir); fsync numbers depend
// on that file system.
fs::path temp_dir(const std::string& name) {
  const char* base = std::getenv("PA_BENCH_TMPDIR");
  fs::path dir =
      fs::path(base != nullptr && *base != 0 ? base : fs::temp_directory_path().c_str()) /
      ("pa-micro-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string message(std::size_t bytes) {
  std::string text(bytes, 'x');
  return R"({"type":"assistant","message":{"role":"assistant","content":[{"type":"text","text":")" +
         text + R"("}]}})";
}

std::unique_ptr<MessageLog> open_log(const fs::path& dir, pa::history::Options options) {
  std::vector<std::string> warnings;
  std::error_code ec;
  auto log = MessageLog::open(dir, options, warnings, ec);
  if (ec) throw std::runtime_error("cannot open history: " + ec.message());
  return log;
}

// range(0): 1 = fdatasync after every append (fsync_interval 0), 0 = never within the run.
void BM_HistoryAppend(benchmark::State& state) {
  const bool fsync = state.range(0) != 0;
  const auto dir = temp_dir(fsync ? "append-fsync" : "append");
  pa::history::Options options;
  options.fsync_interval = fsync ? std::chrono::milliseconds(0) : std::chrono::hours(1);
  auto log = open_log(dir, options);
  const std::string msg = message(300);
  std::error_code ec;
  for (auto _ : state) benchmark::DoNotOptimize(log->append(Direction::kClaude, msg, ec));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.counters["files"] = static_cast<double>(log->file_count());
  log.reset();
  fs::remove_all(dir);
}
BENCHMARK(BM_HistoryAppend)->Arg(0)->Arg(1)->ArgNames({"fsync"});

// A history of kEntries entries in files of 10,000 entries, built once.
constexpr std::uint64_t kEntries = 200000;
struct History {
  History() {
    dir = temp_dir("pages");
    pa::history::Options options;
    options.rotate_count = 10000;
    options.fsync_interval = std::chrono::hours(1);
    auto writer = open_log(dir, options);
    const std::string msg = message(200);
    std::error_code ec;
    for (std::uint64_t i = 0; i < kEntries; ++i) {
      auto r = writer->append(Direction::kClaude, msg, ec);
      if (i == 0) first_ts = r.timestamp;
      if (i == kEntries / 2) mid_ts = r.timestamp;
      if (i == kEntries - 1500) end_ts = r.timestamp;
    }
    writer->sync(ec);
    writer.reset();
    log = open_log(dir, options);
  }
  ~History() {
    log.reset();
    fs::remove_all(dir);
  }
  fs::path dir;
  std::unique_ptr<MessageLog> log;
  std::string first_ts, mid_ts, end_ts;
};
History& history() {
  static History h;
  return h;
}

// range(0): where the page starts, in per mille of the history (0, 500, 999).
void BM_HistoryPageAfterSeq(benchmark::State& state) {
  auto& h = history();
  pa::history::Query q;
  q.after_seq = kEntries * static_cast<std::uint64_t>(state.range(0)) / 1000;
  q.limit = static_cast<std::size_t>(state.range(1));
  std::vector<std::string> warnings;
  for (auto _ : state) {
    auto page = h.log->read(q, warnings);
    benchmark::DoNotOptimize(page);
  }
  state.counters["files"] = static_cast<double>(h.log->file_count());
}
BENCHMARK(BM_HistoryPageAfterSeq)
    ->Args({0, 1000})
    ->Args({500, 1000})
    ->Args({999, 1000})
    ->Args({500, 100})
    ->ArgNames({"at_permille", "limit"})
    ->Unit(benchmark::kMicrosecond);

// range(0): 0 = since the first entry, 1 = the middle, 2 = near the end.
void BM_HistoryPageSince(benchmark::State& state) {
  auto& h = history();
  pa::history::Query q;
  q.since = state.range(0) == 0 ? h.first_ts : state.range(0) == 1 ? h.mid_ts : h.end_ts;
  q.limit = 1000;
  std::vector<std::string> warnings;
  for (auto _ : state) {
    auto page = h.log->read(q, warnings);
    benchmark::DoNotOptimize(page);
  }
}
BENCHMARK(BM_HistoryPageSince)
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->ArgNames({"where"})
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
