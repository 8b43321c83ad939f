# shellcheck shell=bash disable=SC2034,SC2154
# Helpers shared by bench/run-load.sh and bench/cluster-fanout.sh (sourced, not run). Each
# needs `server_bin` set before it is sourced; it uses allow_root and load_limits.

# A free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --allow-root when run as root and the server knows the flag.
allow_root=()
if [[ $(id -u) -eq 0 ]] && "$server_bin" --help 2>&1 | grep -q -- --allow-root; then
  allow_root+=(--allow-root)
fi

# Limits raised for load: connections, per-address connection rate (every client here is
# 127.0.0.1), projects and runs; the outbound queue stays bounded (websocket.* defaults).
load_limits=(--limits-max-connections 20000 --limits-connection-rate 0 --limits-max-projects 1000)

# wait_health <http(s)://host:port> <pid>: until /health answers (10 s); false if the process
# died or the time is up.
wait_health() {
  local base=$1 pid=$2
  for _ in $(seq 100); do
    if curl -sk --max-time 1 "$base/health" >/dev/null 2>&1; then return 0; fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
