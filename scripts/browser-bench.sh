#!/usr/bin/env bash
# Measures a browser node against a native one, side by side in one run
# (tests/examples/browser_bench.rs; docs/benchmarks.md §15): builds the bundle and the
# benchmark (release), then runs it in a loopback-only network namespace, as
# scripts/browser-test.sh does (same set-up; run that once first to install what it needs).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-web.sh
cargo build --locked --release -p mesh-e2e --example browser_bench
run="ip link set lo up && exec target/release/examples/browser_bench"
if [ "$(id -u)" = 0 ]; then unshare -n sh -c "$run"; else unshare -rn sh -c "$run"; fi
