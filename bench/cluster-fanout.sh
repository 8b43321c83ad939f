#!/usr/bin/env bash
# Cross-node fan-out (issue 20, docs/benchmarks.md "Cluster fan-out (issue 20)"): two servers
# (nodes a and b: separate data dirs, ports and project roots) and one redis-server, all on
# 127.0.0.1 of this machine. The driver creates a project on b and runs a fake-CLI flood there;
# SUBSCRIBERS clients follow it, either on b (local: the owner's own fan-out) or on a (remote:
# b writes each broadcast once to the project's Redis stream, a reads it and fans it out).
# Each run gets a fresh Redis and fresh servers.
#
#   bench/cluster-fanout.sh         # unpaced (deliveries/s) and paced (latency) floods, each
#                                   # with the subscribers on b, then on a; prints the table
#   bench/cluster-fanout.sh smoke   # the same four runs at a tiny size; fails on any lost or
#                                   # reordered line (a check that it still works, not a figure)
#
# Environment: BUILD_DIR (default build), OUT (default $BUILD_DIR/bench-results/cluster),
# SERVER_BIN, MODE (tls|plain, default tls), SUBSCRIBERS (100), LINES (unpaced, 20000),
# PACED_LINES (10000), RATE (paced lines/s, 1000), BYTES (text per line, 300), REPEAT (runs of
# each case, interleaved, default 1), THREADS (pocket-agent-bench --threads, default nproc).
# LINES=0 or PACED_LINES=0 leaves that flood out.
set -euo pipefail
size=${1:-full}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${BUILD_DIR:-build}
[[ $build = /* ]] || build="$root/$build"
server_bin=${SERVER_BIN:-$build/app/pocket-agent-server}
bench_bin="$build/bench/pocket-agent-bench"
fake="$build/tests/fixtures/fake-claude"
out=${OUT:-$build/bench-results/cluster}
mode=${MODE:-tls}
threads=${THREADS:-$(nproc)}
subscribers=${SUBSCRIBERS:-100}
lines=${LINES:-20000}
paced_lines=${PACED_LINES:-10000}
rate=${RATE:-1000}
bytes=${BYTES:-300}
repeat=${REPEAT:-1}
if [[ $size == smoke ]]; then
  subscribers=4 lines=300 paced_lines=100 rate=500 bytes=100 repeat=1 out=${OUT:-$out-smoke}
elif [[ $size != full ]]; then
  echo "usage: $0 [full|smoke]" >&2
  exit 2
fi
for f in "$server_bin" "$bench_bin" "$fake"; do
  [[ -x $f ]] || { echo "cluster-fanout.sh: $f is missing; build it first (make bench-cluster does)" >&2; exit 2; }
done
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  echo "cluster-fanout.sh: needs redis-server and redis-cli (Debian: apt-get install redis-server)" >&2
  exit 2
fi

mkdir -p "$out"
results="$out/results.jsonl"
: >"$results"
work=$(mktemp -d /tmp/pa-cluster-bench.XXXXXX)
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$here/common.sh"

redis_pid="" a_pid="" b_pid="" a_port="" b_port=""
stop_all() {
  for pid in $a_pid $b_pid $redis_pid; do kill "$pid" 2>/dev/null || true; done
  for pid in $a_pid $b_pid $redis_pid; do wait "$pid" 2>/dev/null || true; done
  redis_pid="" a_pid="" b_pid=""
}
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  stop_all
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$root/scripts/make-certs.sh" "$work/certs" >/dev/null
token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export FAKE_CLAUDE_STATE_DIR="$work/fake-state"
scheme=wss http=https tls_args=(--tls-cert "$work/certs/server.crt" --tls-key "$work/certs/server.key")
if [[ $mode == plain ]]; then scheme=ws http=http tls_args=(--no-tls); fi

rcli() { redis-cli -p "$redis_port" "$@"; }
# One field of INFO (e.g. used_memory).
redis_info() { rcli info all | tr -d '\r' | awk -F: -v k="$1" '$1 == k { print $2 }'; }
# Calls of a command so far (INFO commandstats: cmdstat_xadd:calls=N,usec=...).
redis_calls() { rcli info commandstats | tr -d '\r' | sed -n "s/^cmdstat_$1:calls=\([0-9]*\).*/\1/p" | grep . || echo 0; }

# start_node NAME: a server in the cluster with its own data dir, project root and port; sets
# <name>_pid and <name>_port.
start_node() {
  local name=$1 port data
  port=$(free_port)
  data=$(mktemp -d "$work/data-$name.XXXXXX")
  mkdir -p "$work/root-$name"
  # The token and the cluster secret in the environment, not in argv (ps shows argv).
  PA_AUTH_TOKEN=$token PA_CLUSTER_SECRET=$secret "$server_bin" --host 127.0.0.1 --port "$port" \
    --data-dir "$data" "${tls_args[@]}" --claude-binary "$fake" --log-level warn "${load_limits[@]}" \
    ${allow_root[@]+"${allow_root[@]}"} --projects-allowed-roots "$work/root-$name" \
    --cluster-redis-url "redis://127.0.0.1:$redis_port" --cluster-node-name "$name" \
    >>"$out/server-$name.log" 2>&1 &
  printf -v "${name}_pid" %s $!
  printf -v "${name}_port" %s "$port"
  wait_health "$http://127.0.0.1:$port" "$!" ||
    { echo "cluster-fanout.sh: node $name did not start; see $out/server-$name.log" >&2; exit 1; }
}

# Until node NAME's health lists every node in the remaining arguments as up (20 s).
wait_sees() {
  local port=$1
  shift
  for _ in $(seq 200); do
    if curl -sk --max-time 1 "$http://127.0.0.1:$port/health" |
      python3 -c 'import json, sys
c = json.load(sys.stdin).get("cluster") or {}
up = {n["name"] for n in c.get("nodes", []) if n.get("state") == "up"}
sys.exit(0 if set(sys.argv[1:]) <= up else 1)' "$@"; then return 0; fi
    sleep 0.1
  done
  echo "cluster-fanout.sh: node on port $port does not see nodes $* up" >&2
  exit 1
}

start_cluster() {
  redis_port=$(free_port)
  mkdir -p "$work/redis"
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work/redis" --save "" \
    --appendonly no --daemonize no --protected-mode no >>"$out/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 100); do
    [[ $(rcli ping 2>/dev/null) == PONG ]] && break
    sleep 0.1
  done
  [[ $(rcli ping 2>/dev/null) == PONG ]] || { echo "cluster-fanout.sh: redis-server did not start; see $out/redis.log" >&2; exit 1; }
  start_node a
  start_node b
  wait_sees "$a_port" a b
  wait_sees "$b_port" a b
}

# run_case local|remote <pocket-agent-bench fanout options...>: one flood on b's project, the
# subscribers on b (local) or a (remote), on a fresh cluster; appends one JSON line with the
# bench's figures and Redis's.
failed=0
run_case() {
  local where=$1 subs_port
  shift
  start_cluster
  subs_port=$b_port
  [[ $where == remote ]] && subs_port=$a_port
  local mem_before xadd_before xread_before
  mem_before=$(redis_info used_memory)
  xadd_before=$(redis_calls xadd)
  xread_before=$(redis_calls xread)
  local json
  if ! json=$("$bench_bin" --url "$scheme://127.0.0.1:$b_port/ws" \
    --subscriber-url "$scheme://127.0.0.1:$subs_port/ws" --token "$token" --insecure \
    --project-dir "$work/root-b" --threads "$threads" --keep-project \
    --watch-pid "node_a=$a_pid" --watch-pid "node_b=$b_pid" --watch-pid "redis=$redis_pid" \
    --json --subscribers "$subscribers" "$@" fanout); then
    echo "cluster-fanout.sh: the $where run failed (its error is above)" >&2
    failed=1
    stop_all
    return 0
  fi
  local project stream
  project=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["project_id"])' "$json")
  stream="pa:ev:$project"
  # The project's event stream as the flood left it, node a's reply stream (what b sent back
  # for a's clients: join answers and catch-up pages), Redis's memory and the XADD and XREAD
  # calls since the start (the joins' few included).
  python3 -c 'import json, sys
r = json.loads(sys.argv[1])
n = [int(v) if v.isdigit() else None for v in sys.argv[3:]]
r.update(case=sys.argv[2], redis_used_memory_before=n[0], redis_used_memory_after=n[1],
         redis_stream_entries=n[2], redis_stream_bytes=n[3], redis_reply_stream_entries=n[4],
         redis_reply_stream_bytes=n[5], redis_xadd_calls=n[6] - n[7], redis_xread_calls=n[8] - n[9])
print(json.dumps(r))' "$json" "$where" "$mem_before" "$(redis_info used_memory)" \
    "$(rcli xlen "$stream")" "$(rcli memory usage "$stream" samples 0)" \
    "$(rcli xlen pa:reply:a)" "$(rcli memory usage pa:reply:a samples 0)" \
    "$(redis_calls xadd)" "$xadd_before" "$(redis_calls xread)" "$xread_before" | tee -a "$results"
  stop_all
}

echo "cluster-fanout.sh: $mode, $subscribers subscribers, $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq "$repeat"); do
  if [[ $lines -gt 0 ]]; then
    for where in local remote; do
      run_case "$where" --lines "$lines" --line-bytes "$bytes"
    done
  fi
  if [[ $paced_lines -gt 0 ]]; then
    for where in local remote; do
      run_case "$where" --lines "$paced_lines" --line-bytes "$bytes" --line-rate "$rate"
    done
  fi
done
echo "cluster-fanout.sh: done; load average $(cut -d' ' -f1-3 /proc/loadavg)"

if [[ $size == smoke ]]; then
  python3 "$here/check-results.py" "$results" fanout || failed=1
fi
python3 "$here/cluster_report.py" "$results" | tee "$out/results.md"
echo "results: $results and $out/results.md"
exit "$failed"
