#!/usr/bin/env bash
# Starts touchstream (release build) on loopback with a configuration suited to one attack of
# issue 13, runs `touchstream-load attack NAME` against it, stops it.
#
#   loadtests/attack.sh NAME [touchstream-load attack arguments...]
#
# NAME: session-flood, idle-connections, connection-share, chunked-bodies, money,
# forged-address, session-flood-new, pii (loadtests/README.md says what each does). The
# configuration is written below; the limits it sets are passed to the attack, which prints
# each bound it measured as `bound NAME: measured X (limit Y) ok|BROKEN`. Exit status: 0 when
# every bound held, 1 when one broke, 2 on an error. TOUCHSTREAM_* variables still override the
# configuration file, but the attack is then told the limits written here.
set -euo pipefail
cd "$(dirname "$0")/.."

name=${1:?usage: loadtests/attack.sh NAME [touchstream-load attack arguments...]}
shift

. loadtests/lib.sh
build_release

pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
}
trap cleanup EXIT
logs=$(mktemp -d)
config=$logs/touchstream.toml

public=$(free_port)
admin=$(free_port)
origin=http://127.0.0.1:8080
cat >"$config" <<EOF
listen = "127.0.0.1:$public"
admin_listen = "127.0.0.1:$admin"
EOF
site() { printf '[[sites]]\nid = "%s"\norigins = ["%s"]\n' "$1" "$origin" >>"$config"; }

# Per attack: the sites, the limits, and the same limits told to the attack.
args=()
case "$name" in
  session-flood)
    site shop; site probe; site flood
    cat >>"$config" <<EOF
[journey]
session_timeout = "5s"
[limits]
client_requests_per_second = 0
[engine]
max_session_events = 5000
EOF
    args=(--site shop --session-timeout 5s --max-session-events 5000)
    ;;
  idle-connections)
    # Loopback is an ordinary client here; the sockets come from 8 addresses, each within its
    # share, so only the timeouts can free the listener.
    site demo
    cat >>"$config" <<EOF
[limits]
trusted_proxies = []
max_connections = 1000
header_timeout = "10s"
EOF
    args=(--connections 1000 --header-timeout 10s --addresses 8)
    ;;
  connection-share)
    # The default listener (10,000 connections, 256 per client under pressure); the header
    # timeout is raised so that connections held while the attack opens more stay open.
    site demo
    cat >>"$config" <<EOF
[limits]
trusted_proxies = []
max_connections = 10000
max_client_connections = 256
header_timeout = "60s"
EOF
    args=(--max-connections 10000 --max-client-connections 256)
    ;;
  chunked-bodies)
    # Loopback is an ordinary client: its share of the in-flight budget applies.
    site demo
    cat >>"$config" <<EOF
[limits]
trusted_proxies = []
client_requests_per_second = 0
request_timeout = "60s"
max_inflight_body_bytes = 8388608
EOF
    args=(--inflight-budget 8388608)
    ;;
  money)
    site demo
    ;;
  forged-address)
    # 127.0.0.1 is the proxy; 127.0.0.3 reaches the collector around it.
    site demo
    cat >>"$config" <<EOF
[limits]
client_address_header = "x-forwarded-for"
trusted_proxies = ["127.0.0.1/32"]
client_requests_per_second = 1
client_burst_requests = 20
EOF
    args=(--client-rate 1 --client-burst 20 --proxy 127.0.0.1 --direct 127.0.0.3)
    ;;
  session-flood-new)
    site demo
    cat >>"$config" <<EOF
[limits]
trusted_proxies = []
client_requests_per_second = 0
[engine]
max_open_sessions = 20000
EOF
    args=(--max-open-sessions 20000)
    ;;
  pii)
    # Everything the server logs is searched too.
    site demo
    export RUST_LOG=${RUST_LOG:-debug}
    args=(--server-log "$logs/serve.log")
    ;;
  *)
    echo "attack.sh: unknown attack $name" >&2
    exit 2
    ;;
esac
export RUST_LOG=${RUST_LOG:-warn}

TOUCHSTREAM_STATE_DIR=$logs/state "$bin/touchstream" --config "$config" serve 2>"$logs/serve.log" &
pid=$!
wait_for "http://127.0.0.1:$admin/readyz"

status=0
"$bin/touchstream-load" attack "$name" --url "http://127.0.0.1:$public" --origin "$origin" \
  --metrics "http://127.0.0.1:$admin/metrics" --server-pid "$pid" "${args[@]}" "$@" || status=$?
if [ "$status" -ne 0 ]; then
  echo "attack.sh: touchstream-load exited $status; configuration and server log in $logs" >&2
else
  rm -rf "$logs"
fi
exit "$status"
