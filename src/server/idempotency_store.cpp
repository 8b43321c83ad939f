#include "server/idempotency_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cerrno>
#include <fstream>
#include <sstream>
#include <unordered_set>

#include <spdlog/spdlog.h>

#include "common/atomic_file.hpp"

namespace pa::server {

namespace json = boost::json;
using protocol::ErrorCode;

namespace {
constexpr char kField[] = "data.idempotency_key";
constexpr char kSeparator = '\n';  // never in a type, a project id or a key

std::string scope_key(const IdempotencyScope& scope) {
  std::string out;
  out.reserve(scope.type.size() + scope.project_id.size() + scope.key.size() + 2);
  out.append(scope.type).push_back(kSeparator);
  out.append(scope.project_id).push_back(kSeparator);
  out.append(scope.key);
  return out;
}

std::error_code last_error() {
  return {errno, std::generic_category()};
}

json::object line_object(std::string_view scope, std::int64_t at_ms) {
  const auto first = scope.find(kSeparator);
  const auto second = scope.find(kSeparator, first + 1);
  return json::object{{"at", at_ms},
                      {"type", scope.substr(0, first)},
                      {"project_id", scope.substr(first + 1, second - first - 1)},
                      {"key", scope.substr(second + 1)}};
}

bool printable_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    const auto b = static_cast<unsigned char>(c);
    return b >= 0x20 && b <= 0x7E;
  });
}
}  // namespace

std::optional<protocol::Error> take_idempotency_key(json::object& data,
                                                    std::optional<std::string>& key) {
  key.reset();
  const json::value* v = data.if_contains("idempotency_key");
  if (v == nullptr) return std::nullopt;
  if (v->is_null()) {
    data.erase("idempotency_key");
    return std::nullopt;
  }
  const auto invalid = [](std::string what) {
    return protocol::make_error(ErrorCode::kInvalidMessage,
                                std::string(kField) + " " + std::move(what) +
                                    "; use a value unique to the request, such as a UUID",
                                json::object{{"field", kField}});
  };
  if (!v->is_string()) return invalid("must be a string");
  const std::string_view s = v->get_string();
  if (s.empty()) return invalid("must not be empty");
  if (s.size() > IdempotencyStore::kMaxKeyBytes) {
    return invalid("is too long (at most " + std::to_string(IdempotencyStore::kMaxKeyBytes) +
                   " bytes)");
  }
  if (!printable_ascii(s)) {
    return invalid("must hold printable ASCII characters only (0x20 to 0x7E)");
  }
  key = std::string(s);
  data.erase("idempotency_key");
  return std::nullopt;
}

protocol::Error idempotency_storage_error(const std::error_code& ec) {
  return protocol::make_error(
      ErrorCode::kStorageFailed,
      "Could not record data.idempotency_key in the data directory (" + ec.message() +
          "), so the request was not carried out; check the data directory's free space and "
          "permissions, then send it again",
      json::object{{"field", kField}});
}

IdempotencyStore::IdempotencyStore(Options options) : options_(std::move(options)) {
  open_error_ = std::make_error_code(std::errc::bad_file_descriptor);  // until open()
}

IdempotencyStore::~IdempotencyStore() {
  if (fd_ >= 0) ::close(fd_);
}

std::int64_t IdempotencyStore::now_ms() const {
  const auto now = options_.clock ? options_.clock() : std::chrono::system_clock::now();
  return std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
}

