#include <gtest/gtest.h>
#include <sys/stat.h>

#include "review/git_changes.hpp"
#include "review/review_support.hpp"
#include "support/server_process.hpp"

namespace pa::review {
namespace {

namespace fs = std::filesystem;
using test::git;
using test::write_file;

const ChangedFile* find(const Changes& changes, const std::string& path) {
  for (const auto& file : changes.files) {
    if (file.path == path) return &file;
  }
  return nullptr;
}

Changes changes_of(const fs::path& dir) {
  auto result = git_changes(GitSettings{}, dir.string());
  EXPECT_TRUE(result.has_value());
  if (!result) return {};
  EXPECT_TRUE(std::holds_alternative<Changes>(*result));
  return std::holds_alternative<Changes>(*result) ? std::get<Changes>(*result) : Changes{};
}

Diff diff_of(const fs::path& dir, const std::string& path = "",
             std::size_t max_bytes = kMaxDiffBytes) {
  auto result = git_diff(GitSettings{}, dir.string(), path, max_bytes);
  EXPECT_TRUE(result.has_value());
  if (!result || !std::holds_alternative<Diff>(*result)) return {};
  return std::get<Diff>(*result);
}

class GitChangesTest : public ::testing::Test {
 protected:
  pa::test::TempDir root{"pa-review-git"};
  fs::path repo = root / "repo";

