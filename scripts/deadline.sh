# Sourced by scripts/test.sh. Two helpers that run COMMAND (output shown and written to LOG) under a deadline
# of DEADLINE seconds; a run that reaches it is killed with everything it started and reported in a sentence.
#
# `run_by_deadline DEADLINE LOG COMMAND...`: one run. Returns its exit status (124 or 137 when it hung).
# `rerun_if_hung DEADLINE LOG COMMAND...`: as above, but a run that hung keeps its log as LOG.hung-N and is run
# once more; a run that finishes (passing or failing) is never rerun. Returns the last run's exit status.
run_by_deadline() {
    local deadline=$1 log=$2 rc=0
    shift 2
    (set -o pipefail && timeout --kill-after=30 "$deadline" "$@" 2>&1 | tee "$log") || rc=$?
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "no result after ${deadline} s: the run hung and was stopped (the last test it started is in $log)"
    fi
    return "$rc"
}

rerun_if_hung() {
    local deadline=$1 log=$2 attempt rc
    shift 2
    for attempt in 1 2; do
        rc=0
        run_by_deadline "$deadline" "$log" "$@" || rc=$?
        if [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ]; then
            return "$rc"
        fi
        cp "$log" "$log.hung-$attempt"
        echo "attempt $attempt of 2 hung"
    done
    return "$rc"
}
