#!/usr/bin/env bash
# Installs, upgrades or removes Capstan on a Debian 12 / Ubuntu 22.04+ host, as root.
#
#   install.sh --binary PATH|URL [--sha256 HEX]   a release archive (.tar.gz with `capstan`
#                                                 and `capstan-probe`), or the `capstan`
#                                                 binary with `capstan-probe` beside it
#   install.sh --from-source                      build both from the checkout it sits in
#   install.sh --uninstall [--purge | --purge-data] [--instance NAME]
#
# Options written into a new /etc/capstan/capstan.toml (an existing one is kept):
#   --data-dir DIR (/var/lib/capstan)  --listen ADDR (127.0.0.1:8000)
#   --http-port N (80)  --https-port N (443)  --instance NAME (capstan)
#   --proxy-image IMAGE (traefik:v3.7)  --acme-email ADDRESS
#
# What it does: checks the OS, architecture, memory, disk, ports and the Docker engine
# (installing the distribution's docker.io with apt when there is none, after saying so);
# installs /usr/local/bin/capstan and capstan-probe; creates the config file and the data
# dir (0700); writes a hardened systemd unit and starts it; prints the panel's address and
# where the one-time setup code is. There is no default password. Running it again
# changes nothing, or upgrades the binaries in place when different ones are given: the
# daemon restarts (apps and the proxy keep serving: they are not its children), and if the
# new daemon does not come up healthy the previous binaries are put back.
#
# --uninstall stops and removes the unit and the binaries. It keeps the data dir, the
# config and every Docker object of the instance (apps keep serving): it lists them, keeps
# a copy of `capstan` in /usr/local/lib/capstan to remove them with later, and prints the
# command that does. --purge-data also removes the data dir and /etc/capstan.
# --purge removes those and, after listing them, every Docker object labelled
# capstan.instance=<instance> (apps, companions, proxy, page server, networks, volumes,
# images); it works with the daemon stopped or gone. Nothing else on the host is touched.
# Once /etc/capstan is gone, --instance and --data-dir say what to remove.
set -euo pipefail

BIN_DIR=/usr/local/bin
CONFIG_DIR=/etc/capstan
UNIT=/etc/systemd/system/capstan.service
# Where --uninstall keeps a copy of `capstan` while Docker objects of the instance remain.
KEEP_DIR=/usr/local/lib/capstan

binary_src="" sha256="" from_source=0 uninstall=0 purge_data=0 purge=0 data_dir_given=0
data_dir=/var/lib/capstan listen=127.0.0.1:8000 http_port=80 https_port=443
instance=capstan proxy_image=traefik:v3.7 acme_email=""
changed=()

say() { printf 'capstan-install: %s\n' "$*"; }
warn() { printf 'capstan-install: warning: %s\n' "$*" >&2; }
die() { printf 'capstan-install: error: %s\n' "$*" >&2; exit 1; }

usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary_src=${2:?--binary needs a path or URL}; shift 2 ;;
    --sha256) sha256=${2:?--sha256 needs a checksum}; shift 2 ;;
    --from-source) from_source=1; shift ;;
    --uninstall) uninstall=1; shift ;;
    --purge-data) purge_data=1; shift ;;
    --purge) purge=1; shift ;;
    --data-dir) data_dir=${2:?}; data_dir_given=1; shift 2 ;;
    --listen) listen=${2:?}; shift 2 ;;
    --http-port) http_port=${2:?}; shift 2 ;;
    --https-port) https_port=${2:?}; shift 2 ;;
    --instance) instance=${2:?}; shift 2 ;;
    --proxy-image) proxy_image=${2:?}; shift 2 ;;
    --acme-email) acme_email=${2:?}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

[ "$(id -u)" -eq 0 ] || die "run as root (it installs a systemd unit and writes /usr/local/bin)"

# ---------------------------------------------------------------------------------------
# Checks

check_os() {
  [ -r /etc/os-release ] || die "cannot read /etc/os-release: only Debian 12+ and Ubuntu 22.04+ are supported"
  local id version major
  id=$(sed -n 's/^ID=//p' /etc/os-release | tr -d '"')
  version=$(sed -n 's/^VERSION_ID=//p' /etc/os-release | tr -d '"')
  major=${version%%.*}
  case "$id" in
    debian) [ "${major:-0}" -ge 12 ] 2>/dev/null || die "Debian $version is not supported: Debian 12 or newer is needed" ;;
    ubuntu) [ "${major:-0}" -ge 22 ] 2>/dev/null || die "Ubuntu $version is not supported: Ubuntu 22.04 or newer is needed" ;;
    *) die "this system ($id $version) is not supported: Capstan installs on Debian 12+ and Ubuntu 22.04+" ;;
  esac
  if ! command -v systemctl >/dev/null || [ ! -d /run/systemd/system ]; then
    die "systemd is not running here; Capstan's installer needs it to run the daemon"
  fi
}

