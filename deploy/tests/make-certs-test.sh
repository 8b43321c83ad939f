#!/usr/bin/env bash
# scripts/make-certs.sh: a local CA and a server certificate it signs, valid for localhost, the
# loopback addresses, this host's name and EXTRA_SANS; private keys 0600; kept on a second run.
set -euo pipefail
script=$1
command -v openssl >/dev/null || { echo "openssl missing"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

EXTRA_SANS="DNS:box.example.net,IP:192.0.2.7" bash "$script" "$dir/certs" >"$dir/out.txt"
c=$dir/certs
for f in ca.crt ca.key server.crt server.key; do [[ -s $c/$f ]] || fail "$f missing"; done
[[ $(stat -c %a "$c/server.key") == 600 ]] || fail "server.key is not 0600"
[[ $(stat -c %a "$c/ca.key") == 600 ]] || fail "ca.key is not 0600"

# The leaf (first in server.crt) verifies against the CA alone.
openssl x509 -in "$c/server.crt" -out "$dir/leaf.crt"
openssl verify -CAfile "$c/ca.crt" "$dir/leaf.crt" | grep -q ': OK' || fail "the chain does not verify"
openssl x509 -in "$c/ca.crt" -noout -text | grep -q 'CA:TRUE' || fail "ca.crt is not a CA"
leaf=$(openssl x509 -in "$dir/leaf.crt" -noout -text)
grep -q 'CA:FALSE' <<<"$leaf" || fail "the server certificate is a CA"
grep -q 'TLS Web Server Authentication' <<<"$leaf" || fail "no serverAuth"
for want in "DNS:localhost" "IP Address:127.0.0.1" "DNS:box.example.net" "IP Address:192.0.2.7"; do
  grep -q "$want" <<<"$leaf" || fail "no $want in the subject alternative names"
done
host=$(hostname)
if [[ $host =~ ^[A-Za-z0-9.-]+$ && $host != localhost ]]; then
  grep -q "DNS:$host" <<<"$leaf" || fail "the host name $host is not in the certificate"
fi
openssl x509 -in "$dir/leaf.crt" -noout -checkend $((824 * 86400)) >/dev/null || fail "valid under 824 days"
if openssl x509 -in "$dir/leaf.crt" -noout -checkend $((826 * 86400)) >/dev/null; then
  fail "valid over 825 days (Apple's limit)"
fi

# A second run keeps everything.
before=$(sha256sum "$c/server.crt" "$c/ca.crt")
bash "$script" "$dir/certs" | grep -q 'certificate exists' || fail "second run did not keep the certificate"
[[ $(sha256sum "$c/server.crt" "$c/ca.crt") == "$before" ]] || fail "second run changed the files"
echo "make-certs: CA, chain, names, modes and validity as documented"
