#!/usr/bin/env bash
# Checks `make install`'s install step (`cmake --install`) with a PREFIX and a DESTDIR, as a
# packager would run it: everything lands under DESTDIR/PREFIX and nowhere else, the binary runs,
# the unit is rendered for PREFIX (not for the prefix configured at build time), and the example
# configuration is the one in deploy/.
# Usage: install-test.sh CMAKE BUILD_DIR SOURCE_DIR
set -euo pipefail

cmake_bin="$1"
build="$2"
source="$3"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

DESTDIR="$work/stage" "$cmake_bin" --install "$build" --prefix /opt/pa >"$work/log" 2>&1 ||
  { cat "$work/log" >&2; fail "cmake --install exited non-zero"; }

root="$work/stage/opt/pa"
expected=(
  "$root/bin/pocket-agent-server"
  "$root/lib/systemd/system/pocket-agent-server.service"
  "$root/share/pocket-agent/config.example.yaml"
)
for f in "${expected[@]}"; do [[ -f "$f" ]] || fail "not installed: ${f#"$work/stage"}"; done
# Nothing outside DESTDIR/PREFIX, nothing unexpected inside it.
extra="$(cd "$work/stage" && find . -type f | sort | grep -v -x -F \
  -e ./opt/pa/bin/pocket-agent-server \
  -e ./opt/pa/lib/systemd/system/pocket-agent-server.service \
  -e ./opt/pa/share/pocket-agent/config.example.yaml || true)"
[[ -z "$extra" ]] || fail "unexpected files installed: $extra"

[[ -x "$root/bin/pocket-agent-server" ]] || fail "the binary is not executable"
version="$("$root/bin/pocket-agent-server" --version)" || fail "the installed binary does not run"
[[ "$version" == pocket-agent-server* ]] || fail "unexpected --version output: $version"
grep -qxF 'ExecStart=/opt/pa/bin/pocket-agent-server --config /etc/pocket-agent/config.yaml' \
  "$root/lib/systemd/system/pocket-agent-server.service" ||
  fail "the unit's ExecStart does not name /opt/pa/bin/pocket-agent-server"
cmp -s "$root/share/pocket-agent/config.example.yaml" "$source/deploy/config.example.yaml" ||
  fail "the installed example configuration differs from deploy/config.example.yaml"
echo "OK: installed to DESTDIR/opt/pa: ${#expected[@]} files"
