#!/usr/bin/env bash
# Restart to counting over Kafka: a tansu broker (memory storage), `touchstream collect` and
# one `touchstream engine`; the engine is killed with SIGKILL and started again, and the script
# prints how long the new process took from its start to counting a batch posted meanwhile
# (its partitions restored from their checkpoints, so its counters show every event so far).
#
#   loadtests/restart.sh [runs]
#
# INSTANCE=ID makes the engine a static member of its group (`kafka.instance_id`), the same
# across the restart; without it, the restarted engine joins as a new member and waits for the
# group to give up on the dead one (librdkafka's default session timeout, 45 s).
# BIN=DIR runs the binaries in DIR instead of building (to compare two builds).
# SESSIONS=N first opens N one-event sessions (touchstream-load) and waits for a checkpoint
# of them, so each restart restores N sessions from the state topic; the engine's checkpoint
# lines (`checkpoints written bytes= paused_ms= seconds=`) are printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
source loadtests/lib.sh
runs=${1:-3}
if [ -n "${BIN:-}" ]; then bin=$BIN; else build_release; fi

logs=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; if [ -n "${KEEP:-}" ]; then echo "logs in $logs" >&2; else rm -rf "$logs"; fi; }
trap cleanup EXIT

tansu=$(command -v tansu || echo "${CARGO_HOME:-$HOME/.cargo}/bin/tansu")
broker=$(free_port)
"$tansu" broker --listener-url "tcp://127.0.0.1:$broker" --advertised-listener-url "tcp://127.0.0.1:$broker" \
  --storage-engine memory://tansu/ >"$logs/tansu.log" 2>&1 &
pids+=($!)
export TOUCHSTREAM_KAFKA_BROKERS=127.0.0.1:$broker TOUCHSTREAM_KAFKA_PARTITIONS=4
export TOUCHSTREAM_KAFKA_TOPIC=restart-$$ TOUCHSTREAM_KAFKA_DEAD_LETTER_TOPIC=restart-dead-$$
export TOUCHSTREAM_KAFKA_GROUP_ID=restart-$$ TOUCHSTREAM_KAFKA_STATE_TOPIC=restart-state-$$
export TOUCHSTREAM_STATE_CHECKPOINT_INTERVAL=${CHECKPOINT_INTERVAL:-5s}
export TOUCHSTREAM_JOURNEY_SESSION_TIMEOUT=30m TOUCHSTREAM_LIMITS_CLIENT_REQUESTS_PER_SECOND=0
export TOUCHSTREAM_ENGINE_CLIENT_SESSIONS_PER_SECOND=0
export RUST_LOG=${RUST_LOG:-info,touchstream::engine::kafka=debug}
if [ -n "${INSTANCE:-}" ]; then export TOUCHSTREAM_KAFKA_INSTANCE_ID=$INSTANCE; fi
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$broker") 2>/dev/null && break; sleep 0.1; done

public=$(free_port)
collect_admin=$(free_port)
TOUCHSTREAM_LISTEN=127.0.0.1:$public TOUCHSTREAM_ADMIN_LISTEN=127.0.0.1:$collect_admin \
  "$bin/touchstream" collect 2>"$logs/collect.log" &
pids+=($!)
wait_for "http://127.0.0.1:$collect_admin/readyz"

engine_admin=$(free_port)
start_engine() {
  TOUCHSTREAM_ADMIN_LISTEN=127.0.0.1:$engine_admin "$bin/touchstream" engine 2>>"$logs/engine.log" &
  engine=$!
  pids+=("$engine")
}
applied() { # over every partition the engine shows (restored ones go on from their checkpoint)
  curl -fs "http://127.0.0.1:$engine_admin/metrics" 2>/dev/null |
    awk '/^touchstream_engine_events_applied_total[{ ]/{n += $2} END{print n + 0}'
}
sent=0
post() { # n events of new sessions (one per partition key, so every partition gets some)
  local events="" i
  for i in $(seq 1 "$1"); do
    sent=$((sent + 1))
    events+="${events:+,}{\"id\":\"e$sent\",\"type\":\"page_view\",\"ts\":$(date +%s%3N),\"session\":\"s$sent\"}"
  done
  curl -fs -o /dev/null -H 'content-type: application/json' \
    -d "{\"site\":\"demo\",\"events\":[$events]}" "http://127.0.0.1:$public/v1/events"
}
wait_applied() { # count, seconds
  local deadline=$((SECONDS + $2))
  while [ $SECONDS -lt $deadline ]; do
    [ "$(applied)" = "$1" ] && return 0
    sleep 0.05
  done
  return 1
}

start_engine
wait_for "http://127.0.0.1:$engine_admin/readyz"
post 8
wait_applied 8 120 || { echo "restart.sh: the first engine never counted" >&2; exit 1; }
if [ -n "${SESSIONS:-}" ]; then
  "$bin/touchstream-load" --url "http://127.0.0.1:$public" --session-timeout 30m --no-verify \
    --metrics "http://127.0.0.1:$engine_admin/metrics" --probe-interval 0s shoppers --sessions "$SESSIONS" --steps 0,0,0,0 --bots 0 --duplicates 0 \
    --friction 0 >"$logs/load.log" 2>&1 || { cat "$logs/load.log" >&2; exit 1; }
  sent=$((sent + SESSIONS))
  wait_applied "$sent" 600 || { echo "restart.sh: the $SESSIONS sessions were never applied" >&2; exit 1; }
  # A checkpoint round after the last of them.
  marks=$(grep -c "checkpoints written" "$logs/engine.log" || true)
  for _ in $(seq 1 600); do
    [ "$(grep -c "checkpoints written" "$logs/engine.log" || true)" -gt $((marks + 1)) ] && break
    sleep 1
  done
  [ "$(grep -c "checkpoints written" "$logs/engine.log" || true)" -gt $((marks + 1)) ] ||
    { echo "restart.sh: no checkpoint logged (RUST_LOG needs touchstream::engine::kafka=debug)" >&2; exit 1; }
  echo "resident: $(awk '/VmRSS/{print $2, $3}' "/proc/$engine/status")"
fi
for run in $(seq 1 "$runs"); do
  kill -9 "$engine"
  wait "$engine" 2>/dev/null || true
  post 8
  t0=$(date +%s%3N)
  start_engine
  if wait_applied "$sent" "${WAIT:-300}"; then
    echo "run $run: restart to counting $(( $(date +%s%3N) - t0 )) ms"
  else
    echo "run $run: not counting after 300 s: $(applied) events shown of $sent sent" >&2
    curl -fs "http://127.0.0.1:$engine_admin/metrics" | grep -E '^touchstream_engine_events_applied_total|^touchstream_kafka_assigned' >&2 || true
  fi
done
grep -h "checkpoints written\|partition restored" "$logs/engine.log" | tail -n 12 || true
