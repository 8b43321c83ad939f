#include "search/index_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

namespace pa::search {

namespace {

constexpr int kSchemaVersion = 1;
constexpr int kIdShift = 20;  // up to 2^20 entries per millisecond
// Times are clamped below 2^43 ms (year 2248) so that ids stay within int64.
constexpr std::int64_t kMaxTimeMs = (std::int64_t{1} << 43) - 1;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS projects(
  pk INTEGER PRIMARY KEY, project_id TEXT NOT NULL UNIQUE, indexed_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS docs(
  id INTEGER PRIMARY KEY, pk INTEGER NOT NULL, seq INTEGER NOT NULL,
  project TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS docs_by_project ON docs(pk);
-- prefix='3': the words' first three letters are indexed too, so that "abc*" (the shortest
-- prefix query allowed) reads one list instead of merging every word that begins so.
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(
  body, project, content='docs', content_rowid='id', tokenize='unicode61 remove_diacritics 2',
  prefix='3');
)sql";

// The project column holds one word per project ("p17"), so "project : p17" filters by index.
std::string project_token(std::int64_t key) {
  return "p" + std::to_string(key);
}

bool schema_version_ok(Database& db) {
  std::string error;
  auto stmt = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'", error);
  if (!stmt || !stmt->step()) return false;
  return stmt->text(0) == std::to_string(kSchemaVersion);
}

// Created private before SQLite opens it (its -wal and -shm files take the file's mode).
bool create_private(const std::filesystem::path& file, std::string& error) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = "cannot create " + file.string() + ": " +
            std::error_code(errno, std::generic_category()).message();
    return false;
  }
  ::close(fd);
  return true;
}

void remove_files(const std::filesystem::path& file) {
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"})
    std::filesystem::remove(file.string() + suffix, ec);
}

std::unique_ptr<Database> open_with_schema(const std::filesystem::path& file, std::string& error) {
  if (!create_private(file, error)) return nullptr;
  auto db = Database::open(file, error);
  if (!db) return nullptr;
  if (!db->exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", error)) return nullptr;
  // An empty file gets the schema; one with tables must be ours, at this version.
  std::string probe_error;
  auto count = db->prepare("SELECT count(*) FROM sqlite_master", probe_error);
  if (!count || !count->step()) {
    error = probe_error.empty() ? db->last_error() : probe_error;
    return nullptr;
  }
  if (count->int64(0) == 0) {
    if (!db->exec(kSchema, error)) return nullptr;
    if (!db->exec(
            "INSERT INTO meta VALUES('schema_version', '" + std::to_string(kSchemaVersion) + "')",
            error))
      return nullptr;
    return db;
  }
  count.reset();
  if (!schema_version_ok(*db)) {
    error = "not a search index of schema version " + std::to_string(kSchemaVersion);
    return nullptr;
  }
  return db;
}

}  // namespace

std::int64_t first_id_of_millisecond(std::int64_t time_ms) {
  return std::clamp<std::int64_t>(time_ms, 0, kMaxTimeMs) << kIdShift;
}

std::int64_t millisecond_of_id(std::int64_t id) {
  return id >> kIdShift;
}

std::unique_ptr<IndexFile> IndexFile::open_writer(const std::filesystem::path& file,
                                                  bool& recreated, std::string& error) {
  recreated = false;
  std::error_code ec;
  std::filesystem::create_directories(file.parent_path(), ec);
  std::filesystem::permissions(file.parent_path(), std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::replace, ec);
  if (auto db = open_with_schema(file, error))
    return std::unique_ptr<IndexFile>(new IndexFile(std::move(db)));
  // Damaged, foreign or of another version: the logs rebuild it.
  recreated = true;
  remove_files(file);
  std::string second_error;
  if (auto db = open_with_schema(file, second_error)) {
    return std::unique_ptr<IndexFile>(new IndexFile(std::move(db)));
  }
  error = second_error;
  return nullptr;
}

