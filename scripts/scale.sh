#!/usr/bin/env bash
# Workers scaling (issue 12): tasks/s of the swarm against the number of
# worker processes, with the soak program in its closed loop (`--saturate`:
# `--depth` tasks kept queued per worker), no faults, no kills, no cuts, no
# Redis restart, no librarian. The workers are the CLI's `swarm worker run` processes on a
# mock Anthropic server that answers after a latency drawn uniformly from
# 5..60 ms (`random_range(5..60)`: 5 to 59 ms, mean 32 ms); a worker runs one
# task at a time, so the ideal is 1000 / 32 = 31.25 tasks/s per worker, less
# the bus and agent overhead.
#
#   scripts/scale.sh                          # N = 1 2 4 8 16, 60 s each
#   scripts/scale.sh --seconds 30 --workers "1 2 4"
#   scripts/scale.sh --no-plot                # no docs/scaling.png
#
# Writes one soak report per N (target/scaling/soak-N.json), the combined
# target/scaling/workers.json, a Markdown table on stdout, and then draws
# docs/scaling.png (and docs/cluster.png when target/scaling/cluster.json
# from scripts/bench-cluster.sh is there) with the plot_scaling program.
# "target" is $CARGO_TARGET_DIR when set.
#
# Needs redis-server (installed with apt-get when missing), python3 and
# cargo. Everything a run starts (redis-server, mock, workers, temp dirs) is
# stopped and removed when it ends, also on Ctrl-C.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

SECONDS_EACH=60
WORKERS="1 2 4 8 16"
DEPTH=4
PLOT=1
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) SECONDS_EACH="$2"; shift 2 ;;
        --workers) WORKERS="$2"; shift 2 ;;
        --depth) DEPTH="$2"; shift 2 ;;
        --no-plot) PLOT=0; shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "scale: unknown argument $1" >&2; exit 2 ;;
    esac
done

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    echo "scale: installing redis-server" >&2
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq redis-server >&2
fi
for bin in cargo python3; do
    command -v "$bin" >/dev/null || { echo "scale: $bin not found" >&2; exit 1; }
done

echo "scale: building soak and swarm (release)" >&2
cargo build --release -q -p swarm-examples --bin soak -p swarmbus-cli --bin swarm
SOAK="$TARGET/release/soak"
SWARM="$TARGET/release/swarm"
OUT="$TARGET/scaling"
mkdir -p "$OUT"

. "$ROOT/scripts/lib/group.sh"
run_dir swarm-scale INT

REPORTS=()
LOADS=()
for N in $WORKERS; do
    REPORT="$OUT/soak-$N.json"
    rm -f "$REPORT"
    echo "scale: $N worker(s), $SECONDS_EACH s (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    setsid "$SOAK" --saturate --depth "$DEPTH" --fault-rate 0 --kill-every 100000 \
        --cut-every 0 --no-redis-restart --no-librarian --seconds "$SECONDS_EACH" --workers "$N" \
        --worker-bin "$SWARM" --report "$REPORT" >"$WORK/soak-$N.log" 2>&1 &
    PID=$!
    # The load average sampled during the run, every 5 s.
    SAMPLES=""
    while kill -0 "$PID" 2>/dev/null; do
        SAMPLES="$SAMPLES $(cut -d' ' -f1 /proc/loadavg)"
        sleep 5
    done
    set +e
    wait "$PID"
    STATUS=$?
    set -e
    PID=""
    if [ ! -s "$REPORT" ]; then
        echo "scale: the soak with $N workers wrote no report (exit $STATUS); its log:" >&2
        tail -40 "$WORK/soak-$N.log" >&2
        exit 1
    fi
    [ "$STATUS" -eq 0 ] || echo "scale: the soak with $N workers exited $STATUS (see the report)" >&2
    REPORTS+=("$REPORT")
    LOADS+=("$SAMPLES")
done

# Combine: one JSON and a Markdown table.
LOADS_JOINED=$(printf '%s;' "${LOADS[@]}")
set +e
python3 - "$OUT/workers.json" "$LOADS_JOINED" "$DEPTH" "${REPORTS[@]}" <<'PY'
import json, os, statistics, sys, time

out, loads, depth, paths = sys.argv[1], sys.argv[2].split(";"), int(sys.argv[3]), sys.argv[4:]
# The mock answers after a latency drawn uniformly from 5..60 ms (5 to 59).
MOCK_MEAN_MS = (5 + 59) / 2
IDEAL_PER_WORKER = 1000 / MOCK_MEAN_MS

