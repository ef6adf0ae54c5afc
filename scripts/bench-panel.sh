#!/usr/bin/env bash
# Reproduces the panel figures in README.md: release binaries, a data dir filled with
# 1,000 apps and 100,000 deployments (with logs), the real daemon on it, and the dashboard,
# an app page and a deployment page timed; writes docs/panel-bench-results.json. Extra
# arguments go to capstan-panel-bench (see --help).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
assets=$(scripts/build-test-images.sh)
export CAPSTAN_ASSETS_DIR=$assets
cargo build --quiet --release -p capstan-cli -p capstan-bench
target_dir=${CARGO_TARGET_DIR:-$root/target}
exec "$target_dir/release/capstan-panel-bench" --capstan "$target_dir/release/capstan" "$@"
