#!/usr/bin/env bash
# Payment notifies and order creations per second, end to end, against a release
# `jit serve` of the example app: HTTP → signature check → durable commit → reply.
#
#   scripts/load-notify.sh [--orders N] [--wrk-orders N] [--duplicates N]
#                          [--concurrency N] [--wrk-threads N] [--wrk-connections N]
#                          [--duration SECONDS] [--postgres URL] [--no-sqlite]
#
# JIT_BIN and LOAD_BIN run given binaries instead of building this tree's (to compare two
# builds: run both back to back, alternating).
# Runs the whole matrix with two load generators, this repository's
# (examples/load_notify.rs, `--concurrency` requests in flight) and wrk with
# scripts/wrk/load.lua (installed from Debian's packages when missing), and prints one
# table:
#
#   baseline  POSTs to an unknown element: the HTTP host alone (wrk only)
#   create    new orders through PaySvc/create, each committed before its answer
#   warm      one payment notify per order, orders created by this server (its order
#             cache knows them)
#   repeats   the same notifies again (WeChat's retries of recorded payments)
#   cold      one notify per order, orders created before the server was restarted (its
#             cache is empty: every notify reads its order)
#
# Each database run starts the server on a free loopback port with a fresh copy of the
# example app (SQLite beside it, WAL, synchronous=FULL; with --postgres a fresh schema on
# that server), the in-process simulator as gateway and request logs at `warn` (RUST_LOG
# overrides). Record the figures with the commit and the machine's load (both printed) in
# docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."

orders=20000
wrk_orders=60000
duplicates=40000
concurrency=64
wrk_threads=2
wrk_connections=32
duration=5
postgres=""
sqlite=1
while [ $# -gt 0 ]; do
  case "$1" in
    --orders) orders=$2; shift 2 ;;
    --wrk-orders) wrk_orders=$2; shift 2 ;;
    --duplicates) duplicates=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --wrk-threads) wrk_threads=$2; shift 2 ;;
    --wrk-connections) wrk_connections=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --postgres) postgres=$2; shift 2 ;;
    --no-sqlite) sqlite=0; shift ;;
    *) echo "unknown option $1 (see the comment at the top of $0)" >&2; exit 2 ;;
  esac
done

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)" >&2
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi

if [ -z "${JIT_BIN:-}" ] || [ -z "${LOAD_BIN:-}" ]; then
  cargo build --release --quiet --bin jit --example load_notify
fi
jit=${JIT_BIN:-target/release/jit}
generator=${LOAD_BIN:-target/release/examples/load_notify}

work=$(mktemp -d /tmp/jit-load.XXXXXX)
results="$work/results"
: >"$results"
server=""
sampler=""
# The server's peak resident memory (VmHWM), noted when it stops, per database.
stop_server() {
  if [ -n "$server" ]; then
    if [ -r "/proc/$server/status" ]; then
      echo "$(awk '/VmHWM/ {print $2}' "/proc/$server/status")" >>"$work/peak-rss-$current_db"
    fi
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=""
  fi
}
cleanup() {
  [ -n "$sampler" ] && kill "$sampler" 2>/dev/null
  stop_server
  rm -rf "$work"
}
trap cleanup EXIT

# start_server APP_DIR [ENV=VALUE...]: a release server of APP_DIR on a free port.
start_server() {
  local app=$1
  shift
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  url="http://127.0.0.1:$port"
  env "$@" JIT_LISTEN="127.0.0.1:$port" RUST_LOG="${RUST_LOG:-warn}" \
    "$jit" serve --app "$app" >>"$app/serve.log" 2>&1 &
  server=$!
  for _ in $(seq 1 200); do
    curl -sf "$url/healthz" >/dev/null && return 0
    sleep 0.1
  done
  cat "$app/serve.log"
  exit 1
}

# generate DB ARGS...: the repository's generator against the running server.
generate() {
  local db=$1
  shift
  "$generator" --url "$url" --concurrency "$concurrency" "$@" | tee "$work/generator.out" |
    grep -v '^RESULT' || true
  grep '^RESULT' "$work/generator.out" | sed "s/^RESULT /RESULT $db /" >>"$results"
}

# load DB SECONDS MODE LABEL [FILE|TOKEN]: wrk with scripts/wrk/load.lua.
load() {
  local db=$1 seconds=$2 mode=$3 label=$4 extra=${5:-}
  wrk -t"$wrk_threads" -c"$wrk_connections" -d"${seconds}s" --latency \
    -s scripts/wrk/load.lua "$url" -- "$mode" "$label" "$wrk_threads" "$extra" \
    >"$work/wrk.out" 2>&1 || { cat "$work/wrk.out"; exit 1; }
  grep -v '^RESULT' "$work/wrk.out" | grep -E 'unexpected|Requests/sec' || true
  grep '^RESULT' "$work/wrk.out" | sed "s/^RESULT /RESULT $db /" >>"$results"
}

