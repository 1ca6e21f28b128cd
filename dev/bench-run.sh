#!/usr/bin/env bash
# The dispatch overhead of `flowgate run` (issue 14, "Must show" 2), side by
# side in one run on the same input: N jobs (default 2,000) of `true`, 2 at a
# time,
#
#   flowgate run -j 2 -- true        (the release build of this checkout)
#   xargs -P 2 -n 1 true             (findutils)
#   parallel -j 2 true               (GNU parallel, Debian's `parallel` package;
#                                     installed with apt-get when missing)
#
# each job given one line of the input as its argument. Per contender: wall
# seconds, CPU seconds (user+sys of the whole process tree: bash's `time`
# counts the children the contender waited for, and theirs), jobs per second;
# the median of FLOWGATE_BENCH_REPEAT runs (default 3). Then the ratios the
# issue asks for: flowgate / xargs (goal: at most 1.3) and parallel / flowgate
# (goal: at least 5).
#
# Then the precision of the rate limit: 200 jobs of `true` at --rate 20/s
# (ideal: the last starts at 9.95 s).
#
#   dev/bench-run.sh                         # 2,000 jobs, 3 runs each
#   FLOWGATE_BENCH_JOBS=5000 FLOWGATE_BENCH_REPEAT=5 dev/bench-run.sh
#   FLOWGATE=path/to/flowgate dev/bench-run.sh   # skip the build
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=${FLOWGATE_BENCH_JOBS:-2000}
repeat=${FLOWGATE_BENCH_REPEAT:-3}

log() { printf 'dev/bench-run.sh: %s\n' "$*" >&2; }

if [[ -z ${FLOWGATE:-} ]]; then
  log "building flowgate (release)"
  cargo build --release -p flowgate-cli --bin flowgate >&2
  FLOWGATE=target/release/flowgate
fi
[[ -x $FLOWGATE ]] || { log "$FLOWGATE is not an executable"; exit 1; }

if ! command -v parallel >/dev/null; then
  log "GNU parallel is missing: apt-get install parallel"
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get install -y -qq parallel >&2 ||
    { "${sudo[@]}" apt-get update -qq >&2 && "${sudo[@]}" apt-get install -y -qq parallel >&2; }
fi
if ! parallel --version 2>/dev/null | grep -q 'GNU parallel'; then
  log "\`parallel\` is not GNU parallel (moreutils?): install Debian's \`parallel\` package"
  exit 1
fi
# GNU parallel asks once for its citation notice; keep it quiet.
mkdir -p "${HOME}/.parallel" && touch "${HOME}/.parallel/will-cite"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/flowgate-bench-run.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
seq 1 "$jobs" > "$tmp/input"

# measure NAME CMD...: runs CMD < input `repeat` times; appends
# "NAME wall cpu" (medians) to $tmp/results.
measure() {
  local name=$1 i
  shift
  : > "$tmp/runs"
  for ((i = 0; i < repeat; i++)); do
    local TIMEFORMAT='%R %U %S'
    { time "$@" < "$tmp/input" > /dev/null 2> "$tmp/stderr" ; } 2> "$tmp/time" || {
      log "$name failed:"; cat "$tmp/stderr" >&2; exit 1
    }
    awk '{ printf "%.3f %.3f\n", $1, $2 + $3 }' "$tmp/time" >> "$tmp/runs"
  done
  # Medians of wall and CPU, each sorted on its own.
  local wall cpu
  wall=$(cut -d' ' -f1 "$tmp/runs" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
  cpu=$(cut -d' ' -f2 "$tmp/runs" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
  echo "$name $wall $cpu" >> "$tmp/results"
  log "$name: wall ${wall} s, CPU ${cpu} s (median of $repeat)"
}

log "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
measure flowgate "$FLOWGATE" run -j 2 -- true
measure xargs xargs -P 2 -n 1 true
measure parallel parallel -j 2 true

printf '\n%s jobs of `true`, 2 at a time, median of %s runs (%s, %s cores)\n\n' \
  "$jobs" "$repeat" "$(uname -r)" "$(nproc)"
awk -v jobs="$jobs" '
  { name[NR] = $1; wall[$1] = $2; cpu[$1] = $3 }
  END {
    printf "| %-34s | %7s | %7s | %8s |\n", "contender", "wall s", "CPU s", "jobs/s"
    printf "|%s|%s|%s|%s|\n", "------------------------------------", "---------", "---------", "----------"
    cmd["flowgate"] = "flowgate run -j 2 -- true"
    cmd["xargs"] = "xargs -P 2 -n 1 true"
    cmd["parallel"] = "parallel -j 2 true"
    for (i = 1; i <= NR; i++) {
      n = name[i]
      printf "| %-34s | %7.3f | %7.3f | %8.0f |\n", cmd[n], wall[n], cpu[n], jobs / wall[n]
    }
    printf "\n"
    printf "flowgate / xargs:   wall %.2fx, CPU %.2fx   (goal: wall at most 1.3x)\n", \
      wall["flowgate"] / wall["xargs"], cpu["flowgate"] / cpu["xargs"]
    printf "parallel / flowgate: wall %.2fx, CPU %.2fx   (goal: wall at least 5x)\n", \
      wall["parallel"] / wall["flowgate"], cpu["parallel"] / cpu["flowgate"]
    printf "parallel / xargs:   wall %.2fx, CPU %.2fx\n", \
      wall["parallel"] / wall["xargs"], cpu["parallel"] / cpu["xargs"]
  }' "$tmp/results"

# The rate limit's precision: 200 starts at 20/s, the first at 0 s.
seq 1 200 > "$tmp/input"
TIMEFORMAT='%R'
{ time "$FLOWGATE" run -j 4 --rate 20/s -- true < "$tmp/input" > /dev/null 2> "$tmp/stderr" ; } 2> "$tmp/time" || {
  log "flowgate run --rate 20/s failed:"; cat "$tmp/stderr" >&2; exit 1
}
awk '{ printf "\nflowgate run --rate 20/s, 200 jobs: %.3f s (ideal 9.950 s: the last start; %+.1f%%)\n", $1, ($1 / 9.95 - 1) * 100 }' "$tmp/time"
log "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