std::error_code IdempotencyStore::open(std::vector<std::string>& warnings) {
  std::lock_guard lock(mutex_);
  const auto& path = options_.file;
  std::error_code ec;
  const bool existed = std::filesystem::exists(path, ec);
  std::size_t dropped = 0;
  if (existed) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      open_error_ = std::make_error_code(std::errc::permission_denied);
      return open_error_;
    }
    std::ostringstream text_stream;
    text_stream << in.rdbuf();
    const std::string text = text_stream.str();
    std::size_t corrupt = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
      const auto end = text.find('\n', pos);
      if (end == std::string::npos) {
        // A crash in the middle of an append: that request got no reply (the key is synced
        // before the reply), so dropping it is right.
        warnings.push_back(path.string() + ": cut a torn last line of " +
                           std::to_string(text.size() - pos) + " bytes");
        ++dropped;
        break;
      }
      const std::string_view line(text.data() + pos, end - pos);
      pos = end + 1;
      ++file_lines_;
      boost::system::error_code jec;
      const json::value v = json::parse(line, jec);
      const json::object* o = !jec ? v.if_object() : nullptr;
      const json::value* at = o ? o->if_contains("at") : nullptr;
      const json::value* type = o ? o->if_contains("type") : nullptr;
      const json::value* project = o ? o->if_contains("project_id") : nullptr;
      const json::value* key = o ? o->if_contains("key") : nullptr;
      if (at == nullptr || !at->is_int64() || type == nullptr || !type->is_string() ||
          project == nullptr || !project->is_string() || key == nullptr || !key->is_string()) {
        ++corrupt;
        continue;
      }
      const std::string scope =
          scope_key(IdempotencyScope{type->get_string(), project->get_string(), key->get_string()});
      if (const auto* f = o->if_contains("forget"); f != nullptr && f->is_bool() && f->get_bool()) {
        entries_.erase(scope);
        continue;
      }
      std::string result;
      if (const auto* r = o->if_contains("result"); r != nullptr && r->is_string()) {
        result = std::string(r->get_string());
      }
      entries_[scope] = Entry{at->get_int64(), std::move(result)};
      order_.emplace_back(at->get_int64(), scope);
    }
    if (corrupt > 0) {
      warnings.push_back(path.string() + ": skipped " + std::to_string(corrupt) +
                         " corrupt line(s)");
    }
    prune_locked(now_ms());
  }
  // Rewrite the file when it holds anything that is not a live record (expired, forgotten,
  // replaced, evicted, corrupt or torn lines).
  if (existed && (dropped > 0 || file_lines_ != entries_.size())) {
    if (auto cec = compact_locked()) {
      warnings.push_back(path.string() + ": could not compact: " + cec.message());
      if (dropped > 0) {
        // A torn last line must not be extended by the next append: give up on the file.
        open_error_ = cec;
        return open_error_;
      }
    }
  }
  fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) {
    open_error_ = last_error();
    return open_error_;
  }
  if (!existed) {
    if (auto dec = common::fsync_directory(path.parent_path())) {
      ::close(fd_);
      fd_ = -1;
      open_error_ = dec;
      return open_error_;
    }
  }
  open_error_.clear();
  return {};
}

std::optional<std::string> IdempotencyStore::find(const IdempotencyScope& scope) const {
  std::lock_guard lock(mutex_);
  const auto it = entries_.find(scope_key(scope));
  if (it == entries_.end()) return std::nullopt;
  if (now_ms() - it->second.at_ms >= options_.window.count()) return std::nullopt;  // expired
  return it->second.result;
}

std::error_code IdempotencyStore::record(const IdempotencyScope& scope, std::string_view result) {
  std::lock_guard lock(mutex_);
  if (fd_ < 0) return open_error_;
  const auto now = now_ms();
  std::string key = scope_key(scope);
  auto object = line_object(key, now);
  object["result"] = result;
  if (auto ec = append_locked(json::serialize(object))) return ec;
  entries_[key] = Entry{now, std::string(result)};
  order_.emplace_back(now, std::move(key));
  prune_locked(now);
  if (file_lines_ >= options_.compact_min_lines && file_lines_ > 2 * entries_.size()) {
    if (auto cec = compact_locked()) {
      spdlog::warn("{}: could not compact: {}", options_.file.string(), cec.message());
    }
  }
  return {};
}

