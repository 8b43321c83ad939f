#!/usr/bin/env bash
# Prints the Debian 12 packages the server needs at run time, one per line: the shared libraries
# the binary links (check: `ldd build/app/pocket-agent-server`; deploy/tests/dockerfile-test.sh
# fails when a linked library's package is missing here), plus what the container runs besides
# the server. The Dockerfile's runtime stage installs exactly this list.
set -euo pipefail

packages=(
  # Shared libraries of pocket-agent-server (libc6 and libgcc-s1 are in every Debian image).
  libboost-json1.81.0 libboost-container1.81.0 libboost-url1.81.0 libyaml-cpp0.7 libspdlog1.10 libfmt9 libssl3 libstdc++6
  # QR codes: `pair` and `qr` draw them, the console shows them (src/devices/qr.cpp).
  libqrencode4
  # The search index over history: SQLite with FTS5 (src/search).
  libsqlite3-0
  # Cluster mode's Redis client: hiredis parses and formats the protocol (src/redis).
  libhiredis0.14
  # TLS trust store (the Claude CLI calls the Anthropic API), openssl for certificates,
  # curl for the HEALTHCHECK (GET /health).
  ca-certificates openssl curl
  # Node.js and npm for the CLI's ecosystem (MCP servers run with npx, JavaScript projects).
  nodejs npm
)
printf '%s\n' "${packages[@]}"
