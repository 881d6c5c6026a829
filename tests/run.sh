#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, docs, every test, and the benchmarks built.
# Installs what it needs, idempotently: rustfmt and clippy; the Kafka-protocol broker tansu that
# the Kafka tests start on loopback (a one-time build of about 10 minutes); Debian's chromium and
# the snippet's npm packages for its unit and browser tests; Debian's openssl (the README's signing
# recipe, run by tests/access.rs); Debian's prometheus (promtool) and
# prometheus-alertmanager (amtool) for the operations kit in deploy/; Debian's docker-compose and
# PyPI's kubernetes-validate to check deploy/compose and deploy/kubernetes without an engine.
# Usage: ./tests/run.sh   (from anywhere; it works from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

if [ ! -r ../shared/data/rees46-2019-oct-sample.csv ]; then
  echo "tests/run.sh: ../shared/data/rees46-2019-oct-sample.csv is missing; the replay tests read it beside the repository" >&2
  exit 1
fi

if command -v rustup >/dev/null 2>&1; then
  for component in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
  done
fi

TANSU_VERSION=0.6.0
if ! command -v tansu >/dev/null 2>&1 && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/tansu" ]; then
  step "installing tansu $TANSU_VERSION (Kafka-protocol broker for the Kafka tests)"
  cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql
fi

missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium"
command -v promtool >/dev/null 2>&1 || missing="$missing prometheus"
command -v amtool >/dev/null 2>&1 || missing="$missing prometheus-alertmanager"
command -v docker-compose >/dev/null 2>&1 || missing="$missing docker-compose"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
if [ -n "$missing" ]; then
  step "installing$missing (snippet browser tests; the signing recipe; alert rule, Alertmanager and compose checks)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $missing
fi

if ! python3 -c 'import kubernetes_validate' >/dev/null 2>&1; then
  step "installing kubernetes-validate (Kubernetes API schemas for deploy/kubernetes)"
  python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate==1.37.0
fi

if [ ! -d js-snippet/node_modules/esbuild ] || [ ! -d js-snippet/node_modules/playwright-core ]; then
  step "installing the snippet's npm packages"
  (cd js-snippet && npm ci --no-audit --no-fund)
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo doc (the docs' links resolve; module docs are part of the code)"
RUSTDOCFLAGS="-D warnings" cargo doc --quiet --no-deps -p touchstream

# Wherever cargo builds (CARGO_TARGET_DIR may move it), as cargo itself reports.
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')

step "cargo build --release (tests/abuse.rs attacks the binary a shop runs)"
cargo build --release --quiet --bin touchstream

step "cargo test --workspace (touchstream and the load generator)"
TEST_TOUCHSTREAM_BIN="$target_dir/release/touchstream" cargo test --workspace

step "snippet tests (node --test: size budget, build freshness, unit, real browser)"
cargo build --quiet
(cd js-snippet && TEST_TOUCHSTREAM_BIN="$target_dir/debug/touchstream" npm test --silent)

step "cargo bench --no-run (benchmarks compile; figures live in loadtests/RESULTS.md)"
cargo bench --no-run
