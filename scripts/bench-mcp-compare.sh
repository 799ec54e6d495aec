#!/usr/bin/env bash
# Compares `swarm mcp` with the official Redis MCP server and claude-flow,
# driven by the same official Python MCP client over stdio, on one fresh
# redis-server. Installs the pinned peers under ~/.cache/swarm/bench-mcp
# (PyPI and npm only). Prints one JSON line per server and a Markdown table.
#
#   scripts/bench-mcp-compare.sh [--findings 10000] [--claude-flow-findings N] [--no-claude-flow]
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${SWARM_BENCH_CACHE:-$HOME/.cache/swarm/bench-mcp}"
REDIS_MCP_VERSION=0.5.1
CLAUDE_FLOW_VERSION=3.43.0
PY_MCP_VERSION=2.3.0
args=() ; with_cf=1
while [ $# -gt 0 ]; do
  case "$1" in
    --no-claude-flow) with_cf=0 ;;
    *) args+=("$1") ;;
  esac
  shift
done
mkdir -p "$CACHE"
# Two venvs: redis-mcp-server pins an older `mcp` than the client's.
[ -x "$CACHE/client/bin/python" ] || { python3 -m venv "$CACHE/client"; "$CACHE/client/bin/pip" install -q "mcp==$PY_MCP_VERSION"; }
[ -x "$CACHE/redis/bin/redis-mcp-server" ] || { python3 -m venv "$CACHE/redis"; "$CACHE/redis/bin/pip" install -q "redis-mcp-server==$REDIS_MCP_VERSION"; }
cf_args=()
if [ "$with_cf" = 1 ]; then
  [ -f "$CACHE/cf/node_modules/claude-flow/bin/cli.js" ] || npm install -q --prefix "$CACHE/cf" "claude-flow@$CLAUDE_FLOW_VERSION" >/dev/null
  cf_args=(--claude-flow "$CACHE/cf/node_modules/claude-flow/bin/cli.js")
fi
cargo build -q --release -p swarmbus-cli --bin swarm
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
dir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" --daemonize yes --logfile "$dir/log" >/dev/null
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done
echo "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on port $port; client mcp $PY_MCP_VERSION"
"$CACHE/client/bin/python" scripts/bench_mcp_compare.py --swarm target/release/swarm \
  --redis-mcp "$CACHE/redis/bin/redis-mcp-server" "${cf_args[@]}" \
  --url "redis://127.0.0.1:$port" --home "$dir/cf-home" "${args[@]}"
