#!/usr/bin/env bash
# Where `flowgate ingest` spends its CPU, beside the hand-written peers of
# dev/bench-e2e.sh on the same messages, for both paths:
#
#   redis-pg   Redis stream -> durable PostgreSQL (flowgate ingest, e2e-batch-loop)
#   sqlite     embedded generator -> SQLite        (flowgate ingest, e2e-rusqlite-loop)
#
# Two profilers, both on a release build with line tables
# (CARGO_PROFILE_RELEASE_DEBUG=line-tables-only, in target/profile so the
# benchmark's target/release stays as it is):
#
#   callgrind  instructions, deterministic (valgrind --tool=callgrind, on
#              FLOWGATE_PROFILE_N messages, default 50000: ~50x slower than
#              native). Hardware counters are not available on this VM
#              (`perf stat -e instructions` says <not supported>), so this is
#              the instruction count. Attributed by the source file of each
#              (inlined) function: tokio, flowgate::pipeline, flowgate::batch, …
#   perf       CPU time, sampled (perf record -e cpu-clock, the software
#              timer) at native speed on FLOWGATE_PROFILE_PERF_N messages
#              (default 300000): includes the kernel (syscalls, futex wake-ups,
#              scheduling), which callgrind does not see.
#
#   dev/profile-ingest.sh [callgrind|perf|all]    (default all)
#
# The functions whose inclusive cost is listed: dev/profile-ingest.functions
# (none in a recursion cycle: callgrind overcounts those, e.g. the two nested
# par_map_unordered stages, whose poll functions have one name). Also listed:
# the callers of malloc, memcpy and SipHash, by number of calls per message.
#
# Output in target/profile/ingest-profile/ (FLOWGATE_PROFILE_OUT): the raw
# profiles, callgrind_annotate / perf report listings, and summary.txt:
# instructions per message of each program and the share of each category.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-all}
n=${FLOWGATE_PROFILE_N:-50000}
perf_n=${FLOWGATE_PROFILE_PERF_N:-300000}
out=${FLOWGATE_PROFILE_OUT:-target/profile/ingest-profile}
mkdir -p "$out"
out=$(cd "$out" && pwd)

echo "building (release with line tables, target/profile)..." >&2
CARGO_PROFILE_RELEASE_DEBUG=line-tables-only CARGO_TARGET_DIR=target/profile \
  cargo build --release -q -p flowgate-cli -p flowgate-bench --bins
bin=$PWD/target/profile/release

export FLOWGATE_PG_DURABLE=1
# shellcheck source=dev/servers.sh
source dev/servers.sh
start_redis
start_postgres
redis=$FLOWGATE_TEST_REDIS_URL
pg=$FLOWGATE_TEST_POSTGRES_URL

# A fresh stream of $2 messages for the contender $1, published once as
# bench:src<N> and copied (Redis COPY).
stream_of() {
  if [ "$(redis-cli -u "$redis" EXISTS "bench:src$2")" = 0 ]; then
    "$bin/flowgate" publish --redis "$redis" --stream "bench:src$2" --messages "$2" >&2
  fi
  redis-cli -u "$redis" DEL "bench:$1" >/dev/null
  redis-cli -u "$redis" COPY "bench:src$2" "bench:$1" >/dev/null
  echo "bench:$1"
}

