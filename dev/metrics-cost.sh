#!/usr/bin/env bash
# Instructions (callgrind, deterministic) of the metrics-cost workloads with
# every primitive named and no recorder installed, flowgate built without and
# with its `metrics` feature: the cost of the feature for a user who turns it
# on and installs no recorder. Also the unnamed run with the feature on.
#
#   dev/metrics-cost.sh      (one line per workload; the whole run: 2 release builds, ~2 min)
set -euo pipefail
cd "$(dirname "$0")/.."
count() { # $1 target dir, $2.. args
  local dir=$1; shift
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$dir/release/metrics-cost" "$@" 2>&1 |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
CARGO_TARGET_DIR=target/metrics-off cargo build -q --release -p flowgate-bench --bin metrics-cost
CARGO_TARGET_DIR=target/metrics-on cargo build -q --release -p flowgate-bench --bin metrics-cost --features metrics
ratio() { python3 -c "print(f'{$2/$1:.4f}')"; }
printf '%-8s %14s %14s %8s %14s %8s\n' workload "off, named" "on, named" ratio "on, unnamed" ratio
for w in batch queue events stage group rate breaker; do
  off=$(count target/metrics-off --only "$w")
  on=$(count target/metrics-on --only "$w")
  un=$(count target/metrics-on --only "$w" --unnamed)
  printf '%-8s %14s %14s %8s %14s %8s\n' "$w" "$off" "$on" "$(ratio "$off" "$on")" "$un" "$(ratio "$off" "$un")"
done