check_arch() {
  case "$(uname -m)" in
    x86_64|aarch64) ;;
    *) die "the $(uname -m) architecture is not supported (x86_64 and aarch64 are)" ;;
  esac
}

check_resources() {
  local mem_kb free_kb parent
  mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
  if [ "${mem_kb:-0}" -lt 1000000 ]; then
    warn "this host has $((mem_kb / 1024)) MiB of memory; 1 GiB or more is recommended for building apps"
  fi
  parent=$data_dir
  while [ ! -d "$parent" ]; do parent=$(dirname "$parent"); done
  free_kb=$(df -Pk "$parent" | awk 'NR == 2 {print $4}')
  if [ "${free_kb:-0}" -lt 5000000 ]; then
    warn "only $((free_kb / 1024)) MiB free under $parent; 5 GiB or more is recommended for images"
  fi
}

# A port is free, or held by this instance's own proxy (a re-run or an upgrade).
check_port() {
  local port=$1 holders
  command -v ss >/dev/null || { warn "ss (iproute2) is missing: cannot check port $port"; return; }
  holders=$(ss -Hltnp "sport = :$port" 2>/dev/null || true)
  [ -z "$holders" ] && return
  if systemctl is-active --quiet capstan 2>/dev/null && grep -q 'docker-proxy' <<<"$holders"; then
    return
  fi
  local names
  names=$(grep -o 'users:(([^)]*' <<<"$holders" | sed 's/users:((//' | sort -u | tr '\n' ' ' || true)
  die "port $port is in use by ${names:-another process} ($(head -n1 <<<"$holders" | awk '{print $4}')); free it or choose another with --http-port/--https-port"
}

docker_socket() { echo /var/run/docker.sock; }

engine_answers() {
  curl -fsS --max-time 5 --unix-socket "$(docker_socket)" http://localhost/_ping >/dev/null 2>&1
}

check_docker() {
  command -v curl >/dev/null || die "curl is needed (apt-get install curl)"
  if engine_answers; then
    return
  fi
  if command -v dockerd >/dev/null || [ -S "$(docker_socket)" ]; then
    die "a Docker engine is installed but does not answer on $(docker_socket); start it (systemctl start docker) and run this again"
  fi
  say "no Docker engine found: installing the distribution's docker.io package with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
  systemctl enable --now docker >/dev/null
  for _ in $(seq 1 30); do engine_answers && return; sleep 1; done
  die "docker.io was installed but the engine does not answer on $(docker_socket)"
}

# ---------------------------------------------------------------------------------------
# Binaries

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fetch() { # fetch SRC DEST: a local path or an http(s) URL
  case "$1" in
    http://*|https://*) curl -fsSL --retry 3 -o "$2" "$1" || die "cannot download $1" ;;
    *) [ -f "$1" ] || die "$1 does not exist"; cp "$1" "$2" ;;
  esac
}

# Leaves the new binaries in $work/new/{capstan,capstan-probe}.
stage_binaries() {
  mkdir -p "$work/new"
  if [ "$from_source" -eq 1 ]; then
    local root triple
    root=$(cd "$(dirname "$0")" && pwd)
    [ -f "$root/Cargo.toml" ] || die "--from-source needs the Capstan checkout beside install.sh"
    command -v cargo >/dev/null || die "--from-source needs cargo (https://rustup.rs)"
    triple=$(rustc -vV | sed -n 's/^host: //p')
    say "building capstan and the static capstan-probe from $root (this takes a few minutes)"
    cargo build --quiet --release --manifest-path "$root/Cargo.toml" -p capstan-cli
    RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release \
      --manifest-path "$root/Cargo.toml" -p capstan-probe --target "$triple" \
      --target-dir "$root/target/static"
    cp "$root/target/release/capstan" "$work/new/capstan"
    cp "$root/target/static/$triple/release/capstan-probe" "$work/new/capstan-probe"
    return
  fi
  [ -n "$binary_src" ] || die "say where the binaries come from: --binary PATH|URL or --from-source"
  local name
  name=$(basename "${binary_src%%\?*}")
  fetch "$binary_src" "$work/$name"
  if [ -n "$sha256" ]; then
    echo "$sha256  $work/$name" | sha256sum --check --status \
      || die "checksum mismatch for $binary_src: expected $sha256, got $(sha256sum "$work/$name" | cut -d' ' -f1)"
    say "checksum of $name verified"
  fi
  case "$name" in
    *.tar.gz|*.tgz)
      tar -xzf "$work/$name" -C "$work/new" --no-same-owner
      for bin in capstan capstan-probe; do
        if [ ! -f "$work/new/$bin" ]; then
          local found
          found=$(find "$work/new" -type f -name "$bin" | head -n1)
          [ -n "$found" ] || die "the archive $name holds no $bin"
          mv "$found" "$work/new/$bin"
        fi
      done
      ;;
    *)
      mv "$work/$name" "$work/new/capstan"
      # The probe sits beside the binary (same directory or URL prefix).
      fetch "$(dirname "$binary_src")/capstan-probe" "$work/new/capstan-probe"
      ;;
  esac
  chmod 0755 "$work/new/capstan" "$work/new/capstan-probe"
}

