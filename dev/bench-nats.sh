#!/usr/bin/env bash
# The NATS JetStream figures of BENCHMARKS.md, side by side in one run on the
# same messages and servers (a nats-server with JetStream, file storage, and a
# durable PostgreSQL, fsync on, started here on loopback):
#
#   JetStream -> PostgreSQL, each message acked only after its row is durable
#     flowgate ingest      flowgate ingest --nats … --postgres … --max-messages N
#     batch loop (peer)    e2e-nats-loop: pull 1000 -> 2 writers, each one UNNEST
#                          insert per batch, then +ACK of each and one flush
#     NATS alone           e2e-nats-loop without --postgres: pull 1000 + acks
#     PostgreSQL alone     e2e-postgres-alone: UNNEST, 1000 rows per transaction,
#                          2 connections, rows generated in memory
#
# The stream is published once (`flowgate publish --nats`); every NATS
# contender reads all of it through a durable consumer of its own; every SQL
# contender writes a fresh table of the demo layout.
#
# Per contender: messages/s from the program's own timing (first read to last
# ack or commit); CPU seconds per million messages of the process
# (/usr/bin/time), of nats-server and of PostgreSQL (from /proc/<pid>/stat);
# peak RSS of the process; then the ratios and the load average.
#
#   dev/bench-nats.sh [N]          N messages (default 1000000)
#   dev/bench-nats.sh --quick      N = 100000
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
  --quick) n=100000 ;;
  "") n=1000000 ;;
  *[!0-9]* | 0) echo "usage: dev/bench-nats.sh [N | --quick]" >&2; exit 2 ;;
  *) n=$1 ;;
