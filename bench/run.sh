#!/usr/bin/env bash
# sellerdesk HTTP benchmark. One command:   bench/run.sh
#
# Builds the release binary, starts it on a fresh SQLite file with rate limiting off, logs in,
# seeds 10,000 inventory rows (untimed), then drives it with wrk (64 connections, 15 s each):
#   (a) single inventory upserts on random seeded SKUs   (b) single sales-target upserts
#   (c) GET inventory by id                               (d) inventory batches of 100 items
#   (g) (a) with a new Idempotency-Key on each request    (h) (a) repeating kept keys (replays)
# then restocks every row (untimed) and runs the stock operations:
#   (e) reserve-then-release pairs on random SKUs of the 10,000
#   (f) the same on 10 hot SKUs, every connection contending for the same rows
# and (g) one reader draining the event feed from the start with limit=1000 (every change above
# wrote its events), in events/s,
# and reports req/s (rows/s for batches), p50, p99, non-2xx responses and the server's peak
# RSS, plus the time from start to the first 200 on /health on the existing database.
# With BENCH_MYSQL_URL (or TEST_MYSQL_URL) set to a server URL, the same runs on MySQL too,
# in a fresh database `sellerdesk_bench`.
#
# Knobs: BENCH_DURATION (15s), BENCH_CONNECTIONS (64), BENCH_THREADS (2), BENCH_PORT (8700),
# BENCH_SQLITE_POOL (SQLite readers; unset, the service's default: one per core, at least 2),
# BENCH_MYSQL_POOL (the pool size for the MySQL run, 32),
# BENCH_SCENARIOS (which of "a b c d e f g h" to run; all by default), BENCH_SQLITE_SYNCHRONOUS
# (full or normal: SQLITE_SYNCHRONOUS for the SQLite run; the service's default when unset).
# BENCH_BIN (a release binary to run instead of building this tree's: for A/B runs).
# BENCH_SKIP_SQLITE (1: run only the MySQL suite, for A/B runs of MySQL).
# BENCH_METRICS (1: serve metrics on METRICS_ADDR=127.0.0.1:BENCH_PORT+1, scraped every 5 s
# during the runs, as Prometheus would; off by default, as in the service).
# BENCH_CPU (1: after each scenario, the CPU time it cost per request and per row: the server,
# its busiest thread (on SQLite, the one writer), the local MariaDB/MySQL server, wrk, and how
# many of the machine's cores were busy; read from /proc, Linux only). What a scenario could
# reach if one of them had the machine to itself is 1 / its time per row, times its cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_DIR="$PWD/bench"
DURATION=${BENCH_DURATION:-15s}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2}
PORT=${BENCH_PORT:-8700}
METRICS_PORT=$((PORT + 1))
PASSWORD=bench-admin-password
# A fresh signing key per run: a key written here would be published, and the server refuses those.
SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')
MYSQL_URL=${BENCH_MYSQL_URL:-${TEST_MYSQL_URL:-}}

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
if [ -n "${BENCH_BIN:-}" ]; then
  BIN=$BENCH_BIN # a binary built elsewhere, for A/B runs of two builds
else
  cargo build --release --locked --quiet
  BIN="$PWD/target/release/sellerdesk"
fi
WORK=$(mktemp -d)
DB_PID= # a local database server's process, for BENCH_CPU
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

start_server() { # DATABASE_URL POOL
  env -i PATH="$PATH" HOME="$HOME" DATABASE_URL="$1" ${2:+DATABASE_MAX_CONNECTIONS=$2} \
    PORT="$PORT" RATE_LIMIT_PER_MINUTE=0 LOGIN_RATE_LIMIT_PER_MINUTE=0 ADMIN_PASSWORD="$PASSWORD" \
    SECRET_KEY="$SECRET_KEY" RUST_LOG=warn LOG_FORMAT=json \
    ${BENCH_SQLITE_SYNCHRONOUS:+SQLITE_SYNCHRONOUS=$BENCH_SQLITE_SYNCHRONOUS} \
    ${BENCH_METRICS:+METRICS_ADDR=127.0.0.1:$METRICS_PORT} \
    "$BIN" serve >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  local started; started=$(date +%s%N)
  until curl -fs "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; do
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log"; exit 1; }
    sleep 0.005
  done
  STARTUP_MS=$(( ($(date +%s%N) - started) / 1000000 ))
}

stop_server() {
  kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
}

peak_rss_mib() {
  awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$SERVER_PID/status"
}

