# Pocket Agent Server image (Debian 12). See docs/operations.md, "Docker".
#   docker build -t pocket-agent-server .
#   docker compose up -d          (docker-compose.yml: ./data -> /data, ./certs -> /certs)

# --- build: the repository's own scripts install the toolchain and build the server ---------
FROM debian:bookworm-slim AS build
WORKDIR /src
# install-deps.sh holds the package list (and installs the pinned Claude CLI in
# tools/claude-cli through scripts/install-claude-cli.sh). Copy only what it reads first, so
# this layer is rebuilt only when the dependencies change.
COPY scripts/ scripts/
COPY tests/e2e/package.json tests/e2e/package-lock.json tests/e2e/
COPY web/package.json web/package-lock.json web/
COPY tools/claude-cli/package.json tools/claude-cli/package-lock.json tools/claude-cli/
RUN PA_DEPS_NO_BROWSER=1 scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN make build BUILD_TYPE=Release CMAKE_FLAGS="-DPA_BUILD_TESTS=OFF -DPA_BUILD_BENCH=OFF" \
 && make install BUILD_TYPE=Release PREFIX=/usr/local DESTDIR=/out

# --- runtime -----------------------------------------------------------------------------------
FROM debian:bookworm-slim
COPY scripts/runtime-packages.sh /tmp/runtime-packages.sh
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(bash /tmp/runtime-packages.sh) \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.sh
# A fixed uid/gid, so that host directories mounted at /data can be given to it (chown 10001).
RUN groupadd --gid 10001 pocket-agent \
 && useradd --uid 10001 --gid pocket-agent --create-home --home-dir /home/pocket-agent \
      --shell /usr/sbin/nologin pocket-agent \
 && mkdir -p /data /certs \
 && chown pocket-agent:pocket-agent /data \
 && chmod 700 /data
# The server (and share/pocket-agent/config.example.yaml) as `make install` laid them out.
COPY --from=build /out/usr/local/ /usr/local/
# The pinned Claude CLI, installed in the build stage from tools/claude-cli/package-lock.json.
COPY --from=build /src/tools/claude-cli/ /opt/claude-cli/
ENV PATH=/opt/claude-cli/node_modules/.bin:$PATH
RUN pocket-agent-server --version && claude --version

ENV PA_DATA_DIR=/data \
    PA_TLS_CERT=/certs/server.crt \
    PA_TLS_KEY=/certs/server.key
USER pocket-agent
WORKDIR /data
EXPOSE 8443
VOLUME ["/data", "/certs"]
# /health needs no token; it answers 503 only while the server shuts down.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD curl -fsk https://localhost:8443/health || exit 1
# Exec form: the server is PID 1, gets SIGTERM from `docker stop` and reaps orphaned processes.
# Give it time for its graceful shutdown: `docker stop -t 60` (compose: stop_grace_period).
ENTRYPOINT ["pocket-agent-server"]
