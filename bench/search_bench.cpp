// Search over history (issue 19): generates N history entries in P projects (real project
// metadata and JSONL logs, words drawn from a Zipf distribution), builds the index with the
// shipped `reindex` code, and measures query latency, build time, the index's size against the
// logs', and what indexing adds to each append. docs/benchmarks.md ("Search") has the results.
//
//   search_bench [--entries 1000000] [--projects 100] [--queries 2000] [--appends 100000]
//                [--dir PATH] [--keep]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <future>
#include <iostream>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "cli/reindex.hpp"
#include "history/fd_budget.hpp"
#include "history/message_log.hpp"
#include "projects/project_store.hpp"
#include "protocol/clock.hpp"
#include "search/fts_query.hpp"
#include "search/indexer.hpp"
#include "search/searcher.hpp"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

struct Args {
  std::size_t entries = 1000000;
  std::size_t projects = 100;
  std::size_t queries = 2000;
  std::size_t appends = 100000;
  fs::path dir;
  bool keep = false;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    const auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(k + " needs a value");
      return argv[++i];
    };
    if (k == "--entries")
      a.entries = std::stoul(next());
    else if (k == "--projects")
      a.projects = std::stoul(next());
    else if (k == "--queries")
      a.queries = std::stoul(next());
    else if (k == "--appends")
      a.appends = std::stoul(next());
    else if (k == "--dir")
      a.dir = next();
    else if (k == "--keep")
      a.keep = true;
    else
      throw std::runtime_error("unknown argument " + k);
  }
  if (a.dir.empty()) {
    const char* base = std::getenv("PA_BENCH_TMPDIR");
    a.dir = fs::path(base && *base ? base : fs::temp_directory_path().c_str()) /
            ("pa-search-bench-" + std::to_string(::getpid()));
  }
  return a;
}

// A vocabulary of pronounceable made-up words plus code-ish tokens, ranked for a Zipf law
// (s = 1.1, as in English text): rank 1 is the most frequent word.
class Words {
 public:
  explicit Words(std::size_t size, std::mt19937_64& rng) : rng_(rng) {
    static const char* syllables[] = {"ka", "lo", "mi", "ne", "ru", "ta", "po", "si", "de", "fa",
                                      "go", "hu", "ji", "be", "ze", "ca", "vo", "wi", "xa", "yu",
                                      "th", "ng", "st", "ex", "on", "al", "in", "er", "an", "or"};
    std::uniform_int_distribution<int> syl(0, 29), len(1, 4);
    words_.reserve(size);
    for (std::size_t i = 0; i < size; ++i) {
      std::string w;
      const int n = i < 200 ? 1 + static_cast<int>(i % 2) : len(rng_);
      for (int j = 0; j < n; ++j) w += syllables[syl(rng_)];
      if (i % 17 == 5) w += "_" + std::to_string(i % 100);  // identifiers
      if (i % 23 == 7) w += ".ts";                          // file names
      words_.push_back(std::move(w));
    }
    std::vector<double> weights(size);
    for (std::size_t r = 0; r < size; ++r)
      weights[r] = 1.0 / std::pow(static_cast<double>(r + 1), 1.1);
    pick_ = std::discrete_distribution<std::size_t>(weights.begin(), weights.end());
  }
  const std::string& at(std::size_t rank) const { return words_[rank]; }
  std::size_t size() const { return words_.size(); }
  std::string text(std::size_t count) {
    std::string out;
    for (std::size_t i = 0; i < count; ++i) {
      if (i) out += (i % 12 == 0) ? ".\n" : " ";
      out += words_[pick_(rng_)];
    }
    return out;
  }

 private:
  std::mt19937_64& rng_;
  std::vector<std::string> words_;
  std::discrete_distribution<std::size_t> pick_;
};

// One history message as the server stores it: 10% prompts, 45% agent text, 20% tool calls,
// 25% tool results (lengths in words).
std::pair<pa::history::Direction, std::string> make_message(std::size_t i, Words& words,
                                                            std::mt19937_64& rng) {
  std::uniform_int_distribution<int> pct(0, 99);
  const int kind = pct(rng);
  const auto words_between = [&](int lo, int hi) {
    return words.text(std::uniform_int_distribution<int>(lo, hi)(rng));
  };
  json::object m;
  if (kind < 10) {
    m = {{"type", "execute"}, {"data", {{"prompt", words_between(5, 40)}}}};
    return {pa::history::Direction::kClient, json::serialize(m)};
  }
  json::array content;
  if (kind < 55) {
    content.push_back({{"type", "text"}, {"text", words_between(10, 80)}});
    m = {{"type", "assistant"}, {"message", {{"role", "assistant"}, {"content", content}}}};
  } else if (kind < 75) {
    content.push_back({{"type", "tool_use"},
                       {"id", "toolu_" + std::to_string(i)},
                       {"name", "Bash"},
                       {"input",
                        {{"command", "grep -rn " + words_between(1, 3) + " src/"},
                         {"description", words_between(3, 8)}}}});
    m = {{"type", "assistant"}, {"message", {{"role", "assistant"}, {"content", content}}}};
  } else {
    content.push_back({{"type", "tool_result"},
                       {"tool_use_id", "toolu_" + std::to_string(i)},
                       {"content", words_between(20, 150)}});
    m = {{"type", "user"}, {"message", {{"role", "user"}, {"content", content}}}};
  }
  return {pa::history::Direction::kClaude, json::serialize(m)};
}

