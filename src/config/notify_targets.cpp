#include "config/notify_targets.hpp"

#include <set>

#include "notify/event_names.hpp"

namespace pa::config::detail {
namespace {

bool is_http_url(const std::string& url) {
  for (const std::string_view scheme : {"https://", "http://"}) {
    if (url.starts_with(scheme) && url.size() > scheme.size() && url[scheme.size()] != '/') {
      return url.find_first_of(" \t\r\n") == std::string::npos;
    }
  }
  return false;
}

std::optional<NotifyTarget> parse_target(const YAML::Node& node, std::string& error) {
  if (!node.IsMap()) {
    error = "is not a mapping";
    return std::nullopt;
  }
  NotifyTarget target;
  for (const auto& field : node) {
    const std::string name = field.first.IsScalar() ? field.first.Scalar() : std::string();
    const YAML::Node& value = field.second;
    if (name == "events") {
      if (!value.IsSequence()) {
        error = "events is not a list of event names";
        return std::nullopt;
      }
      for (const auto& e : value) {
        if (!e.IsScalar() || !notify::is_event_name(e.Scalar())) {
          error =
              "events names an unknown event (known: permission_request, run_succeeded, "
              "run_failed, run_timeout, run_lost, queue_drained, server_problem)";
          return std::nullopt;
        }
        target.events.push_back(e.Scalar());
      }
      continue;
    }
    std::string* slot = name == "type"     ? &target.type
                        : name == "url"    ? &target.url
                        : name == "token"  ? &target.token
                        : name == "secret" ? &target.secret
                                           : nullptr;
    if (slot == nullptr) {
      error = "has an unknown field '" + name + "' (fields: type, url, token, secret, events)";
      return std::nullopt;
    }
    if (!value.IsScalar()) {
      error = name + " is not a string";
      return std::nullopt;
    }
    *slot = value.Scalar();
  }
  if (target.type != "ntfy" && target.type != "webhook") {
    error = "type must be ntfy or webhook";
  } else if (!is_http_url(target.url)) {
    error = "url must be an http:// or https:// URL";
  } else if (target.type == "ntfy" && !target.secret.empty()) {
    error = "secret is for webhooks (an ntfy target takes a token)";
  } else if (target.type == "webhook" && !target.token.empty()) {
    error = "token is for ntfy (a webhook target takes a secret)";
  }
  if (!error.empty()) return std::nullopt;
  return target;
}

}  // namespace

std::optional<std::vector<NotifyTarget>> parse_notify_targets(const YAML::Node& node,
                                                              std::string& error) {
  std::vector<NotifyTarget> targets;
  if (!node.IsDefined() || node.IsNull()) return targets;
  if (!node.IsSequence()) {
    error = "not a list";
    return std::nullopt;
  }
  for (std::size_t i = 0; i < node.size(); ++i) {
    auto target = parse_target(node[i], error);
    if (!target) {
      error = "entry " + std::to_string(i + 1) + " " + error;
      return std::nullopt;
    }
    targets.push_back(std::move(*target));
  }
  return targets;
}

void emit_notify_targets(YAML::Emitter& out, const std::vector<NotifyTarget>& targets,
                         bool redact) {
  if (targets.empty()) {
    out << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
    return;
  }
  auto secret = [&](const std::string& v) { return redact ? std::string("<redacted>") : v; };
  out << YAML::BeginSeq;
  for (const auto& t : targets) {
    out << YAML::BeginMap;
    out << YAML::Key << "type" << YAML::Value << YAML::DoubleQuoted << t.type;
    out << YAML::Key << "url" << YAML::Value << YAML::DoubleQuoted << t.url;
    if (!t.token.empty()) {
      out << YAML::Key << "token" << YAML::Value << YAML::DoubleQuoted << secret(t.token);
    }
    if (!t.secret.empty()) {
      out << YAML::Key << "secret" << YAML::Value << YAML::DoubleQuoted << secret(t.secret);
    }
    if (!t.events.empty()) {
      out << YAML::Key << "events" << YAML::Value << YAML::Flow << YAML::BeginSeq;
      for (const auto& e : t.events) out << e;
      out << YAML::EndSeq;
    }
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
}

std::string notify_targets_text(const std::vector<NotifyTarget>& targets) {
  YAML::Emitter out;
  out.SetMapFormat(YAML::Flow);
  out.SetSeqFormat(YAML::Flow);
  emit_notify_targets(out, targets, false);
  return out.c_str();
}

}  // namespace pa::config::detail
