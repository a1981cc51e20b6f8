#!/usr/bin/env bash
# Installs the Debian packages bleedwatch's tests start as real peers, if any is missing.
# The lists are scripts/test-packages/*.txt (one package per line, # comments), one file per area.
# Safe to run repeatedly; needs root (or sudo) only when something has to be installed.
set -euo pipefail
cd "$(dirname "$0")"

mapfile -t packages < <(sed -e 's/#.*//' -e 's/[[:space:]]\+$//' test-packages/*.txt | grep -v '^[[:space:]]*$' | sort -u)
# Python tools from PyPI (sslyze attacks the honeypot in tests/cli.rs, kubernetes-validate checks deploy/), in a venv under target/ so
# nothing outside the checkout changes. scripts/test.sh puts its bin/ on PATH.
venv="$(cd .. && pwd)/target/test-tools/venv"
# A venv's scripts name its own path: one moved with its checkout (or a copied target/) no longer
# runs, and is made again.
if [ -d "$venv" ] && ! "$venv/bin/sslyze" --help >/dev/null 2>&1; then
  echo "the venv in $venv does not run here: making it again" >&2
  rm -rf "$venv"
fi
if [ ! -x "$venv/bin/sslyze" ]; then
  echo "installing sslyze into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "sslyze==6.3.1"
fi
# kubernetes-validate checks deploy/k8s offline against the API's schemas (tests/cli.rs).
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  echo "installing kubernetes-validate into $venv" >&2
  "$venv/bin/python3" -m pip install -q --disable-pip-version-check "kubernetes-validate==1.37.0"
fi

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
# Package scripts must not start system services on the test machine: the tests start their own
# instances on loopback ports.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  trap '$SUDO rm -f "$policy"' EXIT
fi
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