same_file() { [ -f "$2" ] && cmp -s "$1" "$2"; }

# Installs the staged binaries; keeps the replaced ones as *.previous. Returns 0 when
# something changed.
install_binaries() {
  local any=1
  for bin in capstan capstan-probe; do
    rm -f "$BIN_DIR/$bin.previous"
    if same_file "$work/new/$bin" "$BIN_DIR/$bin"; then
      continue
    fi
    if [ -f "$BIN_DIR/$bin" ]; then
      cp -p "$BIN_DIR/$bin" "$BIN_DIR/$bin.previous"
    fi
    install -m 0755 "$work/new/$bin" "$BIN_DIR/.$bin.new"
    mv -f "$BIN_DIR/.$bin.new" "$BIN_DIR/$bin"
    any=0
  done
  return $any
}

restore_previous() {
  for bin in capstan capstan-probe; do
    if [ -f "$BIN_DIR/$bin.previous" ]; then
      mv -f "$BIN_DIR/$bin.previous" "$BIN_DIR/$bin"
    fi
  done
}

# ---------------------------------------------------------------------------------------
# Config, data dir, unit

toml_string() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }

write_config() {
  local file=$CONFIG_DIR/capstan.toml
  install -d -m 0755 "$CONFIG_DIR"
  if [ -f "$file" ]; then
    return
  fi
  {
    echo "# Capstan daemon configuration (written by install.sh; edit and restart the unit)."
    echo "# Every setting can also come from CAPSTAN_* environment variables or flags."
    echo
    echo "# Where Capstan keeps its database, secret key, route files and workspaces."
    echo "data_dir = $(toml_string "$data_dir")"
    echo "# The API and web panel. Keep it on loopback and reach it over SSH, or put it"
    echo "# behind the proxy with TLS before opening it to the network."
    echo "listen = $(toml_string "$listen")"
    echo "# The proxy's public ports."
    echo "proxy_http_port = $http_port"
    echo "proxy_https_port = $https_port"
    echo "# Prefix and label of every Docker object this installation owns."
    echo "instance = $(toml_string "$instance")"
    echo "proxy_image = $(toml_string "$proxy_image")"
    if [ -n "$acme_email" ]; then
      echo "acme_email = $(toml_string "$acme_email")"
    else
      echo "# Contact address for Let's Encrypt certificates (apps with tls = true)."
      echo "# acme_email = \"ops@example.com\""
    fi
    echo "# Deployments building at once, and images kept per app for rollback."
    echo "# build_slots = 2"
    echo "# keep_images = 5"
  } > "$file.tmp"
  chmod 0644 "$file.tmp"
  mv "$file.tmp" "$file"
  changed+=("created $file")
}

# The data dir as the config file says (an existing file wins over the options).
configured() {
  local key=$1 default=$2 value
  value=$(sed -n "s/^[[:space:]]*${key}[[:space:]]*=[[:space:]]*//p" "$CONFIG_DIR/capstan.toml" | tail -n1 | tr -d '"')
  echo "${value:-$default}"
}

