#!/usr/bin/env bash
# A library user's proof (issue 22): builds examples/library-user, a crate
# outside the workspace that depends on the published swarmbus-* packages
# only, and runs it against a redis-server of its own on a free port.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="$root/examples/library-user"
# The workspace's lock: the same dependency versions as the suite.
cp "$root/Cargo.lock" "$dir/Cargo.lock"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
(cd "$dir" && cargo build --quiet)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
redis=$!
trap 'kill "$redis" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  sleep 0.05
done
(cd "$dir" && REDIS_URL="redis://127.0.0.1:$port" "$CARGO_TARGET_DIR/debug/library-user")