std::error_code IdempotencyStore::forget(const IdempotencyScope& scope) {
  std::lock_guard lock(mutex_);
  if (fd_ < 0) return open_error_;
  const std::string key = scope_key(scope);
  if (entries_.find(key) == entries_.end()) return {};
  auto object = line_object(key, now_ms());
  object["forget"] = true;
  if (auto ec = append_locked(json::serialize(object))) return ec;
  entries_.erase(key);
  return {};
}

std::size_t IdempotencyStore::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

std::size_t IdempotencyStore::file_lines() const {
  std::lock_guard lock(mutex_);
  return file_lines_;
}

// One write() of the whole line, then fdatasync. On failure the file is cut back to where it
// was, so a half-written line cannot swallow the next one.
std::error_code IdempotencyStore::append_locked(const std::string& line_json) {
  const std::string line = line_json + "\n";
  const off_t before = ::lseek(fd_, 0, SEEK_END);
  std::string_view rest = line;
  std::error_code ec;
  while (!rest.empty()) {
    const ssize_t n = ::write(fd_, rest.data(), rest.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      ec = last_error();
      break;
    }
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
  if (!ec && ::fdatasync(fd_) != 0) ec = last_error();
  if (ec) {
    if (before >= 0 && ::ftruncate(fd_, before) == 0) (void)::fdatasync(fd_);
    return ec;
  }
  ++file_lines_;
  return {};
}

// Drops expired records, then the oldest while more than max_keys are live. `order_` is in
// recording order; entries it lists that were replaced or forgotten are skipped.
void IdempotencyStore::prune_locked(std::int64_t now) {
  const std::int64_t window = options_.window.count();
  while (!order_.empty()) {
    const auto& [at, key] = order_.front();
    const auto it = entries_.find(key);
    if (it == entries_.end() || it->second.at_ms != at) {
      order_.pop_front();
      continue;
    }
    if (now - at >= window || entries_.size() > options_.max_keys) {
      entries_.erase(it);
      order_.pop_front();
      continue;
    }
    break;
  }
  // A record made under a clock that later stepped back sits behind newer ones: find() still
  // treats it as expired when it is, and compaction drops it.
}

std::string IdempotencyStore::serialize_locked(const std::string& scope, const Entry& entry) const {
  auto object = line_object(scope, entry.at_ms);
  object["result"] = entry.result;
  return json::serialize(object);
}

// Rewrites the file with the live records only (atomic: temp file, fsync, rename, fsync dir),
// in the order they were recorded, and reopens it for appending.
std::error_code IdempotencyStore::compact_locked() {
  const std::int64_t now = now_ms();
  for (auto it = entries_.begin(); it != entries_.end();) {
    it = now - it->second.at_ms >= options_.window.count() ? entries_.erase(it) : std::next(it);
  }
  std::deque<std::pair<std::int64_t, std::string>> order;
  std::unordered_set<std::string_view> written;
  std::string content;
  for (auto& [at, key] : order_) {
    const auto it = entries_.find(key);
    if (it == entries_.end() || it->second.at_ms != at || !written.insert(it->first).second) {
      continue;  // replaced, forgotten, expired, or listed twice
    }
    content += serialize_locked(key, it->second);
    content += '\n';
    order.emplace_back(at, key);
  }
  if (auto ec = common::write_file_atomically(options_.file, content, 0600)) return ec;
  file_lines_ = order.size();
  order_ = std::move(order);
  if (fd_ >= 0) {
    // The old descriptor points at the replaced file: append to the new one from now on.
    ::close(fd_);
    fd_ = ::open(options_.file.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd_ < 0) {
      open_error_ = last_error();
      spdlog::error(
          "{}: cannot reopen after compaction: {}; idempotency keys cannot be "
          "recorded until restart",
          options_.file.string(), open_error_.message());
      return open_error_;
    }
  }
  return {};
}

}  // namespace pa::server