std::uintmax_t tree_bytes(const fs::path& dir) {
  std::uintmax_t total = 0;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec))
    if (e.is_regular_file(ec)) total += e.file_size(ec);
  return total;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// A source that is never read: the Searcher only needs the Indexer's file and generation.
class NoSource final : public pa::search::EntrySource {
 public:
  std::vector<std::string> project_ids() override { return {}; }
  std::optional<pa::search::SourcePage> read_after(const std::string&, std::uint64_t, std::size_t,
                                                   std::size_t) override {
    return std::nullopt;
  }
};

// The append part's one project, as its log holds it (entries the full queue drops are read
// from here, as the server reads them from the log).
class AppendedSource final : public pa::search::EntrySource {
 public:
  void add(std::uint64_t seq, const std::string& timestamp, std::string_view direction,
           const std::string& message) {
    std::string entry = "{\"seq\":" + std::to_string(seq) + ",\"timestamp\":\"" + timestamp +
                        "\",\"direction\":\"" + std::string(direction) +
                        "\",\"message\":" + message + "}";
    std::lock_guard lock(mutex_);
    entries_.push_back(std::move(entry));
  }
  std::vector<std::string> project_ids() override { return {"bench-project"}; }
  std::optional<pa::search::SourcePage> read_after(const std::string&, std::uint64_t after_seq,
                                                   std::size_t limit, std::size_t) override {
    std::lock_guard lock(mutex_);
    pa::search::SourcePage page;
    for (std::size_t i = after_seq; i < entries_.size() && page.entries.size() < limit; ++i)
      page.entries.push_back(entries_[i]);
    page.last_seq = entries_.size();
    page.has_more = after_seq + page.entries.size() < entries_.size();
    return page;
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> entries_;
};

}  // namespace

