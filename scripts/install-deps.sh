#!/usr/bin/env bash
# Installs what building and testing need: Debian packages and the Node test client's modules.
# Idempotent and quiet when everything is present; uses sudo when not root.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  g++ cmake ninja-build ccache pkg-config make openssl
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libssl-dev libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  clang-tidy clang-format
  clang libclang-rt-14-dev  # make fuzz: clang 14 and its libFuzzer/ASan/UBSan runtimes
  systemd  # systemd-analyze, for the systemd unit's test (deploy/tests/systemd-unit-test.sh)
)
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

# Node modules for the end-to-end tests (the `ws` client), from the lock file.
if [[ ! -d tests/e2e/node_modules ]] || [[ tests/e2e/package-lock.json -nt tests/e2e/node_modules/.package-lock.json ]]; then
  echo "installing Node test modules (npm ci)"
  (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

# The real Claude CLI, pinned in tools/claude-cli/package.json, for the tests that run it.
scripts/install-claude-cli.sh