# The command line of each contender on $2 messages, as dev/bench-e2e.sh runs it.
contender() {
  local name=$1 m=$2 stream
  case "$name" in
    flowgate-redis-pg)
      stream=$(stream_of "$name" "$m")
      psql -q "$pg" -c "DROP TABLE IF EXISTS prof_flowgate"
      echo "$bin/flowgate ingest --no-progress --redis $redis --postgres $pg --stream $stream --group bench --consumer c1 --table prof_flowgate --exit-when-idle-ms 1000 --max-messages $m"
      ;;
    peer-redis-pg)
      stream=$(stream_of "$name" "$m")
      psql -q "$pg" -c "DROP TABLE IF EXISTS prof_peer"
      echo "$bin/e2e-batch-loop --redis $redis --postgres $pg --stream $stream --group bench --table prof_peer --messages $m"
      ;;
    flowgate-sqlite)
      rm -f "$tmp"/prof-flowgate.sqlite*
      echo "$bin/flowgate ingest --no-progress --messages $m --redeliver-every 0 --sqlite $tmp/prof-flowgate.sqlite"
      ;;
    peer-sqlite)
      rm -f "$tmp"/prof-peer.sqlite*
      echo "$bin/e2e-rusqlite-loop --sqlite $tmp/prof-peer.sqlite --messages $m"
      ;;
  esac
}
contenders=(${FLOWGATE_PROFILE_ONLY:-flowgate-redis-pg peer-redis-pg flowgate-sqlite peer-sqlite})

# Categories of self cost. A callgrind line is "COST (PCT) file:function
# [object]", the file being that of the (possibly inlined) source line, so
# tokio code inlined into flowgate counts for tokio and a flowgate closure
# inlined into a futures-util combinator counts for flowgate: the file
# decides when it belongs to a known crate, otherwise (the Rust library, libc)
# the function's name does, so `drop_in_place<flowgate_redis::…>` counts for
# flowgate-redis. A perf line is "PCT% [.] symbol": only the name decides. The
# first rule with a matching pattern wins.
categorize() {
  awk -v total="$1" -v kind="$2" '
    BEGIN {
      # category | file patterns | name patterns   (patterns separated by ",")
      n = split("flowgate-cli ingest (per-message futures, Acknowledge, Outcome)|flowgate-cli/src/ingest|flowgate_cli::ingest;" \
        "flowgate-cli mapping (field map -> Vec<Value>)|flowgate-cli/src/mapping|flowgate_cli::mapping;" \
        "flowgate par_map_unordered stages|flowgate/src/pipeline|flowgate::pipeline;" \
        "flowgate Batcher (rows, and XACK ids)|flowgate/src/batch|flowgate::batch;" \
        "flowgate other (resilience, pause)|flowgate/src/|flowgate::;" \
        "flowgate-redis lease bookkeeping (hold, release)|flowgate-redis/src/shared|flowgate_redis::shared;" \
        "flowgate-redis acker and deliveries|flowgate-redis/src/delivery|flowgate_redis::delivery;" \
        "flowgate-redis reader and reply parsing|flowgate-redis/src/|flowgate_redis::;" \
        "flowgate-sql PostgreSQL sink (arrays, RETURNING keys)|flowgate-sql/src/postgres|flowgate_sql::postgres;" \
        "flowgate-sql SQLite sink|flowgate-sql/src/sqlite|flowgate_sql::sqlite;" \
        "flowgate-sql table checks, values|flowgate-sql/src/|flowgate_sql::;" \
        "peer code (flowgate-bench e2e)|flowgate-bench/src|flowgate_bench::;" \
        "tokio-postgres, postgres-types, postgres-protocol|tokio-postgres-,postgres-types-,postgres-protocol-|tokio_postgres::,postgres_types::,postgres_protocol::;" \
        "redis crate (RESP parsing, commands)|/redis-1.,/combine-|redis::,combine::;" \
        "SQLite (libsqlite3, rusqlite)|sqlite3.c,rusqlite-,libsqlite3|sqlite3,rusqlite::;" \
        "tracing|/tracing|tracing::,tracing_core::,tracing_subscriber::;" \
        "tokio runtime and sync (scheduling, wakers, timers, channels)|/tokio-1.,/tokio-util-|tokio::,tokio_util::;" \
        "futures-util|/futures-|futures_util::,futures_core::;" \
        "bytes (buffers)|/bytes-1.|bytes::;" \
        "hashing and hash maps|hashbrown-,foldhash-,/hash/|hashbrown::,core::hash,std::hash,std::collections::hash,foldhash::;" \
        "allocation (malloc, free, realloc)|malloc/,/alloc.rs|malloc,free,realloc,calloc,memalign,_int_,tcache,sysmalloc,unlink_chunk,__rdl_,__rust_alloc,__rust_dealloc;" \
        "memcpy, memmove, memset|multiarch/mem,/string/|memcpy,memmove,memset,memcmp,bcmp;" \
        "formatting (core::fmt)|/fmt/,/fmt.rs|core::fmt,alloc::fmt,fmt::;" \
        "kernel|@none@|[k] ;" \
        "Rust std, core, alloc (other)|/rustc/|core::,alloc::,std::", rules, ";")
      for (i = 1; i <= n; i++) {
        split(rules[i], parts, "|"); name[i] = parts[1]
        nf[i] = split(parts[2], fp, ","); for (j = 1; j <= nf[i]; j++) filepat[i, j] = fp[j]
        ns[i] = split(parts[3], sp, ","); for (j = 1; j <= ns[i]; j++) namepat[i, j] = sp[j]
      }
    }
    function by_file(f,   i, j) {
      for (i = 1; i <= n; i++) {
        if (name[i] ~ /^Rust std/) continue   # the Rust library: by name first
        for (j = 1; j <= nf[i]; j++) if (index(f, filepat[i, j])) return name[i]
      }
      return ""
    }
    function by_name(s,   i, j) {
      for (i = 1; i <= n; i++) for (j = 1; j <= ns[i]; j++) if (index(s, namepat[i, j])) return name[i]
      return ""
    }
    {
      cost = $1; gsub(",", "", cost)
      if (cost !~ /^[0-9.]+$/) next
      line = substr($0, index($0, $1) + length($1))
      hit = ""
      if (kind == "callgrind") {
        sub(/ \[[^]]*\] *$/, "", line)                # the object
        sub(/^ *(\([ 0-9.]+%\) +)?/, "", line)        # the percentage
        file = substr(line, 1, index(line, ":") - 1); fn = substr(line, index(line, ":") + 1)
        hit = by_file(file)
        if (hit == "") hit = by_name(fn)
        if (hit == "" && index(file, "/rustc/")) hit = "Rust std, core, alloc (other)"
      } else {
        hit = by_name(line)
      }
      if (hit == "") hit = "other"
      sum[hit] += cost
    }
    END { for (c in sum) printf "%6.1f%%  %s\n", 100 * sum[c] / total, c }' | sort -rn
}