write_unit() {
  local dir=$1
  cat > "$work/capstan.service" <<EOF
# Written by Capstan's install.sh.
[Unit]
Description=Capstan: self-hosted PaaS daemon (API, panel, deployments, proxy)
Documentation=https://github.com/capstan/capstan
After=network-online.target docker.service
Wants=network-online.target docker.service

[Service]
Type=simple
ExecStart=$BIN_DIR/capstan serve --config $CONFIG_DIR/capstan.toml
Restart=on-failure
RestartSec=2
TimeoutStopSec=40
# Only the daemon stops with the unit; app containers and the proxy belong to the
# Docker engine and keep serving across restarts and upgrades.
KillMode=mixed
Environment=RUST_LOG=info
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=$dir
PrivateTmp=yes
ProtectHome=read-only
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes
UMask=0077

[Install]
WantedBy=multi-user.target
EOF
  if same_file "$work/capstan.service" "$UNIT"; then
    return 1
  fi
  install -m 0644 "$work/capstan.service" "$UNIT"
  systemctl daemon-reload
  changed+=("wrote $UNIT")
  return 0
}

wait_healthy() {
  local addr=$1
  for _ in $(seq 1 60); do
    if curl -fsS --max-time 2 "http://$addr/api/v1/health" >/dev/null 2>&1; then
      return 0
    fi
    if ! systemctl is-active --quiet capstan && [ "$(systemctl show -p ActiveState --value capstan)" = failed ]; then
      return 1
    fi
    sleep 1
  done
  return 1
}

# ---------------------------------------------------------------------------------------

# The `capstan` that can list and remove the instance's Docker objects: the installed one,
# else the copy an earlier --uninstall kept; none when neither is there.
purge_tool() {
  local candidate
  for candidate in "$BIN_DIR/capstan" "$KEEP_DIR/capstan"; do
    if [ -x "$candidate" ]; then
      echo "$candidate"
      return 0
    fi
  done
  return 0
}

# The command that removes what an uninstall kept, as the user can paste it.
purge_command() {
  local script=install.sh
  [ -f "$0" ] && script="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
  echo "bash $script --uninstall --purge --instance $1"
}

stop_and_remove_unit() {
  if [ -f "$UNIT" ]; then
    systemctl disable --now capstan >/dev/null 2>&1 || true
    rm -f "$UNIT"
    systemctl daemon-reload
    say "removed the capstan unit"
  fi
}

# Removes the installed binaries; with `keep`, `capstan` is first copied to $KEEP_DIR.
remove_binaries() {
  local keep=$1 tool=$2
  if [ "$keep" -eq 1 ] && [ "$tool" = "$BIN_DIR/capstan" ]; then
    install -d -m 0700 "$KEEP_DIR"
    cp -p "$tool" "$KEEP_DIR/capstan"
  fi
  for bin in capstan capstan-probe capstan.previous capstan-probe.previous; do
    rm -f "$BIN_DIR/$bin"
  done
  say "removed the binaries from $BIN_DIR"
  if [ "$keep" -eq 0 ]; then
    rm -rf "$KEEP_DIR"
  fi
}

# --purge: every labelled Docker object (listed first), then data, config and binaries.
purge_all() {
  local dir=$1 inst=$2 tool=$3
  local args=(purge --yes --instance "$inst")
  [ -f "$CONFIG_DIR/capstan.toml" ] && args+=(--config "$CONFIG_DIR/capstan.toml")
  if [ -z "$tool" ]; then
    say "no capstan binary is left to list Docker objects with: the last uninstall found none labelled capstan.instance=$inst, or removed them"
    remove_binaries 0 ""
    remove_state "$dir"
    return
  fi
  say "removing every Docker object labelled capstan.instance=$inst"
  if ! "$tool" "${args[@]}"; then
    remove_binaries 1 "$tool"
    die "not every Docker object of $inst could be removed (see above); the data and config were kept. Once that is fixed, run again: $(purge_command "$inst")"
  fi
  remove_binaries 0 "$tool"
  remove_state "$dir"
}

# Removes the data dir (when known) and the config.
remove_state() {
  local dir=$1 path gone=()
  for path in "$dir" "$CONFIG_DIR"; do
    if [ -n "$path" ] && [ -e "$path" ]; then
      rm -rf "$path"
      gone+=("$path")
    fi
  done
  [ "${#gone[@]}" -eq 0 ] || say "removed ${gone[*]}"
  [ -n "$dir" ] || say "no config names the data dir any more: give --data-dir DIR if one is left"
}

