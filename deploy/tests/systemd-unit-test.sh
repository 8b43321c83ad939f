#!/usr/bin/env bash
# Checks deploy/pocket-agent-server.service.in: renders it the way `make install` does
# (deploy/render-unit.cmake), then
#   - `systemd-analyze verify` must accept the unit without a single complaint (it exits 0 on
#     unknown keys and bad values, and only prints them, so any output fails the test); the
#     test copy's ExecStart points at the build tree's binary, which verify needs to exist;
#   - the verifier is shown to catch a misspelled key and a bad value in this very unit, so a
#     verifier that stays silent cannot make the test pass;
#   - the hardening and lifecycle directives the deployment relies on are present;
#   - TimeoutStopSec leaves the server its whole shutdown sequence with the example
#     configuration: the shutdown grace + kill_grace + term_grace + 5 s for runs to end + 5 s for
#     connections to close.
# Usage: systemd-unit-test.sh CMAKE SERVER_BINARY. Exit 77 (skipped) without systemd-analyze.
set -euo pipefail

cmake_bin="$1"
server="$(readlink -f "$2")"
deploy="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "SKIPPED: systemd-analyze not found (Debian package 'systemd'; scripts/install-deps.sh installs it)"
  exit 77
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# 1. Render exactly as the install rule does.
"$cmake_bin" -DPREFIX=/usr/local -DOUTPUT="$work/rendered/pocket-agent-server.service" \
  -P "$deploy/render-unit.cmake"
unit="$work/rendered/pocket-agent-server.service"
if grep -n '@[A-Z_]*@' "$unit"; then fail "unsubstituted @VARIABLE@ in the rendered unit"; fi
grep -qxF 'ExecStart=/usr/local/bin/pocket-agent-server --config /etc/pocket-agent/config.yaml' "$unit" ||
  fail "ExecStart does not run /usr/local/bin/pocket-agent-server --config /etc/pocket-agent/config.yaml"

# 2. Directives the deployment relies on (docs/operations.md), and ones that would break the CLI.
required=(
  'User=pocket-agent' 'Group=pocket-agent'
  'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ProtectHome=read-only'
  'ReadWritePaths=/var/lib/pocket-agent' 'PrivateTmp=yes' 'LimitNOFILE=65536'
  'Restart=on-failure' 'KillMode=process' 'ExecReload=/bin/kill -HUP $MAINPID'
  'StateDirectory=pocket-agent' 'WorkingDirectory=/var/lib/pocket-agent'
)
for line in "${required[@]}"; do
  grep -qxF "$line" "$unit" || fail "missing '$line'"
done
for key in MemoryDenyWriteExecute SystemCallFilter; do
  if grep -q "^$key=" "$unit"; then fail "$key= breaks the Claude CLI or the tools it runs"; fi
done

# 3. systemd-analyze verify, on a copy named like the real unit whose ExecStart exists here.
verify() {  # verify DIR: prints the verifier's complaints; succeeds only if there are none
  local out rc=0
  out="$(cd "$1" && systemd-analyze verify --man=no ./pocket-agent-server.service 2>&1)" || rc=$?
  if ((rc != 0)) || [[ -n "$out" ]]; then
    printf '%s\n' "$out"
    return 1
  fi
}
mkdir "$work/good" "$work/typo" "$work/badvalue"
sed "s|^ExecStart=/usr/local/bin/pocket-agent-server |ExecStart=$server |" "$unit" \
  > "$work/good/pocket-agent-server.service"
grep -q "^ExecStart=$server " "$work/good/pocket-agent-server.service" || fail "could not point ExecStart at $server"
if ! verify "$work/good"; then fail "systemd-analyze verify complains about the unit (above)"; fi

sed 's/^NoNewPrivileges=/NoNewPrivilegs=/' "$work/good/pocket-agent-server.service" \
  > "$work/typo/pocket-agent-server.service"
if verify "$work/typo" >/dev/null; then
  fail "systemd-analyze verify does not report a misspelled key (NoNewPrivilegs); it cannot check this unit"
fi
sed 's/^ProtectSystem=strict/ProtectSystem=strcit/' "$work/good/pocket-agent-server.service" \
  > "$work/badvalue/pocket-agent-server.service"
if verify "$work/badvalue" >/dev/null; then
  fail "systemd-analyze verify does not report a bad value (ProtectSystem=strcit); it cannot check this unit"
fi

# 4. TimeoutStopSec covers the server's shutdown with the example configuration.
seconds() {  # DURATION as printed by --print-config (0, 250ms, 30s, 5m, 1h) -> whole seconds, rounded up
  local v="${1//\"/}"
  case "$v" in
    0) echo 0 ;;
    *ms) echo $(((${v%ms} + 999) / 1000)) ;;
    *s) echo "${v%s}" ;;
    *m) echo $((${v%m} * 60)) ;;
    *h) echo $((${v%h} * 3600)) ;;
    *) fail "cannot read duration '$1'" ;;
  esac
}
printed="$("$server" --config "$deploy/config.example.yaml" --print-config)"
timeout_of() {  # timeout_of KEY...: value of the first of timeouts.KEY that is printed
  local k v
  for k in "$@"; do
    v="$(awk -v k="$k" '/^timeouts:/{t=1; next} /^[^ ]/{t=0} t && $1 == k":" {print $2}' <<<"$printed")"
    if [[ -n "$v" ]]; then echo "$v"; return; fi
  done
  fail "--print-config shows none of timeouts.{$*}"
}
grace="$(timeout_of shutdown_grace shutdown)"
kill_grace="$(timeout_of kill_grace)"
term_grace="$(timeout_of term_grace)"
need=$(($(seconds "$grace") + $(seconds "$kill_grace") + $(seconds "$term_grace") + 10))
stop="$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s\{0,1\}$/\1/p' "$unit")"
[[ -n "$stop" ]] || fail "TimeoutStopSec= missing or not plain seconds"
((stop > need)) || fail "TimeoutStopSec=$stop does not exceed the server's worst-case shutdown of ${need}s"

echo "OK: unit renders, passes systemd-analyze verify (which catches a typo and a bad value here), has the required directives; TimeoutStopSec=$stop > ${need}s"
