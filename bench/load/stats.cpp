#include "stats.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

namespace pa::bench {

namespace json = boost::json;

std::int64_t now_us_since_epoch() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void Samples::merge(const Samples& other) {
  values_.insert(values_.end(), other.values_.begin(), other.values_.end());
  sorted_ = false;
}

double Samples::percentile(double p) {
  if (values_.empty()) return 0;
  if (!sorted_) {
    std::sort(values_.begin(), values_.end());
    sorted_ = true;
  }
  // Nearest rank.
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(values_.size())));
  rank = std::clamp<std::size_t>(rank, 1, values_.size());
  return static_cast<double>(values_[rank - 1]);
}

double Samples::max() {
  return percentile(100);
}

namespace {
double round3(double v) {
  return std::round(v * 1000.0) / 1000.0;
}
}  // namespace

json::object Samples::summary_ms() {
  return json::object{{"n", values_.size()},
                      {"p50_ms", round3(percentile(50) / 1000.0)},
                      {"p99_ms", round3(percentile(99) / 1000.0)},
                      {"p999_ms", round3(percentile(99.9) / 1000.0)},
                      {"max_ms", round3(max() / 1000.0)}};
}

std::optional<ProcSample> read_proc(pid_t pid) {
  ProcSample s;
  s.at = Clock::now();
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  if (!status) return std::nullopt;
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) s.rss_bytes = std::stoull(line.substr(6)) * 1024;
  }
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto close = all.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream in(all.substr(close + 2));
  std::vector<std::string> f;
  std::string tok;
  while (in >> tok) f.push_back(tok);
  // After "(comm)": state is field 3, so utime (14) and stime (15) are f[11] and f[12].
  if (f.size() < 13) return std::nullopt;
  s.cpu_ticks = std::stoull(f[11]) + std::stoull(f[12]);
  return s;
}

double cpu_percent(const ProcSample& a, const ProcSample& b) {
  const double secs = std::chrono::duration<double>(b.at - a.at).count();
  if (secs <= 0) return 0;
  const double ticks = static_cast<double>(b.cpu_ticks - a.cpu_ticks);
  return round3(100.0 * ticks / static_cast<double>(::sysconf(_SC_CLK_TCK)) / secs);
}

namespace {
// Numbers with three decimals, objects as "key value, key value".
std::string human(const json::value& v) {
  if (v.is_string()) return std::string(v.get_string());
  if (v.is_double()) {
    std::ostringstream out;
    out << std::fixed << std::setprecision(3) << v.get_double();
    return out.str();
  }
  if (v.is_object()) {
    std::string out;
    for (const auto& kv : v.get_object()) {
      if (!out.empty()) out += ", ";
      out += std::string(kv.key()) + " " + human(kv.value());
    }
    return out;
  }
  return json::serialize(v);
}
}  // namespace

double server_cpu_seconds(const ProcSample& a, const ProcSample& b) {
  return static_cast<double>(b.cpu_ticks - a.cpu_ticks) /
         static_cast<double>(::sysconf(_SC_CLK_TCK));
}

void print_result(const Result& r, bool as_json) {
  if (as_json) {
    json::object o;
    o["scenario"] = r.scenario;
    for (const auto& kv : r.fields) o[kv.key()] = kv.value();
    std::cout << json::serialize(o) << std::endl;
    return;
  }
  std::cout << "== " << r.scenario << " ==\n";
  for (const auto& kv : r.fields) {
    std::cout << "  " << kv.key();
    for (std::size_t i = kv.key().size(); i < 28; ++i) std::cout << ' ';
    std::cout << human(kv.value()) << '\n';
  }
  std::cout << std::flush;
}

std::uint64_t raise_fd_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
    ::getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur;
}

}  // namespace pa::bench
