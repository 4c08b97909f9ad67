#!/usr/bin/env bash
# Builds the browser bundle: crates/mesh-web for wasm32-unknown-unknown, turned by
# wasm-bindgen into bootstrap-server/web/pkg/ (mesh_web.js, mesh_web_bg.wasm, mesh_web.d.ts),
# which the bootstrap server embeds at its next build and serves with the page at `/`.
#
# Installs what it needs: the wasm32 target (rustup), wasm-bindgen-cli at the exact version
# of the wasm-bindgen crate in Cargo.lock (into target/tools, ~2 min the first time), and,
# when npm is there, binaryen's wasm-opt 132 (Debian's 108 breaks the module).
#
#   scripts/build-web.sh            # release bundle (profile `web`: opt-level s, LTO)
#   MESH_WEB_PROFILE=dev scripts/build-web.sh   # debug build, faster to make
set -euo pipefail
cd "$(dirname "$0")/.."

profile="${MESH_WEB_PROFILE:-web}"
out=bootstrap-server/web/pkg
tools="$PWD/target/tools"
version=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')
[ -n "$version" ] || { echo "wasm-bindgen is not in Cargo.lock" >&2; exit 1; }

echo "-- the wasm32-unknown-unknown target"
rustup target add wasm32-unknown-unknown >/dev/null

echo "-- wasm-bindgen-cli $version"
bindgen=""
for candidate in "$tools/bin/wasm-bindgen" "$(command -v wasm-bindgen || true)"; do
    if [ -x "$candidate" ] && [ "$("$candidate" --version | awk '{print $2}')" = "$version" ]; then
        bindgen="$candidate"
        break
    fi
done
if [ -z "$bindgen" ]; then
    # A debug build: 111 s to install on 2 cores, 0.8 s to run on the bundle (release: 0.15 s
    # to run, minutes more to build), byte-identical output (measured, docs/benchmarks.md §15).
    echo "   installing into target/tools (the first time only: about two minutes)"
    cargo install --quiet --debug wasm-bindgen-cli --version "$version" --root "$tools"
    bindgen="$tools/bin/wasm-bindgen"
fi

echo "-- cargo build -p mesh-web --target wasm32-unknown-unknown --profile $profile"
cargo build --locked -p mesh-web --target wasm32-unknown-unknown --profile "$profile"
dir="$profile"; [ "$profile" = dev ] && dir=debug
wasm="target/wasm32-unknown-unknown/$dir/mesh_web.wasm"

echo "-- wasm-bindgen --target web --out-dir $out"
rm -rf "$out"
"$bindgen" --target web --out-dir "$out" "$wasm"

if [ "$profile" != dev ]; then
    opt="$tools/npm/node_modules/.bin/wasm-opt"
    if [ ! -x "$opt" ] && command -v npm >/dev/null 2>&1; then
        npm install --silent --prefix "$tools/npm" binaryen@132 >/dev/null 2>&1 || true
    fi
    if [ -x "$opt" ]; then
        echo "-- wasm-opt -Os (binaryen $("$opt" --version | awk '{print $3}'))"
        "$opt" -Os --enable-reference-types --enable-bulk-memory --enable-sign-ext \
            --enable-mutable-globals --enable-nontrapping-float-to-int --enable-multivalue \
            "$out/mesh_web_bg.wasm" -o "$out/mesh_web_bg.wasm.opt"
        mv "$out/mesh_web_bg.wasm.opt" "$out/mesh_web_bg.wasm"
    else
        echo "-- no wasm-opt (needs npm): the bundle is larger but works"
    fi
fi
raw=$(stat -c %s "$out/mesh_web_bg.wasm")
gz=$(gzip -9 -c "$out/mesh_web_bg.wasm" | wc -c)
echo "built $out: mesh_web_bg.wasm $raw bytes ($gz gzipped); rebuild the server to embed it"