std::unique_ptr<IndexFile> IndexFile::open_reader(const std::filesystem::path& file,
                                                  std::string& error) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) {
    error = "the index " + file.string() + " does not exist yet";
    return nullptr;
  }
  auto db = Database::open(file, error);
  if (!db) return nullptr;
  if (!schema_version_ok(*db)) {
    error = "the index " + file.string() + " is not ready";
    return nullptr;
  }
  return std::unique_ptr<IndexFile>(new IndexFile(std::move(db)));
}

IndexFile::Lease IndexFile::statement(std::unique_ptr<Statement>& slot, const char* sql,
                                      std::string& error) {
  if (!slot) slot = db_->prepare(sql, error);
  return Lease(slot.get());
}

std::optional<std::map<std::string, std::uint64_t>> IndexFile::watermarks(std::string& error) {
  auto stmt = db_->prepare("SELECT project_id, indexed_seq, pk FROM projects", error);
  if (!stmt) return std::nullopt;
  std::map<std::string, std::uint64_t> marks;
  while (stmt->step()) {
    const std::string id(stmt->text(0));
    marks[id] = static_cast<std::uint64_t>(stmt->int64(1));
    keys_[id] = stmt->int64(2);
  }
  if (stmt->failed()) {
    error = db_->last_error();
    return std::nullopt;
  }
  return marks;
}

bool IndexFile::begin(std::string& error) {
  return db_->exec("BEGIN IMMEDIATE", error);
}

bool IndexFile::commit(std::string& error) {
  return db_->exec("COMMIT", error);
}

void IndexFile::rollback() {
  std::string ignored;
  db_->exec("ROLLBACK", ignored);
  keys_.clear();  // keys created in the transaction are gone
}

std::optional<std::int64_t> IndexFile::project_key(const std::string& project_id, bool create,
                                                   std::string& error) {
  if (const auto it = keys_.find(project_id); it != keys_.end()) return it->second;
  auto find = statement(find_key_, "SELECT pk FROM projects WHERE project_id = ?1", error);
  if (!find) return std::nullopt;
  find->bind(1, project_id);
  if (find->step()) return keys_[project_id] = find->int64(0);
  if (find->failed() || !create) {
    if (find->failed()) error = db_->last_error();
    return std::nullopt;
  }
  auto insert =
      statement(insert_key_,
                "INSERT INTO projects(project_id, indexed_seq) VALUES(?1, 0) RETURNING pk", error);
  if (!insert) return std::nullopt;
  insert->bind(1, project_id);
  if (!insert->step()) {
    error = db_->last_error();
    return std::nullopt;
  }
  const std::int64_t key = insert->int64(0);
  insert->step();  // finishes the statement
  return keys_[project_id] = key;
}

bool IndexFile::add(const IndexedEntry& entry, std::string& error) {
  if (entry.text.empty()) return true;
  const auto key = project_key(entry.project_id, true, error);
  if (!key) return false;
  // The next free id in the entry's millisecond.
  const std::int64_t first = first_id_of_millisecond(entry.time_ms);
  auto last = statement(last_id_, "SELECT max(id) FROM docs WHERE id >= ?1 AND id < ?2", error);
  if (!last) return false;
  last->bind(1, first);
  last->bind(2, first + (std::int64_t{1} << kIdShift));
  std::int64_t id = first;
  if (last->step() && last->text(0).size() > 0) id = last->int64(0) + 1;
  if (last->failed()) {
    error = db_->last_error();
    return false;
  }
  if (id >= first + (std::int64_t{1} << kIdShift)) return true;  // 2^20 in one ms: not indexed
  const std::string token = project_token(*key);
  auto doc =
      statement(insert_doc_,
                "INSERT INTO docs(id, pk, seq, project, body) VALUES(?1, ?2, ?3, ?4, ?5)", error);
  if (!doc) return false;
  doc->bind(1, id);
  doc->bind(2, *key);
  doc->bind(3, static_cast<std::int64_t>(entry.seq));
  doc->bind(4, token);
  doc->bind(5, entry.text);
  doc->step();
  if (doc->failed()) {
    error = db_->last_error();
    return false;
  }
  auto fts =
      statement(insert_fts_, "INSERT INTO fts(rowid, body, project) VALUES(?1, ?2, ?3)", error);
  if (!fts) return false;
  fts->bind(1, id);
  fts->bind(2, entry.text);
  fts->bind(3, token);
  fts->step();
  if (fts->failed()) {
    error = db_->last_error();
    return false;
  }
  return true;
}

