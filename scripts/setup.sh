#!/usr/bin/env bash
# Sets up castra on a fresh machine: QEMU through the platform's package manager where missing, npm ci, the
# build, and a `castra` command on PATH that runs this checkout's build. Running it again changes nothing more.
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$(pwd -P)

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
npm run --silent build

# The nearest existing directory on the way to $1 is writable: npm could create $1 there.
writable() {
  local dir=$1
  while [ ! -e "$dir" ]; do dir=$(dirname "$dir"); done
  [ -w "$dir" ]
}

# npm's global prefix when this user may write it (root, nvm, Homebrew), else ~/.local (the XDG user prefix).
prefix=$(npm prefix --global)
default_prefix=$prefix
if ! writable "$prefix/lib/node_modules" || ! writable "$prefix/bin"; then prefix="$HOME/.local"; fi
bin="$prefix/bin"
# npm links the checkout itself: a later `npm run build` is what `castra` runs, and npm knows how to remove it.
npm install --global --prefix "$prefix" --ignore-scripts --no-audit --no-fund --loglevel=error . >/dev/null
if [ "$prefix" = "$default_prefix" ]; then remove="npm uninstall --global castra"; else remove="npm uninstall --global --prefix '$prefix' castra"; fi
echo "castra: $bin/castra runs this checkout's build ($checkout); remove it with: $remove"

# A new login shell must find it: when a login shell's PATH lacks $bin, the login shell's profile gets one
# line, and the message says which file and how to undo it. The last line says when this shell lacks it too.
on_path() { case ":$2:" in *":$1:"*) return 0 ;; *) return 1 ;; esac; }
shell=${SHELL:-/bin/sh}
login_path=$(env -i HOME="$HOME" USER="${USER:-}" SHELL="$shell" TERM=dumb "$shell" -lc 'printf %s "$PATH"' </dev/null 2>/dev/null || true)
new_shell=""
if ! on_path "$bin" "$login_path"; then
  case "$(basename "$shell")" in
    zsh) profile="$HOME/.zprofile" ;;
    bash) profile="$HOME/.profile"
      for file in "$HOME/.bash_profile" "$HOME/.bash_login"; do [ -f "$file" ] && { profile=$file; break; }; done ;;
    sh | dash | ksh) profile="$HOME/.profile" ;;
    *) profile="" ;;
  esac
  line="export PATH=\"$bin:\$PATH\"  # castra (scripts/setup.sh)"
  if [ -z "$profile" ]; then
    echo "castra: add $bin to PATH in your shell's start-up file ($(basename "$shell") is not one this script edits)"
  elif ! grep -qxF "$line" "$profile" 2>/dev/null; then
    echo "$line" >> "$profile"
    echo "castra: added $bin to PATH in $profile (delete the line ending in '# castra (scripts/setup.sh)' to undo)"
  fi
fi
on_path "$bin" "$PATH" || new_shell=" (in a new login shell, or after: export PATH=\"$bin:\$PATH\")"
echo "castra is ready: run 'castra up' in any directory$new_shell"