esac
[ -x /usr/bin/time ] || { echo "dev/bench-nats.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

export FLOWGATE_PG_DURABLE=1
# shellcheck source=dev/servers.sh
source dev/servers.sh
start_postgres
start_nats
pg=$FLOWGATE_TEST_POSTGRES_URL
psql -q "$pg" -c "ALTER SYSTEM SET autovacuum = off" -c "SELECT pg_reload_conf()" >/dev/null

nats_port=$(free_port 14222)
mkdir -p "$tmp/private/bench-nats"
"$FLOWGATE_TEST_NATS_SERVER" -js -a 127.0.0.1 -p "$nats_port" -sd "$tmp/private/bench-nats/store" \
  -P "$tmp/private/bench-nats/nats.pid" 2>"$tmp/nats.log" &
nats_pid=$!
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && break; sleep 0.1; done
nats=nats://127.0.0.1:$nats_port

echo "building (release)..." >&2
cargo build --release -q -p flowgate-cli -p flowgate-bench --bins
bin=target/release
fg=$bin/flowgate
clk=$(getconf CLK_TCK)
results=$tmp/results.tsv
: >"$results"

# CPU ticks of nats-server; PostgreSQL's: pg_ticks and pg_settle, in
# dev/servers.sh.
nats_ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$nats_pid/stat"; }

# run NAME TABLE -- COMMAND…: one contender under /usr/bin/time; TABLE (or -)
# is counted and dropped after.
run() {
  local name=$1 table=$2
  shift 3
  psql -q "$pg" -c CHECKPOINT
  pg_settle
  local n0 p0 n1 p1
  n0=$(nats_ticks)
  p0=$(pg_ticks)
  printf '\n== %s\n$ %s\n' "$name" "$*" >&2
  /usr/bin/time -f '%e %U %S %M' -o "$tmp/time.$name" "$@" >"$tmp/out.$name" 2>"$tmp/err.$name" || {
    cat "$tmp/out.$name" "$tmp/err.$name" >&2
    echo "dev/bench-nats.sh: $name failed" >&2
    exit 1
  }
  pg_settle
  n1=$(nats_ticks)
  p1=$(pg_ticks)
  sed 's/^/  /' "$tmp/out.$name" >&2
  local messages secs
  if grep -q '^RESULT ' "$tmp/out.$name"; then
    messages=$(sed -n 's/^RESULT messages=\([0-9]*\) .*/\1/p' "$tmp/out.$name")
    secs=$(sed -n 's/^RESULT .*secs=\([0-9.]*\) .*/\1/p' "$tmp/out.$name")
  else
    messages=$(awk '$1 == "acked" {print $2}' "$tmp/out.$name")
    secs=$(awk '$1 == "elapsed" {print $2}' "$tmp/out.$name")
  fi
  local stored=-
  [ "$table" = - ] || stored=$(psql -tA "$pg" -c "SELECT count(*) FROM $table")
  [ "$table" = - ] || psql -q "$pg" -c "DROP TABLE IF EXISTS $table"
  local wall user sys rss
  read -r wall user sys rss <"$tmp/time.$name"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$messages" "$secs" \
    "$wall" "$user" "$sys" "$rss" "$((n1 - n0))" "$((p1 - p0))" "$stored" >>"$results"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load average before: $load_before" >&2
echo "publishing $n messages to BENCH..." >&2
$fg publish --nats "$nats" --stream BENCH --subject bench.in --messages "$n" >&2

run nats - -- $bin/e2e-nats-loop --nats "$nats" --stream BENCH --consumer alone --messages "$n"
run postgres bench_pg_alone -- $bin/e2e-postgres-alone --postgres "$pg" --table bench_pg_alone \
  --messages "$n"
run peer bench_nats_peer -- $bin/e2e-nats-loop --nats "$nats" --postgres "$pg" --stream BENCH \
  --consumer peer --table bench_nats_peer --messages "$n"
run flowgate bench_nats_flowgate -- $fg ingest --no-progress --nats "$nats" --postgres "$pg" \
  --stream BENCH --group flowgate --table bench_nats_flowgate --exit-when-idle-ms 1000 \
  --max-messages "$n" ${FLOWGATE_BENCH_FLOWGATE_ARGS:-}
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
kill "$nats_pid" 2>/dev/null || true

awk -F'\t' -v clk="$clk" -v n="$n" -v load_before="$load_before" -v load_after="$load_after" '
  {
    name[NR] = $1; msgs[NR] = $2; secs[NR] = $3; wall[NR] = $4
    rate[NR] = $3 > 0 ? $2 / $3 : 0
    per = $2 > 0 ? 1e6 / $2 : 0
    cpu[NR] = ($5 + $6) * per
    rss[NR] = $7 / 1024
    ncpu[NR] = $8 / clk * per
    pcpu[NR] = $9 / clk * per
    tot[NR] = cpu[NR] + ncpu[NR] + pcpu[NR]
    stored[NR] = $10
    idx[$1] = NR
  }
  function ratio(a, b) { return (b > 0) ? sprintf("%.2fx", a / b) : "-" }
  END {
    printf "\nN = %d messages, load average before: %s, after: %s\n\n", n, load_before, load_after
    printf "| contender | messages | work s | msg/s | CPU s/1M: process | nats-server | PostgreSQL | total | peak RSS MB | wall s | stored |\n"
    printf "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    for (i = 1; i <= NR; i++)
      printf "| %s | %d | %.2f | %.0f | %.2f | %.2f | %.2f | %.2f | %.1f | %.1f | %s |\n", name[i], msgs[i], secs[i], rate[i], cpu[i], ncpu[i], pcpu[i], tot[i], rss[i], wall[i], stored[i]
    printf "\n"
    f = idx["flowgate"]; p = idx["peer"]; r = idx["nats"]; g = idx["postgres"]
    if (f && p) printf "flowgate / batch loop:   msg/s %s, CPU per message: process %s, total %s, peak RSS %s\n", ratio(rate[f], rate[p]), ratio(cpu[f], cpu[p]), ratio(tot[f], tot[p]), ratio(rss[f], rss[p])
    if (f && r && g) {
      c = rate[r] < rate[g] ? r : g
      printf "flowgate / min(ceilings): msg/s %s (the lower ceiling: %s, %.0f msg/s)\n", ratio(rate[f], rate[c]), name[c], rate[c]
    }
  }' "$results"
