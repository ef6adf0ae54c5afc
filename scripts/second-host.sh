#!/usr/bin/env bash
# A second "host" for the tests, with its own Docker engine, as ../shared/design.md §9 says:
# a network namespace `capstan-h2` at 10.250.0.2 (the host side of its veth is 10.250.0.1),
# and a second dockerd started inside it with nsenter (never in the host's own namespace,
# where it deletes the host's docker0), with its own data-root, exec-root, pidfile and
# socket under /var/tmp/capstan-h2, the vfs storage driver and an empty config file (the
# host's /etc/docker/daemon.json is not read).
#
#   second-host.sh up          set up the namespace and the engine (idempotent; recovers from a
#                              half-dead previous state) and load the test images into it
#   second-host.sh status      is it up? (exit 0 when the engine answers, 3 when not)
#   second-host.sh swarm-up    `up`, then `swarm init --advertise-addr 10.250.0.2` on the SECOND
#                              engine, unless it is already a swarm manager
#   second-host.sh swarm-down  the second engine leaves its swarm (the main engine's is never touched)
#   second-host.sh down        stop the engine and everything in the namespace, unmount what is
#                              left under the directory, delete the namespace (images are kept)
#   second-host.sh purge       `down`, then delete the directory (the engine's images too)
#
# `up`, `status` and `swarm-up` print the fixture's facts on stdout, one `key=value` a line
# (ip, host_ip, socket, netns, dir, pid, images); everything else goes to stderr. Every call holds a
# lock (flock), so parallel tests may all call `up`. Every command here is plain argv.
set -euo pipefail

name=capstan-h2
dir=/var/tmp/capstan-h2
lock=/var/tmp/capstan-h2.lock
netns=/var/run/netns/$name
host_if=cph2-host
peer_if=eth0
host_ip=10.250.0.1
ip=10.250.0.2
prefix=24
sock=$dir/docker.sock
pidfile=$dir/docker.pid
log_file=$dir/dockerd.log
# The container cgroups of the second engine, apart from the main engine's `/docker`.
cgroup_parent=/$name
storage_driver=vfs
# The images the tests need on the second engine: those scripts/build-test-images.sh builds
# into the main engine (the proxy and the small base image; same variables, same defaults).
# The Debian systemd image of the install test is not needed there.
images=("${TRAEFIK_TAG:-traefik:v3.7}" "${BUSYBOX_TAG:-busybox:stable}")

log() { printf '[second-host] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

h2_docker() { timeout 60 docker -H "unix://$sock" "$@"; }
in_netns() { nsenter "--net=$netns" "$@"; }

# The second engine answers on its socket.
engine_answers() { timeout 10 docker -H "unix://$sock" info --format '{{.ID}}' >/dev/null 2>&1; }

# The process runs and is not a zombie (PID 1 here may not reap what was orphaned to it).
alive() {
  local stat
  read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# The pid of the second dockerd, if it runs (the pidfile's process, a dockerd of this fixture).
daemon_pid() {
  local pid comm
  [ -s "$pidfile" ] || return 0
  read -r pid 2>/dev/null <"$pidfile" || [ -n "$pid" ] || return 0
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  alive "$pid" || return 0
  read -r comm 2>/dev/null <"/proc/$pid/comm" || return 0
  # A pid reused since (after a reboot, say) may be the main engine's dockerd: only the one
  # started with this fixture's pidfile counts.
  if [ "$comm" = dockerd ] && names_dir "$pid"; then
    echo "$pid"
  fi
}

# The process's command line names this fixture's directory.
names_dir() {
  tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$dir/"
}

# Pids of what the second engine runs: dockerd, its containerd and the shims (their command
# lines name this fixture's directory), docker-proxy in the namespace, and every process in
# the containers' cgroups under $cgroup_parent. A test's sshd in the namespace is not one.
engine_pids() {
  local proc pid comm inode=
  [ -e "$netns" ] && inode=$(stat -L -c %i "$netns")
  for proc in /proc/[0-9]*; do
    pid=${proc#/proc/}
    alive "$pid" || continue
    read -r comm 2>/dev/null <"$proc/comm" || continue
    case "$comm" in
      dockerd | containerd | containerd-shim*)
        names_dir "$pid" && echo "$pid"
        ;;
      docker-proxy)
        [ -n "$inode" ] && [ "$(readlink "$proc/ns/net" 2>/dev/null)" = "net:[$inode]" ] && echo "$pid"
        ;;
      *)
        grep -qE ":$cgroup_parent/" "$proc/cgroup" 2>/dev/null && echo "$pid"
        ;;
    esac
  done
  return 0
}

