#!/usr/bin/env bash
# Installs what building and testing need: Debian packages, the web console's npm packages and
# the Node test clients' modules. Idempotent and quiet when everything is present; uses sudo when
# not root. PA_DEPS_NO_BROWSER=1 leaves out Chromium and the browser tests' modules (the Docker
# build, which runs no tests).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  g++ cmake ninja-build ccache pkg-config make openssl
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libssl-dev libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev
  libqrencode-dev  # QR codes for pairing a device (src/devices/qr.cpp)
  libsqlite3-dev  # the search index, SQLite FTS5 (src/search)
  libhiredis-dev  # cluster mode's Redis client, hiredis as its codec (src/redis, issue 20)
  redis-server  # the Redis the cluster's tests start on 127.0.0.1 (tests/support/redis_server.cpp)
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  clang-tidy clang-format
  clang libclang-rt-14-dev  # make fuzz: clang 14 and its libFuzzer/ASan/UBSan runtimes
  systemd  # systemd-analyze, for the systemd unit's test (deploy/tests/systemd-unit-test.sh)
  python3-prometheus-client  # the reference parser /metrics is also checked with (ops tests)
)
# Chromium for the web console's browser tests (tests/browser, driven by playwright-core), and
# zbarimg, which decodes the pairing QR codes in tests/devices.
[[ ${PA_DEPS_NO_BROWSER:-} == 1 ]] || packages+=(chromium zbar-tools)
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
if ((${#missing[@]})); then
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages from each lock file, when node_modules is missing or older than the lock: the
# end-to-end tests' `ws` client, the web console's build tools (Vite, TypeScript) and the browser
# tests' playwright-core.
npm_ci() {
  if [[ ! -d $1/node_modules ]] || [[ $1/package-lock.json -nt $1/node_modules/.package-lock.json ]]; then
    echo "installing npm packages in $1 (npm ci)"
    (cd "$1" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
}
npm_ci tests/e2e
npm_ci web
[[ ${PA_DEPS_NO_BROWSER:-} == 1 ]] || npm_ci tests/browser

# The real Claude CLI, pinned in tools/claude-cli/package.json, for the tests that run it.
scripts/install-claude-cli.sh
