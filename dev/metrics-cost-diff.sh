#!/usr/bin/env bash
# Where the `metrics` feature's extra instructions go, per function: one
# workload of the metrics-cost bin under callgrind, flowgate built without
# and with the feature (unnamed unless `--named`), the functions whose
# instruction counts differ most, largest first.
#
#   dev/metrics-cost-diff.sh WORKLOAD [--named]
#   WORKLOAD: batch, queue, events, stage, group, rate, breaker
#
# Needs the two builds `dev/metrics-cost.sh` makes (it builds them if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
w=${1:?usage: dev/metrics-cost-diff.sh WORKLOAD [--named]}
case $w in batch | queue | events | stage | group | rate | breaker) ;; *)
  echo "unknown workload '$w' (batch, queue, events, stage, group, rate, breaker)" >&2
  exit 2
  ;;
esac
unnamed=--unnamed
[[ ${2:-} == --named ]] && unnamed=
[[ -x target/metrics-off/release/metrics-cost ]] ||
  CARGO_TARGET_DIR=target/metrics-off cargo build -q --release -p flowgate-bench --bin metrics-cost
[[ -x target/metrics-on/release/metrics-cost ]] ||
  CARGO_TARGET_DIR=target/metrics-on cargo build -q --release -p flowgate-bench --bin metrics-cost --features metrics
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for d in off on; do
  # shellcheck disable=SC2086
  valgrind --tool=callgrind --callgrind-out-file="$tmp/$d.out" \
    "target/metrics-$d/release/metrics-cost" --only "$w" $unnamed 2>&1 |
    sed -n "s/.*Collected : \([0-9]*\).*/$d: \1 instructions/p"
  callgrind_annotate --inclusive=no --threshold=100 "$tmp/$d.out" 2>/dev/null |
    sed -n 's/^ *\([0-9,]*\) ([^)]*) *\(.*\)$/\1\t\2/p' | tr -d , | sed 's/ \[.*//' >"$tmp/$d.tsv"
done
python3 - "$tmp" <<'PY'
import sys
tmp = sys.argv[1]
def load(d):
    r = {}
    for line in open(f'{tmp}/{d}.tsv'):
        n, f = line.rstrip('\n').split('\t', 1)
        if f != 'PROGRAM TOTALS':
            r[f] = r.get(f, 0) + int(n)
    return r
off, on = load('off'), load('on')
print(f'{"on - off":>10} {"off":>10} {"on":>10}  function')
for k in sorted(set(off) | set(on), key=lambda k: -abs(on.get(k, 0) - off.get(k, 0)))[:25]:
    d = on.get(k, 0) - off.get(k, 0)
    if d:
        print(f'{d:+10d} {off.get(k, 0):10d} {on.get(k, 0):10d}  {k[:140]}')
PY
