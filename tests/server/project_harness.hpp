// Real Projects for unit tests: a temp data directory with its ProjectStore, a history log per
// project, the counters a Project reports to, and a pool for their strands. Every project it made
// is removed from disk (on its strand) and the directory deleted when it goes.
#pragma once

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/server_process.hpp"

#include "server/project.hpp"

namespace pa::server::test {

class ProjectHarness {
 public:
  explicit ProjectHarness(std::size_t threads = 1)
      : pool_(threads), store_(std::make_unique<projects::ProjectStore>(dir_.path())) {}
  // The pool is joined before dir_ (declared first) removes the directory.
  ~ProjectHarness() {
    for (auto& project : made_) on_strand(*project, [&] { project->remove_from_disk(); });
    made_.clear();
    pool_.join();
  }
  ProjectHarness(const ProjectHarness&) = delete;
  ProjectHarness& operator=(const ProjectHarness&) = delete;

  // A new project (saved, with an empty history) whose directory is `path` (not created).
  std::shared_ptr<Project> make_project(const std::string& path = "/nowhere") {
    projects::ProjectInfo info;
    info.id = projects::random_uuid();
    info.path = path;
    info.created_at = info.last_active = "2024-01-01T00:00:00.000Z";
    EXPECT_FALSE(store_->save(info));
    std::vector<std::string> warnings;
    std::error_code ec;
    auto log = history::MessageLog::open(store_->logs_dir(info.id), {}, warnings, ec);
    EXPECT_FALSE(ec) << ec.message();
    auto project = std::make_shared<Project>(
        info, boost::asio::make_strand(pool_.get_executor()), std::move(log), *store_,
        std::chrono::milliseconds(1000), history_bytes, problems, storage_errors);
    made_.push_back(project);
    return project;
  }

  // Runs `fn` on the project's strand and waits for it (10 s at most).
  template <class Fn>
  auto on_strand(Project& project, Fn fn) -> decltype(fn()) {
    std::packaged_task<decltype(fn())()> task(std::move(fn));
    auto result = task.get_future();
    boost::asio::post(project.strand(), [&task] { task(); });
    EXPECT_EQ(result.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    return result.get();
  }

  const projects::ProjectStore& store() const { return *store_; }
  const std::filesystem::path& dir() const { return dir_.path(); }

  ops::Counter history_bytes;
  ops::Counter storage_errors;
  ops::StorageProblems problems{std::chrono::seconds(5)};

 private:
  pa::test::TempDir dir_{"pa-project-test"};
  boost::asio::thread_pool pool_;
  std::unique_ptr<projects::ProjectStore> store_;
  std::vector<std::shared_ptr<Project>> made_;
};

}  // namespace pa::server::test
