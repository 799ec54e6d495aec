#!/usr/bin/env bash
# Claude Code figures for docs/benchmarks.md: `swarm statusline` latency
# (whole process, warm Redis; p50/p99 of 200 runs, against `swarm --version`,
# the process start alone, in the same run) and the booking throughput of a
# 10,000-call transcript (`swarm hook Stop`; one entry per content block, two
# per call, as Claude Code writes them), first read and a second read (all
# duplicates).
#
#   scripts/bench-claude-code.sh [path/to/swarm]
set -euo pipefail
cd "$(dirname "$0")/.."
SWARM=${1:-target/release/swarm}
port=$((20000 + RANDOM % 20000))
dir=$(mktemp -d)
redis-server --port "$port" --save '' --appendonly no --daemonize yes --dir "$dir" >/dev/null
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
export REDIS_URL="redis://127.0.0.1:$port"
sleep 0.3
python3 - "$SWARM" "$dir" <<'PY'
import json, statistics, subprocess, sys, time, os
swarm, d = sys.argv[1], sys.argv[2]
inp = open("swarm-claude-code/tests/fixtures/statusline_input_2.1.332.json").read().encode()
def runs(args, n, stdin=b""):
    t = []
    for _ in range(n):
        s = time.perf_counter(); subprocess.run([swarm] + args, input=stdin, stdout=subprocess.DEVNULL, check=True); t.append((time.perf_counter() - s) * 1000)
    t.sort(); return t[len(t)//2], t[int(len(t)*0.99)-1]
subprocess.run([swarm, "findings", "put", "--title", "warm"], stdout=subprocess.DEVNULL, check=True)
runs(["statusline"], 10, inp)
base = runs(["--version"], 200)
line = runs(["statusline"], 200, inp)
print(f"statusline: p50 {line[0]:.1f} ms, p99 {line[1]:.1f} ms; process start (--version): p50 {base[0]:.1f} ms, p99 {base[1]:.1f} ms; ratio p50 {line[0]/base[0]:.2f}")
sess = "bench-session"
path = os.path.join(d, sess + ".jsonl")
with open(path, "w") as f:
    for i in range(10000):
        for block in ("text", "tool_use"):
            f.write(json.dumps({"type": "assistant", "sessionId": sess, "requestId": f"req_{i:06}", "timestamp": "2026-12-02T06:01:54.786Z",
              "message": {"id": f"msg_{i:06}", "model": "claude-haiku-5-5" if i % 10 else "claude-sonnet-5-5", "content": [{"type": block}],
              "usage": {"input_tokens": 1000 + i % 97, "output_tokens": 50, "cache_read_input_tokens": 200, "cache_creation_input_tokens": 10,
                        "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 0}}}}) + "\n")
payload = json.dumps({"session_id": sess, "transcript_path": path, "hook_event_name": "Stop"}).encode()
for label in ("first read (10,000 new calls)", "second read (10,000 repeats)"):
    s = time.perf_counter(); subprocess.run([swarm, "hook", "Stop"], input=payload, check=True); e = time.perf_counter() - s
    print(f"booking, {label}: {e:.2f} s, {10000/e:,.0f} calls/s")
PY
