#!/usr/bin/env bash
# Runs the tests: installs what the test fixtures need where missing, builds the CLI, then the suites.
# Usage: scripts/test.sh [unit|e2e|faults]... (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh
[ -d node_modules ] || npm ci
npm run --silent build

# Tests never touch the user's own download cache, the list of projects `castra list` reads, nor the runtime
# directory (sockets, code cache: kept under /tmp, whose short path leaves room for a unix socket name).
CASTRA_CACHE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/castra-test-cache.XXXXXX")
XDG_STATE_HOME=$(mktemp -d "${TMPDIR:-/tmp}/castra-test-state.XXXXXX")
XDG_RUNTIME_DIR=$(mktemp -d /tmp/castra-test-run.XXXXXX)
export CASTRA_CACHE_DIR XDG_STATE_HOME XDG_RUNTIME_DIR
trap 'rm -rf "$CASTRA_CACHE_DIR" "$XDG_STATE_HOME" "$XDG_RUNTIME_DIR"' EXIT

# `npm run test:faults -- <regex>`: the fault matrix takes a scenario filter instead of more suites.
if [ "${1:-}" = faults ] && [ $# -gt 1 ]; then
  node --import tsx test/faults/run.ts "${@:2}"
  exit
fi

suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(unit e2e faults)
for suite in "${suites[@]}"; do
  case "$suite" in
    # Unit test files are independent and mostly wait on their own processes: run a few side by side.
    unit) mapfile -t files < <(find src -name '*.test.ts' | sort); concurrency=(--test-concurrency=3) ;;
    e2e) mapfile -t files < <(find test -name '*.test.ts' | sort); concurrency=() ;;
    faults) node --import tsx test/faults/run.ts; continue ;;
    *) echo "unknown suite '$suite' (expected unit, e2e or faults)" >&2; exit 64 ;;
  esac
  node --import tsx --test --test-reporter=spec "${concurrency[@]}" "${files[@]}"
done
