#!/usr/bin/env bash
# Starts touchstream (release build) on loopback, runs touchstream-load against it, stops it.
#
#   loadtests/scenario.sh embedded [touchstream-load arguments...]
#   loadtests/scenario.sh kafka    [touchstream-load arguments...]
#
# embedded: `touchstream serve` without Kafka (its log and checkpoints in a state directory
#           of its own, removed at the end).
# kafka:    a tansu broker (memory storage), `touchstream collect` and `touchstream engine`.
# The generator gets --server-pid for every touchstream process and the /metrics of each; the
# broker's CPU time is printed separately. SESSION_TIMEOUT (default 5s) is the server's session
# timeout, passed to the generator too. PROFILE=FILE records a perf profile of the touchstream
# processes during the run. CONFIG=FILE gives touchstream a configuration file (the environment
# above still wins). FLOOD=SITE floods that site with wrk (loadtests/flood.lua, FLOOD_CONNECTIONS
# connections, 64 by default; FLOOD_RATE requests/s, or as fast as wrk can) while the generator
# runs, and prints wrk's figures and CPU.
# Examples: loadtests/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:?usage: loadtests/scenario.sh embedded|kafka [touchstream-load arguments...]}
shift
timeout=${SESSION_TIMEOUT:-5s}

. loadtests/lib.sh
build_release
cpu_seconds() { # pid: user+system seconds from /proc
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); split($0, f, " "); printf "%.2f\n", (f[12] + f[13]) / hz }' "/proc/$1/stat"
}

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # The server's state (its log of every batch) is of no use after the run.
  if [ -n "${logs:-}" ]; then rm -rf "$logs/state"; fi
}
trap cleanup EXIT
logs=$(mktemp -d)

public=$(free_port)
export TOUCHSTREAM_LISTEN=127.0.0.1:$public
# Each run starts on a state directory of its own (the durable log and checkpoints of `serve`).
export TOUCHSTREAM_STATE_DIR=$logs/state
export TOUCHSTREAM_JOURNEY_SESSION_TIMEOUT=$timeout
# The generator sends as many shoppers from one address: no client-address limit, unless set.
export TOUCHSTREAM_LIMITS_CLIENT_REQUESTS_PER_SECOND=${TOUCHSTREAM_LIMITS_CLIENT_REQUESTS_PER_SECOND:-0}
export RUST_LOG=${RUST_LOG:-warn}
# The default site allows the origin http://127.0.0.1:8080, the generator's default Origin.
args=(--url "http://127.0.0.1:$public" --session-timeout "$timeout")
config=()
if [ -n "${CONFIG:-}" ]; then config=(--config "$CONFIG"); fi

case "$mode" in
  embedded)
    admin=$(free_port)
    TOUCHSTREAM_ADMIN_LISTEN=127.0.0.1:$admin "$bin/touchstream" "${config[@]}" serve 2>"$logs/serve.log" &
    pids+=($!)
    args+=(--server-pid "${pids[0]}" --metrics "http://127.0.0.1:$admin/metrics")
    wait_for "http://127.0.0.1:$admin/readyz"
    ;;
  kafka)
    tansu=$(command -v tansu || echo "${CARGO_HOME:-$HOME/.cargo}/bin/tansu")
    broker=$(free_port)
    "$tansu" broker --listener-url "tcp://127.0.0.1:$broker" --advertised-listener-url "tcp://127.0.0.1:$broker" \
      --storage-engine memory://tansu/ >"$logs/tansu.log" 2>&1 &
    broker_pid=$!
    pids+=("$broker_pid")
    export TOUCHSTREAM_KAFKA_BROKERS=127.0.0.1:$broker
    export TOUCHSTREAM_KAFKA_TOPIC=load-$$ TOUCHSTREAM_KAFKA_DEAD_LETTER_TOPIC=load-dead-$$
    export TOUCHSTREAM_KAFKA_GROUP_ID=load-$$ TOUCHSTREAM_KAFKA_PARTITIONS=${PARTITIONS:-4}
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$broker") 2>/dev/null && break; sleep 0.1; done
    collect_admin=$(free_port)
    TOUCHSTREAM_ADMIN_LISTEN=127.0.0.1:$collect_admin "$bin/touchstream" "${config[@]}" collect 2>"$logs/collect.log" &
    pids+=($!)
    args+=(--server-pid $! --metrics "http://127.0.0.1:$collect_admin/metrics")
    wait_for "http://127.0.0.1:$collect_admin/readyz"
    engine_admin=$(free_port)
    TOUCHSTREAM_ADMIN_LISTEN=127.0.0.1:$engine_admin "$bin/touchstream" "${config[@]}" engine 2>"$logs/engine.log" &
    pids+=($!)
    args+=(--server-pid $! --metrics "http://127.0.0.1:$engine_admin/metrics")
    wait_for "http://127.0.0.1:$engine_admin/readyz"
    # The engine owns its partitions once it reports them.
    for _ in $(seq 1 300); do
      curl -fs "http://127.0.0.1:$engine_admin/metrics" | grep -q '^touchstream_kafka_assigned_partitions [1-9]' && break
      sleep 0.1
    done
    broker_cpu=$(cpu_seconds "$broker_pid")
    ;;
  *)
    echo "scenario.sh: unknown mode $mode (embedded or kafka)" >&2
    exit 2
    ;;
esac

# PROFILE=FILE: sample the touchstream processes' stacks with perf (software clock) meanwhile.
if [ -n "${PROFILE:-}" ]; then
  server_pids=$(printf '%s\n' "${args[@]}" | awk 'prev == "--server-pid" { printf "%s%s", sep, $0; sep="," } { prev = $0 }')
  perf record -e cpu-clock -F 499 -g -o "$PROFILE" -p "$server_pids" 2>"$logs/perf.log" &
  perf_pid=$!
fi

if [ -n "${FLOOD:-}" ]; then
  FLOOD_SITE=$FLOOD FLOOD_CONNECTIONS=${FLOOD_CONNECTIONS:-64} wrk -t1 -c"${FLOOD_CONNECTIONS:-64}" -d1h -s loadtests/flood.lua \
    "http://127.0.0.1:$public/v1/events" >"$logs/wrk.log" 2>&1 &
  flood_pid=$!
  pids+=("$flood_pid")
  sleep 1
fi

status=0
"$bin/touchstream-load" "${args[@]}" "$@" || status=$?
if [ -n "${FLOOD:-}" ]; then
  flood_cpu=$(cpu_seconds "$flood_pid")
  kill -INT "$flood_pid" && wait "$flood_pid" || true
  echo "flood on site $FLOOD (wrk, $flood_cpu CPU s):" >&2
  cat "$logs/wrk.log" >&2
fi
if [ -n "${PROFILE:-}" ]; then
  kill -INT "$perf_pid" && wait "$perf_pid" || true
  echo "profile in $PROFILE: perf report -i $PROFILE --no-children --percent-limit 1" >&2
fi
if [ "$mode" = kafka ]; then
  echo "broker (tansu): $(awk -v a="$broker_cpu" -v b="$(cpu_seconds "$broker_pid")" 'BEGIN { printf "%.2f", b - a }') CPU s" >&2
fi
if [ "$status" -ne 0 ]; then
  echo "scenario.sh: touchstream-load exited $status; server logs in $logs" >&2
fi
exit "$status"