bool IndexFile::set_watermark(const std::string& project_id, std::uint64_t seq,
                              std::string& error) {
  const auto key = project_key(project_id, true, error);
  if (!key) return false;
  auto mark = statement(set_mark_, "UPDATE projects SET indexed_seq = ?1 WHERE pk = ?2", error);
  if (!mark) return false;
  mark->bind(1, static_cast<std::int64_t>(seq));
  mark->bind(2, *key);
  mark->step();
  if (mark->failed()) {
    error = db_->last_error();
    return false;
  }
  return true;
}

bool IndexFile::remove_project(const std::string& project_id, std::string& error) {
  const auto key = project_key(project_id, false, error);
  if (!key) return error.empty();  // nothing indexed
  const std::string k = std::to_string(*key);
  // External content: FTS5 is told each row's old values to delete its words.
  const bool ok = db_->exec(
      "INSERT INTO fts(fts, rowid, body, project) SELECT 'delete', id, body, project FROM docs "
      "WHERE pk = " +
          k + "; DELETE FROM docs WHERE pk = " + k + "; DELETE FROM projects WHERE pk = " + k + ";",
      error);
  if (ok) keys_.erase(project_id);
  return ok;
}

bool IndexFile::optimize(std::string& error) {
  return db_->exec("INSERT INTO fts(fts) VALUES('optimize')", error);
}

SearchPage IndexFile::search(const SearchRequest& request) {
  SearchPage page;
  std::string expression = request.fts_expression;
  if (request.project_id) {
    std::string error;
    const auto key = project_key(*request.project_id, false, error);
    keys_.clear();  // a reader must not trust keys across queries (a project may be re-added)
    if (!key) {
      page.error = error;
      return page;  // nothing of that project is indexed
    }
    expression = "project : " + project_token(*key) + " AND " + expression;
  }
  db_->set_deadline(std::chrono::steady_clock::now() + request.time_limit);
  auto query = statement(search_,
                         "SELECT rowid, snippet(fts, 0, char(1), char(2), '…', 24) FROM fts "
                         "WHERE fts MATCH ?1 AND rowid < ?2 ORDER BY rowid DESC LIMIT ?3",
                         page.error);
  auto info = statement(hit_info_,
                        "SELECT p.project_id, d.seq FROM docs d JOIN projects p ON p.pk = d.pk "
                        "WHERE d.id = ?1",
                        page.error);
  if (query && info) {
    query->bind(1, expression);
    query->bind(2, request.before.value_or(INT64_MAX));
    query->bind(3, static_cast<std::int64_t>(request.limit + 1));
    while (query->step()) {
      if (page.hits.size() == request.limit) {
        page.has_more = true;
        break;
      }
      SearchHit hit;
      hit.cursor = query->int64(0);
      hit.time_ms = millisecond_of_id(hit.cursor);
      hit.marked_snippet = std::string(query->text(1));
      info->reset();
      info->bind(1, hit.cursor);
      if (!info->step()) continue;
      hit.project_id = std::string(info->text(0));
      hit.seq = static_cast<std::uint64_t>(info->int64(1));
      page.hits.push_back(std::move(hit));
    }
    if (query->failed()) {
      page.timed_out = query->error_code() == 9;  // SQLITE_INTERRUPT
      page.error = db_->last_error();
      page.hits.clear();
    }
    query->reset();
  }
  db_->set_deadline(std::nullopt);
  return page;
}

}  // namespace pa::search