# How long wrk may need for N distinct notifies (it stops each thread when its share is
# answered; the run itself lasts this long): at least 2,000 a second, plus a margin.
distinct_seconds() {
  echo $(( $1 / 2000 + 3 ))
}

# run_matrix DB [ENV=VALUE...]
run_matrix() {
  local db=$1
  shift
  local app="$work/$db"
  current_db=$db
  mkdir -p "$app"
  cp app.toml "$app/"
  cp -r elements "$app/"
  echo "== $db"
  start_server "$app" "$@"
  # The largest the SQLite WAL gets during the run (sampled every 0.2 s).
  (
    largest=0
    while true; do
      size=$(stat -c %s "$app/shop.db-wal" 2>/dev/null || echo 0)
      if [ "$size" -gt "$largest" ]; then
        largest=$size
        echo "$largest" >"$work/largest-wal-$db"
      fi
      sleep 0.2
    done
  ) &
  sampler=$!
  if [ "$db" = sqlite ]; then
    load "$db" "$duration" baseline baseline
  fi
  load "$db" "$duration" create wrk-create demo-token
  # Warm: the orders of each set were created by this server just before.
  generate "$db" --orders "$orders" --label generator --duplicates "$duplicates"
  "$generator" --url "$url" --concurrency "$concurrency" --orders "$wrk_orders" \
    --write-notifies "$work/wrk-warm.txt" | grep -v '^RESULT'
  load "$db" "$(distinct_seconds "$wrk_orders")" distinct wrk-distinct "$work/wrk-warm.txt"
  load "$db" "$duration" repeat wrk-repeats "$work/wrk-warm.txt"
  # Cold: orders created, then the server restarted (its order cache empty).
  "$generator" --url "$url" --concurrency "$concurrency" --orders "$orders" \
    --write-notifies "$work/gen-cold.txt" | grep -v '^RESULT'
  "$generator" --url "$url" --concurrency "$concurrency" --orders "$wrk_orders" \
    --write-notifies "$work/wrk-cold.txt" | grep -v '^RESULT'
  stop_server
  start_server "$app" "$@"
  generate "$db" --notifies-from "$work/gen-cold.txt" --label generator-cold --duplicates 0
  load "$db" "$(distinct_seconds "$wrk_orders")" distinct wrk-cold "$work/wrk-cold.txt"
  stop_server
  kill "$sampler" 2>/dev/null
  sampler=""
}

load_before=$(uptime)
if [ "$sqlite" = 1 ]; then
  run_matrix sqlite
fi
if [ -n "$postgres" ]; then
  schema="load_$(date +%s)_$$"
  run_matrix postgres JIT_DATABASE_URL="$postgres" JIT_DATABASE_SCHEMA="$schema"
fi
load_after=$(uptime)

# The table: one row per phase, one column per database and generator.
python3 - "$results" "$concurrency" "$wrk_threads" "$wrk_connections" <<'EOF'
import sys
path, concurrency, threads, connections = sys.argv[1:]
rows = {}
dbs = []
for line in open(path):
    _, db, label, count, rate, p50, p99, errors = line.split()
    if db not in dbs:
        dbs.append(db)
    rows[(db, label)] = (int(count), float(rate), float(p50), float(p99), int(errors))
phases = [
    ("baseline (host only, 404)", None, "baseline"),
    ("create (durable)", "generator-create", "wrk-create"),
    ("warm distinct notifies", "generator-distinct", "wrk-distinct"),
    ("repeats of known payments", "generator-repeats", "wrk-repeats"),
    ("cold distinct notifies", "generator-cold-distinct", "wrk-cold"),
]
def cell(db, label):
    if label is None or (db, label) not in rows:
        return "—"
    count, rate, p50, p99, errors = rows[(db, label)]
    text = f"{rate:,.0f}/s (p50 {p50:.1f} ms, p99 {p99:.1f} ms)"
    return text + (f", {errors} errors" if errors else "")
header = ["phase"]
for db in dbs:
    header += [f"{db}, generator c{concurrency}", f"{db}, wrk -t{threads} -c{connections}"]
print()
print("| " + " | ".join(header) + " |")
print("|" + "---|" * len(header))
for name, generator, wrk in phases:
    cells = [name]
    for db in dbs:
        cells += [cell(db, generator), cell(db, wrk)]
    print("| " + " | ".join(cells) + " |")
EOF
echo
for file in "$work"/peak-rss-*; do
  [ -e "$file" ] || continue
  echo "server peak RSS (${file##*/peak-rss-}, before and after the restart): $(awk '{printf "%s%.0f MiB", sep, $1/1024; sep=", "}' "$file")"
done
for file in "$work"/largest-wal-*; do
  [ -e "$file" ] || continue
  echo "largest SQLite WAL seen (${file##*/largest-wal-}): $(awk '{printf "%.1f MiB", $1/1048576}' "$file")"
done
if [ -n "${JIT_BIN:-}" ]; then
  echo "binary $JIT_BIN"
else
  echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo ' (with uncommitted changes)')"
fi
echo "load before: $load_before"
echo "load after:  $load_after"
