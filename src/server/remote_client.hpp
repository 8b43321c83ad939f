// A client of another node, as the owner of a project sees it (cluster mode): the Connection its
// forwarded requests are carried out with. What the hub sends it goes back to that node
// (pa:reply:<node>) addressed to the client's connection there: replies and notices as they
// are, a subscribed requester's own copy of a broadcast with its seq, catch-up pages, joins and
// leaves of a project, a close. The broadcasts themselves do not: they go once per project to
// its event stream, which the node reads for all its subscribers (ClusterNode::attach).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "server/connection.hpp"

namespace pa::server {

class ClusterNode;

class RemoteClient final : public Connection {
 public:
  RemoteClient(std::weak_ptr<ClusterNode> cluster, std::uint64_t id, std::string node,
               std::string boot, std::uint64_t remote_id, std::string client_name,
               devices::Identity identity);

  std::uint64_t id() const override { return id_; }
  const std::string& remote_address() const override { return address_; }
  const std::string& node() const { return node_; }
  const std::string& boot() const { return boot_; }
  std::uint64_t remote_id() const { return remote_id_; }

  void send(protocol::SharedText text) override;
  void send_seq(const std::shared_ptr<Feed>& feed, std::uint64_t seq, protocol::SharedText text,
                bool reply) override;
  void deliver_page(const Feed* feed, CatchUpPage page) override;
  void feed_joined(const std::shared_ptr<Feed>& feed) override;
  void end_feed(const Feed* feed) override;
  void close(std::uint16_t code, std::string reason) override;
  void close_after_queued(std::uint16_t code, std::string reason) override;

  // The client's connection closed (or its node is gone): leaves every project it joined.
  void leave_all();
  // Tells its node the client is not (or no longer) subscribed to a project that is not here.
  void end_feed_of(const std::string& project_id);
  // The project it joined with this id, if any (for catch-up and leave commands).
  std::shared_ptr<Feed> joined(const std::string& project_id) const;

 private:
  void reply(std::string kind, boost::json::object body, std::string frame = {});

  std::weak_ptr<ClusterNode> cluster_;
  const std::uint64_t id_;
  const std::string node_;
  const std::string boot_;
  const std::uint64_t remote_id_;
  const std::string address_;
  mutable std::mutex mutex_;
  std::map<std::string, std::weak_ptr<Feed>> feeds_;  // by project id
  bool closed_ = false;
};

}  // namespace pa::server