rows = []
for path, load in zip(paths, loads):
    r = json.load(open(path))
    n = r["settings"]["workers"]
    rss = r.get("peak_rss_kb", {})
    workers_rss = [v for k, v in rss.items()
                   if not k.startswith("redis-server") and not k.startswith("soak coordinator")]
    redis_rss = [v for k, v in rss.items() if k.startswith("redis-server")]
    samples = [float(x) for x in load.split()]
    rows.append({
        "workers": n,
        "seconds": r["settings"]["seconds"],
        "tasks_per_s_busy": r["tasks_per_s_busy"],
        "busy_s": r["busy_s"],
        "task_latency_p50_ms": r["task_latency_p50_ms"],
        "task_latency_p99_ms": r["task_latency_p99_ms"],
        "tasks_pushed": r["tasks_pushed"],
        "tasks_completed": r["tasks_completed"],
        "tasks_failed_reported": r["tasks_failed_reported"],
        "tasks_lost": r["tasks_lost"],
        "soak_ok": r["ok"],
        "peak_rss_kb_worker_max": max(workers_rss, default=0),
        "peak_rss_kb_redis": max(redis_rss, default=0),
        "peak_rss_kb_coordinator_and_mock": rss.get("soak coordinator + mock", 0),
        "ideal_tasks_per_s": IDEAL_PER_WORKER * n,
        "load_average_samples": samples,
        "load_average_mean": round(statistics.mean(samples), 2) if samples else None,
        "report": os.path.basename(path),
    })
rows.sort(key=lambda x: x["workers"])
one = next((x for x in rows if x["workers"] == 1), None)
for x in rows:
    x["speedup_vs_1_worker"] = x["tasks_per_s_busy"] / one["tasks_per_s_busy"] if one else None
    x["efficiency_vs_1_worker"] = x["speedup_vs_1_worker"] / x["workers"] if one else None
    x["ratio_vs_ideal"] = x["tasks_per_s_busy"] / x["ideal_tasks_per_s"]

doc = {
    "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    "machine_cores": os.cpu_count(),
    "cpu_model": next((l.split(": ", 1)[1].strip() for l in open("/proc/cpuinfo")
                       if l.startswith("model name")), "?"),
    "mock_latency_ms": [5, 59],
    "mock_mean_latency_ms": MOCK_MEAN_MS,
    "ideal_tasks_per_s_per_worker": IDEAL_PER_WORKER,
    "depth": depth,
    "command": "soak --saturate --depth %d --fault-rate 0 --kill-every 100000 --cut-every 0 --no-librarian "
               "--no-redis-restart --seconds S --workers N --worker-bin swarm" % depth,
    "rows": rows,
}
json.dump(doc, open(out, "w"), indent=2)

print(f"{doc['machine_cores']} cores ({doc['cpu_model']}), {doc['date_utc']}; "
      f"ideal = N x {IDEAL_PER_WORKER:.2f} tasks/s (mock latency 5-59 ms, mean {MOCK_MEAN_MS:g} ms, "
      f"one task at a time per worker).\n")
print("| workers | tasks/s | vs 1 worker | efficiency | ideal tasks/s | vs ideal | p50 ms | p99 ms "
      "| completed | lost | failed (reported) | peak RSS worker MiB | peak RSS redis MiB | load avg (mean) |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for x in rows:
    sp = f"{x['speedup_vs_1_worker']:.2f}x" if one else "-"
    ef = f"{x['efficiency_vs_1_worker']:.0%}" if one else "-"
    print(f"| {x['workers']} | {x['tasks_per_s_busy']:.1f} | {sp} | {ef} | {x['ideal_tasks_per_s']:.1f} "
          f"| {x['ratio_vs_ideal']:.2f} | {x['task_latency_p50_ms']:.0f} | {x['task_latency_p99_ms']:.0f} "
          f"| {x['tasks_completed']} | {x['tasks_lost']} | {x['tasks_failed_reported']} "
          f"| {x['peak_rss_kb_worker_max'] / 1024:.1f} | {x['peak_rss_kb_redis'] / 1024:.1f} "
          f"| {x['load_average_mean']} |")
lost = sum(x["tasks_lost"] for x in rows)
print(f"\nLost tasks over all runs: {lost}. JSON: {out}")
sys.exit(1 if lost else 0)
PY
COMBINED=$?
set -e

if [ "$PLOT" -eq 1 ]; then
    echo "scale: drawing docs/scaling.png" >&2
    # plot_scaling draws its text with DejaVu Sans (fonts-dejavu-core).
    if ! ls /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf >/dev/null 2>&1; then
        echo "scale: installing fonts-dejavu-core" >&2
        SUDO=""
        [ "$(id -u)" -ne 0 ] && SUDO="sudo"
        $SUDO apt-get update -qq && $SUDO apt-get install -y -qq fonts-dejavu-core >&2
    fi
    cargo build --release -q -p swarm-examples --bin plot_scaling
    "$TARGET/release/plot_scaling" --workers "$OUT/workers.json" --cluster "$OUT/cluster.json" \
        --out-dir docs >&2
fi
# Exit status 1 when a task was lost in any run.
exit "$COMBINED"
