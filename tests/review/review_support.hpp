// Helpers for the review library's tests: files, git repositories and history entries.
#pragma once

#include <gtest/gtest.h>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "review/git.hpp"

namespace pa::review::test {

inline void write_file(const std::filesystem::path& path, const std::string& content) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << content;
}

// git in `dir` with the review library's own runner; fails the test on a non-zero exit.
inline std::string git(const std::filesystem::path& dir, std::vector<std::string> args) {
  std::vector<std::string> all = {
      "-c", "user.name=Test",          "-c", "user.email=test@example.com",
      "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"};
  all.insert(all.end(), args.begin(), args.end());
  const auto out = run_git(GitSettings{}, dir.string(), all);
  EXPECT_EQ(out.status, GitOutput::Status::kOk) << "git failed: " << args.front();
  return out.out;
}

// A stored history entry as the server writes it.
inline std::string entry(std::uint64_t seq, const std::string& direction,
                         const boost::json::object& message,
                         const std::string& timestamp = "2026-01-01T00:00:00.000Z") {
  return boost::json::serialize(boost::json::object{
      {"seq", seq}, {"timestamp", timestamp}, {"direction", direction}, {"message", message}});
}

inline boost::json::object tool_use(const std::string& id, const std::string& name,
                                    const boost::json::object& input,
                                    const std::string& session = "s") {
  return boost::json::object{
      {"type", "assistant"},
      {"session_id", session},
      {"message",
       {{"role", "assistant"},
        {"content", boost::json::array{
                        {{"type", "tool_use"}, {"id", id}, {"name", name}, {"input", input}}}}}}};
}

inline boost::json::object tool_result(const std::string& id, bool is_error) {
  return boost::json::object{{"type", "user"},
                             {"session_id", "s"},
                             {"message",
                              {{"role", "user"},
                               {"content", boost::json::array{{{"type", "tool_result"},
                                                               {"tool_use_id", id},
                                                               {"content", "done"},
                                                               {"is_error", is_error}}}}}}};
}

}  // namespace pa::review::test
