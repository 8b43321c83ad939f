#include "ops/health.hpp"

#include <sys/statvfs.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "agent/child_process.hpp"
#include "version.hpp"

namespace pa::ops {

std::string server_version() {
  return pa::kVersion;
}

ResourceSampler::ResourceSampler(std::filesystem::path data_dir)
    : data_dir_(std::move(data_dir)), last_wall_(std::chrono::steady_clock::now()) {}

namespace {
double process_cpu_seconds() {
  std::ifstream in("/proc/self/stat");
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Fields after the command name (which may contain spaces) start after the last ')'.
  const auto close = content.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(content.substr(close + 2));
  std::string field;
  unsigned long utime = 0;
  unsigned long stime = 0;
  for (int index = 3; fields >> field; ++index) {
    if (index == 14) utime = std::stoul(field);
    if (index == 15) {
      stime = std::stoul(field);
      break;
    }
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

void read_status(std::int64_t& rss_mb, unsigned& threads) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      rss_mb = std::llround(std::stod(line.substr(6)) / 1024.0);  // kB
    } else if (line.rfind("Threads:", 0) == 0) {
      threads = static_cast<unsigned>(std::stoul(line.substr(8)));
    }
  }
}

// Rounds to `1 / per_unit` (10 → one decimal). Dividing by a whole number, rather than
// multiplying by 0.1, gives the double nearest the decimal (14.7, not 14.700000000000001).
double round_to(double value, double per_unit) {
  return std::round(value * per_unit) / per_unit;
}
}  // namespace

Resources ResourceSampler::sample() {
  std::lock_guard lock(mutex_);
  const auto now = std::chrono::steady_clock::now();
  if (sampled_ && now - last_wall_ < kMinInterval) return last_;
  Resources r;
  read_status(r.memory_mb, r.threads);
  struct statvfs vfs {};
  if (::statvfs(data_dir_.c_str(), &vfs) == 0 ||
      ::statvfs(data_dir_.parent_path().empty() ? "." : data_dir_.parent_path().c_str(), &vfs) ==
          0) {
    r.disk_free_gb = round_to(static_cast<double>(vfs.f_bavail) *
                                  static_cast<double>(vfs.f_frsize) / (1024.0 * 1024.0 * 1024.0),
                              10);
  }
  const double cpu = process_cpu_seconds();
  const double wall = std::chrono::duration<double>(now - last_wall_).count();
  if (wall > 0) r.cpu_percent = round_to(100.0 * (cpu - last_cpu_seconds_) / wall, 10);
  last_wall_ = now;
  last_cpu_seconds_ = cpu;
  sampled_ = true;
  last_ = r;
  return r;
}

ClaudeProbe::ClaudeProbe(std::string binary, std::vector<std::string> env)
    : binary_(std::move(binary)), env_(std::move(env)) {}

void ClaudeProbe::stop() {
  std::unique_lock lock(run_mutex_);
  stopped_ = true;
  run_cv_.wait(lock, [&] { return !running_; });
}

void ClaudeProbe::refresh() {
  {
    std::lock_guard lock(run_mutex_);
    if (stopped_) return;
    running_ = true;
  }
  struct Done {
    ClaudeProbe& probe;
    ~Done() {
      {
        std::lock_guard lock(probe.run_mutex_);
        probe.running_ = false;
      }
      probe.run_cv_.notify_all();
    }
  } done{*this};
  ClaudeStatus fresh;
  agent::SpawnSpec spec;
  spec.binary = binary_;
  spec.args = {"--version"};
  spec.env = env_;
  if (spec.env.empty()) {
    if (const char* path = std::getenv("PATH")) spec.env.push_back(std::string("PATH=") + path);
    if (const char* home = std::getenv("HOME")) spec.env.push_back(std::string("HOME=") + home);
  }
  spec.env.push_back("NO_COLOR=1");
  spec.cwd = "/";
  const auto result = agent::run_capture(spec, std::chrono::seconds(15));
  if (result.ec) {
    fresh.error =
        result.ec == std::errc::no_such_file_or_directory
            ? "'" + binary_ + "' was not found; install the Claude CLI or set claude.binary"
            : "'" + binary_ + " --version' failed: " + result.ec.message();
  } else if (result.status.signaled || result.status.code != 0) {
    fresh.error = "'" + binary_ + " --version' exited with " +
                  (result.status.signaled ? "signal " + std::to_string(result.status.signal)
                                          : "code " + std::to_string(result.status.code));
  } else {
    std::string out = result.out.substr(0, result.out.find('\n'));
    fresh.available = true;
    fresh.version = out.substr(0, out.find(' '));
  }
  std::lock_guard lock(mutex_);
  const bool changed = !probed_ || fresh.available != status_.available ||
                       fresh.version != status_.version || fresh.error != status_.error;
  if (changed) {
    if (fresh.available) {
      spdlog::info("claude CLI available: version {}", fresh.version);
    } else {
      spdlog::warn("claude CLI unavailable: {}", fresh.error);
    }
  }
  status_ = std::move(fresh);
  probed_ = true;
}

ClaudeStatus ClaudeProbe::status() const {
  std::lock_guard lock(mutex_);
  if (!probed_) return ClaudeStatus{false, "", "not checked yet"};
  return status_;
}

}  // namespace pa::ops
