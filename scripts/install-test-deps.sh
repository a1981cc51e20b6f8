#!/usr/bin/env bash
# Installs the Debian packages bleedwatch's tests start as real peers, if any is missing.
# Safe to run repeatedly; needs root (or sudo) only when something has to be installed.
set -euo pipefail

packages=(
  openssl      # openssl s_server (OpenSSL 3: no heartbeat; TLS 1.3-only mode) and test certificates
  gnutls-bin   # gnutls-serv --heartbeat: heartbeat-capable, not vulnerable
  nginx-light  # nginx with RSA and ECDSA certificates
  ca-certificates
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing Debian packages: ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
# Debian starts nginx on port 80 when it is installed; the tests run their own instances.
if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl stop nginx 2>/dev/null || true; fi
$SUDO service nginx stop 2>/dev/null || true
