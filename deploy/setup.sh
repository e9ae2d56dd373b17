#!/usr/bin/env bash
# Installs what building Agadir needs on Debian/Ubuntu: the C libraries behind the
# CZlib, CLZ4 and CSQLite system library targets, and pkg-config to find them.
# Idempotent: does nothing when everything is already installed.
set -euo pipefail
packages=(zlib1g-dev liblz4-dev libsqlite3-dev pkg-config openssl)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}" >&2
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
