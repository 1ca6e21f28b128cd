#!/usr/bin/env bash
# The Redis Cluster figures of BENCHMARKS.md: a stream sharded over a 3-node
# Redis Cluster (dev/servers.sh start_redis_cluster; no replicas) into a
# durable PostgreSQL (fsync on), side by side in one run on the same messages:
#
#   flowgate ingest      flowgate ingest --redis NODE --stream bench --shards S:
#                        one process reading the S shard keys bench:{0..S-1},
#                        each from the node that serves its slot
#   batch loops (peer)   what a user writes without flowgate: one
#                        e2e-batch-loop per shard (XREADGROUP COUNT 1000 -> 2
#                        writers, one UNNEST insert per batch, then one XACK),
#                        each pointed at its shard's node, all S at once
#   Redis alone          one e2e-redis-alone per shard, all at once
#   PostgreSQL alone     e2e-postgres-alone (UNNEST, 1000 rows per
#                        transaction, 2 connections)
#
# `flowgate publish --shards S` spreads N messages over the shards once;
# every contender reads them all as a fresh consumer group (groups start at
# 0). Per contender: messages/s from the programs' own timing (for the
# per-shard processes: all messages over the longest work time); CPU seconds
# per million messages of the processes (user+sys of all of them,
# /usr/bin/time), of the three redis-server nodes and of PostgreSQL; peak
# RSS (for the per-shard peers: the largest single process — they add up).
# Rows stored and messages left pending are checked.
#
#   dev/bench-cluster.sh [N]       N messages (default 1000000)
#   dev/bench-cluster.sh --quick   N = 100000
#   SHARDS=S dev/bench-cluster.sh  S shards (default 4)
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
  --quick) n=100000 ;;
  "") n=1000000 ;;
  *[!0-9]* | 0) echo "usage: dev/bench-cluster.sh [N | --quick]" >&2; exit 2 ;;
  *) n=$1 ;;
