#!/usr/bin/env bash
# Makes a local certificate authority and a server certificate signed by it (ECDSA P-256), for a
# server on this machine and your own devices (kept if they exist):
#   <dir>/ca.crt, ca.key       the local CA: install ca.crt once on each phone or browser that
#                              connects (README, "Use the console from your phone"); keep ca.key
#   <dir>/server.crt, .key     the server's certificate (chain: leaf + CA), valid for localhost,
#                              this host's name (and name.local) and its addresses
# A phone that trusts ca.crt sees a valid https:// page: service workers, notifications and
# installing the console to the home screen need that. Names or addresses to add: EXTRA_SANS,
# for example EXTRA_SANS="DNS:box.example.net,IP:192.168.1.20".
set -euo pipefail
dir=${1:-./certs}
if [[ -s "$dir/server.crt" && -s "$dir/server.key" ]]; then
  echo "certificate exists: $dir/server.crt (delete it, and server.key, to make a new one)"
  exit 0
fi
mkdir -p "$dir"
umask 077
host=$(hostname 2>/dev/null || echo localhost)

# Subject alternative names: localhost and loopback, this host's names, each of its addresses.
sans="DNS:localhost,IP:127.0.0.1,IP:::1"
if [[ $host != localhost && $host =~ ^[A-Za-z0-9.-]+$ ]]; then
  sans+=",DNS:$host"
  [[ $host == *.* ]] || sans+=",DNS:$host.local"
fi
for addr in $(hostname -I 2>/dev/null || true); do
  [[ $addr =~ ^[0-9A-Fa-f.:]+$ && $addr != 127.0.0.1 && $addr != ::1 ]] && sans+=",IP:$addr"
done
[[ -n ${EXTRA_SANS:-} ]] && sans+=",$EXTRA_SANS"

if [[ ! -s "$dir/ca.crt" || ! -s "$dir/ca.key" ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" -days 3650 \
    -subj "/CN=Pocket Agent local CA ($host)" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  echo "made the local CA $dir/ca.crt (install it on your devices; keep $dir/ca.key private)"
fi

ext=$(mktemp)
csr=$(mktemp)
trap 'rm -f "$ext" "$csr"' EXIT
cat >"$ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$sans
EXT
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$dir/server.key" -out "$csr" -subj "/CN=$host" 2>/dev/null
# 825 days: the longest validity Apple's platforms accept for a server certificate.
openssl x509 -req -in "$csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
  -CAserial "$dir/ca.srl" -days 825 -sha256 -extfile "$ext" -out "$dir/server.leaf.crt" 2>/dev/null
cat "$dir/server.leaf.crt" "$dir/ca.crt" >"$dir/server.crt"
rm -f "$dir/server.leaf.crt"
chmod 600 "$dir/server.key" "$dir/ca.key"
chmod 644 "$dir/server.crt" "$dir/ca.crt"
echo "made $dir/server.crt and $dir/server.key, signed by $dir/ca.crt, for: ${sans//,/ }"
