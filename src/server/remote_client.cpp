#include "server/remote_client.hpp"

#include "server/cluster_node.hpp"
#include "server/project.hpp"

namespace pa::server {

namespace json = boost::json;

namespace {
// The project a feed is (an owner's feeds are its projects).
const Project* project_of(const Feed* feed) {
  return dynamic_cast<const Project*>(feed);
}
}  // namespace

RemoteClient::RemoteClient(std::weak_ptr<ClusterNode> cluster, std::uint64_t id, std::string node,
                           std::string boot, std::uint64_t remote_id, std::string client_name,
                           devices::Identity identity)
    : Connection(std::move(client_name), std::move(identity)),
      cluster_(std::move(cluster)),
      id_(id),
      node_(std::move(node)),
      boot_(std::move(boot)),
      remote_id_(remote_id),
      address_("node " + node_) {}

void RemoteClient::reply(std::string kind, json::object body, std::string frame) {
  auto cluster = cluster_.lock();
  if (!cluster) return;
  body["conn"] = remote_id_;
  cluster->send_reply(node_, boot_, std::move(kind), std::move(body), std::move(frame));
}

void RemoteClient::send(protocol::SharedText text) {
  if (text) reply("frame", {}, *text);
}

void RemoteClient::send_seq(const std::shared_ptr<Feed>& feed, std::uint64_t seq,
                            protocol::SharedText text, bool is_reply) {
  // Broadcasts reach the node through the project's event stream, once for all its clients;
  // only the requester's own copy (with its request_id) comes this way, ahead of the broadcast.
  if (!is_reply || !text) return;
  const auto* project = project_of(feed.get());
  if (!project) return;
  reply("seq", json::object{{"project", project->id()}, {"seq", seq}}, *text);
}

void RemoteClient::deliver_page(const Feed* feed, CatchUpPage page) {
  const auto* project = project_of(feed);
  if (!project) return;
  json::array frames;
  for (const auto& [seq, text] : page.frames)
    frames.push_back(json::array{seq, json::string(*text)});
  reply("page", json::object{{"project", project->id()},
                             {"through", page.through_seq},
                             {"live", page.live},
                             {"frames", std::move(frames)}});
}

void RemoteClient::feed_joined(const std::shared_ptr<Feed>& feed) {
  auto* project = dynamic_cast<Project*>(feed.get());
  if (!project) return;
  {
    std::lock_guard lock(mutex_);
    if (closed_) {
      feed->leave(id_);  // a join that arrived after the close
      return;
    }
    feeds_[project->id()] = feed;
  }
  // On the project's strand (Project::subscribe): its last seq is where the client starts.
  reply("joined", json::object{{"project", project->id()}, {"last_seq", project->last_seq()}});
}

void RemoteClient::end_feed(const Feed* feed) {
  const auto* project = project_of(feed);
  if (!project) return;
  {
    std::lock_guard lock(mutex_);
    feeds_.erase(project->id());
  }
  end_feed_of(project->id());
}

void RemoteClient::close(std::uint16_t code, std::string reason) {
  reply("close", json::object{{"code", code}, {"reason", reason}});
}

void RemoteClient::close_after_queued(std::uint16_t code, std::string reason) {
  close(code, std::move(reason));
}

void RemoteClient::leave_all() {
  std::map<std::string, std::weak_ptr<Feed>> feeds;
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    feeds.swap(feeds_);
  }
  for (const auto& [id, weak] : feeds) {
    if (auto feed = weak.lock()) feed->leave(id_);
  }
}

void RemoteClient::end_feed_of(const std::string& project_id) {
  reply("end", json::object{{"project", project_id}});
}

std::shared_ptr<Feed> RemoteClient::joined(const std::string& project_id) const {
  std::lock_guard lock(mutex_);
  const auto it = feeds_.find(project_id);
  return it == feeds_.end() ? nullptr : it->second.lock();
}

}  // namespace pa::server
