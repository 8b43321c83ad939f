#!/usr/bin/env bash
# Checks deploy/config.example.yaml against the built server:
#   - `--config deploy/config.example.yaml --print-config` exits 0 and shows the production
#     choices (data in /var/lib/pocket-agent, certificates in /etc/pocket-agent/tls/, JSON logs
#     on stdout);
#   - the server starts with the file (only address, port, TLS, data directory and CLI overridden
#     by flags so it can run here) and logs no "unknown key" warning: such warnings are only
#     logged at start-up, --print-config does not show them. A copy with a misspelled key must
#     produce the warning, so a change of its wording cannot make this test pass silently;
#   - GET /health answers 200 (the Dockerfile's HEALTHCHECK), and SIGTERM stops the server with
#     exit status 0.
# Usage: example-config-test.sh SERVER_BINARY FAKE_CLAUDE
set -euo pipefail

server="$1"
fake_claude="$2"
deploy="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
config="$deploy/config.example.yaml"

# Only this file configures the server: no PA_* variable from the caller's environment.
while read -r name; do unset "$name"; done < <(compgen -e | grep '^PA_' || true)

work="$(mktemp -d)"
pid=""
cleanup() {
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP  # run the EXIT trap (stop the server) when ctest gives up on us
fail() { echo "FAIL: $*" >&2; [[ -f "$work/log" ]] && sed 's/^/  log: /' "$work/log" >&2; exit 1; }

# 1. --print-config
printed="$("$server" --config "$config" --print-config 2>&1)" || fail "--print-config exited $?: $printed"
if grep -i "unknown" <<<"$printed"; then fail "--print-config reports unknown settings"; fi
expect() {  # expect SECTION KEY VALUE: the printed value of SECTION.KEY (first level below SECTION)
  local got
  got="$(awk -v s="$1" -v k="$2" '$0 ~ "^"s":"{t=1; next} /^[^ ]/{t=0} t && $1 == k":" {print $2; exit}' <<<"$printed")"
  [[ "$got" == "$3" ]] || fail "$1.$2 is $got, expected $3"
}
expect data dir '"/var/lib/pocket-agent"'
expect logging output '"stdout"'
expect logging format '"json"'
expect auth enabled true
grep -qx '    cert: "/etc/pocket-agent/tls/server.crt"' <<<"$printed" || fail "server.tls.cert is not /etc/pocket-agent/tls/server.crt"
grep -qx '    key: "/etc/pocket-agent/tls/server.key"' <<<"$printed" || fail "server.tls.key is not /etc/pocket-agent/tls/server.key"
grep -qx '    enabled: true' <<<"$printed" || fail "server.tls.enabled is not true"

# 2. Start the server with CONFIG (log in $work/log); sets pid and port.
port=""
start() {
  : >"$work/log"
  # --allow-root: the server refuses root without it, and CI containers run tests as root.
  "$server" --config "$1" --host 127.0.0.1 --port 0 --no-tls --data-dir "$work/data" \
    --claude-binary "$fake_claude" $([[ $(id -u) -eq 0 ]] && echo --allow-root) >"$work/log" 2>&1 &
  pid=$!
  port=""
  for _ in $(seq 100); do
    port="$(sed -n 's/.*listening on ws:\/\/127\.0\.0\.1:\([0-9]*\)\/ws.*/\1/p' "$work/log")"
    [[ -n "$port" ]] && break
    kill -0 "$pid" 2>/dev/null || fail "the server exited during start-up"
    sleep 0.1
  done
  [[ -n "$port" ]] || fail "the server did not report its port within 10 s"
}
stop() {
  kill -TERM "$pid"
  local rc=0
  wait "$pid" || rc=$?
  pid=""
  ((rc == 0)) || fail "the server exited with status $rc after SIGTERM"
}

start "$config"
if command -v curl >/dev/null 2>&1; then
  status="$(curl -s -o "$work/health" -w '%{http_code}' "http://127.0.0.1:$port/health")" || true
  [[ "$status" == 200 ]] || fail "GET /health answered '$status', expected 200"
  grep -q '"status"' "$work/health" || fail "GET /health body has no status: $(cat "$work/health")"
else
  echo "note: curl not found, GET /health not checked"
fi
stop
if grep -i "unknown key\|unknown variable" "$work/log"; then fail "the example configuration has unknown keys"; fi
grep -q '"level":"critical"\|"level":"fatal"\|"level":"error"' "$work/log" && fail "errors logged with the example configuration"

# 3. Negative control: a misspelled key must be reported by the same check.
sed 's/^  max_projects:/  max_projetcs:/' "$config" >"$work/typo.yaml"
grep -q '^  max_projetcs:' "$work/typo.yaml" || fail "could not make the misspelled copy"
start "$work/typo.yaml"
stop
grep -q "unknown key 'limits.max_projetcs'" "$work/log" ||
  fail "a misspelled key is not logged as \"unknown key 'limits.max_projetcs'\"; this test cannot detect unknown keys"

echo "OK: the example configuration loads, starts the server without unknown keys, /health answers"
