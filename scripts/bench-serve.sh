#!/usr/bin/env bash
# swarm serve figures for docs/benchmarks.md (swarm-cli/tests/serve_bench.rs,
# release build): MCP tool latency over Streamable HTTP against stdio with
# the same rmcp client (p50/p99), calls/s at 64 concurrent HTTP clients, and
# the dashboard's time to its first feed item in headless Chromium. A short
# run: about 30 s after the build.
#
#   scripts/bench-serve.sh            # SWARM_BENCH_CALLS=500 SWARM_BENCH_SECONDS=5
set -euo pipefail
cd "$(dirname "$0")/.."
SWARM_BENCH=1 cargo test --release -p swarmbus-cli --test serve_bench -- --nocapture 2>&1 \
  | grep -E '^(BENCH|SKIPPED|test result)'
