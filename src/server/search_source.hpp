// The search indexer's view of the live projects (search/entry_source.hpp): history is read on
// each project's strand, as every history read is, and waited for on the indexer's thread.
#pragma once

#include "search/entry_source.hpp"
#include "server/project_registry.hpp"

namespace pa::server {

class ProjectsEntrySource final : public search::EntrySource {
 public:
  explicit ProjectsEntrySource(const ProjectRegistry& projects) : projects_(projects) {}
  std::vector<std::string> project_ids() override;
  std::optional<search::SourcePage> read_after(const std::string& project_id,
                                               std::uint64_t after_seq, std::size_t limit,
                                               std::size_t max_bytes) override;

 private:
  const ProjectRegistry& projects_;
};

}  // namespace pa::server
