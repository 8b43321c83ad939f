// Fuzzes the configuration file parser: the input is the text of config.yaml, applied with
// config::apply_yaml_text (what config::load does with the file named by --config or PA_CONFIG,
// minus reading it and the command line). config::ConfigError is the expected outcome for bad
// input; any other exception, a crash or a sanitizer report is a bug. An accepted file must also
// give a configuration whose --print-config output (config::to_yaml) loads back to the same
// settings (for files that are valid UTF-8).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "protocol/utf8.hpp"

namespace {

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz check failed: %s: %s\n", what, detail.c_str());
  std::abort();
}

// The configuration the file gives over the defaults; nullopt on ConfigError.
std::optional<pa::config::Config> apply(const std::string& text) {
  pa::config::Config config;
  std::vector<std::string> warnings;
  try {
    pa::config::apply_yaml_text(text, "config.yaml", config, warnings);
  } catch (const pa::config::ConfigError& e) {
    if (*e.what() == '\0') fail("ConfigError without a message", text);
    return std::nullopt;
  } catch (const std::exception& e) {
    fail("something other than ConfigError was thrown", e.what());
  } catch (...) {
    fail("something other than ConfigError was thrown", "(not a std::exception)");
  }
  return config;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto config = apply(text);
  if (!config) return 0;
  // yaml-cpp reads bytes that are not UTF-8 as they are but its emitter replaces them, so the
  // printed configuration is only expected to round-trip for UTF-8 files (YAML requires UTF-8).
  if (!pa::protocol::is_valid_utf8(text)) return 0;
  const std::string printed = pa::config::to_yaml(*config);
  const auto reloaded = apply(printed);
  if (!reloaded) fail("--print-config output does not load back", printed);
  const std::string reprinted = pa::config::to_yaml(*reloaded);
  if (reprinted != printed) fail("--print-config output loads back differently", reprinted);
  return 0;
}
