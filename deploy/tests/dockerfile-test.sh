#!/usr/bin/env bash
# Checks that the Docker files are derived from the repository's scripts and agree with the
# server (no Docker engine needed):
#   - Dockerfile: Debian 12 (debian:bookworm-slim) stages; the build stage runs
#     scripts/install-deps.sh and `make build`/`make install`; the runtime stage installs the
#     output of scripts/runtime-packages.sh, runs as a non-root user, exposes 8443, declares
#     /data and /certs, sets PA_DATA_DIR/PA_TLS_CERT/PA_TLS_KEY and checks GET /health;
#   - docker-compose.yml: ./data:/data, ./certs:/certs:ro, 8443:8443; .dockerignore keeps build
#     trees, data, certificates and node_modules out of the context;
#   - every shared library the built server links (ldd) comes from a package that
#     runtime-packages.sh lists (libc6 and libgcc-s1 are in every Debian image);
#   - every package runtime-packages.sh prints exists in Debian 12 (`apt-cache show`). That part
#     needs this machine to be Debian 12 with apt lists; otherwise the test reports SKIPPED (77)
#     after the other checks passed.
# Usage: dockerfile-test.sh SERVER_BINARY
set -euo pipefail

server="$1"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dockerfile="$root/Dockerfile"
compose="$root/docker-compose.yml"
fail() { echo "FAIL: $*" >&2; exit 1; }
has() {  # has FILE REGEX WHAT
  grep -Eq -- "$2" "$1" || fail "$(basename "$1"): $3"
}

# 1. Dockerfile
[[ -f "$dockerfile" ]] || fail "no Dockerfile"
from_lines="$(grep -E '^FROM ' "$dockerfile")"
(($(wc -l <<<"$from_lines") >= 2)) || fail "Dockerfile: expected a build stage and a runtime stage"
while read -r _ image _; do
  [[ "$image" == debian:bookworm-slim ]] || fail "Dockerfile: base image $image is not debian:bookworm-slim"
done <<<"$from_lines"
# The runtime stage is everything after the last FROM.
runtime="$(awk '/^FROM /{buf=""} {buf=buf $0 "\n"} END{printf "%s", buf}' "$dockerfile")"
build="$(awk '/^FROM /{n++} n==1' "$dockerfile")"
grep -Eq '^RUN .*scripts/install-deps\.sh' <<<"$build" || fail "Dockerfile: the build stage does not RUN scripts/install-deps.sh"
grep -Eq 'make build BUILD_TYPE=Release' <<<"$build" || fail "Dockerfile: the build stage does not run make build BUILD_TYPE=Release"
grep -Eq 'make install .*DESTDIR=' <<<"$build" || fail "Dockerfile: the build stage does not use make install"
grep -Eq 'scripts/runtime-packages\.sh' <<<"$runtime" || fail "Dockerfile: the runtime stage does not use scripts/runtime-packages.sh"
grep -Eq 'apt-get install .*\$\((bash )?/tmp/runtime-packages\.sh\)' <<<"$runtime" ||
  fail "Dockerfile: the runtime stage does not apt-get install the output of runtime-packages.sh"
grep -Eq '^USER +[^r0 ]' <<<"$runtime" || fail "Dockerfile: the runtime stage does not switch to a non-root USER"
grep -Eq '^EXPOSE +8443$' <<<"$runtime" || fail "Dockerfile: no EXPOSE 8443"
grep -Eq '^VOLUME .*"/data".*"/certs"' <<<"$runtime" || fail "Dockerfile: no VOLUME [\"/data\", \"/certs\"]"
grep -q 'PA_DATA_DIR=/data' <<<"$runtime" || fail "Dockerfile: no ENV PA_DATA_DIR=/data"
grep -q 'PA_TLS_CERT=/certs/server.crt' <<<"$runtime" || fail "Dockerfile: no ENV PA_TLS_CERT=/certs/server.crt"
grep -q 'PA_TLS_KEY=/certs/server.key' <<<"$runtime" || fail "Dockerfile: no ENV PA_TLS_KEY=/certs/server.key"
grep -Eq 'CMD curl -fsk https://localhost:8443/health' <<<"$runtime" || fail "Dockerfile: no HEALTHCHECK with GET /health"
grep -Eq 'tools/claude-cli' <<<"$runtime" || fail "Dockerfile: the runtime stage does not take the pinned CLI from tools/claude-cli"

