# Shared by scenario.sh and attack.sh (sourced, from the repository root): the release build,
# free loopback ports, and waiting for a URL to answer.

# Builds touchstream and touchstream-load in release and sets `bin` to where they are
# (wherever cargo builds: CARGO_TARGET_DIR may move it, as cargo itself reports).
build_release() {
  cargo build --release --quiet -p touchstream -p touchstream-load
  local target_dir
  target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  bin="$target_dir/release"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_for() { # url: waits up to 30 s for it to answer 2xx
  for _ in $(seq 1 300); do
    curl -fs -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "$(basename "$0"): $1 never answered" >&2
  return 1
}