# Pids of every process inside the namespace (dockerd, containerd, sshd started by tests…).
netns_pids() {
  local inode proc
  [ -e "$netns" ] || return 0
  inode=$(stat -L -c %i "$netns")
  for proc in /proc/[0-9]*; do
    [ "$(readlink "$proc/ns/net" 2>/dev/null)" = "net:[$inode]" ] && alive "${proc#/proc/}" \
      && echo "${proc#/proc/}"
  done
  return 0
}

# Sends TERM to the pids, waits up to $1 seconds for them to end, then KILLs what is left.
end_pids() {
  local wait_secs=$1 pid left
  shift
  [ "$#" -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  for _ in $(seq $((wait_secs * 10))); do
    left=0
    for pid in "$@"; do alive "$pid" && left=1; done
    [ "$left" -eq 0 ] && return 0
    sleep 0.1
  done
  log "killing what did not stop in ${wait_secs}s: $*"
  kill -KILL "$@" 2>/dev/null || true
  sleep 0.5
}

# Stops the second engine: dockerd first (it stops its containers and its containerd), then
# whatever of it outlived it (a killed dockerd leaves containerd, shims and containers).
stop_engine() {
  local pid
  pid=$(daemon_pid)
  if [ -n "$pid" ]; then
    log "stopping dockerd $pid"
    end_pids 60 "$pid"
  fi
  mapfile -t left < <(engine_pids)
  if [ "${#left[@]}" -gt 0 ]; then
    log "ending leftovers of the second engine: ${left[*]}"
    end_pids 3 "${left[@]}"
  fi
  rm -f "$pidfile" "$sock"
}

# Unmounts everything still mounted under the directory, deepest first.
unmount_leftovers() {
  local target
  [ -d "$dir" ] || return 0
  mapfile -t targets < <(findmnt -rn -o TARGET | grep -F -- "$dir/" | sort -r || true)
  for target in "${targets[@]}"; do
    umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null || log "could not unmount $target"
  done
}

# The namespace, the veth pair and the addresses, each made only when missing.
ensure_netns() {
  if ! ip netns list | awk '{print $1}' | grep -qx -- "$name"; then
    log "adding network namespace $name"
    ip netns add "$name"
  fi
  # A host side without its peer in this namespace (the namespace was made anew) is stale.
  if ip link show dev "$host_if" >/dev/null 2>&1 \
    && ! in_netns ip link show dev "$peer_if" >/dev/null 2>&1; then
    ip link del dev "$host_if"
  fi
  if ! ip link show dev "$host_if" >/dev/null 2>&1; then
    log "adding veth $host_if ($host_ip) <-> $name:$peer_if ($ip)"
    ip link add "$host_if" type veth peer name "$peer_if" netns "$name"
  fi
  ip addr replace "$host_ip/$prefix" dev "$host_if"
  ip link set dev "$host_if" up
  in_netns ip addr replace "$ip/$prefix" dev "$peer_if"
  in_netns ip link set dev "$peer_if" up
  in_netns ip link set dev lo up
  in_netns ip route replace default via "$host_ip"
}

start_engine() {
  mkdir -p "$dir/root" "$dir/exec"
  # Nothing of the host's /etc/docker: an engine before 23 takes its ID from a trust key,
  # by default the main engine's /etc/docker/key.json; this one gets its own.
  if [ "$(dockerd --version | sed -E 's/^Docker version ([0-9]+).*/\1/')" -lt 23 ]; then
    printf '{"deprecated-key-path": "%s"}\n' "$dir/key.json" >"$dir/daemon.json"
  else
    printf '{}\n' >"$dir/daemon.json"
  fi
  rm -f "$pidfile" "$sock"
  if [ -f "$log_file" ]; then mv -f "$log_file" "$log_file.1"; fi
  log "starting dockerd in $name (storage driver $storage_driver, log $log_file)"
  # setsid: the engine outlives this script; its own session, stdio on the log file, and
  # not holding the lock's descriptor.
  setsid nsenter "--net=$netns" dockerd \
    --config-file "$dir/daemon.json" \
    --data-root "$dir/root" \
    --exec-root "$dir/exec" \
    --pidfile "$pidfile" \
    --host "unix://$sock" \
    --storage-driver "$storage_driver" \
    --cgroup-parent "$cgroup_parent" \
    </dev/null >>"$log_file" 2>&1 9>&- &
  local starter=$! deadline=$((SECONDS + 60))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if engine_answers; then
      return 0
    fi
    if ! alive "$starter" && [ -z "$(daemon_pid)" ]; then
      tail -n 30 "$log_file" >&2 || true
      die "dockerd exited before answering (log: $log_file)"
    fi
    sleep 0.1
  done
  tail -n 30 "$log_file" >&2 || true
  die "dockerd did not answer on $sock within 60s (log: $log_file)"
}

# Copies into the second engine each test image it lacks (or holds in another version).
load_images() {
  local image want have
  for image in "${images[@]}"; do
    want=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null) \
      || die "$image is missing in the main engine: run scripts/build-test-images.sh first"
    have=$(h2_docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
    if [ "$want" != "$have" ]; then
      log "loading $image into the second engine"
      docker save "$image" | h2_docker load --quiet >/dev/null
    fi
  done
}

facts() {
  printf 'ip=%s\nhost_ip=%s\nsocket=%s\nnetns=%s\ndir=%s\npid=%s\nimages=%s\n' \
    "$ip" "$host_ip" "$sock" "$netns" "$dir" "$(daemon_pid)" "${images[*]}"
}

do_up() {
  mkdir -p "$dir"
  local pid
  pid=$(daemon_pid)
  if [ -n "$pid" ] && [ -e "$netns" ] && engine_answers; then
    ensure_netns
  else
    # Half-dead: a dockerd that does not answer, a stale pidfile, a namespace without an
    # engine, or an engine whose namespace is gone. Start again from a clean slate.
    stop_engine
    unmount_leftovers
    ensure_netns
    start_engine
  fi
  load_images
  facts
}

do_down() {
  if [ -n "$(daemon_pid)" ] && engine_answers; then
    # A swarm left behind would come back with the engine and refuse the next `swarm init`.
    if [ "$(h2_docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null)" = active ]; then
      h2_docker swarm leave --force >/dev/null || log "swarm leave failed"
    fi
  fi
  stop_engine
  mapfile -t left < <(netns_pids)
  if [ "${#left[@]}" -gt 0 ]; then
    log "ending the processes left in $name: ${left[*]}"
    end_pids 10 "${left[@]}"
  fi
  unmount_leftovers
  if ip netns list | awk '{print $1}' | grep -qx -- "$name"; then
    log "deleting network namespace $name"
    ip netns del "$name"
  fi
  if ip link show dev "$host_if" >/dev/null 2>&1; then
    ip link del dev "$host_if"
  fi
}

do_status() {
  facts
  if [ -n "$(daemon_pid)" ] && [ -e "$netns" ] && engine_answers; then
    echo "state=running"
  else
    echo "state=stopped"
    return 3
  fi
}

do_swarm_up() {
  do_up
  local state
  state=$(h2_docker info --format '{{.Swarm.LocalNodeState}}')
  if [ "$state" != active ]; then
    log "swarm init on the second engine ($ip)"
    h2_docker swarm init --advertise-addr "$ip" >/dev/null
  fi
}

do_swarm_down() {
  if [ -n "$(daemon_pid)" ] && engine_answers \
    && [ "$(h2_docker info --format '{{.Swarm.LocalNodeState}}')" = active ]; then
    log "the second engine leaves its swarm"
    h2_docker swarm leave --force >/dev/null
  fi
}

usage() { die "usage: $0 up|down|status|swarm-up|swarm-down|purge"; }

[ "$#" -eq 1 ] || usage
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces and a dockerd)"
for tool in docker dockerd ip nsenter setsid flock findmnt timeout; do
  command -v "$tool" >/dev/null || die "$tool is required"
done

exec 9>"$lock"
case "$1" in
  status) flock -s -w 600 9 ;;
  up | down | swarm-up | swarm-down | purge) flock -w 600 9 ;;
  *) usage ;;
esac || die "could not take the lock $lock within 600s"

case "$1" in
  up) do_up ;;
  down) do_down ;;
  status) do_status ;;
  swarm-up) do_swarm_up ;;
  swarm-down) do_swarm_down ;;
  purge)
    do_down
    # Nothing mounted may stay under it (unmount_leftovers tried); never cross into one.
    if findmnt -rn -o TARGET | grep -q -- "^$dir/"; then
      die "mounts are left under $dir; not deleting it"
    fi
    rm -rf --one-file-system -- "$dir"
    ;;
esac
