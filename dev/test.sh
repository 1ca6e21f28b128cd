#!/usr/bin/env bash
# The README's test command. On a fresh machine with only the Rust toolchain
# it installs what the tests need (redis-server — one, and a 3-node cluster —,
# PostgreSQL and nats-server,
# from Debian packages via apt-get, when missing), starts them in a temporary directory on
# free loopback ports, runs every test of the workspace with every feature,
# and stops the servers again, whatever happened.
#
#   dev/test.sh [extra cargo test arguments]
#   dev/test.sh -p flowgate-cli --test outages     (one crate, one test file)
#
# With -p/--package only those packages are tested, otherwise the whole
# workspace. The tests find the shared servers through FLOWGATE_TEST_REDIS_URL
# and FLOWGATE_TEST_POSTGRES_URL, and run private instances (to stop and
# restart them) with FLOWGATE_TEST_REDIS_SERVER, FLOWGATE_TEST_NATS_SERVER, FLOWGATE_TEST_PG_BIN,
# FLOWGATE_TEST_PG_RUN_AS and FLOWGATE_TEST_TMPDIR (see dev/servers.sh). Under
# CI=true a test that needs a server fails (never skips) when its variable is
# missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=dev/servers.sh
source dev/servers.sh

start_redis
start_redis_cluster
start_postgres
start_nats

# `cargo test --workspace -p X` would test the whole workspace: --workspace only
# when no package was named.
scope=(--workspace)
for arg in "$@"; do
  case "$arg" in
    --) break ;;
    -p | -p* | --package | --package=*) scope=() ;;
  esac
done

cargo test "${scope[@]}" --all-features "$@"
