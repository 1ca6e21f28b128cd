#!/usr/bin/env bash
# The end-to-end figures of BENCHMARKS.md, side by side in one run on the same
# messages and the same servers (redis-server and a durable PostgreSQL, fsync
# on, started here on loopback):
#
#   Redis stream -> PostgreSQL, each message acked only after its row is durable
#     flowgate ingest      flowgate ingest --redis … --postgres … --max-messages N
#     batch loop (peer)    e2e-batch-loop: XREADGROUP COUNT 1000 -> 2 writers, each
#                          one UNNEST insert per batch, then one XACK of its ids
#     naive loop           flowgate naive: per message INSERT, then XACK (on N/50
#                          messages: it is ~100x slower; its rate is per message)
#     Redis alone          e2e-redis-alone: XREADGROUP COUNT 1000 + XACK, no sink
#     PostgreSQL alone     e2e-postgres-alone: UNNEST, 1000 rows per transaction,
#                          2 connections, rows generated in memory
#   Embedded generator -> SQLite (WAL, synchronous=NORMAL)
#     flowgate ingest      flowgate ingest --messages N --redeliver-every 0 --sqlite F
#     rusqlite loop (peer) e2e-rusqlite-loop: 1 transaction per 1000 rows, cached
#                          prepared INSERT … ON CONFLICT DO NOTHING, blocking thread
#
# Every Redis contender reads its own copy (Redis COPY) of one stream of N
# messages published once by `flowgate publish`, as a fresh consumer group;
# every SQL contender writes its own fresh table (or file) of the demo layout.
#
# Per contender: messages/s from the program's own timing of the work (first
# read to last ack or commit: start-up and the final idle wait excluded); CPU
# seconds per million messages of the process (user+sys, /usr/bin/time), of
# redis-server and of PostgreSQL (all its processes, from /proc/<pid>/stat
# before and after); peak RSS of the process. Then the ratios, and the load
# average before and after. Stored rows and messages left pending are checked.
#
#   dev/bench-e2e.sh [N]          N messages (default 1000000; ~6 min on 2 cores)
#   dev/bench-e2e.sh --quick      N = 100000, for development (~1 min)
#
# Environment: FLOWGATE_BENCH_NAIVE_DIVISOR (default 50: the naive loop gets
# N/50 messages); FLOWGATE_BENCH_COPY=1 adds the peer and the PostgreSQL
# ceiling with COPY (binary) instead of UNNEST, both via a staging table
# (-copy: COPY, then INSERT … SELECT … ON CONFLICT DO NOTHING) and straight
# into the table (-copy-direct: a batch meeting a stored key falls back to
# UNNEST);
# FLOWGATE_BENCH_FLOWGATE_ARGS / FLOWGATE_BENCH_SQLITE_ARGS add flags to the
# Redis / SQLite `flowgate ingest` runs (e.g. "--flush-concurrency 4");
# FLOWGATE_BENCH_ONLY="name …" runs only those contenders (names as in the
# table: flowgate, peer, naive, redis, postgres, sqlite-flowgate,
# sqlite-peer, peer-copy, postgres-copy, peer-copy-direct,
# postgres-copy-direct).
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
  --quick) n=100000 ;;
  "") n=1000000 ;;
  *[!0-9]* | 0) echo "usage: dev/bench-e2e.sh [N | --quick]" >&2; exit 2 ;;
  *) n=$1 ;;
