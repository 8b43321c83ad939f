// Hot paths of the protocol layer: client envelope parse + validate, server message
// serialization, and the CLI stdout line handler.
#include <benchmark/benchmark.h>

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <string>

#include "agent/run_options.hpp"
#include "protocol/clock.hpp"
#include "protocol/data_reader.hpp"
#include "protocol/envelope.hpp"
#include "protocol/json_text.hpp"

namespace {

// An assistant line as the CLI prints it, with a text of `bytes` bytes.
std::string assistant_line(std::size_t bytes) {
  std::string text = "#1 t=1764000000000000 ";
  text.append(bytes > text.size() ? bytes - text.size() : 0, 'x');
  return R"({"type":"assistant","message":{"model":"claude-sonnet-4-5-20250929","id":"msg_01ABCDEF","type":"message","role":"assistant","content":[{"type":"text","text":")" +
         text +
         R"("}],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":3,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}},"parent_tool_use_id":null,"session_id":"9f1c2d3e-4b5a-4c6d-8e7f-0123456789ab","uuid":"0b1c2d3e-4f5a-4b6c-8d7e-9f0123456789"})";
}

void BM_ParseEnvelope_GetMessages(benchmark::State& state) {
  const std::string text =
      R"({"type":"get_messages","project_id":"550e8400-e29b-41d4-a716-446655440000","data":{"after_seq":40,"limit":100},"request_id":"r-123"})";
  for (auto _ : state) {
    auto parsed = pa::protocol::parse_client_message(text);
    pa::protocol::DataReader reader(parsed.message->data);
    reader.allow_only({"since", "after_seq", "limit"});
    auto after = reader.uint("after_seq", false, 0, UINT64_MAX);
    auto limit = reader.uint("limit", false, 1, 1000);
    benchmark::DoNotOptimize(after);
    benchmark::DoNotOptimize(limit);
    benchmark::DoNotOptimize(reader.ok());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_ParseEnvelope_GetMessages);

void BM_ParseEnvelope_Execute(benchmark::State& state) {
  const std::string text =
      R"j({"type":"execute","project_id":"550e8400-e29b-41d4-a716-446655440000","data":{"prompt":"Create a hello world program in Go and explain every line of it","options":{"model":"claude-sonnet-4-5","permission_mode":"default","allowed_tools":["Read","Bash(git *)"]}},"request_id":"r-124"})j";
  for (auto _ : state) {
    auto parsed = pa::protocol::parse_client_message(text);
    pa::protocol::DataReader reader(parsed.message->data);
    reader.allow_only({"prompt", "options"});
    auto prompt = reader.string("prompt", true, 1 << 20);
    const auto* options = reader.object("options", false);
    pa::protocol::DataReader opts(*options, "data.options");
    auto model = opts.string("model", false, 128);
    auto tools = opts.string_list("allowed_tools", 64, 256);
    benchmark::DoNotOptimize(prompt);
    benchmark::DoNotOptimize(model);
    benchmark::DoNotOptimize(tools);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_ParseEnvelope_Execute);

void BM_ParseEnvelope_Invalid(benchmark::State& state) {
  const std::string text = R"({"type":"no_such_type","request_id":"r-1"})";
  for (auto _ : state) benchmark::DoNotOptimize(pa::protocol::parse_client_message(text));
}
BENCHMARK(BM_ParseEnvelope_Invalid);

// The broadcast of one CLI line: the data JSON is spliced verbatim after the envelope fields.
void BM_SerializeAgentMessage(benchmark::State& state) {
  const std::string data = assistant_line(static_cast<std::size_t>(state.range(0)));
  const std::string timestamp = pa::protocol::now_rfc3339();
  std::uint64_t seq = 1;
  for (auto _ : state) {
    auto text = pa::protocol::serialize(
        pa::protocol::Outgoing{"agent_message", "550e8400-e29b-41d4-a716-446655440000",
                               std::nullopt, seq++, timestamp},
        data);
    benchmark::DoNotOptimize(text);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_SerializeAgentMessage)->Arg(300)->Arg(4096);

// A reply built from a JSON object (project_state-like), timestamp taken from the clock.
void BM_SerializeObjectReply(benchmark::State& state) {
  boost::json::object data{{"id", "550e8400-e29b-41d4-a716-446655440000"},
                           {"path", "/home/user/projects/demo"},
                           {"state", "EXECUTING"},
                           {"session_id", nullptr},
                           {"created_at", "2024-01-01T12:00:00.000Z"},
                           {"last_active", "2024-01-01T12:00:00.000Z"}};
  for (auto _ : state) {
    auto text =
        pa::protocol::serialize(pa::protocol::Outgoing{"project_state",
                                                       "550e8400-e29b-41d4-a716-446655440000",
                                                       std::string_view("r-1"),
                                                       std::nullopt,
                                                       {}},
                                data);
    benchmark::DoNotOptimize(text);
  }
}
BENCHMARK(BM_SerializeObjectReply);

void BM_InspectCliLine_Assistant(benchmark::State& state) {
  const std::string line = assistant_line(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(pa::agent::inspect_cli_line(line));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * line.size()));
}
BENCHMARK(BM_InspectCliLine_Assistant)->Arg(300)->Arg(4096)->Arg(65536);

void BM_InspectCliLine_Result(benchmark::State& state) {
  const std::string line =
      R"({"type":"result","subtype":"success","is_error":false,"duration_ms":1234,"duration_api_ms":1200,"num_turns":1,"result":"Done.","session_id":"9f1c2d3e-4b5a-4c6d-8e7f-0123456789ab","total_cost_usd":0.0013700000000000001,"usage":{"input_tokens":3,"output_tokens":12},"permission_denials":[],"uuid":"0b1c2d3e-4f5a-4b6c-8d7e-9f0123456789"})";
  for (auto _ : state) benchmark::DoNotOptimize(pa::agent::inspect_cli_line(line));
}
BENCHMARK(BM_InspectCliLine_Result);

void BM_InspectCliLine_NotJson(benchmark::State& state) {
  const std::string line = "this is not json at all, just a line of text the CLI printed";
  for (auto _ : state) benchmark::DoNotOptimize(pa::agent::inspect_cli_line(line));
}
BENCHMARK(BM_InspectCliLine_NotJson);

// The number rule on the broadcast path (issue 16). A CLI line is parsed anyway
// (inspect_cli_line); the walk that tells whether it holds a double is the added cost for every
// line, and only a line that does is scanned and rewritten.
void BM_ContainsDouble_Assistant(benchmark::State& state) {
  const boost::json::value value =
      boost::json::parse(assistant_line(static_cast<std::size_t>(state.range(0))));
  for (auto _ : state) benchmark::DoNotOptimize(pa::protocol::contains_double(value));
}
BENCHMARK(BM_ContainsDouble_Assistant)->Arg(300)->Arg(4096)->Arg(65536);

void BM_NormalizeNumbers_Result(benchmark::State& state) {
  const std::string line =
      R"({"type":"result","subtype":"success","is_error":false,"duration_ms":1234,"duration_api_ms":1200,"num_turns":1,"result":"Done.","session_id":"9f1c2d3e-4b5a-4c6d-8e7f-0123456789ab","total_cost_usd":1.3700000000000001E-3,"usage":{"input_tokens":3,"output_tokens":12},"permission_denials":[],"uuid":"0b1c2d3e-4f5a-4b6c-8d7e-9f0123456789"})";
  for (auto _ : state) {
    std::string text = line;
    benchmark::DoNotOptimize(pa::protocol::normalize_json_numbers(text));
    benchmark::DoNotOptimize(text);
  }
}
BENCHMARK(BM_NormalizeNumbers_Result);

// A history page's worth of text with no number to rewrite: the scan alone.
void BM_NormalizeNumbers_Page(benchmark::State& state) {
  std::string page;
  while (page.size() < static_cast<std::size_t>(state.range(0))) {
    page += assistant_line(4096);
    page += ',';
  }
  for (auto _ : state) {
    benchmark::DoNotOptimize(pa::protocol::normalize_json_numbers(page));
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * page.size()));
}
BENCHMARK(BM_NormalizeNumbers_Page)->Arg(1 << 20);

}  // namespace

BENCHMARK_MAIN();
