#!/usr/bin/env bash
# The end-to-end figure of BENCHMARKS.md: N messages from a Redis stream into
# PostgreSQL, each acknowledged only after its row is written, through
# `flowgate ingest` and through the naive loop (per message: INSERT, then
# XACK), side by side on the same servers.
#
#   dev/bench-e2e.sh [N]        (default N = 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}

# The benchmark wants a durable PostgreSQL (fsync on), unlike the tests.
export FLOWGATE_PG_DURABLE=1
# shellcheck source=dev/servers.sh
source dev/servers.sh
start_redis
start_postgres

cargo build --release -q -p flowgate-cli
bin=target/release/flowgate
redis=$FLOWGATE_TEST_REDIS_URL
pg=$FLOWGATE_TEST_POSTGRES_URL

echo "load average before: $(cat /proc/loadavg)"
$bin publish --redis "$redis" --stream bench:flowgate --messages "$n"
$bin ingest --no-progress --redis "$redis" --postgres "$pg" --stream bench:flowgate \
  --group writers --consumer c1 --table bench_flowgate --exit-when-idle-ms 1000 --max-messages "$n"
$bin publish --redis "$redis" --stream bench:naive --messages "$n"
$bin naive --redis "$redis" --postgres "$pg" --stream bench:naive --group writers \
  --table bench_naive --messages "$n" --exit-when-idle-ms 1000
echo "load average after: $(cat /proc/loadavg)"
