#!/usr/bin/env bash
# The README's test command: prepares what the tests need, then runs every
# test of the workspace with every feature.
#
#   dev/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --all-features "$@"
