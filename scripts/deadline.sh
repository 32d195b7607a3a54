# Sourced by scripts/test.sh. `rerun_if_hung DEADLINE LOG COMMAND...` runs COMMAND (output shown and written
# to LOG) under a deadline of DEADLINE seconds. A run that reaches it is killed with everything it started,
# reported, its log kept as LOG.hung-N, and run once more; a run that finishes (passing or failing) is never
# rerun. Returns the last run's exit status (124 or 137 when both runs hung).
rerun_if_hung() {
    local deadline=$1 log=$2 attempt rc
    shift 2
    for attempt in 1 2; do
        rc=0
        (set -o pipefail && timeout --kill-after=30 "$deadline" "$@" 2>&1 | tee "$log") || rc=$?
        if [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ]; then
            return "$rc"
        fi
        cp "$log" "$log.hung-$attempt"
        echo "no result after ${deadline} s (attempt $attempt of 2): the run hung and was stopped"
    done
    return "$rc"
}
