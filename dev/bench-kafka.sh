#!/usr/bin/env bash
# The Kafka figures of BENCHMARKS.md, side by side in one run on the same
# messages and servers (librdkafka's mock cluster of 3 brokers — there is no
# Kafka broker package — and a durable PostgreSQL, fsync on, both started
# here on loopback):
#
#   Kafka -> PostgreSQL, offsets committed only after the rows are durable
#     flowgate ingest      flowgate ingest --kafka … --postgres … --max-messages N
#     batch loop (peer)    e2e-kafka-loop: poll 1000 -> 2 writers, each one UNNEST
#                          insert per batch, then in-order offset commits
#     Kafka alone          e2e-kafka-alone: poll 1000 + commit, no sink
#     PostgreSQL alone     e2e-postgres-alone: UNNEST, 1000 rows per transaction,
#                          2 connections, rows generated in memory
#
# The topic (4 partitions) is published once (`flowgate publish --kafka`);
# every Kafka contender reads all of it in a consumer group of its own;
# every SQL contender writes a fresh table of the demo layout.
#
# Per contender: messages/s from the program's own timing (its start, group
# join included, to the last commit or ack); CPU seconds per million
# messages of the process (/usr/bin/time), of the mock cluster (kafka-mock,
# from /proc/<pid>/stat) and of PostgreSQL; peak RSS of the process; then
# the ratios and the load average.
#
#   dev/bench-kafka.sh                 N = $MESSAGES (default 1000000)
#   MESSAGES=100000 dev/bench-kafka.sh
#   PARTITIONS=P                       partitions of the topic (default: 4, or
#                                      one per 40,000 messages; see below)
#   FLOWGATE_BENCH_FLOWGATE_ARGS=…     more arguments of flowgate ingest
set -euo pipefail
cd "$(dirname "$0")/.."

n=${MESSAGES:-1000000}
case "$n" in *[!0-9]* | "") echo "usage: [MESSAGES=N] [PARTITIONS=P] dev/bench-kafka.sh" >&2; exit 2 ;; esac
# The mock cluster keeps at most 5 MiB per partition (older messages are
# deleted, as by retention): about 45,000 of these. So the default is at
# least one partition per 40,000 messages (25 for a million), and 4.
partitions=${PARTITIONS:-$(( (n + 39999) / 40000 > 4 ? (n + 39999) / 40000 : 4 ))}
# Every Kafka contender stops after N messages; the idle exit only ends a
# run that stalls. It must outlast librdkafka's own pauses (all contenders
# keep its consumer defaults): a fetch is postponed by fetch.queue.backoff.ms,
# 1000 ms, whenever the local queue is full.
idle_ms=5000
case "$n$partitions" in
  *[!0-9]*) echo "usage: [MESSAGES=N] [PARTITIONS=P] dev/bench-kafka.sh" >&2; exit 2 ;;
esac
[ "$n" -gt 0 ] || { echo "dev/bench-kafka.sh: MESSAGES must be positive" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "dev/bench-kafka.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

echo "building (release)..." >&2
cargo build --release -q -p flowgate-cli -p flowgate-bench --bins
bin=${CARGO_TARGET_DIR:-target}/release
fg=$bin/flowgate

export FLOWGATE_PG_DURABLE=1
# shellcheck source=dev/servers.sh
source dev/servers.sh
start_postgres
pg=$FLOWGATE_TEST_POSTGRES_URL
psql -q "$pg" -c "ALTER SYSTEM SET autovacuum = off" -c "SELECT pg_reload_conf()" >/dev/null

# The mock cluster runs until its stdin (this fifo, held open on fd 7)
# closes: when this script exits, however it exits.
mkfifo "$tmp/kafka-mock.in"
$bin/kafka-mock --topic BENCH --partitions "$partitions" <"$tmp/kafka-mock.in" \
  >"$tmp/kafka-mock.out" 2>"$tmp/kafka-mock.log" &
mock_pid=$!
exec 7>"$tmp/kafka-mock.in"
kafka=""
for _ in $(seq 1 100); do
  kafka=$(head -n 1 "$tmp/kafka-mock.out" 2>/dev/null || true)
  [ -n "$kafka" ] && break
  kill -0 "$mock_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$kafka" ] || { cat "$tmp/kafka-mock.log" >&2; echo "dev/bench-kafka.sh: kafka-mock did not start" >&2; exit 1; }
echo "kafka mock cluster: $kafka" >&2

clk=$(getconf CLK_TCK)
results=$tmp/results.tsv
: >"$results"

# CPU ticks of the mock cluster (all its brokers are threads of kafka-mock);
# PostgreSQL's: pg_ticks and pg_settle, in dev/servers.sh.
mock_ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$mock_pid/stat"; }