# 2. docker-compose.yml and .dockerignore
[[ -f "$compose" ]] || fail "no docker-compose.yml"
has "$compose" '^ *- *"?\./data:/data"?$' "no ./data:/data volume"
has "$compose" '^ *- *"?\./certs:/certs:ro"?$' "no ./certs:/certs:ro volume"
has "$compose" '^ *- *"?8443:8443"?$' "no 8443:8443 port"
# The two-node cluster example (issue 20): one Redis with a password and no published port, two
# nodes with their own names and data, secrets from cluster.env (never in the file).
cluster="$root/docker-compose.cluster.yml"
[[ -f "$cluster" ]] || fail "no docker-compose.cluster.yml"
has "$cluster" 'requirepass' "docker-compose.cluster.yml: Redis has no password"
has "$cluster" 'PA_CLUSTER_NODE_NAME: node-a' "docker-compose.cluster.yml: no node-a"
has "$cluster" 'PA_CLUSTER_NODE_NAME: node-b' "docker-compose.cluster.yml: no node-b"
has "$cluster" '^ *- \./data-a:/data$' "docker-compose.cluster.yml: node-a has no data dir of its own"
has "$cluster" '^ *- \./data-b:/data$' "docker-compose.cluster.yml: node-b has no data dir of its own"
has "$cluster" 'env_file: cluster.env' "docker-compose.cluster.yml: secrets do not come from cluster.env"
! grep -Eq '6379:6379|PA_CLUSTER_SECRET: ' "$cluster" || fail "docker-compose.cluster.yml: Redis published, or a secret written in the file"
grep -qxF -- cluster.env "$root/.dockerignore" || fail ".dockerignore: missing cluster.env"
for pattern in build data certs '**/node_modules'; do
  grep -qxF -- "$pattern" "$root/.dockerignore" || fail ".dockerignore: missing $pattern"
done

# 3. runtime-packages.sh covers the server's shared libraries.
mapfile -t packages < <(bash "$root/scripts/runtime-packages.sh")
((${#packages[@]} > 0)) || fail "runtime-packages.sh printed nothing"
for p in "${packages[@]}"; do
  [[ "$p" =~ ^[a-z0-9][a-z0-9.+-]+$ ]] || fail "runtime-packages.sh: '$p' is not a package name"
done
# A loop, not `printf | grep -q`: under pipefail, grep -q quitting early can fail the pipe (SIGPIPE).
listed() {
  local p
  for p in "${packages[@]}" libc6 libgcc-s1; do [[ "$p" == "$1" ]] && return 0; done
  return 1
}
if command -v ldd >/dev/null && command -v dpkg >/dev/null && [[ -x "$server" ]]; then
  while read -r lib; do
    owner="$(dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib" 2>/dev/null || true)"
    [[ -n "$owner" ]] || { echo "note: no package owns $lib; not checked"; continue; }
    pkg="${owner%%:*}"
    # Sanitizer builds (make test-asan / test-race) link their runtimes; images never ship those.
    [[ "$pkg" =~ ^lib(asan|ubsan|tsan|lsan)[0-9]*$ ]] && continue
    listed "$pkg" || fail "the server links $lib from package $pkg, which runtime-packages.sh does not list"
  done < <(ldd "$server" | awk '$2 == "=>" && $3 ~ /^\// {print $3}')
else
  echo "note: ldd, dpkg or the server binary missing; linked libraries not checked"
fi

# 4. Every listed package exists in Debian 12.
codename="$( (. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}") || true)"
if [[ "$codename" != bookworm ]] || ! command -v apt-cache >/dev/null; then
  echo "SKIPPED (after the checks above passed): not Debian 12 with apt-cache, package names not checked"
  exit 77
fi
if [[ -z "$(apt-cache pkgnames 2>/dev/null | head -1)" ]]; then
  echo "SKIPPED (after the checks above passed): apt lists are empty (run apt-get update), package names not checked"
  exit 77
fi
# One `apt-cache policy` for all: a package exists when it has an installation candidate.
candidates="$(LC_ALL=C apt-cache policy "${packages[@]}" 2>/dev/null |
  awk '/^[^ ]/ {name = $1; sub(/:$/, "", name)} /^  Candidate:/ && $2 != "(none)" {print name}')"
for p in "${packages[@]}"; do
  grep -qxF -- "$p" <<<"$candidates" || fail "runtime-packages.sh: package $p does not exist in Debian 12"
done

echo "OK: Dockerfile, docker-compose.yml and .dockerignore agree with the scripts; ${#packages[@]} runtime packages exist and cover the server's libraries"
