#!/usr/bin/env bash
# Reproduces the panel figures in README.md: release binaries, a data dir filled with
# 1,000 apps and 100,000 deployments (with logs), the real daemon on it, and the dashboard,
# an app page and a deployment page timed; writes docs/panel-bench-results.json. Extra
# arguments go to capstan-panel-bench (see --help). The set-up is scripts/bench.sh's.
set -euo pipefail
BENCH_BIN=capstan-panel-bench exec "$(dirname "$0")/bench.sh" "$@"
