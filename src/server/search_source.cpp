#include "server/search_source.hpp"

#include <boost/asio/post.hpp>
#include <future>

#include "server/project.hpp"

namespace pa::server {

std::vector<std::string> ProjectsEntrySource::project_ids() {
  std::vector<std::string> ids;
  for (const auto& project : projects_.all()) ids.push_back(project->id());
  return ids;
}

std::optional<search::SourcePage> ProjectsEntrySource::read_after(const std::string& project_id,
                                                                  std::uint64_t after_seq,
                                                                  std::size_t limit,
                                                                  std::size_t max_bytes) {
  auto project = projects_.find(project_id);
  if (!project) return std::nullopt;
  std::promise<std::optional<search::SourcePage>> promise;
  auto future = promise.get_future();
  boost::asio::post(project->strand(), [&] {
    if (project->deleted()) {
      promise.set_value(std::nullopt);
      return;
    }
    history::Query query;
    query.after_seq = after_seq;
    query.limit = limit;
    query.max_bytes = max_bytes;
    auto read = project->read_history(query);
    search::SourcePage page;
    page.entries = std::move(read.entries);
    page.has_more = read.has_more;
    page.last_seq = project->last_seq();
    promise.set_value(std::move(page));
  });
  return future.get();
}

}  // namespace pa::server
