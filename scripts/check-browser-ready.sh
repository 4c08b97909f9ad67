#!/usr/bin/env bash
# Checks that mesh-proto and mesh-core can run in a browser: they build for
# wasm32-unknown-unknown, and their code uses no clock, thread, file, socket, process or
# environment of the OS (std's `Instant::now` compiles for wasm32 but panics there; the core
# takes time as input, with `web_time::Instant` as its type).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "-- no OS clock, thread, file, socket, process or environment in mesh-proto or mesh-core"
if grep -rnE 'std::time::(Instant|SystemTime)|SystemTime|std::thread|std::fs|std::net|std::process|std::env' \
    crates/mesh-proto/src crates/mesh-core/src; then
    echo "mesh-proto/mesh-core must not use these: they do not exist in a browser" >&2
    exit 1
fi

echo "-- cargo build --target wasm32-unknown-unknown -p mesh-proto -p mesh-core"
if rustup target add wasm32-unknown-unknown; then
    cargo build --locked --target wasm32-unknown-unknown -p mesh-proto -p mesh-core
else
    # rustup could not fetch the target: Debian's compiler with std built from source
    # (../shared/notes/browser-build-and-test.md §4).
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rustc-web rust-web-src lld-22
    RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld-22 \
        CARGO_TARGET_DIR=target/wasm-debian \
        cargo build --locked -Zbuild-std=std,panic_abort --target wasm32-unknown-unknown -p mesh-proto -p mesh-core
fi
echo "mesh-proto and mesh-core build for the browser"