esac
naive_div=${FLOWGATE_BENCH_NAIVE_DIVISOR:-50}
naive_n=$((n / naive_div))
[ "$naive_n" -ge 1000 ] || naive_n=$((n < 1000 ? n : 1000))
only=${FLOWGATE_BENCH_ONLY:-}
[ -x /usr/bin/time ] || { echo "dev/bench-e2e.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

# The benchmark wants a durable PostgreSQL (fsync on), unlike the tests.
export FLOWGATE_PG_DURABLE=1
# shellcheck source=dev/servers.sh
source dev/servers.sh
start_redis
start_postgres
redis=$FLOWGATE_TEST_REDIS_URL
pg=$FLOWGATE_TEST_POSTGRES_URL
# No autovacuum of one contender's table during the next one's run.
psql -q "$pg" -c "ALTER SYSTEM SET autovacuum = off" -c "SELECT pg_reload_conf()" >/dev/null

echo "building (release)..." >&2
cargo build --release -q -p flowgate-cli -p flowgate-bench --bins
bin=target/release
fg=$bin/flowgate

clk=$(getconf CLK_TCK)
results=$tmp/results.tsv
: >"$results"

# CPU ticks of redis-server (all its threads); PostgreSQL's: pg_ticks and
# pg_settle, in dev/servers.sh.
redis_ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$redis_pid/stat"; }

wanted() { [ -z "$only" ] || [[ " $only " == *" $1 "* ]]; }

# run NAME STORE STREAM -- COMMAND…: runs one contender under /usr/bin/time,
# with the servers' CPU counted around it, and records a line of results.
# STORE: where it writes, to count the rows stored ("table:NAME",
# "sqlite:FILE" or -); STREAM: the stream it reads, to count the messages
# left pending in group "bench" (or -).
run() {
  local name=$1 store=$2 stream=$3
  shift 4
  psql -q "$pg" -c CHECKPOINT
  pg_settle
  local r0 p0 r1 p1
  r0=$(redis_ticks)
  p0=$(pg_ticks)
  printf '\n== %s\n$ %s\n' "$name" "$*" >&2
  /usr/bin/time -f '%e %U %S %M' -o "$tmp/time.$name" "$@" >"$tmp/out.$name" 2>"$tmp/err.$name" || {
    cat "$tmp/out.$name" "$tmp/err.$name" >&2
    echo "dev/bench-e2e.sh: $name failed" >&2
    exit 1
  }
  pg_settle
  r1=$(redis_ticks)
  p1=$(pg_ticks)
  sed 's/^/  /' "$tmp/out.$name" >&2
  local messages secs
  if grep -q '^RESULT ' "$tmp/out.$name"; then
    messages=$(sed -n 's/^RESULT messages=\([0-9]*\) .*/\1/p' "$tmp/out.$name")
    secs=$(sed -n 's/^RESULT .*secs=\([0-9.]*\) .*/\1/p' "$tmp/out.$name")
  elif grep -q '^naive: ' "$tmp/out.$name"; then
    messages=$(awk '/^naive: / {print $2}' "$tmp/out.$name")
    secs=$(awk '/^naive: / {print $5}' "$tmp/out.$name")
  else
    messages=$(awk '$1 == "acked" {print $2}' "$tmp/out.$name")
    secs=$(awk '$1 == "elapsed" {print $2}' "$tmp/out.$name")
  fi
  local stored=- pending=-
  case "$store" in
    table:*) stored=$(psql -tA "$pg" -c "SELECT count(*) FROM ${store#table:}") ;;
    sqlite:*) stored=$(sqlite3 "${store#sqlite:}" "SELECT count(*) FROM flowgate_events") ;;
  esac
  [ "$stream" = - ] || pending=$(redis-cli -u "$redis" XPENDING "$stream" bench | head -n 1)
  local wall user sys rss
  read -r wall user sys rss <"$tmp/time.$name"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$messages" "$secs" \
    "$wall" "$user" "$sys" "$rss" "$((r1 - r0))" "$((p1 - p0))" "$stored" "$pending" >>"$results"
}

