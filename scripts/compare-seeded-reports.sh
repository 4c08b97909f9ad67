#!/usr/bin/env bash
# Runs the seeded memory scenarios with two mesh-sim binaries and says, per scenario,
# whether their reports are identical (but for wall_s and rss_mb_peak, which measure the
# machine). Use it before and after a refactor that must not change behaviour:
#
#   git stash; cargo build --release -p mesh-sim; cp target/release/mesh-sim /tmp/before
#   git stash pop; cargo build --release -p mesh-sim
#   scripts/compare-seeded-reports.sh /tmp/before target/release/mesh-sim /tmp/seeded
#
# About 3 minutes per binary on 2 cores. Exits non-zero if any report differs.
set -euo pipefail
before=$1 after=$2 out=${3:-seeded-reports}
scenarios=(
    "n1000|--nodes 1000 --join-rate 250 --duration 20 --seed 1"
    "n3000|--nodes 3000 --join-rate 500 --duration 20 --seed 1"
    "kill20|--nodes 1000 --join-rate 250 --duration 40 --kill 0.2@12 --seed 1"
    "stop-kill80|--nodes 1000 --join-rate 250 --duration 40 --kill-bootstrap-at 10 --kill 0.8@12 --seed 3"
    "doors-kill50|--nodes 1000 --join-rate 250 --duration 40 --kill-bootstrap-at 10 --kill 0.5@12 --doors --seed 2"
    "doors-kill80|--nodes 1000 --join-rate 250 --duration 40 --kill-bootstrap-at 10 --kill 0.8@12 --doors --seed 1"
)
for side in before after; do
    bin=${!side}
    for s in "${scenarios[@]}"; do
        name=${s%%|*}
        # shellcheck disable=SC2086
        "$bin" run --transport memory --no-progress --out "$out/$side/$name" ${s#*|} >/dev/null 2>&1 &
        # Two at a time: one per core.
        [ "$(jobs -r | wc -l)" -ge 2 ] && wait -n
    done
    wait
done
status=0
for s in "${scenarios[@]}"; do
    name=${s%%|*}
    python3 - "$out/before/$name/report.json" "$out/after/$name/report.json" "$name" <<'PY' || status=1
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for r in (a, b):
    for k in ("wall_s", "rss_mb_peak"):
        r.pop(k, None)
def diff(x, y, path=""):
    if isinstance(x, dict) and isinstance(y, dict):
        return [d for k in sorted(set(x) | set(y)) for d in diff(x.get(k), y.get(k), f"{path}.{k}")]
    return [] if x == y else [path]
d = diff(a, b)
print(f"{sys.argv[3]}: " + ("identical" if not d else f"{len(d)} fields differ: {', '.join(d[:6])}"))
sys.exit(1 if d else 0)
PY
done
exit $status
