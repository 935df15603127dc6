#!/bin/bash
# The in-process host (usm run --inline) passes the same torture test as
# the daemon host: threads, fork (children re-attach inline), exec, and the
# counters reach the instance.
# timeout: 90
. "$(dirname "$0")/lib.sh"
need_prog "$TORTURE"

for policy in first_fit batch; do
	run_limited 60 "$T/out" "$USM" run --inline -P $policy -o 'set batch.pages 16' \
		--stats-json "$T/stats.json" -- "${PIDWRAP[@]}" "$T/main.pid" "$TORTURE" all
	assert_status 0 "$RC" "usm run --inline -P $policy -- usm_torture all" "$T/out" "$T/out.err"
	assert_grep "$T/out" '^torture: all: OK$' "$policy: torture reports all: OK"
	assert_no_grep "$T/out.err" 'usm-agent' "$policy: the agent never detached or complained"
	main=$(cat "$T/main.pid")
	json_check "$T/stats.json" "proc($main, 'usm_torture')['inline']" "$policy: main process ran the in-process host"
	json_check "$T/stats.json" "proc($main, 'usm_torture')['faults'] > 10000" "$policy: its faults reached the instance"
	json_check "$T/stats.json" "sum(1 for p in procs() if p['inline'] and p['faults'] > 0) >= 5" \
		"$policy: fork children attached inline too"
	json_check "$T/stats.json" "d['frames_in_use'] == 0" "$policy: every leased frame came back"
done
