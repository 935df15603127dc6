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
	json_check "$T/stats.json" "d['frames_free'] == d['memory_frames']" "$policy: the whole budget is free again"
done

# Threads that fault on the same pages at the same time: a thread must not
# map a page under another thread's planned window (the other's copy then
# fails and gives back a frame that is in use).  While the process is
# alive, the frames it holds are exactly the pages mapped for it.
COLLIDE=$PROGS/usm_collide
need_prog "$COLLIDE"
# collide_counted FILE: the live usm_collide's counters (pushed by its
# in-process host about once a second) cover all its pages.
collide_counted() {
	"$USM" stat -i col --json >"$1" 2>/dev/null &&
		json_true "$1" "[p for p in procs(comm='usm_collide') if p['alive'] and p['pages_mapped'] >= 16384]"
}
start_daemon col
for policy in first_fit fhp; do
	start_bg "$T/col-$policy.out" "$USM" run -i col --inline -P $policy -- "$COLLIDE" 2 64 4000
	col=$BG_PID
	wait_for 60 "usm_collide ($policy) checked its pages" grep -q '^collide: ' "$T/col-$policy.out" ||
		fail "usm_collide ($policy) never reported"
	assert_grep "$T/col-$policy.out" '^collide: OK 16384 pages$' "$policy: every page counted every thread"
	wait_for 10 "$policy: its counters reached the instance" collide_counted "$T/col-$policy.json" ||
		fail "$policy: usm_collide's counters never covered its pages"
	json_check "$T/col-$policy.json" \
		"(lambda p: p['frames_in_use'] == p['pages_mapped'])([p for p in procs(comm='usm_collide') if p['alive']][0])" \
		"$policy: the live process holds a frame for every page mapped"
	wait_bg "$col" 30
	assert_status 0 "$BG_STATUS" "usm_collide ($policy)" "$T/col-$policy.out" "$T/col-$policy.out.err"
done
stop_daemon col
