#!/usr/bin/env bash
# Makes a self-signed ECDSA P-256 certificate for local development (kept if it exists).
set -euo pipefail
dir=${1:-./certs}
if [[ -s "$dir/server.crt" && -s "$dir/server.key" ]]; then
  echo "certificate exists: $dir/server.crt (delete it to make a new one)"
  exit 0
fi
mkdir -p "$dir"
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$dir/server.key" -out "$dir/server.crt" -days 825 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
  -addext "keyUsage=digitalSignature" -addext "extendedKeyUsage=serverAuth" 2>/dev/null
chmod 600 "$dir/server.key"
chmod 644 "$dir/server.crt"
echo "made $dir/server.crt and $dir/server.key (self-signed, for development only)"
