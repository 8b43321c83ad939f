// get_messages: pages of a project's history, oldest first.
#include <algorithm>

#include <boost/json/serialize.hpp>

#include "protocol/clock.hpp"
#include "protocol/data_reader.hpp"
#include "protocol/json_text.hpp"
#include "server/hub.hpp"
#include "server/project.hpp"
#include "server/request.hpp"

namespace pa::server {

namespace json = boost::json;
using protocol::ErrorCode;

namespace {
// A page's entries stay within this many bytes (at least one entry is always sent), so that a
// reply fits into the connection's outbound queue (websocket.max_queue_bytes) next to the
// broadcasts already queued for it.
std::uint64_t page_byte_budget(std::uint64_t max_queue_bytes) {
  constexpr std::uint64_t kMaxPageBytes = 8u << 20;
  return std::max<std::uint64_t>(1, std::min(kMaxPageBytes, max_queue_bytes / 2));
}
}  // namespace

void Hub::handle_get_messages(Request request) {
  protocol::DataReader reader(request.message.data);
  reader.allow_only({"since", "after_seq", "before_seq", "limit"});
  const auto since = reader.string("since", false, 64);
  const auto after_seq = reader.uint("after_seq", false, 0, UINT64_MAX);
  const auto before_seq = reader.uint("before_seq", false, 1, UINT64_MAX);
  const std::uint64_t cap = config_.limits.history_page_max;
  // A larger limit is capped, not refused (the client learns from has_more that there is more).
  const auto limit = reader.uint("limit", false, 1, UINT64_MAX);
  if (!reader.ok()) {
    request.fail(reader.error());
    return;
  }
  if (since && !protocol::parse_rfc3339(*since)) {
    request.fail(protocol::make_error(
        ErrorCode::kInvalidMessage,
        "data.since must be an RFC 3339 timestamp such as 2024-01-01T12:00:00Z",
        json::object{{"field", "data.since"}}));
    return;
  }
  history::Query query;
  query.since = since;
  query.after_seq = after_seq;
  query.before_seq = before_seq;
  query.limit = std::min<std::uint64_t>(limit.value_or(1000), cap);
  query.max_bytes = page_byte_budget(config_.websocket.max_queue_bytes);
  with_project(std::move(request), [query](Request& r, Project& project) {
    const auto page = project.read_history(query);
    std::string data = "{\"messages\":[";
    for (std::size_t i = 0; i < page.entries.size(); ++i) {
      if (i != 0) data += ',';
      data += page.entries[i];
    }
    data += "],\"has_more\":";
    data += page.has_more ? "true" : "false";
    data += ",\"last_seq\":" + std::to_string(project.last_seq()) + "}";
    // Entries are stored text; one written by an older server may hold exponent forms (5.07E2).
    protocol::normalize_json_numbers(data);
    r.reply_raw("messages_response", data);
  });
}

void Hub::handle_health(Request request) {
  if (!request.expect_no_data()) return;
  boost::asio::post(pool_, [self = shared_from_this(), request = std::move(request)] {
    request.reply("health_status", self->health_data());
  });
}

}  // namespace pa::server