# Inclusive cost of a function, from a callgrind_annotate --inclusive=yes
# listing: the sum over the pieces of the function (one per source file of
# its inlined code; each line, and each call, belongs to exactly one piece).
# Input on stdin: "label|exact function name" lines.
inclusive_of() {
  local listing=$1 total=$2 label fn
  while IFS='|' read -r label fn; do
    awk -v total="$total" -v label="$label" -v fn="$fn" '
      {
        c = $1; gsub(",", "", c); if (c !~ /^[0-9]+$/) next
        line = $0; sub(/ \[[^]]*\] *$/, "", line)
        f = substr(line, index(line, ":") + 1)
        if (f == fn) sum += c
      }
      END { if (sum) printf "%6.1f%%  %s  (%s)\n", 100 * sum / total, label, fn }' "$listing"
  done
}

# The callers of a function, by number of calls, from a callgrind_annotate
# --tree=caller listing: "calls  per message  caller". TARGET is the text of
# the function's "* file:function [object]" line to look for; N the
# messages; TOP how many callers to show. The first line is the total.
callers_of() {
  local listing=$1 target=$2 n=$3 top=$4
  awk -v target="$target" '
    /%\)  < / { buf[++nb] = $0; next }
    /%\)  \*  / { if (index($0, target)) { for (i = 1; i <= nb; i++) print buf[i]; exit } nb = 0; next }
    { nb = 0 }' "$listing" |
    sed -E 's|/root/.cargo/registry/src/index.crates.io-[0-9a-f]+/||; s|/rustc/[0-9a-f]+/library/||; s|'"$PWD"'/||' |
    awk -v n="$n" '
      {
        match($0, /\(([0-9,]+)x\)/); c = substr($0, RSTART + 1, RLENGTH - 3); gsub(",", "", c)
        line = $0; sub(/^.*%\)  < /, "", line); sub(/ \[[^]]*\]$/, "", line); sub(/ \([0-9,]+x\)$/, "", line)
        total += c; printf "%10d  %6.2f  %s\n", c, c / n, line
      }
      END { printf "%10d  %6.2f  TOTAL\n", total, total / n }' | sort -rn | awk -v k="$((top + 1))" 'NR <= k'
}

