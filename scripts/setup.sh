#!/usr/bin/env bash
# Sets up castra on a fresh machine: QEMU through the platform's package manager where missing, then npm ci.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86_64)
command -v qemu-img >/dev/null 2>&1 || missing+=(qemu-img)

if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing QEMU (missing: ${missing[*]})"
  if command -v apt-get >/dev/null 2>&1; then
    as_root apt-get update
    as_root apt-get install -y --no-install-recommends qemu-system-x86 qemu-utils
  elif command -v dnf >/dev/null 2>&1; then
    as_root dnf install -y qemu-system-x86 qemu-img
  elif command -v brew >/dev/null 2>&1; then
    brew install qemu
  else
    echo "castra needs QEMU (qemu-system-x86_64 and qemu-img); install it with your package manager" >&2
    exit 72
  fi
fi

npm ci
echo "castra is ready: run 'npx castra up' in any directory"
