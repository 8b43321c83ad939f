#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json/array.hpp>

#include "review/file_view.hpp"
#include "review/review_support.hpp"
#include "review/safe_open.hpp"
#include "support/server_process.hpp"

namespace pa::review {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using test::write_file;

class FileViewTest : public ::testing::Test {
 protected:
  pa::test::TempDir root{"pa-review"};
  fs::path project = root / "project";
  fs::path outside = root / "outside";
  projects::PathPolicy policy;

  void SetUp() override {
    write_file(project / "src" / "main.cpp", "int main() {}\n");
    write_file(outside / "secret.txt", "secret\n");
  }

  std::variant<json::object, ViewError> read(const std::string& path, std::uint64_t offset = 0,
                                             std::uint64_t length = kDefaultReadBytes) {
    return read_file(project.string(), policy, ReadRequest{path, offset, length});
  }
  static std::string reason(const std::variant<json::object, ViewError>& r) {
    const auto* error = std::get_if<ViewError>(&r);
    return error ? error->reason : "ok";
  }
};

TEST_F(FileViewTest, ReadsATextFile) {
  const auto result = read("src/main.cpp");
  ASSERT_EQ(reason(result), "ok");
  const auto& data = std::get<json::object>(result);
  EXPECT_EQ(data.at("content"), "int main() {}\n");
  EXPECT_EQ(data.at("size").as_uint64(), 14u);
  EXPECT_EQ(data.at("offset").as_uint64(), 0u);
  EXPECT_EQ(data.at("length").as_uint64(), 14u);
  EXPECT_EQ(data.at("eof"), true);
  EXPECT_EQ(data.at("truncated"), false);
  EXPECT_EQ(data.at("binary"), false);
}

TEST_F(FileViewTest, RefusesDotDotAbsoluteAndNul) {
  EXPECT_EQ(reason(read("../outside/secret.txt")), "invalid");
  EXPECT_EQ(reason(read("src/../../outside/secret.txt")), "invalid");
  EXPECT_EQ(reason(read(outside.string() + "/secret.txt")), "invalid");
  EXPECT_EQ(reason(read(std::string("src/main.cpp\0x", 14))), "invalid");
  EXPECT_TRUE(relative_path_problem("a/..").has_value());
  EXPECT_FALSE(relative_path_problem("a/..b/c").has_value());  // a name, not a component
  EXPECT_FALSE(relative_path_problem("").has_value());
}

TEST_F(FileViewTest, RefusesASymlinkOutOfTheProject) {
  fs::create_symlink(outside / "secret.txt", project / "link-abs.txt");
  fs::create_symlink("../outside/secret.txt", project / "link-rel.txt");
  fs::create_directory_symlink(outside, project / "linked-dir");
  for (const auto* path : {"link-abs.txt", "link-rel.txt", "linked-dir/secret.txt"}) {
    EXPECT_EQ(reason(read(path)), "outside_project") << path;
    auto walked = open_beneath(project.string(), path, 0, Resolver::kWalk);
    EXPECT_FALSE(walked.fd.valid()) << path;
    EXPECT_EQ(walked.reason, "symlink") << path;
  }
  EXPECT_EQ(reason(list_directory(project.string(), policy, "linked-dir")), "outside_project");
}

TEST_F(FileViewTest, ASymlinkInsideTheProjectIsFollowed) {
  fs::create_symlink("src/main.cpp", project / "main-link.cpp");
  const auto result = read("main-link.cpp");
  ASSERT_EQ(reason(result), "ok");
  EXPECT_EQ(std::get<json::object>(result).at("content"), "int main() {}\n");
  // The fallback walk refuses every symlink rather than resolve one itself.
  const auto walked = open_beneath(project.string(), "main-link.cpp", 0, Resolver::kWalk);
  EXPECT_FALSE(walked.fd.valid());
  EXPECT_EQ(walked.reason, "symlink");
  EXPECT_TRUE(open_beneath(project.string(), "src/main.cpp", 0, Resolver::kWalk).fd.valid());
}

TEST_F(FileViewTest, CapsTheSizeAndReadsOnFromAnOffset) {
  const std::string big(kMaxReadBytes + 1000, 'x');
  write_file(project / "big.txt", big);
  const auto first = read("big.txt", 0, UINT64_MAX);
  ASSERT_EQ(reason(first), "ok");
  const auto& data = std::get<json::object>(first);
  EXPECT_EQ(data.at("length").as_uint64(), kMaxReadBytes);
  EXPECT_EQ(data.at("content").as_string().size(), kMaxReadBytes);
  EXPECT_EQ(data.at("truncated"), true);
  EXPECT_EQ(data.at("eof"), false);
  EXPECT_EQ(data.at("size").as_uint64(), big.size());
  const auto rest = std::get<json::object>(read("big.txt", kMaxReadBytes, UINT64_MAX));
  EXPECT_EQ(rest.at("length").as_uint64(), 1000u);
  EXPECT_EQ(rest.at("eof"), true);
  const auto past = std::get<json::object>(read("big.txt", big.size() + 5));
  EXPECT_EQ(past.at("length").as_uint64(), 0u);
  EXPECT_EQ(past.at("offset").as_uint64(), big.size());
}

TEST_F(FileViewTest, DetectsBinaryFiles) {
  write_file(project / "nul.bin", std::string("ab\0cd", 5));
  write_file(project / "latin1.txt", "caf\xe9\n");
  for (const auto* path : {"nul.bin", "latin1.txt"}) {
    const auto data = std::get<json::object>(read(path));
    EXPECT_EQ(data.at("binary"), true) << path;
    EXPECT_FALSE(data.contains("content")) << path;
  }
}

TEST_F(FileViewTest, AWindowEndingInsideACharacterStopsBeforeIt) {
  write_file(project / "utf8.txt", "a\xc3\xa9z");  // "aéz"
  const auto data = std::get<json::object>(read("utf8.txt", 0, 2));
  EXPECT_EQ(data.at("binary"), false);
  EXPECT_EQ(data.at("content"), "a");
  EXPECT_EQ(data.at("length").as_uint64(), 1u);
  EXPECT_EQ(data.at("eof"), false);
}

TEST_F(FileViewTest, ExplainsMissingFilesAndDirectories) {
  EXPECT_EQ(reason(read("nope.txt")), "not_found");
  EXPECT_EQ(reason(read("src")), "not_a_file");
  EXPECT_EQ(reason(list_directory(project.string(), policy, "src/main.cpp")), "not_a_directory");
}

TEST_F(FileViewTest, AProjectDirectoryReplacedByASymlinkIsNotFollowed) {
  const auto moved = root / "moved";
  fs::rename(project, moved);
  fs::create_directory_symlink(outside, project);
  EXPECT_EQ(reason(read("secret.txt")), "project_directory");
  EXPECT_EQ(reason(list_directory(project.string(), policy, "")), "project_directory");
}

TEST_F(FileViewTest, ThePathPolicyAppliesInsideTheProject) {
  write_file(project / "data" / "token", "t\n");
  projects::PathPolicy::Settings settings;
  settings.private_dirs = {(project / "data").string()};
  const auto strict = projects::PathPolicy::make(settings);
  const auto result = read_file(project.string(), strict, ReadRequest{"data/token", 0, 100});
  EXPECT_EQ(reason(result), "refused");
  EXPECT_EQ(reason(read_file(project.string(), strict, ReadRequest{"src/main.cpp", 0, 100})), "ok");
}

TEST_F(FileViewTest, ListsADirectory) {
  write_file(project / "b.txt", "bb");
  fs::create_symlink("b.txt", project / "a-link");
  const auto result = list_directory(project.string(), policy, "");
  ASSERT_EQ(reason(result), "ok");
  const auto& entries = std::get<json::object>(result).at("entries").as_array();
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].at("name"), "src");  // directories first
  EXPECT_EQ(entries[0].at("kind"), "dir");
  EXPECT_EQ(entries[1].at("name"), "a-link");
  EXPECT_EQ(entries[1].at("kind"), "symlink");
  EXPECT_EQ(entries[2].at("name"), "b.txt");
  EXPECT_EQ(entries[2].at("kind"), "file");
  EXPECT_EQ(entries[2].at("size").as_uint64(), 2u);
  EXPECT_TRUE(entries[2].at("mtime").is_string());
  EXPECT_EQ(std::get<json::object>(result).at("truncated"), false);
}

TEST_F(FileViewTest, CapsTheEntryCount) {
  for (std::size_t i = 0; i < kMaxListEntries + 5; ++i) {
    write_file(project / "many" / ("f" + std::to_string(i)), "");
  }
  const auto data = std::get<json::object>(list_directory(project.string(), policy, "many"));
  EXPECT_EQ(data.at("entries").as_array().size(), kMaxListEntries);
  EXPECT_EQ(data.at("truncated"), true);
}

}  // namespace
}  // namespace pa::review