# Without --purge: lists the instance's Docker objects and keeps them (apps keep serving).
keep_objects() {
  local dir=$1 inst=$2 tool=$3 listing="" keep=1
  if [ -n "$tool" ]; then
    local args=(purge --list --instance "$inst")
    [ -f "$CONFIG_DIR/capstan.toml" ] && args+=(--config "$CONFIG_DIR/capstan.toml")
    if listing=$("$tool" "${args[@]}"); then
      [ -n "$listing" ] || keep=0
    else
      warn "cannot list the Docker objects of $inst (see above); keeping the means to remove them"
    fi
  fi
  remove_binaries "$keep" "$tool"
  if [ "$purge_data" -eq 1 ]; then
    remove_state "$dir"
  else
    say "kept ${dir:-the data dir} and $CONFIG_DIR (add --purge-data to remove them)"
  fi
  if [ "$keep" -eq 0 ]; then
    say "no Docker object is labelled capstan.instance=$inst"
    return
  fi
  [ -n "$listing" ] && printf '%s\n' "$listing"
  if [ -x "$KEEP_DIR/capstan" ]; then
    say "kept these Docker objects (and a copy of capstan in $KEEP_DIR to remove them with)"
    say "to remove them, with the data and config: $(purge_command "$inst")"
  else
    say "no capstan binary is left to list Docker objects with (the last uninstall found none labelled capstan.instance=$inst)"
  fi
}

do_uninstall() {
  # The data dir is removed only when known: named by the config or --data-dir, or the
  # default one holding a Capstan database.
  local dir="" inst=$instance tool
  if [ -f "$CONFIG_DIR/capstan.toml" ]; then
    dir=$(configured data_dir "$data_dir")
    inst=$(configured instance "$instance")
  elif [ "$data_dir_given" -eq 1 ] || [ -f "$data_dir/capstan.db" ]; then
    dir=$data_dir
  fi
  tool=$(purge_tool)
  stop_and_remove_unit
  if [ "$purge" -eq 1 ]; then
    purge_all "$dir" "$inst" "$tool"
  else
    keep_objects "$dir" "$inst" "$tool"
  fi
}

main() {
  if [ "$uninstall" -eq 1 ]; then
    do_uninstall
    return
  fi
  check_os
  check_arch
  check_resources
  local was_active=0
  systemctl is-active --quiet capstan 2>/dev/null && was_active=1
  if [ "$was_active" -eq 0 ]; then
    check_port "$http_port"
    check_port "$https_port"
  fi
  check_docker
  stage_binaries

  write_config
  local dir addr
  dir=$(configured data_dir "$data_dir")
  addr=$(configured listen "$listen")
  if [ ! -d "$dir" ]; then
    install -d -m 0700 "$dir"
    changed+=("created $dir (0700)")
  fi
  chmod 0700 "$dir"

  local upgraded=0
  # What an earlier --uninstall kept to remove objects with: the installed binary does now.
  rm -rf "$KEEP_DIR"
  if install_binaries; then
    if [ "$was_active" -eq 1 ]; then upgraded=1; changed+=("upgraded the binaries in $BIN_DIR"); else changed+=("installed the binaries in $BIN_DIR"); fi
  fi
  local unit_changed=0
  write_unit "$dir" && unit_changed=1
  systemctl enable capstan >/dev/null 2>&1

  if [ "$was_active" -eq 0 ] || [ "$upgraded" -eq 1 ] || [ "$unit_changed" -eq 1 ]; then
    systemctl restart capstan
    if ! wait_healthy "$addr"; then
      if [ "$upgraded" -eq 1 ]; then
        warn "the new daemon did not come up healthy; putting the previous binaries back"
        journalctl -u capstan -n 20 --no-pager 2>/dev/null | sed 's/^/  | /' >&2 || true
        restore_previous
        systemctl reset-failed capstan 2>/dev/null || true
        systemctl restart capstan
        if wait_healthy "$addr"; then
          die "upgrade failed: the new binaries did not start (see the log above); the previous ones are back and serving"
        fi
        die "upgrade failed and the previous binaries did not come back either; see journalctl -u capstan"
      fi
      journalctl -u capstan -n 30 --no-pager 2>/dev/null | sed 's/^/  | /' >&2 || true
      die "the daemon did not come up healthy on $addr; see the log above (journalctl -u capstan)"
    fi
  fi

  if [ "${#changed[@]}" -eq 0 ]; then
    say "nothing changed: Capstan is installed and running ($BIN_DIR/capstan, $UNIT)"
  else
    for line in "${changed[@]}"; do say "$line"; done
  fi
  say "capstan is $(systemctl is-active capstan); API and panel: http://$addr/"
  case "$addr" in
    127.*|localhost:*) say "the panel listens on loopback: from your machine, ssh -L ${addr##*:}:$addr root@this-host and open http://localhost:${addr##*:}/" ;;
  esac
  if [ -f "$dir/setup-code" ]; then
    say "first sign-in: the panel asks for the one-time setup code in $dir/setup-code (readable by root only) to create the admin account"
  fi
  say "the admin API token is in $dir/admin-token (readable by root only)"
}

main