int main(int argc, char** argv) {
  Args args;
  try {
    args = parse(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "search_bench: " << e.what() << "\n";
    return 2;
  }
  fs::remove_all(args.dir);
  fs::create_directories(args.dir);
  std::mt19937_64 rng(19);
  Words words(50000, rng);

  // 1. History: projects with metadata and logs, entries round robin (so their times interleave).
  pa::projects::ProjectStore store(args.dir);
  std::vector<std::string> ids;
  std::vector<std::unique_ptr<pa::history::MessageLog>> logs;
  // Every log's file stays open while entries go round robin (the process default is 64).
  pa::history::FdBudget budget(args.projects + 8);
  for (std::size_t p = 0; p < args.projects; ++p) {
    pa::projects::ProjectInfo info;
    info.id = pa::projects::random_uuid();
    info.path = (args.dir / "work" / std::to_string(p)).string();
    fs::create_directories(info.path);
    info.created_at = info.last_active = pa::protocol::now_rfc3339();
    if (auto ec = store.create(info)) throw std::runtime_error("create: " + ec.message());
    std::vector<std::string> warnings;
    std::error_code ec;
    pa::history::Options options;
    options.fsync_interval = std::chrono::hours(1);
    options.fd_budget = &budget;
    logs.push_back(pa::history::MessageLog::open(store.logs_dir(info.id), options, warnings, ec));
    ids.push_back(info.id);
  }
  auto start = Clock::now();
  for (std::size_t i = 0; i < args.entries; ++i) {
    auto [direction, message] = make_message(i, words, rng);
    std::error_code ec;
    logs[i % args.projects]->append(direction, message, ec);
  }
  for (auto& log : logs) {
    std::error_code ec;
    log->sync(ec);
  }
  logs.clear();
  const double generate_ms = ms_since(start);
  const auto log_bytes = tree_bytes(args.dir / "projects");
  std::printf("generated %zu entries in %zu projects: %.0f ms, logs %.1f MiB\n", args.entries,
              args.projects, generate_ms, static_cast<double>(log_bytes) / 1048576.0);

  // 2. The index, built as `pocket-agent-server reindex` builds it.
  pa::config::Config config;
  config.data.dir = args.dir.string();
  start = Clock::now();
  if (pa::cli::reindex(config, std::cout, std::cerr) != 0) return 1;
  const double build_ms = ms_since(start);
  const fs::path index_file = args.dir / "search" / "index.sqlite3";
  const auto index_bytes = tree_bytes(args.dir / "search");
  std::printf("index_build_ms=%.0f (%.0f entries/s)\n", build_ms,
              static_cast<double>(args.entries) / (build_ms / 1000.0));
  std::printf("index_bytes=%.1f MiB, logs_bytes=%.1f MiB, ratio=%.2f\n",
              static_cast<double>(index_bytes) / 1048576.0,
              static_cast<double>(log_bytes) / 1048576.0,
              static_cast<double>(index_bytes) / static_cast<double>(log_bytes));

  // 3. Queries: one common word, one mid-frequency word, a rare word, two words, a prefix, a
  // common word within one project, and a common word three pages deep.
  NoSource none;
  pa::search::Indexer reader_of(index_file, none);
  pa::search::Searcher searcher(reader_of);
  const char* kinds[] = {"common", "medium",      "rare",  "two_words",
                         "prefix", "one_project", "page_4"};
  std::vector<std::vector<double>> latency(std::size(kinds));
  std::vector<double> all;
  std::uniform_int_distribution<std::size_t> common(0, 49), medium(500, 5000),
      rare(20000, words.size() - 1), project(0, args.projects - 1);
  std::size_t total_hits = 0;
  for (std::size_t q = 0; q < args.queries; ++q) {
    const std::size_t kind = q % std::size(kinds);
    pa::search::SearchRequest request;
    request.limit = 20;
    std::string text;
    switch (kind) {
      case 0:
        text = words.at(common(rng));
        break;
      case 1:
        text = words.at(medium(rng));
        break;
      case 2:
        text = words.at(rare(rng));
        break;
      case 3:
        text = words.at(medium(rng)) + " " + words.at(common(rng));
        break;
      case 4:
        text = words.at(medium(rng)).substr(0, 3) + "*";
        break;
      case 5:
        text = words.at(common(rng));
        request.project_id = ids[project(rng)];
        break;
      default:
        text = words.at(common(rng));
        break;
    }
    request.fts_expression = pa::search::build_fts_query(text).expression;
    if (request.fts_expression.empty()) continue;
    const auto t0 = Clock::now();
    auto page = searcher.search(request);
    for (int deeper = 0; kind == 6 && deeper < 3 && page.has_more; ++deeper) {
      request.before = page.hits.back().cursor;
      page = searcher.search(request);
    }
    const double ms = ms_since(t0);
    if (!page.error.empty()) {
      std::cerr << "query failed: " << page.error << "\n";
      return 1;
    }
    total_hits += page.hits.size();
    latency[kind].push_back(ms);
    all.push_back(ms);
  }
  std::printf("queries=%zu (limit 20, %zu hits in all)\n", all.size(), total_hits);
  for (std::size_t k = 0; k < std::size(kinds); ++k)
    std::printf("  %-12s p50=%.2f ms p99=%.2f ms max=%.2f ms\n", kinds[k],
                percentile(latency[k], 0.5), percentile(latency[k], 0.99),
                percentile(latency[k], 1.0));
  std::printf("query_p50_ms=%.2f query_p99_ms=%.2f\n", percentile(all, 0.5), percentile(all, 0.99));

  // 4. What each append pays: a history append alone, and the same with the indexer's hand-over
  // (the live writer thread indexing meanwhile, as in the server).
  {
    AppendedSource appended;
    pa::search::Indexer live(args.dir / "append-index" / "index.sqlite3", appended);
    live.start();
    pa::history::Options options;
    options.fsync_interval = std::chrono::hours(1);
    std::vector<std::string> warnings;
    std::error_code ec;
    auto log = pa::history::MessageLog::open(args.dir / "append-bench", options, warnings, ec);
    std::vector<double> plain, indexed, handover;
    for (std::size_t i = 0; i < args.appends; ++i) {
      auto [direction, message] = make_message(i, words, rng);
      const auto t0 = Clock::now();
      const auto r = log->append(direction, message, ec);
      const auto t1 = Clock::now();
      // In the log first (outside the timing), as in the server.
      appended.add(r.seq, r.timestamp, pa::history::to_string(direction), message);
      const auto t2 = Clock::now();
      live.appended("bench-project", r.seq, r.timestamp, pa::history::to_string(direction),
                    message);
      const auto t3 = Clock::now();
      const double append_us = std::chrono::duration<double, std::micro>(t1 - t0).count();
      const double handover_us = std::chrono::duration<double, std::micro>(t3 - t2).count();
      plain.push_back(append_us);
      indexed.push_back(append_us + handover_us);
      handover.push_back(handover_us);
    }
    const auto t_wait = Clock::now();
    std::promise<void> caught_up;
    live.when_current([&] { caught_up.set_value(); });
    caught_up.get_future().wait();
    std::printf("append_us (history only) p50=%.2f p99=%.2f\n", percentile(plain, 0.5),
                percentile(plain, 0.99));
    std::printf("append_us (history + index hand-over) p50=%.2f p99=%.2f\n",
                percentile(indexed, 0.5), percentile(indexed, 0.99));
    std::printf("index_handover_us p50=%.2f p99=%.2f (the cost added to each append)\n",
                percentile(handover, 0.5), percentile(handover, 0.99));
    std::printf(
        "writer caught up %.0f ms after the last append (%zu entries appended at full "
        "speed)\n",
        ms_since(t_wait), args.appends);
    live.stop();
  }
  if (!args.keep) fs::remove_all(args.dir);
  return 0;
}
