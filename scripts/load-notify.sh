#!/usr/bin/env bash
# Notifies per second, end to end, against a release `jit serve` of the example app on
# SQLite: HTTP → signature check → durable commit → SUCCESS reply.
#
#   scripts/load-notify.sh [--orders N] [--duplicates N] [--concurrency N]
#
# Starts the server on a free loopback port with a fresh copy of the example app (and so a
# fresh database) in a temporary folder, runs examples/load_notify.rs against it, stops it.
# Request logs are at `warn` during the run (RUST_LOG overrides); see docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet --bin jit --example load_notify

work=$(mktemp -d /tmp/jit-load.XXXXXX)
cp app.toml "$work/"
cp -r elements "$work/"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

JIT_LISTEN="127.0.0.1:$port" RUST_LOG="${RUST_LOG:-warn}" \
  target/release/jit serve --app "$work" >"$work/serve.log" 2>&1 &
server=$!
cleanup() {
  kill -TERM "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || { cat "$work/serve.log"; exit 1; }

target/release/examples/load_notify --url "http://127.0.0.1:$port" "$@"