login() {
  curl -fs -X POST "http://127.0.0.1:$PORT/api/v1/auth/token" \
    -d grant_type=password -d username=admin -d "password=$PASSWORD" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}

seed() { # 10,000 inventory rows (ids 1..10000 on a fresh database), in batches of 100
  python3 - "$PORT" "$1" "${2:-}" <<'PY'
import json, sys, urllib.request
port, token, stock = sys.argv[1], sys.argv[2], sys.argv[3]
for start in range(0, 10000, 100):
    items = [{"seller_id": "A1SELLER0001", "parent_asin": "B0PARENT0001", "child_asin": "B0CHILD00001",
              "seller_sku": f"SKU{n:010d}", "market_place_id": "US", "inventory": int(stock) if stock else n}
             for n in range(start, start + 100)]
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/inventory/batch",
        data=json.dumps({"items": items}).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    urllib.request.urlopen(request).read()
PY
}

drain() { # TOKEN: one reader pages through the whole event feed, limit=1000, as fast as it can
  python3 - "$PORT" "$1" <<'PY'
import re, sys, time, urllib.request
port, token = sys.argv[1], sys.argv[2]
after, events, pages = 0, 0, 0
started = time.perf_counter()
while True:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/events?after={after}&limit=1000",
        headers={"Authorization": f"Bearer {token}"})
    body = urllib.request.urlopen(request).read()
    # Only the meta is needed: the reader's own JSON parsing is not what is measured.
    meta = re.search(rb'"next_after":(\d+),"has_next":(true|false)', body)
    pages += 1
    events += body.count(b'"event_type":')
    after = int(meta.group(1))
    if meta.group(2) == b"false":
        break
took = time.perf_counter() - started
print(f"{'(g) event feed drain x1000':<28} {events} events in {pages} pages, {took:.2f} s: {events / took:,.0f} events/s")
PY
}

selected() { # LETTER
  case " ${BENCH_SCENARIOS:-a b c d e f g h} " in *" $1 "*) return 0 ;; *) return 1 ;; esac
}

cpu_snapshot() { # lines "name ticks": the machine, the server and each of its threads, the DB server
  # user..steal; guest time is already in user.
  awk '/^cpu / { print "machine_idle", $5 + $6; t = 0; for (i = 2; i <= 9; i++) t += $i; print "machine_all", t }' /proc/stat
  awk '{ print "server", $14 + $15 }' "/proc/$SERVER_PID/stat"
  for task in /proc/"$SERVER_PID"/task/*; do
    awk -v comm="$(tr ' ' _ <"$task/comm")" -v tid="${task##*/}" \
      '{ sub(/.*\) /, ""); print "thread:" tid ":" comm, $12 + $13 }' "$task/stat" 2>/dev/null || true
  done
  if [ -n "$DB_PID" ]; then awk '{ print "database", $14 + $15 }' "/proc/$DB_PID/stat"; fi
}

cpu_report() { # BEFORE AFTER WRK_TIMES RESULT_LINE
  python3 - "$@" "$(getconf CLK_TCK)" "$(grep -c '^cpu[0-9]' /proc/stat)" <<'PY'
import json, sys
before, after, wrk_times, result, hz, cores = sys.argv[1:7]
def load(path):
    return {k: int(v) for k, v in (line.split() for line in open(path) if line.strip())}
b, a = load(before), load(after)
d = {k: (a[k] - b.get(k, 0)) / int(hz) for k in a}
r = json.loads(result)
rows = r["requests"] * r["rows_per_s"] / r["req_per_s"] if r["req_per_s"] else 0
wrk = sum(float(x) for x in open(wrk_times).read().split()[-2:])
busy = (d["machine_all"] - d["machine_idle"]) / d["machine_all"] * int(cores) if d["machine_all"] else 0
threads = sorted((v, k.split(":", 2)[2]) for k, v in d.items() if k.startswith("thread:"))
us = lambda s: f"{s / rows * 1e6:.0f}" if rows else "?"
parts = [f"server {us(d['server'])}"]
if threads:
    parts.append(f"its busiest thread ({threads[-1][1]}) {us(threads[-1][0])}")
if "database" in d:
    parts.append(f"database server {us(d['database'])}")
parts.append(f"wrk {us(wrk)}")
print(f"{'':<28} CPU per row, us: {', '.join(parts)}; {busy:.1f} of {cores} cores busy")
PY
}

