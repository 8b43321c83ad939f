// A thin RAII layer over the SQLite C API for the search index: a connection and prepared
// statements. Errors are returned as text (sqlite3_errmsg), never thrown; the callers log them
// and mark the index stale, since the index is derived data.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace pa::search {

class Statement;

class Database {
 public:
  // Opens (read-write, creating it) or fails with `error` set.
  static std::unique_ptr<Database> open(const std::filesystem::path& file, std::string& error);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs SQL without results (several statements allowed). False with `error` set on failure.
  bool exec(std::string_view sql, std::string& error);
  std::unique_ptr<Statement> prepare(std::string_view sql, std::string& error);
  std::string last_error() const;
  // Statements running past `deadline` stop with SQLITE_INTERRUPT (for queries from clients);
  // nullopt: no limit.
  void set_deadline(std::optional<std::chrono::steady_clock::time_point> deadline);
  sqlite3* handle() { return db_; }

 private:
  explicit Database(sqlite3* db) : db_(db) {}
  sqlite3* db_ = nullptr;
  std::chrono::steady_clock::time_point deadline_{};
};

class Statement {
 public:
  explicit Statement(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Binds are 1-based, as in SQL (?1, ?2, ...).
  void bind(int index, std::int64_t value);
  void bind(int index, std::string_view text);
  // One step: true while a row is available; false when done or on an error (see failed()).
  bool step();
  bool failed() const { return failed_; }
  int error_code() const { return code_; }
  // Resets for the next execution (keeps nothing bound from before).
  void reset();
  std::int64_t int64(int column) const;
  std::string_view text(int column) const;

 private:
  sqlite3_stmt* stmt_ = nullptr;
  bool failed_ = false;
  int code_ = 0;
};

}  // namespace pa::search
