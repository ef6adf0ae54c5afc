#!/usr/bin/env bash
# The main job, on a fresh machine of this kind: builds Capstan, starts `capstan serve`
# (daemon + Traefik proxy), creates a sample app from a local git repo, deploys it and
# shows it answering through the proxy. `scripts/demo.sh stop` stops it and cleans up.
#   CAPSTAN_DEMO_DIR (default /tmp/capstan-demo), DEMO_PROXY_PORT (8080), DEMO_API_PORT (8000)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
demo=${CAPSTAN_DEMO_DIR:-/tmp/capstan-demo}
proxy_port=${DEMO_PROXY_PORT:-8080}
api_port=${DEMO_API_PORT:-8000}
instance=demo
target_dir=${CARGO_TARGET_DIR:-$root/target}
capstan=$target_dir/debug/capstan

stop() {
  if [ -f "$demo/daemon.pid" ]; then
    kill "$(cat "$demo/daemon.pid")" 2>/dev/null || true
    rm -f "$demo/daemon.pid"
  fi
  ids=$(docker ps -aq --filter "label=capstan.instance=$instance")
  [ -n "$ids" ] && docker rm -f $ids >/dev/null
  networks=$(docker network ls -q --filter "label=capstan.instance=$instance")
  [ -n "$networks" ] && docker network rm $networks >/dev/null
  docker volume rm -f "$instance-probe" "$instance-proxy-data" >/dev/null 2>&1 || true
  images=$(docker images -q --filter "label=capstan.instance=$instance")
  [ -n "$images" ] && docker rmi -f $images >/dev/null
  rm -rf "$demo"
  echo "demo stopped and cleaned up"
}
if [ "${1:-}" = stop ]; then stop; exit 0; fi

assets=$("$root/scripts/build-test-images.sh")
cargo build --quiet --manifest-path "$root/Cargo.toml" -p capstan-cli
install -m 0755 "$assets/capstan-probe" "$target_dir/debug/capstan-probe"

mkdir -p "$demo"
if [ -f "$demo/daemon.pid" ] && kill -0 "$(cat "$demo/daemon.pid")" 2>/dev/null; then
  echo "a demo daemon is already running (pid $(cat "$demo/daemon.pid"))"
else
  "$capstan" serve --data-dir "$demo/data" --instance "$instance" \
    --listen "127.0.0.1:$api_port" --proxy-http-port "$proxy_port" --proxy-https-port 8443 \
    --source-dir "$demo" >"$demo/daemon.log" 2>&1 &
  echo $! >"$demo/daemon.pid"
fi
export CAPSTAN_URL=http://127.0.0.1:$api_port
for _ in $(seq 1 100); do
  curl -fsS "$CAPSTAN_URL/api/v1/health" >/dev/null 2>&1 && break
  sleep 0.3
done
curl -fsS "$CAPSTAN_URL/api/v1/health" >/dev/null || { cat "$demo/daemon.log"; exit 1; }
token=$(cat "$demo/data/admin-token")

# A sample app in a local git repository: the static sample binary in a FROM scratch image.
repo=$demo/hello-repo
if [ ! -d "$repo/.git" ]; then
  mkdir -p "$repo"
  cp "$assets/capstan-sample" "$repo/app"
  printf 'FROM scratch\nCOPY app /app\nENV VERSION=v1 MESSAGE="deployed by capstan"\nEXPOSE 8080\nENTRYPOINT ["/app"]\n' >"$repo/Dockerfile"
  git -C "$repo" init -q -b main
  git -C "$repo" add -A
  git -C "$repo" -c user.email=demo@capstan.invalid -c user.name=demo commit -qm "hello v1"
fi
# A local git repository is a local source: the daemon allows it under --source-dir only.
created=$(curl -sS -o "$demo/create.json" -w '%{http_code}' -X POST "$CAPSTAN_URL/api/v1/apps" \
  -H "Authorization: Bearer $token" -H 'content-type: application/json' \
  -d "{\"name\":\"hello\",\"source\":{\"git\":{\"url\":\"$repo\",\"ref\":\"main\"}},\"port\":8080,\"domains\":[\"hello.localhost\"],\"health\":{\"path\":\"/health\"}}")
case $created in
  201 | 409) ;; # created now, or by an earlier run
  *) echo "creating the app failed ($created): $(cat "$demo/create.json")" >&2; exit 1 ;;
esac
CAPSTAN_TOKEN=$token "$capstan" deploy hello --wait
echo
echo "hello is live. Through the proxy:"
echo "  curl -H 'Host: hello.localhost' http://127.0.0.1:$proxy_port/"
curl -fsS -H 'Host: hello.localhost' "http://127.0.0.1:$proxy_port/"
echo
echo "API: $CAPSTAN_URL  (token in $demo/data/admin-token; document at $CAPSTAN_URL/api/v1/openapi.json)"
if [ -f "$demo/data/setup-code" ]; then
  echo "Panel: $CAPSTAN_URL/  (first visit: create the admin account with the one-time code in $demo/data/setup-code)"
else
  echo "Panel: $CAPSTAN_URL/"
fi
echo "stop: scripts/demo.sh stop"
