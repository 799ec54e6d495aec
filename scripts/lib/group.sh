# Shared by scripts/soak.sh, scripts/scale.sh and scripts/bench-cluster.sh
# (sourced, not run): a temp dir for the run, exported as TMPDIR, and an exit
# trap that stops the process group a script started with `setsid` (its
# leader's pid in PID) and removes the dir, also on Ctrl-C.
#
#   . "$ROOT/scripts/lib/group.sh"
#   run_dir swarm-soak INT      # name of the temp dir, first signal to the group
#   setsid program … & PID=$!

run_dir() {
    WORK=$(mktemp -d -t "$1.XXXXXX")
    export TMPDIR="$WORK"
    PID=""
    STOP_SIGNAL="$2"
    trap stop_group_and_clean EXIT
    trap 'exit 130' INT TERM
}

stop_group_and_clean() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill "-$STOP_SIGNAL" -- "-$PID" 2>/dev/null || true
        sleep 2
        kill -KILL -- "-$PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
