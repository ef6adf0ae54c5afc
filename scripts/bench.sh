#!/usr/bin/env bash
# Reproduces the performance figures in README.md: builds release binaries and the images
# the engine cannot pull, then runs capstan-bench (real daemon, real Traefik, real engine)
# and writes docs/bench-results.json. Extra arguments go to capstan-bench (see --help);
# BENCH_BIN=capstan-panel-bench runs the panel benchmark instead (scripts/bench-panel.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
assets=$(scripts/build-test-images.sh)
export CAPSTAN_ASSETS_DIR=$assets
cargo build --quiet --release -p capstan-cli -p capstan-bench
target_dir=${CARGO_TARGET_DIR:-$root/target}
exec "$target_dir/release/${BENCH_BIN:-capstan-bench}" --capstan "$target_dir/release/capstan" "$@"
