#!/usr/bin/env bash
# Runs every test of Capstan on this machine, doing all set-up itself: checks the Docker
# engine, builds the images and static binaries the tests need (nothing can be pulled
# here), then formatting, lints, unit, snapshot and end-to-end tests against the real
# engine and a real Traefik.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
target_dir=${CARGO_TARGET_DIR:-$root/target}

if ! docker info >/dev/null 2>&1; then
  echo "scripts/test.sh: the Docker engine is not reachable; start it first" >&2
  exit 1
fi
for tool in git python3 cargo; do
  command -v "$tool" >/dev/null || { echo "scripts/test.sh: $tool is required" >&2; exit 1; }
done

# The panel's tests drive a real Chromium through chromedriver; the install test checks
# install.sh with shellcheck and runs it in a debootstrapped Debian; the certificates test
# points the proxy at pebble, an ACME test CA, with a TLS certificate made by openssl; the
# remote-server tests start their own sshd (openssh-server) on their own ports, some in a
# second host's network namespace (iproute2, scripts/second-host.sh); the image transfer
# tests push through a registry they start themselves (docker-registry, the distribution
# registry) (Debian's packages).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null \
  || ! command -v shellcheck >/dev/null || ! command -v debootstrap >/dev/null \
  || ! command -v pebble >/dev/null || ! command -v pebble-challtestsrv >/dev/null \
  || ! command -v openssl >/dev/null || [ ! -x /usr/sbin/sshd ] || ! command -v ip >/dev/null \
  || [ ! -x /usr/bin/docker-registry ]; then
  packages=(chromium chromium-driver shellcheck debootstrap pebble openssl openssh-server iproute2 docker-registry)
  echo "== installing ${packages[*]} (Debian packages) for the panel, install, certificate, server and image transfer tests"
  if [ "$(id -u)" -eq 0 ]; then apt=(apt-get); sudo=(); else apt=(sudo -n apt-get); sudo=(sudo -n); fi
  # The package's sshd must not become a service listening on port 22 for the whole machine:
  # while installing, a policy-rc.d that refuses every start (unless one is there already),
  # and a freshly installed ssh service disabled for later boots.
  had_sshd=$([ -x /usr/sbin/sshd ] && echo yes || echo no)
  had_registry=$([ -x /usr/bin/docker-registry ] && echo yes || echo no)
  policy=/usr/sbin/policy-rc.d
  own_policy=no
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 0755 "$policy"
    own_policy=yes
  fi
  install_status=0
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends "${packages[@]}" >/dev/null \
    || { DEBIAN_FRONTEND=noninteractive "${apt[@]}" update >/dev/null \
         && DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends "${packages[@]}" >/dev/null; } \
    || install_status=$?
  if [ "$own_policy" = yes ]; then "${sudo[@]}" rm -f "$policy"; fi
  [ "$install_status" -eq 0 ] || exit "$install_status"
  if [ "$had_sshd" = no ]; then
    if [ -d /run/systemd/system ]; then
      "${sudo[@]}" systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true
    elif command -v update-rc.d >/dev/null; then
      "${sudo[@]}" update-rc.d ssh disable >/dev/null 2>&1 || true
    fi
  fi
  # Nor the registry a service on port 5000: the tests start their own on free ports.
  if [ "$had_registry" = no ] && [ -d /run/systemd/system ]; then
    "${sudo[@]}" systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
  fi
fi

# The API fuzzer, schemathesis from PyPI, in a venv kept beside the build.
st_venv=$target_dir/schemathesis-venv
if [ ! -x "$st_venv/bin/st" ]; then
  echo "== installing schemathesis (PyPI) into $st_venv"
  python3 -m venv "$st_venv"
  "$st_venv/bin/pip" install --quiet "schemathesis==4.32.5"
fi
export CAPSTAN_SCHEMATHESIS=$st_venv/bin/st

# Disk: each clone path builds its own copy of the workspace into a shared target dir, so a
# machine that ran many clones fills up. Below the floor, the stale debug build goes (a
# cold build follows) rather than the run dying halfway with "No space left on device".
min_free_gib=${CAPSTAN_TEST_MIN_FREE_GIB:-30}
mkdir -p "$target_dir"
free_gib() { df -P -BG "$target_dir" | awk 'NR==2 {sub("G", "", $4); print $4}'; }
echo "== disk: $(free_gib) GiB free for $target_dir"
# Every run holds a shared lock on the target dir; the old build is removed only when no
# other run holds it (the exclusive lock is taken without waiting, then given back).
exec 8>"$target_dir/.capstan-test.lock"
if [ "$(free_gib)" -lt "$min_free_gib" ] && [ -d "$target_dir/debug" ] && flock -n -x 8; then
  echo "== disk: under ${min_free_gib} GiB free; removing the old debug build in $target_dir"
  rm -rf --one-file-system -- "$target_dir/debug"
  echo "== disk: $(free_gib) GiB free now"
fi
flock -s 8

# The remote-server tests bring up a second host (scripts/second-host.sh: its own engine
# in its own network namespace) on first use. When the tests end it is taken down and its
# directory deleted: its engine stores images with the vfs driver (a full copy per layer),
# which would otherwise grow with every run.
trap 'scripts/second-host.sh purge >/dev/null 2>&1 || true; echo "== disk: $(free_gib) GiB free after the tests"' EXIT

assets=$(scripts/build-test-images.sh)
export CAPSTAN_ASSETS_DIR=$assets
# Screenshots of every panel page land here.
export CAPSTAN_ARTIFACTS_DIR=${CAPSTAN_ARTIFACTS_DIR:-$target_dir/artifacts}

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --quiet --workspace --all-targets -- -D warnings
echo "== cargo test"
# The summary below is printed whatever the outcome (pipefail would end the script here).
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "${TMPDIR:-/tmp}/capstan-test.log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -Eo '[0-9]+ passed' "${TMPDIR:-/tmp}/capstan-test.log" | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "${TMPDIR:-/tmp}/capstan-test.log" | awk '{s+=$1} END {print s+0}')
echo "tests: $passed passed, $failed failed"
echo "panel screenshots: $CAPSTAN_ARTIFACTS_DIR/panel"
exit "$status"
