#!/usr/bin/env bash
# One run, one redis-server: how fast RedisBus writes findings and reads the
# status, next to the server's ceiling and the brief's Python approach.
#
#   scripts/bench-bus.sh            # prints a Markdown table
#
# Needs redis-server, redis-benchmark and redis-cli (apt-get install
# redis-server), python3 (redis-py is installed with pip if missing) and
# cargo. Every client stores the same ~400-byte finding JSON.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

for bin in redis-server redis-benchmark redis-cli python3 cargo; do
    command -v "$bin" >/dev/null || {
        echo "bench-bus: $bin not found (apt-get install redis-server python3)" >&2
        exit 1
    }
done
python3 -c 'import redis' 2>/dev/null || python3 -m pip install --quiet redis >&2

# A free loopback port.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
WORK=$(mktemp -d)
redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" \
    --daemonize yes --pidfile "$WORK/redis.pid" --logfile "$WORK/redis.log"
cleanup() {
    redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
for _ in $(seq 100); do
    redis-cli -p "$PORT" ping 2>/dev/null | grep -q PONG && break
    sleep 0.05
done
URL="redis://127.0.0.1:$PORT"

echo "bench-bus: building the Rust side (release)" >&2
cargo build --release --quiet -p swarmbus-redis --example bench_bus >&2
BENCH="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/bench_bus"

# 1. The server's ceiling: redis-benchmark, SET, 16 commands per pipeline,
#    values the size of a finding.
echo "bench-bus: redis-benchmark" >&2
CEILING=$(redis-benchmark -p "$PORT" -t set -P 16 -q -d 400 -n 1000000 -r 1000000 \
    | tr '\r' '\n' | awk '/SET:/ {print $2}' | tail -1)
redis-cli -p "$PORT" flushall >/dev/null

# 2. RedisBus (also writes the sample finding JSON for Python).
echo "bench-bus: RedisBus" >&2
"$BENCH" "$URL" "$WORK/finding.json" > "$WORK/rust.txt"
redis-cli -p "$PORT" flushall >/dev/null
val() { awk -v k="$1" '$1 == k {print $2}' "$WORK/rust.txt"; }

# 3. The brief's Python approach with redis-py: one SET per finding, then
#    pipelined by 1,000.
echo "bench-bus: redis-py" >&2
python3 - "$PORT" "$WORK/finding.json" > "$WORK/python.txt" <<'PY'
import json, sys, time, uuid
import redis

port, sample = int(sys.argv[1]), open(sys.argv[2]).read()
r = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
base = json.loads(sample)

def findings(n):
    for _ in range(n):
        fid = str(uuid.uuid4())
        base["id"] = fid
        yield fid, json.dumps(base, separators=(",", ":"))

n = 20_000
t = time.perf_counter()
for fid, body in findings(n):
    r.set(f"finding:{fid}", body)
print("python_single_per_s", round(n / (time.perf_counter() - t)))

n = 200_000
t = time.perf_counter()
pipe = r.pipeline(transaction=False)
for i, (fid, body) in enumerate(findings(n), 1):
    pipe.set(f"finding:{fid}", body)
    if i % 1000 == 0:
        pipe.execute()
pipe.execute()
print("python_pipelined_per_s", round(n / (time.perf_counter() - t)))

# The brief's status count, at the size reached here (KEYS blocks the server).
t = time.perf_counter()
count = len(r.keys("finding:*"))
print("python_keys_count_ms", round((time.perf_counter() - t) * 1000, 1), count)
PY
pval() { awk -v k="$1" '$1 == k {print $2}' "$WORK/python.txt"; }

CPUS=$(nproc)
MODEL=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
REDIS_VERSION=$(redis-server --version | awk '{print $3}' | sed 's/v=//')
SINGLE=$(pval python_single_per_s)
PIPED=$(pval python_pipelined_per_s)
BATCHED=$(val bus_batched_per_s)
CONCURRENT=$(val bus_concurrent_per_s)
ratio() { python3 -c "print(f'{$1 / $2:.2f}x')"; }

cat <<EOF
Machine: $CPUS cores ($MODEL), Redis $REDIS_VERSION on loopback, one run of scripts/bench-bus.sh.
Finding JSON: $(val finding_json_bytes) bytes.

| writer | findings/s | vs Python per SET | vs Python pipelined | vs server ceiling |
|---|---:|---:|---:|---:|
| redis-benchmark -t set -P 16 -d 400 (ceiling) | ${CEILING%.*} | $(ratio "$CEILING" "$SINGLE") | $(ratio "$CEILING" "$PIPED") | 1.00x |
| Python redis-py, one SET per finding | $SINGLE | 1.00x | $(ratio "$SINGLE" "$PIPED") | $(ratio "$SINGLE" "$CEILING") |
| Python redis-py, pipelined by 1,000 | $PIPED | $(ratio "$PIPED" "$SINGLE") | 1.00x | $(ratio "$PIPED" "$CEILING") |
| RedisBus put_findings, batches of 1,000 | $BATCHED | $(ratio "$BATCHED" "$SINGLE") | $(ratio "$BATCHED" "$PIPED") | $(ratio "$BATCHED" "$CEILING") |
| RedisBus put_finding, 64 concurrent | $CONCURRENT | $(ratio "$CONCURRENT" "$SINGLE") | $(ratio "$CONCURRENT" "$PIPED") | $(ratio "$CONCURRENT" "$CEILING") |

RedisBus writes more than a SET per finding: the STRING, the index entry, the
stream entry and the notification, atomically in one script.

| status read | figure |
|---|---:|
| status snapshot median, 1,000 findings | $(val snapshot_median_us_1k) µs |
| status snapshot median, 1,000,000 findings | $(val snapshot_median_us_1m) µs |
| ratio 1,000,000 / 1,000 | $(ratio "$(val snapshot_median_us_1m)" "$(val snapshot_median_us_1k)") |
| requests per snapshot | $(val snapshot_requests) |
| brief's KEYS count at $(awk '$1 == "python_keys_count_ms" {print $3}' "$WORK/python.txt") keys | $(pval python_keys_count_ms) ms |
| 1,000 heartbeats read: round trips (client count) | $(val heartbeats_round_trips) |
| 1,000 heartbeats read: top-level commands (INFO commandstats) | $(val heartbeats_server_calls) |
| 1,000 heartbeats read: median | $(val heartbeats_median_us) µs |
EOF
