#!/usr/bin/env bash
# Installs the Claude Code CLI pinned in tools/claude-cli/package.json (exact version, locked by
# tools/claude-cli/package-lock.json) into tools/claude-cli/node_modules. The real-CLI tests
# (tests/agent/real_cli_args_test.cpp) run that binary.
#
# Idempotent: runs `npm ci` only when node_modules is missing or older than the lock (or
# package.json); otherwise it only checks that the installed CLI runs, and prints nothing.
# The package pulls a ~250 MB native binary through a platform-specific optional dependency.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/tools/claude-cli"
bin="$dir/node_modules/.bin/claude"
# npm writes node_modules/.package-lock.json on every install: it marks the installed state.
marker="$dir/node_modules/.package-lock.json"

if ! command -v npm >/dev/null 2>&1; then
  echo "install-claude-cli: npm is not installed (Node.js >= 18 with npm is required)" >&2
  exit 1
fi

needs_install=0
if [[ ! -x "$bin" || ! -f "$marker" ]]; then
  needs_install=1
elif [[ "$dir/package-lock.json" -nt "$marker" || "$dir/package.json" -nt "$marker" ]]; then
  needs_install=1
fi

if ((needs_install)); then
  echo "install-claude-cli: installing the pinned Claude Code CLI in tools/claude-cli (npm ci)"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  # The wrapper's postinstall copies the platform binary over its bin/claude.exe placeholder. If
  # npm skipped install scripts, run that step directly.
  if ! "$bin" --version >/dev/null 2>&1; then
    (cd "$dir/node_modules/@anthropic-ai/claude-code" && node install.cjs)
  fi
  touch "$marker"
fi

if ! version="$("$bin" --version 2>&1)"; then
  echo "install-claude-cli: $bin does not run: $version" >&2
  exit 1
fi
if ((needs_install)); then echo "claude-cli: $version"; fi