# run_redis NAME TABLE -- COMMAND…: runs a Redis contender on a fresh copy
# (Redis COPY) of the published stream, "@STREAM@" in COMMAND standing for
# its key; then drops its table (- for none) and its stream.
run_redis() {
  local name=$1 table=$2
  shift 3
  wanted "$name" || return 0
  local stream=bench:$name
  redis-cli -u "$redis" DEL "$stream" >/dev/null
  [ "$(redis-cli -u "$redis" COPY bench:src "$stream")" = 1 ] || { echo "COPY bench:src failed" >&2; exit 1; }
  local store=-
  [ "$table" = - ] || store=table:$table
  run "$name" "$store" "$stream" -- "${@//@STREAM@/$stream}"
  [ "$table" = - ] || psql -q "$pg" -c "DROP TABLE IF EXISTS $table"
  redis-cli -u "$redis" DEL "$stream" >/dev/null
}

# run_sql NAME TABLE -- COMMAND…: a PostgreSQL contender without Redis; its
# table is dropped after.
run_sql() {
  local name=$1 table=$2
  shift 3
  wanted "$name" || return 0
  run "$name" "table:$table" - -- "$@"
  psql -q "$pg" -c "DROP TABLE IF EXISTS $table"
}

# run_sqlite NAME FILE -- COMMAND…: a SQLite contender; its file is removed
# after.
run_sqlite() {
  local name=$1 file=$2
  shift 3
  wanted "$name" || return 0
  run "$name" "sqlite:$file" - -- "$@"
  rm -f "$file" "$file-wal" "$file-shm"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load average before: $load_before" >&2
echo "publishing $n messages to bench:src..." >&2
$fg publish --redis "$redis" --stream bench:src --messages "$n" >&2

run_redis redis - -- $bin/e2e-redis-alone --redis "$redis" --stream @STREAM@ --group bench \
  --messages "$n"
run_sql postgres bench_pg_alone -- $bin/e2e-postgres-alone --postgres "$pg" \
  --table bench_pg_alone --messages "$n"
run_redis peer bench_peer -- $bin/e2e-batch-loop --redis "$redis" --postgres "$pg" \
  --stream @STREAM@ --group bench --table bench_peer --messages "$n"
run_redis flowgate bench_flowgate -- $fg ingest --no-progress --redis "$redis" --postgres "$pg" \
  --stream @STREAM@ --group bench --consumer c1 --table bench_flowgate \
  --exit-when-idle-ms 1000 --max-messages "$n" ${FLOWGATE_BENCH_FLOWGATE_ARGS:-}
run_redis naive bench_naive -- $fg naive --redis "$redis" --postgres "$pg" --stream @STREAM@ \
  --group bench --table bench_naive --messages "$naive_n" --exit-when-idle-ms 1000
if [ "${FLOWGATE_BENCH_COPY:-0}" = 1 ]; then
  run_redis peer-copy bench_peer_copy -- $bin/e2e-batch-loop --copy --redis "$redis" \
    --postgres "$pg" --stream @STREAM@ --group bench --table bench_peer_copy --messages "$n"
  run_sql postgres-copy bench_pg_copy -- $bin/e2e-postgres-alone --copy --postgres "$pg" \
    --table bench_pg_copy --messages "$n"
  run_redis peer-copy-direct bench_peer_copyd -- $bin/e2e-batch-loop --copy-direct \
    --redis "$redis" --postgres "$pg" --stream @STREAM@ --group bench --table bench_peer_copyd \
    --messages "$n"
  run_sql postgres-copy-direct bench_pg_copyd -- $bin/e2e-postgres-alone --copy-direct \
    --postgres "$pg" --table bench_pg_copyd --messages "$n"
fi
run_sqlite sqlite-flowgate "$tmp/flowgate.sqlite" -- $fg ingest --no-progress \
  --messages "$n" --redeliver-every 0 --sqlite "$tmp/flowgate.sqlite" ${FLOWGATE_BENCH_SQLITE_ARGS:-}
run_sqlite sqlite-peer "$tmp/peer.sqlite" -- $bin/e2e-rusqlite-loop \
  --sqlite "$tmp/peer.sqlite" --messages "$n"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# The table and the ratios.
awk -F'\t' -v clk="$clk" -v n="$n" -v naive_n="$naive_n" \
  -v load_before="$load_before" -v load_after="$load_after" '
  {
    name[NR] = $1; msgs[NR] = $2; secs[NR] = $3; wall[NR] = $4
    rate[NR] = $3 > 0 ? $2 / $3 : 0
    per = $2 > 0 ? 1e6 / $2 : 0
    cpu[NR] = ($5 + $6) * per
    rss[NR] = $7 / 1024
    rcpu[NR] = $8 / clk * per
    pcpu[NR] = $9 / clk * per
    tot[NR] = cpu[NR] + rcpu[NR] + pcpu[NR]
    stored[NR] = $10; pending[NR] = $11
    idx[$1] = NR
  }
  function ratio(a, b) { return (b > 0) ? sprintf("%.2fx", a / b) : "-" }
  END {
    printf "\nN = %d messages (naive loop: %d), load average before: %s, after: %s\n\n", n, naive_n, load_before, load_after
    printf "| contender | messages | work s | msg/s | CPU s/1M: process | redis-server | PostgreSQL | total | peak RSS MB | wall s | stored | pending |\n"
    printf "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    for (i = 1; i <= NR; i++)
      printf "| %s | %d | %.2f | %.0f | %.2f | %.2f | %.2f | %.2f | %.1f | %.1f | %s | %s |\n", name[i], msgs[i], secs[i], rate[i], cpu[i], rcpu[i], pcpu[i], tot[i], rss[i], wall[i], stored[i], pending[i]
    printf "\n"
    f = idx["flowgate"]; p = idx["peer"]; v = idx["naive"]; r = idx["redis"]; g = idx["postgres"]
    if (f && p) {
      printf "flowgate / batch loop:   msg/s %s, CPU per message: process %s, total %s, peak RSS %s\n", ratio(rate[f], rate[p]), ratio(cpu[f], cpu[p]), ratio(tot[f], tot[p]), ratio(rss[f], rss[p])
    }
    if (f && v) printf "flowgate / naive loop:   msg/s %s\n", ratio(rate[f], rate[v])
    if (f && r && g) {
      c = rate[r] < rate[g] ? r : g
      printf "flowgate / min(ceilings): msg/s %s (the lower ceiling: %s, %.0f msg/s)\n", ratio(rate[f], rate[c]), name[c], rate[c]
    }
    sf = idx["sqlite-flowgate"]; sp = idx["sqlite-peer"]
    if (sf && sp) printf "SQLite flowgate / rusqlite loop: msg/s %s, CPU per message (process) %s, peak RSS %s\n", ratio(rate[sf], rate[sp]), ratio(cpu[sf], cpu[sp]), ratio(rss[sf], rss[sp])
    pc = idx["peer-copy"]; gc = idx["postgres-copy"]
    if (pc && p) printf "batch loop COPY / UNNEST: msg/s %s, CPU per message: process %s, PostgreSQL %s\n", ratio(rate[pc], rate[p]), ratio(cpu[pc], cpu[p]), ratio(pcpu[pc], pcpu[p])
    if (gc && g) printf "PostgreSQL alone COPY / UNNEST: msg/s %s, CPU per message: process %s, PostgreSQL %s\n", ratio(rate[gc], rate[g]), ratio(cpu[gc], cpu[g]), ratio(pcpu[gc], pcpu[g])
    pd = idx["peer-copy-direct"]; gd = idx["postgres-copy-direct"]
    if (pd && p) printf "batch loop COPY direct / UNNEST: msg/s %s, CPU per message: process %s, PostgreSQL %s\n", ratio(rate[pd], rate[p]), ratio(cpu[pd], cpu[p]), ratio(pcpu[pd], pcpu[p])
    if (gd && g) printf "PostgreSQL alone COPY direct / UNNEST: msg/s %s, CPU per message: process %s, PostgreSQL %s\n", ratio(rate[gd], rate[g]), ratio(cpu[gd], cpu[g]), ratio(pcpu[gd], pcpu[g])
  }' "$results"
