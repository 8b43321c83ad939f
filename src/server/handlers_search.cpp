// search_messages: full-text search over every project's history (src/search), newest first.
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/array.hpp>
#include <charconv>

#include "protocol/clock.hpp"
#include "protocol/data_reader.hpp"
#include "search/fts_query.hpp"
#include "search/indexer.hpp"
#include "search/searcher.hpp"
#include "server/hub.hpp"
#include "server/request.hpp"

namespace pa::server {

namespace asio = boost::asio;
namespace json = boost::json;
using protocol::ErrorCode;

namespace {

constexpr std::uint64_t kDefaultLimit = 20;
constexpr std::uint64_t kMaxLimit = 100;
// A search waits this long for the index to take in what was appended before it (read your
// writes); then it answers with what is indexed, and `indexing: true`.
constexpr std::chrono::milliseconds kFreshnessWait{1000};
// A query running longer is stopped (SEARCH_FAILED, reason "timeout").
constexpr std::chrono::milliseconds kQueryTimeLimit{5000};

// A hit's cursor as the client sends it back: the decimal text of a positive 63-bit number.
std::optional<std::int64_t> parse_cursor(const std::string& text) {
  std::int64_t value = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || value <= 0 || text.front() == '+') return std::nullopt;
  return value;
}

json::object hit_json(const search::SearchHit& hit) {
  const auto snippet = search::make_snippet(hit.marked_snippet);
  json::array marks;
  for (const auto& [start, end] : snippet.marks) marks.push_back(json::array{start, end});
  return json::object{
      {"project_id", hit.project_id},
      {"seq", hit.seq},
      {"timestamp",
       protocol::format_rfc3339(protocol::SystemTime(std::chrono::milliseconds(hit.time_ms)))},
      {"snippet", snippet.text},
      {"marks", std::move(marks)},
      {"cursor", std::to_string(hit.cursor)},
  };
}

}  // namespace

void Hub::handle_search_messages(Request request) {
  protocol::DataReader reader(request.message.data);
  reader.allow_only({"query", "limit", "before"});
  const auto text = reader.string("query", true, search::kMaxQueryBytes);
  const auto limit = reader.uint("limit", false, 1, kMaxLimit);
  const auto before = reader.string("before", false, 20);
  if (!reader.ok()) {
    request.fail(reader.error());
    return;
  }
  search::SearchRequest query;
  query.limit = limit.value_or(kDefaultLimit);
  query.time_limit = kQueryTimeLimit;
  if (before) {
    query.before = parse_cursor(*before);
    if (!query.before) {
      request.fail(protocol::make_error(
          ErrorCode::kInvalidMessage,
          "data.before must be the cursor of a hit from an earlier search_results, unchanged",
          json::object{{"field", "data.before"}}));
      return;
    }
  }
  const auto fts = search::build_fts_query(*text);
  if (!fts.error.empty()) {
    request.fail(protocol::make_error(ErrorCode::kInvalidMessage,
                                      fts.error + "; send words to search for",
                                      json::object{{"field", "data.query"}}));
    return;
  }
  query.fts_expression = fts.expression;
  if (request.message.project_id) {
    const std::string& id = *request.message.project_id;
    if (!find_project(id)) {
      request.fail(protocol::make_error(ErrorCode::kProjectNotFound, "Project not found: " + id,
                                        json::object{{"project_id", id}}));
      return;
    }
    query.project_id = id;
  }
  // Waits (without holding a thread) until the index has what was appended before this
  // request, or kFreshnessWait; whichever comes first runs the query on the blocking pool.
  struct Wait {
    Wait(Request r, search::SearchRequest q, asio::io_context& io)
        : request(std::move(r)), query(std::move(q)), timer(io) {}
    Request request;
    search::SearchRequest query;
    std::atomic<bool> started{false};
    asio::steady_timer timer;
  };
  auto wait = std::make_shared<Wait>(std::move(request), std::move(query), io_);
  const auto go = [self = shared_from_this(), wait](bool waited_out) {
    if (wait->started.exchange(true)) return;
    asio::post(self->pool_, [self, wait, waited_out] {
      self->run_search(std::move(wait->request), std::move(wait->query), waited_out);
    });
  };
  wait->timer.expires_after(kFreshnessWait);
  wait->timer.async_wait([go](const boost::system::error_code&) { go(true); });
  indexer_->when_current([go] { go(false); });
}

void Hub::run_search(Request request, search::SearchRequest query, bool waited_out) {
  const auto page = searcher_->search(query);
  if (page.timed_out) {
    request.fail(protocol::make_error(
        ErrorCode::kSearchFailed,
        "the search took longer than " + std::to_string(kQueryTimeLimit.count() / 1000) +
            " s and was stopped; search for longer or more words, or within one project",
        json::object{{"reason", "timeout"}}));
    return;
  }
  if (!page.error.empty()) {
    spdlog::warn("search_messages: the index could not answer: {}", page.error);
    request.fail(protocol::make_error(
        ErrorCode::kSearchFailed,
        "the search index cannot answer now (it may be being rebuilt); try again in a minute",
        json::object{{"reason", "unavailable"}}));
    return;
  }
  json::array hits;
  for (const auto& hit : page.hits) {
    if (!find_project(hit.project_id)) continue;  // deleted after the query began
    hits.push_back(hit_json(hit));
  }
  request.reply("search_results", json::object{{"hits", std::move(hits)},
                                               {"has_more", page.has_more},
                                               {"indexing", waited_out || !indexer_->current()}});
}

}  // namespace pa::server