summary=$out/summary.txt
: >"$summary"

if [ "$what" = all ] || [ "$what" = callgrind ]; then
  for c in "${contenders[@]}"; do
    cmd=$(contender "$c" "$n")
    echo "callgrind: $c on $n messages" >&2
    # shellcheck disable=SC2086
    valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.$c" $cmd \
      >"$out/callgrind.$c.stdout" 2>"$out/callgrind.$c.stderr"
    callgrind_annotate --auto=no --inclusive=no --threshold=100 "$out/callgrind.$c" >"$out/callgrind.$c.self.txt"
    callgrind_annotate --auto=no --inclusive=yes --threshold=100 "$out/callgrind.$c" >"$out/callgrind.$c.inclusive.txt"
    callgrind_annotate --auto=no --inclusive=yes --tree=caller --threshold=100 "$out/callgrind.$c" \
      >"$out/callgrind.$c.callers.txt"
    total=$(awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}' "$out/callgrind.$c.self.txt")
    {
      printf '\n== callgrind: %s, %d messages: %d instructions, %.0f per message\n$ %s\n' \
        "$c" "$n" "$total" "$((total / n))" "$cmd"
      echo "self cost by category:"
      grep -E '^ *[0-9,]+ ' "$out/callgrind.$c.self.txt" | grep -v 'PROGRAM TOTALS' |
        categorize "$total" callgrind
      echo "inclusive cost of:"
      inclusive_of "$out/callgrind.$c.inclusive.txt" "$total" <dev/profile-ingest.functions
      echo "heap allocations (calls of __rust_alloc), per message, by caller:"
      callers_of "$out/callgrind.$c.callers.txt" ":__rustc::__rust_alloc [" "$n" 20
      echo "memcpy calls, per message, by caller:"
      callers_of "$out/callgrind.$c.callers.txt" ":__memcpy_avx_unaligned_erms [" "$n" 12
      echo "SipHash (BuildHasher::hash_one) calls, per message, by caller:"
      callers_of "$out/callgrind.$c.callers.txt" ":core::hash::BuildHasher::hash_one [" "$n" 8
    } >>"$summary"
  done
fi

if [ "$what" = all ] || [ "$what" = perf ]; then
  for c in "${contenders[@]}"; do
    cmd=$(contender "$c" "$perf_n")
    echo "perf: $c on $perf_n messages" >&2
    # shellcheck disable=SC2086
    perf record -q -e cpu-clock -F 1999 -o "$out/perf.$c.data" -- $cmd \
      >"$out/perf.$c.stdout" 2>"$out/perf.$c.stderr"
    perf report -i "$out/perf.$c.data" --no-children --sort symbol --stdio 2>/dev/null \
      >"$out/perf.$c.txt"
    {
      printf '\n== perf (cpu-clock samples): %s, %d messages, %s\n$ %s\n' "$c" "$perf_n" \
        "$(grep -m1 '^# Samples' "$out/perf.$c.txt" | sed 's/^# //')" "$cmd"
      # Lines "  12.34%  [.] symbol": the percentage as the cost, of 100.
      awk '/^ +[0-9.]+%/ {p = $1; sub("%", "", p); $1 = ""; print p, $0}' "$out/perf.$c.txt" | categorize 100 perf
    } >>"$summary"
  done
fi

cat "$summary"
echo "profiles and listings in $out" >&2