esac
shards=${SHARDS:-4}
[ -x /usr/bin/time ] || { echo "dev/bench-cluster.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

export FLOWGATE_PG_DURABLE=1
# shellcheck source=dev/servers.sh
source dev/servers.sh
start_redis_cluster
start_postgres
url=$FLOWGATE_TEST_REDIS_CLUSTER_URL
pg=$FLOWGATE_TEST_POSTGRES_URL
psql -q "$pg" -c "ALTER SYSTEM SET autovacuum = off" -c "SELECT pg_reload_conf()" >/dev/null

echo "building (release)..." >&2
cargo build --release -q -p flowgate-cli -p flowgate-bench --bins
bin=target/release
fg=$bin/flowgate
clk=$(getconf CLK_TCK)
results=$tmp/results.tsv
: >"$results"

# The node serving shard $1's key (redis://host:port/).
node_of() {
  local slot
  slot=$(redis-cli -u "$url" CLUSTER KEYSLOT "bench:{$1}")
  redis-cli -u "$url" CLUSTER NODES | awk -v slot="$slot" '
    $3 ~ /master/ {
      for (i = 9; i <= NF; i++) {
        split($i, r, "-"); lo = r[1]; hi = (r[2] == "" ? r[1] : r[2])
        if (slot >= lo && slot <= hi) { split($2, a, "@"); print "redis://" a[1] "/"; exit }
      }
    }'
}
nodes=()
for ((i = 0; i < shards; i++)); do nodes[i]=$(node_of "$i"); done

# CPU ticks of the three cluster nodes.
cluster_ticks() {
  local total=0 pid t
  for pid in $cluster_pids; do
    t=$(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$pid/stat")
    total=$((total + t))
  done
  echo "$total"
}

# Messages left pending in group $1 over all shards.
pending_of() {
  local total=0 i p
  for ((i = 0; i < shards; i++)); do
    p=$(redis-cli -u "${nodes[i]}" XPENDING "bench:{$i}" "$1" | head -n 1)
    total=$((total + ${p:-0}))
  done
  echo "$total"
}

# per_shard COMMAND…: runs COMMAND once per shard at once ("@NODE@" and
# "@SHARD@" in it standing for the shard's node and index), then prints one
# RESULT line: all messages over the longest work time.
per_shard() {
  local i pids=() out=()
  for ((i = 0; i < shards; i++)); do
    local args=("${@//@NODE@/${nodes[i]}}")
    args=("${args[@]//@SHARD@/$i}")
    "${args[@]}" >"$tmp/shard.$i" 2>&1 &
    pids+=($!)
  done
  local failed=0
  for i in "${!pids[@]}"; do wait "${pids[i]}" || failed=1; done
  [ "$failed" = 0 ] || { cat "$tmp"/shard.* >&2; return 1; }
  cat "$tmp"/shard.* | awk '
    /^RESULT / {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      m += v["messages"]; if (v["secs"] > s) s = v["secs"]
    }
    END { printf "RESULT messages=%d secs=%.3f rate=%.0f\n", m, s, (s > 0 ? m / s : 0) }'
}

# run NAME GROUP TABLES -- COMMAND…: one contender under /usr/bin/time, the
# servers' CPU counted around it. TABLES: a table name, a LIKE pattern for
# the per-shard tables, or -.
run() {
  local name=$1 group=$2 tables=$3
  shift 4
  psql -q "$pg" -c CHECKPOINT
  pg_settle
  local r0 p0 r1 p1
  r0=$(cluster_ticks)
  p0=$(pg_ticks)
  printf '\n== %s\n$ %s\n' "$name" "$*" >&2
  /usr/bin/time -f '%e %U %S %M' -o "$tmp/time.$name" "$@" >"$tmp/out.$name" 2>"$tmp/err.$name" || {
    cat "$tmp/out.$name" "$tmp/err.$name" >&2
    echo "dev/bench-cluster.sh: $name failed" >&2
    exit 1
  }
  pg_settle
  r1=$(cluster_ticks)
  p1=$(pg_ticks)
  sed 's/^/  /' "$tmp/out.$name" >&2
  local messages secs
  if grep -q '^RESULT ' "$tmp/out.$name"; then
    messages=$(sed -n 's/^RESULT messages=\([0-9]*\) .*/\1/p' "$tmp/out.$name" | tail -n 1)
    secs=$(sed -n 's/^RESULT .*secs=\([0-9.]*\) .*/\1/p' "$tmp/out.$name" | tail -n 1)
  else
    messages=$(awk '$1 == "acked" {print $2}' "$tmp/out.$name")
    secs=$(awk '$1 == "elapsed" {print $2}' "$tmp/out.$name")
  fi
  local stored=- pending=-
  if [ "$tables" != - ]; then
    stored=0
    for t in $(psql -tA "$pg" -c "SELECT tablename FROM pg_tables WHERE tablename LIKE '$tables'"); do
      stored=$((stored + $(psql -tA "$pg" -c "SELECT count(*) FROM $t")))
      psql -q "$pg" -c "DROP TABLE $t"
    done
  fi
  [ "$group" = - ] || pending=$(pending_of "$group")
  local wall user sys rss
  read -r wall user sys rss <"$tmp/time.$name"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$messages" "$secs" \
    "$wall" "$user" "$sys" "$rss" "$((r1 - r0))" "$((p1 - p0))" "$stored" "$pending" >>"$results"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load average before: $load_before; shards on: ${nodes[*]}" >&2
echo "publishing $n messages over $shards shards..." >&2
$fg publish --redis "$url" --stream bench --shards "$shards" --messages "$n" >&2

run redis g_redis - -- bash -c "$(declare -f per_shard); $(declare -p nodes shards tmp); per_shard $bin/e2e-redis-alone --redis @NODE@ --stream 'bench:{@SHARD@}' --group g_redis"
run postgres - bench_cl_pg -- $bin/e2e-postgres-alone --postgres "$pg" --table bench_cl_pg --messages "$n"
run peer g_peer 'bench_cl_peer_%' -- bash -c "$(declare -f per_shard); $(declare -p nodes shards tmp); per_shard $bin/e2e-batch-loop --redis @NODE@ --postgres '$pg' --stream 'bench:{@SHARD@}' --group g_peer --table bench_cl_peer_@SHARD@"
run flowgate g_flowgate bench_cl_flowgate -- $fg ingest --no-progress --redis "$url" --postgres "$pg" \
  --stream bench --shards "$shards" --group g_flowgate --consumer c1 --table bench_cl_flowgate \
  --exit-when-idle-ms 1000 --max-messages "$n"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

awk -F'\t' -v clk="$clk" -v n="$n" -v shards="$shards" \
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
    printf "\nN = %d messages over %d shards on 3 nodes, load average before: %s, after: %s\n\n", n, shards, load_before, load_after
    printf "| contender | messages | work s | msg/s | CPU s/1M: processes | redis nodes | PostgreSQL | total | peak RSS MB | wall s | stored | pending |\n"
    printf "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    for (i = 1; i <= NR; i++)
      printf "| %s | %d | %.2f | %.0f | %.2f | %.2f | %.2f | %.2f | %.1f | %.1f | %s | %s |\n", name[i], msgs[i], secs[i], rate[i], cpu[i], rcpu[i], pcpu[i], tot[i], rss[i], wall[i], stored[i], pending[i]
    printf "\n"
    f = idx["flowgate"]; p = idx["peer"]; r = idx["redis"]; g = idx["postgres"]
    if (f && p) printf "flowgate / batch loops:  msg/s %s, CPU per message: processes %s, total %s\n", ratio(rate[f], rate[p]), ratio(cpu[f], cpu[p]), ratio(tot[f], tot[p])
    if (f && r && g) {
      c = rate[r] < rate[g] ? r : g
      printf "flowgate / min(ceilings): msg/s %s (the lower ceiling: %s, %.0f msg/s)\n", ratio(rate[f], rate[c]), name[c], rate[c]
    }
  }' "$results"
