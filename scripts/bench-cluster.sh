#!/usr/bin/env bash
# Findings/s of RedisBus on one redis-server against a local Redis Cluster of
# three masters, with K = 1, 2, 4, 8 namespaces written at once (issue 12).
# One run: the example swarm-redis/examples/bench_cluster.rs starts its own
# servers on free loopback ports, measures each combination for a few
# seconds, and stops them.
#
#   scripts/bench-cluster.sh                       # 3 s per measurement
#   scripts/bench-cluster.sh --seconds 5 --namespaces "1 2 4 8 16"
#   scripts/bench-cluster.sh --no-plot
#
# Other options go to the example (--concurrent 64, --batch-writers 8,
# --batch 500). Writes target/scaling/cluster.json ("target" is
# $CARGO_TARGET_DIR when set), prints a Markdown table, and draws
# docs/cluster.png (and docs/scaling.png when target/scaling/workers.json
# from scripts/scale.sh is there) with the plot_scaling program.
#
# Needs redis-server and redis-cli (installed with apt-get when missing) and
# cargo. The servers are children of the example, which runs in its own
# process group: the group is stopped when the script ends, also on Ctrl-C.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

PLOT=1
ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --no-plot) PLOT=0; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) ARGS+=("$1"); shift ;;
    esac
done

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    echo "bench-cluster: installing redis-server" >&2
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq redis-server >&2
fi
command -v cargo >/dev/null || { echo "bench-cluster: cargo not found" >&2; exit 1; }

echo "bench-cluster: building the example (release)" >&2
cargo build --release -q -p swarmbus-redis --example bench_cluster
OUT="$TARGET/scaling"
mkdir -p "$OUT"

. "$ROOT/scripts/lib/group.sh"
run_dir swarm-bench-cluster TERM

setsid "$TARGET/release/examples/bench_cluster" --out "$OUT/cluster.json" "${ARGS[@]}" &
PID=$!
set +e
wait "$PID"
STATUS=$?
set -e
# Servers left behind by a failed run (a panic unwinds and stops them; a
# signal does not) go with the group.
kill -KILL -- "-$PID" 2>/dev/null || true
PID=""
[ "$STATUS" -eq 0 ] || exit "$STATUS"

if [ "$PLOT" -eq 1 ]; then
    echo "bench-cluster: drawing docs/cluster.png" >&2
    # plot_scaling draws its text with DejaVu Sans (fonts-dejavu-core).
    if ! ls /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf >/dev/null 2>&1; then
        echo "bench-cluster: installing fonts-dejavu-core" >&2
        SUDO=""
        [ "$(id -u)" -ne 0 ] && SUDO="sudo"
        $SUDO apt-get update -qq && $SUDO apt-get install -y -qq fonts-dejavu-core >&2
    fi
    cargo build --release -q -p swarm-examples --bin plot_scaling
    "$TARGET/release/plot_scaling" --workers "$OUT/workers.json" --cluster "$OUT/cluster.json" \
        --out-dir docs >&2
fi
