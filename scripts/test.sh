#!/usr/bin/env bash
# Runs every test: installs what the test fixtures need where missing, builds the CLI, then unit and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh
[ -d node_modules ] || npm ci
npm run --silent build

unit=$(find src -name '*.test.ts' | sort)
e2e=$(find test -name '*.test.ts' | sort)
# shellcheck disable=SC2086 # file lists are split on purpose
node --import tsx --test --test-reporter=spec $unit $e2e