scenario() { # LABEL SCRIPT TOKEN [SCRIPT ARGUMENT]
  selected "${1:1:1}" || return 0
  local line
  [ -z "${BENCH_CPU:-}" ] || cpu_snapshot >"$WORK/cpu.before"
  # wrk's own CPU comes from `time` (on fd 2, into wrk.time); wrk's errors still reach the
  # terminal (fd 3), and a failed wrk fails the run.
  { TIMEFORMAT='%U %S'; LC_ALL=C; time wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" \
    --latency -s "bench/wrk/$2" "http://127.0.0.1:$PORT" -- "$3" ${4:-} \
    2>&3 >"$WORK/wrk.out"; } 3>&2 2>"$WORK/wrk.time"
  line=$(grep '^RESULT ' "$WORK/wrk.out" | sed 's/^RESULT //')
  [ -z "${BENCH_CPU:-}" ] || cpu_snapshot >"$WORK/cpu.after"
  printf '%-28s %s, peak RSS so far %s MiB\n' "$1" "$line" "$(peak_rss_mib)"
  [ -z "${BENCH_CPU:-}" ] || cpu_report "$WORK/cpu.before" "$WORK/cpu.after" "$WORK/wrk.time" "$line"
}

suite() { # LABEL DATABASE_URL POOL
  echo "== $1 (pool ${3:-default}, $CONNECTIONS connections, $THREADS wrk threads, $DURATION each, $(nproc) cores)"
  start_server "$2" "$3"
  local token; token=$(login)
  seed "$token"
  if [ -n "${BENCH_METRICS:-}" ]; then
    (while sleep 5; do curl -fs "http://127.0.0.1:$METRICS_PORT/metrics" >/dev/null || true; done) &
    SCRAPER_PID=$!
  fi
  scenario "(a) inventory upsert" inventory_upsert.lua "$token"
  scenario "(b) sales-target upsert" sales_upsert.lua "$token"
  scenario "(c) GET inventory by id" get_by_id.lua "$token"
  scenario "(d) inventory batch x100" inventory_batch.lua "$token"
  scenario "(g) upsert, new Idempotency-Key" keyed_upsert.lua "$token"
  scenario "(h) upsert, replayed key" keyed_upsert.lua "$token" replay
  if selected e || selected f; then
    seed "$token" 1000000000
    scenario "(e) reserve+release, 10k SKUs" reserve_release.lua "$token" 10000
    scenario "(f) reserve+release, 10 hot" reserve_release.lua "$token" 10
  fi
  if [ -n "${BENCH_METRICS:-}" ]; then
    kill "$SCRAPER_PID" 2>/dev/null || true
    echo "metrics: $(curl -fs "http://127.0.0.1:$METRICS_PORT/metrics" | grep -c '^http_requests_total') request series"
  fi
  if selected g; then drain "$token"; fi
  echo "peak RSS: $(peak_rss_mib) MiB"
  stop_server
  start_server "$2" "$3"
  echo "start to first 200 on /health, existing database: ${STARTUP_MS} ms"
  stop_server
}

if [ -z "${BENCH_SKIP_SQLITE:-}" ]; then
  suite "SQLite" "sqlite://$WORK/bench.db" "${BENCH_SQLITE_POOL:-}"
fi

if [ -n "$MYSQL_URL" ]; then
  base=${MYSQL_URL%/*}
  mariadb_cli() { python3 - "$MYSQL_URL" "$1" <<'PY'
import sys, urllib.parse, subprocess
u = urllib.parse.urlparse(sys.argv[1])
cmd = ["mariadb", "--protocol=tcp", "-h", u.hostname or "127.0.0.1", "-P", str(u.port or 3306), "-u", u.username or "root"]
if u.password: cmd.append(f"-p{u.password}")
subprocess.run(cmd + ["-e", sys.argv[2]], check=True)
PY
  }
  mariadb_cli "DROP DATABASE IF EXISTS sellerdesk_bench; CREATE DATABASE sellerdesk_bench CHARACTER SET utf8mb4"
  # The database server's CPU, for BENCH_CPU: the first mariadbd (or mysqld) running here,
  # which is the server measured only when the URL names this machine.
  DB_PID=$(pgrep -x mariadbd || pgrep -x mysqld || true)
  DB_PID=${DB_PID%%$'\n'*}
  suite "MySQL" "$base/sellerdesk_bench" "${BENCH_MYSQL_POOL:-32}"
  mariadb_cli "DROP DATABASE IF EXISTS sellerdesk_bench"
fi
