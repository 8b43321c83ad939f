#!/usr/bin/env bash
# Runs pocket-agent-bench against freshly started servers (TLS and plain) using the fake CLI, and
# writes the results as JSON lines plus a markdown table (bench/report.py) beside the targets.
#
#   bench/run-load.sh quick   # every scenario at a size that finishes in well under 3 minutes
#   bench/run-load.sh full    # the sizes of the targets table (docs/benchmarks.md)
#   bench/run-load.sh fanout  # only the unpaced fan-out runs of `full`
#   bench/run-load.sh resume  # TLS handshakes, full and resumed (--resume): idle, CONNECTIONS=1000
#   bench/run-load.sh idle    # CONNECTIONS (5000) idle connections, TLS then plain, default
#                             # settings, IDLE_SECONDS (60) of idle: RSS and CPU per connection
#   bench/run-load.sh latency # the issue 15 latency targets, TLS then plain: paced fan-out
#                             # (1,000 lines/s to 100 subscribers) and rpc (5,000 req/s, 1,000
#                             # connections)
#   bench/run-load.sh smoke   # every scenario at a tiny size, TLS only, a few seconds; fails on
#                             # any error, lost or reordered line (ctest bench_smoke_load)
#
# Environment: BUILD_DIR (default build), OUT (default $BUILD_DIR/bench-results/<size>),
# SERVER_BIN (default $BUILD_DIR/app/pocket-agent-server), FANOUT_QUEUE (default|big), THREADS.
# THREADS (pocket-agent-bench --threads: the threads its connections are spread over; default the
# number of cores).
set -euo pipefail
size=${1:-quick}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${BUILD_DIR:-build}
[[ $build = /* ]] || build="$root/$build"
server_bin=${SERVER_BIN:-$build/app/pocket-agent-server}  # SERVER_BIN: another build to compare
bench_bin="$build/bench/pocket-agent-bench"
fake="$build/tests/fixtures/fake-claude"
out=${OUT:-$build/bench-results/$size}
threads=${THREADS:-$(nproc)}
for f in "$server_bin" "$bench_bin" "$fake"; do
  [[ -x $f ]] || { echo "run-load.sh: $f is missing; build it first (make bench builds the pa_bench target)" >&2; exit 2; }
done
mkdir -p "$out"
results="$out/results.jsonl"
: >"$results"

work=$(mktemp -d /tmp/pa-load.XXXXXX)
server_pid=""
cleanup() {
  if [[ -n $server_pid ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$root/scripts/make-certs.sh" "$work/certs" >/dev/null
token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
mkdir -p "$work/projects"
export FAKE_CLAUDE_STATE_DIR="$work/fake-state"

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$here/common.sh"

# start_server tls|plain [flags...]: starts a server with a fresh data dir; sets server_pid and url.
start_server() {
  local mode=$1 port
  shift
  port=$(free_port)
  local data="$work/data-$mode-$port"
  mkdir -p "$data"
  local tls_args=(--tls-cert "$work/certs/server.crt" --tls-key "$work/certs/server.key")
  local scheme=wss
  if [[ $mode == plain ]]; then tls_args=(--no-tls); scheme=ws; fi
  PA_AUTH_TOKEN=$token "$server_bin" --host 127.0.0.1 --port "$port" --data-dir "$data" \
    "${tls_args[@]}" --claude-binary "$fake" --log-level warn "${load_limits[@]}" \
    ${allow_root[@]+"${allow_root[@]}"} "$@" >>"$out/server-$mode.log" 2>&1 &
  server_pid=$!
  url="$scheme://127.0.0.1:$port/ws"
  wait_health "${scheme/ws/http}://127.0.0.1:$port" "$server_pid" && return 0
  echo "run-load.sh: the server did not start; see $out/server-$mode.log" >&2
  exit 1
}
stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

# bench <args...>: one pocket-agent-bench run against the current server. A failed run is
# reported and the others go on; in smoke mode the script then fails.
failed=0
bench() {
  if ! "$bench_bin" --url "$url" --token "$token" --insecure --project-dir "$work/projects" \
    --server-pid "$server_pid" --threads "$threads" --json "$@" | tee -a "$results"; then
    echo "run-load.sh: pocket-agent-bench $* failed (its error is above); going on" >&2
    failed=1
  fi
}

# The fan-out runs use the default outbound queue (100 messages, 16 MiB): subscribers that fall
# behind an unpaced flood are fed from history and never closed (issue 15). FANOUT_QUEUE=big
# runs them with a queue that never fills instead (the setting before catch-up existed), to
# compare. The history scenario pages with get_messages and keeps the big queue.
big_queue=(--websocket-message-buffer 1000000 --websocket-max-queue-bytes 67108864)
fanout_queue=()
if [[ ${FANOUT_QUEUE:-default} == big ]]; then fanout_queue=("${big_queue[@]}"); fi

if [[ $size == quick ]]; then
  for mode in tls plain; do
    start_server "$mode" ${fanout_queue[@]+"${fanout_queue[@]}"}
    bench --subscribers 100 --lines 2000 --line-bytes 300 fanout
    bench --subscribers 100 --lines 2000 --line-bytes 300 --line-rate 1000 fanout
    stop_server
    start_server "$mode"
    bench --connections 1000 --idle-seconds 5 idle
    bench --rpc-connections 200 --rpc-rate 2000 --rpc-seconds 5 rpc
    bench --churn-workers 16 --churn-seconds 5 churn
    stop_server
  done
  start_server plain "${big_queue[@]}"
  bench --history-entries 50000 --history-repeats 20 history
  stop_server
elif [[ $size == full ]]; then
  for mode in tls plain; do
    start_server "$mode" ${fanout_queue[@]+"${fanout_queue[@]}"}
    bench --subscribers 100 --lines 20000 --line-bytes 300 fanout
    bench --subscribers 100 --lines 10000 --line-bytes 300 --line-rate 1000 fanout
    stop_server
    start_server "$mode"
    # 1,000 first: closing 10,000 TLS connections keeps the server busy for a while afterwards.
    bench --connections 1000 --idle-seconds 30 idle
    bench --connections 10000 --concurrency 128 --idle-seconds 10 idle
    bench --rpc-connections 1000 --rpc-rate 5000 --rpc-seconds 20 rpc
    bench --churn-workers 32 --churn-seconds 10 churn
    stop_server
  done
  start_server plain "${big_queue[@]}"
  bench --history-entries 1000000 --history-bytes 100 --history-repeats 50 history
  stop_server
elif [[ $size == fanout ]]; then
  # Only the unpaced fan-out runs of `full`.
  for mode in tls plain; do
    start_server "$mode" ${fanout_queue[@]+"${fanout_queue[@]}"}
    bench --subscribers 100 --lines 20000 --line-bytes 300 fanout
    stop_server
  done
elif [[ $size == resume ]]; then
  # Full and resumed TLS handshakes (docs/benchmarks.md "TLS resumption"), each on a fresh
  # server: `idle` opens the connections and reports connects/s and server CPU per connection.
  for flag in "" --resume; do
    start_server tls
    bench $flag --connections "${CONNECTIONS:-1000}" --idle-seconds 2 idle
    stop_server
  done
elif [[ $size == idle ]]; then
  # The issue 15 idle figures: memory per connection and CPU while the server only pings and
  # sends server_stats (both at their defaults).
  for mode in tls plain; do
    start_server "$mode"
    bench --connections "${CONNECTIONS:-5000}" --concurrency 128 \
      --idle-seconds "${IDLE_SECONDS:-60}" idle
    stop_server
  done
elif [[ $size == latency ]]; then
  for mode in tls plain; do
    start_server "$mode"
    bench --subscribers 100 --lines 10000 --line-bytes 300 --line-rate 1000 fanout
    bench --rpc-connections 1000 --rpc-rate 5000 --rpc-seconds 20 rpc
    stop_server
  done
elif [[ $size == smoke ]]; then
  # A check that the load generator still speaks the protocol, not a measurement: a few
  # connections and a few hundred messages per scenario.
  start_server tls
  bench --timeout 60 --connections 20 --concurrency 8 --idle-seconds 1 idle
  bench --timeout 60 --subscribers 4 --lines 300 --line-bytes 100 fanout
  bench --timeout 60 --rpc-connections 4 --rpc-rate 200 --rpc-seconds 1 rpc
  bench --timeout 60 --history-entries 300 --history-repeats 2 history
  bench --timeout 60 --churn-workers 2 --churn-seconds 1 churn
  stop_server
  python3 "$here/check-results.py" "$results" idle fanout rpc history churn || failed=1
  if [[ $failed -ne 0 ]]; then
    echo "run-load.sh smoke: FAILED (the server's log: $out/server-tls.log)" >&2
    exit 1
  fi
  echo "run-load.sh smoke: every scenario ran without errors"
  exit 0
else
  echo "usage: $0 quick|full|fanout|resume|idle|latency|smoke" >&2
  exit 2
fi

python3 "$here/report.py" "$results" >"$out/results.md"
cat "$out/results.md"
echo "results: $results and $out/results.md"
