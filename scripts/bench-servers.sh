#!/usr/bin/env bash
# Reproduces the servers figures in README.md: one prebuilt release deployed to 1, 5 and 10
# servers over SSH (real sshd processes on loopback in front of the test engine), the SSH
# connections each server sees during a deploy, the bytes moved to the second host (its own
# engine, scripts/second-host.sh) on a one-line source change, and the daemon's memory with
# 10 servers connected; writes docs/servers-bench-results.json. Needs root (sshd, network
# namespace), openssh-server and iproute2 (scripts/test.sh installs them). Extra arguments
# go to capstan-servers-bench (see --help). The set-up is scripts/bench.sh's.
set -euo pipefail
BENCH_BIN=capstan-servers-bench exec "$(dirname "$0")/bench.sh" "$@"
