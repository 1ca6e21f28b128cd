#!/usr/bin/env bash
# The README's test command. On a fresh machine with only the Rust toolchain
# it installs what the tests need (redis-server and PostgreSQL, from Debian
# packages via apt-get, when missing), starts both in a temporary directory on
# free loopback ports, runs every test of the workspace with every feature,
# and stops the servers again, whatever happened.
#
#   dev/test.sh [extra cargo test arguments]
#
# The tests find the servers through FLOWGATE_TEST_REDIS_URL and
# FLOWGATE_TEST_POSTGRES_URL. Under CI=true a test that needs a server fails
# (never skips) when its variable is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=dev/servers.sh
source dev/servers.sh

start_redis
start_postgres

cargo test --workspace --all-features "$@"
