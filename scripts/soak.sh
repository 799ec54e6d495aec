#!/usr/bin/env bash
# Soak of the whole swarm (issue 12): `swarm worker run` processes on a persistent
# redis-server against a faulty mock Anthropic server, with worker kills, a
# Redis restart and cut connections, then an exact account of every task.
# Meanwhile `swarm librarian serve` answers archive queries that agents ask
# over the bus, through a pool of fake Gemini shard keys against a mock Gemini
# that keeps Google's per-key limits (per-minute 429s, a per-day 429, 503s);
# the report counts the queries answered, failed over, exhausted and
# unanswered, and each shard's requests per minute and per day against the
# limits the pool was given (quota_never_over), and samples Redis memory
# against the finding count every 5 s (redis_memory_samples, growth per
# finding).
#
#   scripts/soak.sh                          # 5 minutes, 8 workers, 20,000 tasks
#   scripts/soak.sh --minutes 2              # tasks scale with the time
#   scripts/soak.sh --minutes 2 --workers 4 --fault-rate 0.1 --report soak.json
#
# Other options: --seconds S, --tasks M, --kill-every S (30), --cut-every S
# (10; 0 = off), --no-redis-restart, --saturate [--depth N]. Librarian:
# --shards N (4), --gemini-rpm R (15, the pool's limit per shard), --gemini-rpd D
# (1500), --gemini-rpm-low R (2: shard 1's real per-minute limit),
# --gemini-rpd-low D (10: shard 2's real daily limit), --gemini-503-rate F
# (0.05), --ask-every-ms MS (2000), --no-librarian; --memory-every S (5).
# The report is printed and written as JSON (default
# target/soak-report.json). Exit status 0 only when no task was lost, no
# finding stored twice, the ledger equals the mock's usage, every archive
# query was answered (or reported exhausted) and no shard was sent more than
# its configured quota.
#
# Installs redis-server with apt-get when it is missing. Everything the run
# starts (redis-server, the mock, the workers, temp dirs) is stopped and
# removed when it ends, also on Ctrl-C.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    echo "soak: installing redis-server" >&2
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq redis-server >&2
fi
command -v cargo >/dev/null || { echo "soak: cargo not found (https://rustup.rs)" >&2; exit 1; }

ARGS=("$@")
case " $* " in
    *" --report "*) ;;
    *) ARGS+=(--report "${CARGO_TARGET_DIR:-$ROOT/target}/soak-report.json") ;;
esac

# The workers are the CLI's `swarm worker run` processes (pass
# --worker-bin to use another binary).
cargo build --release -q -p swarm-examples --bin soak -p swarmbus-cli --bin swarm
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/soak"
case " $* " in
    *" --worker-bin "*) ;;
    *) ARGS+=(--worker-bin "${CARGO_TARGET_DIR:-$ROOT/target}/release/swarm") ;;
esac

# Temp dirs of the run (redis data, worker logs) live here and go at the end.
. "$ROOT/scripts/lib/group.sh"
run_dir swarm-soak INT

setsid "$BIN" "${ARGS[@]}" &
PID=$!
set +e
wait "$PID"
STATUS=$?
set -e
PID=""
exit "$STATUS"