# run NAME TABLE -- COMMAND…: one contender under /usr/bin/time; TABLE (or -)
# is counted and dropped after.
run() {
  local name=$1 table=$2
  shift 3
  psql -q "$pg" -c CHECKPOINT
  pg_settle
  local k0 p0 k1 p1
  k0=$(mock_ticks)
  p0=$(pg_ticks)
  printf '\n== %s\n$ %s\n' "$name" "$*" >&2
  /usr/bin/time -f '%e %U %S %M' -o "$tmp/time.$name" "$@" >"$tmp/out.$name" 2>"$tmp/err.$name" || {
    cat "$tmp/out.$name" "$tmp/err.$name" >&2
    echo "dev/bench-kafka.sh: $name failed" >&2
    exit 1
  }
  pg_settle
  k1=$(mock_ticks)
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
  if [ "$messages" != "$n" ] || { [ "$stored" != - ] && [ "$stored" != "$n" ]; }; then
    echo "dev/bench-kafka.sh: $name: $messages messages done, $stored rows stored, expected $n (too few partitions? the mock cluster keeps 5 MiB of each)" >&2
    exit 1
  fi
  local wall user sys rss
  read -r wall user sys rss <"$tmp/time.$name"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$messages" "$secs" \
    "$wall" "$user" "$sys" "$rss" "$((k1 - k0))" "$((p1 - p0))" "$stored" >>"$results"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load average before: $load_before" >&2
echo "publishing $n messages to BENCH ($partitions partitions)..." >&2
$fg publish --kafka "$kafka" --topic BENCH --messages "$n" >&2

run kafka - -- $bin/e2e-kafka-alone --kafka "$kafka" --topic BENCH --group alone \
  --messages "$n" --exit-when-idle-ms "$idle_ms"
run postgres bench_pg_alone -- $bin/e2e-postgres-alone --postgres "$pg" --table bench_pg_alone \
  --messages "$n"
run peer bench_kafka_peer -- $bin/e2e-kafka-loop --kafka "$kafka" --postgres "$pg" --topic BENCH \
  --group peer --table bench_kafka_peer --messages "$n" --exit-when-idle-ms "$idle_ms"
run flowgate bench_kafka_flowgate -- $fg ingest --no-progress --kafka "$kafka" --postgres "$pg" \
  --topic BENCH --group flowgate --table bench_kafka_flowgate --exit-when-idle-ms "$idle_ms" \
  --max-messages "$n" ${FLOWGATE_BENCH_FLOWGATE_ARGS:-}
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
exec 7>&-

awk -F'\t' -v clk="$clk" -v n="$n" -v load_before="$load_before" -v load_after="$load_after" '
  {
    name[NR] = $1; msgs[NR] = $2; secs[NR] = $3; wall[NR] = $4
    rate[NR] = $3 > 0 ? $2 / $3 : 0
    per = $2 > 0 ? 1e6 / $2 : 0
    cpu[NR] = ($5 + $6) * per
    rss[NR] = $7 / 1024
    kcpu[NR] = $8 / clk * per
    pcpu[NR] = $9 / clk * per
    tot[NR] = cpu[NR] + kcpu[NR] + pcpu[NR]
    stored[NR] = $10
    idx[$1] = NR
  }
  function ratio(a, b) { return (b > 0) ? sprintf("%.2fx", a / b) : "-" }
  END {
    printf "\nN = %d messages, load average before: %s, after: %s\n\n", n, load_before, load_after
    printf "| contender | messages | work s | msg/s | CPU s/1M: process | kafka-mock | PostgreSQL | total | peak RSS MB | wall s | stored |\n"
    printf "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    for (i = 1; i <= NR; i++)
      printf "| %s | %d | %.2f | %.0f | %.2f | %.2f | %.2f | %.2f | %.1f | %.1f | %s |\n", name[i], msgs[i], secs[i], rate[i], cpu[i], kcpu[i], pcpu[i], tot[i], rss[i], wall[i], stored[i]
    printf "\n"
    f = idx["flowgate"]; p = idx["peer"]; r = idx["kafka"]; g = idx["postgres"]
    if (f && p) printf "flowgate / batch loop:   msg/s %s, CPU per message: process %s, total %s, peak RSS %s\n", ratio(rate[f], rate[p]), ratio(cpu[f], cpu[p]), ratio(tot[f], tot[p]), ratio(rss[f], rss[p])
    if (f && r && g) {
      c = rate[r] < rate[g] ? r : g
      printf "flowgate / min(ceilings): msg/s %s (the lower ceiling: %s, %.0f msg/s)\n", ratio(rate[f], rate[c]), name[c], rate[c]
    }
  }' "$results"
