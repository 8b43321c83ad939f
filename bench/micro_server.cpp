// Broadcast fan-out and the whole CLI line path (inspect, history append, serialize, enqueue to
// every subscriber), on a real Project whose history lives in a temp directory.
#include <benchmark/benchmark.h>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <deque>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "agent/run_options.hpp"
#include "history/message_log.hpp"
#include "ops/metrics.hpp"
#include "ops/storage_problems.hpp"
#include "projects/project_store.hpp"
#include "protocol/clock.hpp"
#include "server/connection.hpp"
#include "server/project.hpp"

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;

// Keeps what it is sent, as a WsSession queues it (no network).
class QueueConnection : public pa::server::Connection {
 public:
  explicit QueueConnection(std::uint64_t id) : id_(id) {}
  std::uint64_t id() const override { return id_; }
  const std::string& remote_address() const override { return remote_; }
  void send(pa::protocol::SharedText text) override {
    queue_.push_back(std::move(text));
    if (queue_.size() > 64) queue_.clear();
  }
  void close(std::uint16_t, std::string) override {}
  void close_after_queued(std::uint16_t, std::string) override {}

 private:
  std::uint64_t id_;
  std::string remote_ = "127.0.0.1";
  std::deque<pa::protocol::SharedText> queue_;
};

// Like WsSession::send: the text hops onto the connection's own strand (an I/O thread), where it
// is queued. The io_context is run by the benchmark thread after each broadcast.
class StrandConnection : public pa::server::Connection {
 public:
  StrandConnection(std::uint64_t id, asio::io_context& io) : id_(id), strand_(io.get_executor()) {}
  std::uint64_t id() const override { return id_; }
  const std::string& remote_address() const override { return remote_; }
  void send(pa::protocol::SharedText text) override {
    asio::dispatch(strand_, [this, text = std::move(text)]() mutable {
      queue_.push_back(std::move(text));
      if (queue_.size() > 64) queue_.clear();
    });
  }
  void close(std::uint16_t, std::string) override {}
  void close_after_queued(std::uint16_t, std::string) override {}

 private:
  std::uint64_t id_;
  std::string remote_ = "127.0.0.1";
  asio::strand<asio::io_context::executor_type> strand_;
  std::deque<pa::protocol::SharedText> queue_;
};

struct Fixture {
  explicit Fixture(bool with_log) {
    dir = fs::temp_directory_path() /
          ("pa-micro-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::create_directories(dir);
    store = std::make_unique<pa::projects::ProjectStore>(dir);
    pa::projects::ProjectInfo info;
    info.id = "550e8400-e29b-41d4-a716-446655440000";
    info.path = dir.string();
    std::unique_ptr<pa::history::MessageLog> log;
    if (with_log) {
      std::vector<std::string> warnings;
      std::error_code ec;
      pa::history::Options options;
      options.fsync_interval = std::chrono::milliseconds(1000);
      log = pa::history::MessageLog::open(store->logs_dir(info.id), options, warnings, ec);
    }
    project = std::make_shared<pa::server::Project>(
        info, asio::make_strand(pool.get_executor()), std::move(log), *store,
        std::chrono::milliseconds(1000), history_bytes, storage_problems, storage_errors);
  }
  ~Fixture() {
    project.reset();
    pool.join();
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  // Project members run on its strand, as in the server (the fsync timer shares that strand).
  template <class F>
  void on_strand(F&& f) {
    std::promise<void> done;
    asio::post(project->strand(), [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }

  static inline int counter = 0;
  fs::path dir;
  asio::thread_pool pool{1};
  pa::ops::Counter history_bytes;
  pa::ops::StorageProblems storage_problems;
  pa::ops::Counter storage_errors;
  std::unique_ptr<pa::projects::ProjectStore> store;
  std::shared_ptr<pa::server::Project> project;
};

std::string assistant_line(std::size_t bytes) {
  std::string text = "#1 t=1764000000000000 ";
  text.append(bytes > text.size() ? bytes - text.size() : 0, 'x');
  return R"({"type":"assistant","message":{"model":"claude-sonnet-4-5-20250929","id":"msg_01ABCDEF","type":"message","role":"assistant","content":[{"type":"text","text":")" +
         text +
         R"("}],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":1}},"parent_tool_use_id":null,"session_id":"9f1c2d3e-4b5a-4c6d-8e7f-0123456789ab","uuid":"0b1c2d3e-4f5a-4b6c-8d7e-9f0123456789"})";
}

// One serialized message handed to N subscribers' queues (same thread).
void BM_BroadcastEnqueue(benchmark::State& state) {
  Fixture f(false);
  const auto n = static_cast<std::uint64_t>(state.range(0));
  std::vector<std::shared_ptr<QueueConnection>> conns;
  for (std::uint64_t i = 0; i < n; ++i) conns.push_back(std::make_shared<QueueConnection>(i + 1));
  auto text = std::make_shared<const std::string>(assistant_line(300));
  f.on_strand([&] {
    for (auto& c : conns) f.project->subscribe(c);
    for (auto _ : state) f.project->send_to_subscribers(text, nullptr);
  });
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}
BENCHMARK(BM_BroadcastEnqueue)->Arg(100)->Arg(1000);

// As above, but each subscriber queues on its own strand like WsSession (a handler allocation and
// a post per subscriber), including running those handlers.
void BM_BroadcastEnqueueStrands(benchmark::State& state) {
  Fixture f(false);
  const auto n = static_cast<std::uint64_t>(state.range(0));
  asio::io_context io(1);
  std::vector<std::shared_ptr<StrandConnection>> conns;
  for (std::uint64_t i = 0; i < n; ++i)
    conns.push_back(std::make_shared<StrandConnection>(i + 1, io));
  auto text = std::make_shared<const std::string>(assistant_line(300));
  f.on_strand([&] {
    for (auto& c : conns) f.project->subscribe(c);
    for (auto _ : state) {
      f.project->send_to_subscribers(text, nullptr);
      io.restart();
      io.run();
    }
  });
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}
BENCHMARK(BM_BroadcastEnqueueStrands)->Arg(100)->Arg(1000);

// What the server does for one CLI stdout line: inspect it, append it to history (no fsync on
// this path), serialize the agent_message and hand it to every subscriber.
void BM_CliLinePath(benchmark::State& state) {
  Fixture f(true);
  const auto n = static_cast<std::uint64_t>(state.range(0));
  std::vector<std::shared_ptr<QueueConnection>> conns;
  for (std::uint64_t i = 0; i < n; ++i) conns.push_back(std::make_shared<QueueConnection>(i + 1));
  const std::string line = assistant_line(300);
  f.on_strand([&] {
    for (auto& c : conns) f.project->subscribe(c);
    for (auto _ : state) {
      auto parsed = pa::agent::inspect_cli_line(line);
      benchmark::DoNotOptimize(parsed);
      f.project->publish_raw(pa::history::Direction::kClaude, line, "agent_message", line);
    }
  });
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_CliLinePath)->Arg(0)->Arg(100)->Arg(1000);

}  // namespace

BENCHMARK_MAIN();
