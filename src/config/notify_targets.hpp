// `notify.targets`: the ntfy topics and webhooks that receive notifications, a YAML list of
// {type, url, token?, secret?, events?}. The settings table reads it from config.yaml and, for
// flags and environment variables, from the same list in YAML flow (or JSON) text.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "config/config.hpp"

namespace pa::config::detail {

inline constexpr std::string_view kTargetsExpectation =
    "a list of {type: ntfy or webhook, url: http(s) URL, token?, secret?, events?: [event names]}";

// The targets in `node`, or nullopt with `error` naming the entry and field that is wrong.
std::optional<std::vector<NotifyTarget>> parse_notify_targets(const YAML::Node& node,
                                                              std::string& error);

// As YAML in the emitter's style, token and secret shown as <redacted> when `redact`; and as
// one line of YAML flow text, secrets included (the text form flags and variables accept back).
void emit_notify_targets(YAML::Emitter& out, const std::vector<NotifyTarget>& targets, bool redact);
std::string notify_targets_text(const std::vector<NotifyTarget>& targets);

}  // namespace pa::config::detail