  void SetUp() override {
    fs::create_directories(repo);
    git(repo, {"init", "-q"});
    write_file(repo / "keep.txt", "one\ntwo\nthree\n");
    write_file(repo / "gone.txt", "bye\n");
    write_file(repo / "old-name.txt", "moved content\nline 2\nline 3\n");
    write_file(repo / "sub" / "inner.txt", "inner\n");
    git(repo, {"add", "-A"});
    git(repo, {"commit", "-q", "-m", "initial"});
  }
};

TEST_F(GitChangesTest, NotARepositoryOrNoGitFallsBack) {
  fs::create_directories(root / "plain");
  EXPECT_FALSE(git_changes(GitSettings{}, (root / "plain").string()).has_value());
  GitSettings missing;
  missing.binary = "/nonexistent/git";
  EXPECT_FALSE(git_changes(missing, repo.string()).has_value());
  EXPECT_FALSE(git_diff(missing, repo.string(), "").has_value());
}

TEST_F(GitChangesTest, AProjectDirectoryReplacedByASymlinkIsNotFollowed) {
  fs::rename(repo, root / "moved");
  fs::create_directory_symlink(root / "moved", repo);
  EXPECT_FALSE(git_changes(GitSettings{}, repo.string()).has_value());
  EXPECT_TRUE(git_changes(GitSettings{}, (root / "moved").string()).has_value());
}

TEST_F(GitChangesTest, ReportsEveryKindOfChangeWithLineCounts) {
  write_file(repo / "keep.txt", "one\n2\nthree\nfour\n");  // modified, unstaged
  fs::remove(repo / "gone.txt");                           // deleted
  write_file(repo / "new-staged.txt", "a\nb\n");           // added (staged)
  git(repo, {"add", "new-staged.txt"});
  git(repo, {"mv", "old-name.txt", "new-name.txt"});        // renamed (staged)
  write_file(repo / "untracked.txt", "x\ny\nz");            // untracked, no final newline
  write_file(repo / "blob.bin", std::string("\0\1\2", 3));  // untracked binary

  const auto changes = changes_of(repo);
  EXPECT_EQ(changes.source, "git");
  EXPECT_FALSE(changes.truncated);
  ASSERT_EQ(changes.files.size(), 6u);
  const auto* keep = find(changes, "keep.txt");
  ASSERT_NE(keep, nullptr);
  EXPECT_EQ(keep->status, "modified");
  EXPECT_FALSE(keep->staged);
  EXPECT_EQ(keep->added, 2u);
  EXPECT_EQ(keep->deleted, 1u);
  const auto* gone = find(changes, "gone.txt");
  ASSERT_NE(gone, nullptr);
  EXPECT_EQ(gone->status, "deleted");
  EXPECT_EQ(gone->deleted, 1u);
  const auto* added = find(changes, "new-staged.txt");
  ASSERT_NE(added, nullptr);
  EXPECT_EQ(added->status, "added");
  EXPECT_TRUE(added->staged);
  EXPECT_EQ(added->added, 2u);
  const auto* renamed = find(changes, "new-name.txt");
  ASSERT_NE(renamed, nullptr);
  EXPECT_EQ(renamed->status, "renamed");
  EXPECT_EQ(renamed->old_path, "old-name.txt");
  EXPECT_EQ(renamed->added, 0u);
  const auto* untracked = find(changes, "untracked.txt");
  ASSERT_NE(untracked, nullptr);
  EXPECT_EQ(untracked->status, "untracked");
  EXPECT_EQ(untracked->added, 3u);
  const auto* blob = find(changes, "blob.bin");
  ASSERT_NE(blob, nullptr);
  EXPECT_TRUE(blob->binary);
  EXPECT_FALSE(blob->added.has_value());
}

TEST_F(GitChangesTest, AProjectInASubdirectorySeesOnlyItsOwnFilesRelativeToItself) {
  write_file(repo / "keep.txt", "changed\n");
  write_file(repo / "sub" / "inner.txt", "inner\nmore\n");
  write_file(repo / "sub" / "fresh.txt", "fresh\n");
  const auto changes = changes_of(repo / "sub");
  ASSERT_EQ(changes.files.size(), 2u);
  EXPECT_NE(find(changes, "inner.txt"), nullptr);
  EXPECT_NE(find(changes, "fresh.txt"), nullptr);
  EXPECT_EQ(find(changes, "inner.txt")->added, 1u);
  const auto diff = diff_of(repo / "sub");
  EXPECT_NE(diff.text.find("a/inner.txt"), std::string::npos) << diff.text;
  EXPECT_NE(diff.text.find("+++ b/fresh.txt"), std::string::npos) << diff.text;
  EXPECT_EQ(diff.text.find("keep.txt"), std::string::npos) << diff.text;
}

TEST_F(GitChangesTest, DiffShowsStagedUnstagedAndUntrackedChanges) {
  write_file(repo / "keep.txt", "one\nTWO\nthree\n");
  write_file(repo / "staged.txt", "staged line\n");
  git(repo, {"add", "staged.txt"});
  write_file(repo / "untracked.txt", "first\nsecond\n");
  const auto diff = diff_of(repo);
  EXPECT_EQ(diff.source, "git");
  EXPECT_FALSE(diff.truncated);
  EXPECT_NE(diff.text.find("-two\n+TWO\n"), std::string::npos) << diff.text;
  EXPECT_NE(diff.text.find("+staged line\n"), std::string::npos) << diff.text;
  EXPECT_NE(
      diff.text.find("--- /dev/null\n+++ b/untracked.txt\n@@ -0,0 +1,2 @@\n+first\n+second\n"),
      std::string::npos)
      << diff.text;
  // One file only.
  const auto one = diff_of(repo, "keep.txt");
  EXPECT_NE(one.text.find("+TWO"), std::string::npos);
  EXPECT_EQ(one.text.find("staged"), std::string::npos);
  // A pattern-like name means only itself.
  EXPECT_EQ(diff_of(repo, "*.txt").text, "");
}

TEST_F(GitChangesTest, DiffIsCappedAtALineEnd) {
  std::string lines;
  for (int i = 0; i < 2000; ++i) lines += "line " + std::to_string(i) + "\n";
  write_file(repo / "keep.txt", lines);
  const auto diff = diff_of(repo, "", 4096);
  EXPECT_TRUE(diff.truncated);
  EXPECT_LE(diff.text.size(), 4096u);
  ASSERT_FALSE(diff.text.empty());
  EXPECT_EQ(diff.text.back(), '\n');
}

TEST_F(GitChangesTest, ARepositoryWithoutCommitsWorks) {
  const auto fresh = root / "fresh";
  fs::create_directories(fresh);
  git(fresh, {"init", "-q"});
  write_file(fresh / "a.txt", "a\n");
  write_file(fresh / "b.txt", "b\n");
  git(fresh, {"add", "a.txt"});
  const auto changes = changes_of(fresh);
  ASSERT_EQ(changes.files.size(), 2u);
  EXPECT_EQ(find(changes, "a.txt")->status, "added");
  EXPECT_EQ(find(changes, "a.txt")->added, 1u);
  EXPECT_EQ(find(changes, "b.txt")->status, "untracked");
  EXPECT_NE(diff_of(fresh).text.find("+a\n"), std::string::npos);
}

// The repository's config may name programs (filters, fsmonitor, external diff, textconv):
// reviewing must run none of them.
TEST_F(GitChangesTest, RunsNoProgramFromTheRepositoryConfig) {
  const auto marker = root / "ran";
  const std::string touch = "touch " + marker.string();
  git(repo, {"config", "filter.evil.clean", touch});
  git(repo, {"config", "filter.evil.smudge", touch});
  git(repo, {"config", "filter.evil.required", "true"});
  git(repo, {"config", "core.fsmonitor", touch});
  git(repo, {"config", "diff.external", touch});
  git(repo, {"config", "diff.evil.textconv", touch});
  git(repo, {"config", "core.pager", touch});
  write_file(repo / ".gitattributes", "* filter=evil diff=evil\n");
  write_file(repo / "keep.txt", "changed\n");
  const auto changes = changes_of(repo);
  EXPECT_NE(find(changes, "keep.txt"), nullptr);
  const auto diff = diff_of(repo);
  EXPECT_NE(diff.text.find("+changed"), std::string::npos) << diff.text;
  EXPECT_FALSE(fs::exists(marker));
}

TEST_F(GitChangesTest, AGitThatHangsIsReportedAsATimeout) {
  // A stand-in for git that never answers.
  const auto slow = root / "slow-git";
  write_file(slow, "#!/bin/sh\nexec sleep 1000\n");
  ::chmod(slow.c_str(), 0755);
  GitSettings settings;
  settings.binary = slow.string();
  settings.timeout = std::chrono::milliseconds(200);
  const auto result = git_changes(settings, repo.string());
  ASSERT_TRUE(result.has_value());
  ASSERT_TRUE(std::holds_alternative<GitProblem>(*result));
  EXPECT_EQ(std::get<GitProblem>(*result).reason, "timeout");
}

TEST(PorcelainParser, ReadsRenamesUnmergedAndPrefixes) {
  using namespace std::string_literals;
  const std::string out =
      "1 .M N... 100644 100644 100644 aaa bbb p/a file.txt\0"s
      "2 R. N... 100644 100644 100644 aaa bbb R100 p/new.txt\0p/old.txt\0"s
      "u UU N... 100644 100644 100644 100644 aaa bbb ccc p/conflict.txt\0"s
      "? p/dir/new file\0"s
      "? elsewhere.txt\0"s
      "! p/ignored\0"s;
  Changes changes;
  parse_porcelain_v2(out, "p/", changes);
  ASSERT_EQ(changes.files.size(), 4u);
  EXPECT_EQ(changes.files[0].path, "a file.txt");
  EXPECT_EQ(changes.files[0].status, "modified");
  EXPECT_EQ(changes.files[1].path, "new.txt");
  EXPECT_EQ(changes.files[1].old_path, "old.txt");
  EXPECT_EQ(changes.files[1].status, "renamed");
  EXPECT_TRUE(changes.files[1].staged);
  EXPECT_EQ(changes.files[2].status, "unmerged");
  EXPECT_EQ(changes.files[2].path, "conflict.txt");
  EXPECT_EQ(changes.files[3].path, "dir/new file");
  EXPECT_EQ(changes.files[3].status, "untracked");
  parse_numstat("3\t1\ta file.txt\0-\t-\tdir/new file\0"s, changes);
  EXPECT_EQ(changes.files[0].added, 3u);
  EXPECT_EQ(changes.files[0].deleted, 1u);
  EXPECT_TRUE(changes.files[3].binary);
}

TEST(PorcelainParser, ListsAtMostTheCapAndSaysSo) {
  std::string out;
  for (std::size_t i = 0; i < kMaxChangedFiles + 3; ++i) {
    out += "? f" + std::to_string(i);
    out += '\0';
  }
  Changes changes;
  parse_porcelain_v2(out, "", changes);
  EXPECT_EQ(changes.files.size(), kMaxChangedFiles);
  EXPECT_TRUE(changes.truncated);
}

}  // namespace
}  // namespace pa::review
