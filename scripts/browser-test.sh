#!/usr/bin/env bash
# The browser tests: headless Chromium pages of the bootstrap server's page next to native
# nodes (tests/tests/browser_and_native_nodes_share_one_mesh.rs). Installs what they need
# (chromium from apt, playwright-core from npm into target/tools/npm), builds the browser
# bundle (scripts/build-web.sh) and the test, then runs the test in a network namespace of
# its own with only loopback up: WebRTC and Chromium's mDNS stay off the machine's
# interfaces, and every candidate is 127.0.0.1 (needs root, or unprivileged user
# namespaces for `unshare -rn`).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1 && [ -z "${CHROMIUM:-}" ]; then
    echo "-- installing chromium (apt)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "-- installing Node.js (apt)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm
fi
if [ ! -d target/tools/npm/node_modules/playwright-core ]; then
    echo "-- npm install playwright-core (into target/tools/npm)"
    npm install --silent --prefix target/tools/npm playwright-core@1.65.1
fi

scripts/build-web.sh

test=browser_and_native_nodes_share_one_mesh
echo "-- building the test"
cargo test --locked -p mesh-e2e --test "$test" --no-run

echo "-- running it in a loopback-only network namespace"
run="ip link set lo up && exec cargo test --offline --locked -p mesh-e2e --test $test -- --ignored --nocapture"
if [ "$(id -u)" = 0 ]; then
    unshare -n sh -c "$run"
else
    unshare -rn sh -c "$run"
fi
