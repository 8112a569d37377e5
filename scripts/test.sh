#!/usr/bin/env bash
# The test command: installs and starts the services the tests need, runs every test, stops the
# services again. Extra arguments go to `cargo test` (for example a test name filter).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/services.sh start
trap 'scripts/services.sh stop' EXIT
# shellcheck disable=SC1091
source target/services.env
# A test that needs a service fails, rather than skips, when it is missing here.
export RTSA_REQUIRE_SERVICES=1
cargo test --all-targets "$@"
