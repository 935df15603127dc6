#!/bin/bash
# usm_torture under a separate usmd with two fault-handling workers.
# timeout: 90
. "$(dirname "$0")/lib.sh"
need_prog "$TORTURE"

start_daemon w2 -o 'workers 2' -o 'mode blocking'
run_limited 45 "$T/out" "$USM" run -i w2 -- "${PIDWRAP[@]}" "$T/main.pid" "$TORTURE" all
assert_status 0 "$RC" "usm run -i w2 -- usm_torture all" "$T/out" "$T/out.err" "$T/usmd-w2.log"
assert_grep "$T/out" '^torture: all: OK$' "torture reports all: OK"
assert_no_grep "$T/out" 'FAIL' "no torture test failed"
assert_no_grep "$T/out.err" 'usm-agent' "the agent never detached or complained"

main=$(cat "$T/main.pid")
wait_no_live w2
stats_json w2 "$T/stats.json"
json_summary "$T/stats.json"
json_check "$T/stats.json" "d['workers'] == 2 and d['mode'] == 'blocking'" "instance has 2 blocking workers"
json_check "$T/stats.json" "proc($main, 'usm_torture')['faults'] > 0 and proc($main, 'usm_torture')['pages_mapped'] >= 65536" \
	"main process attached with faults and >= 256 MiB mapped"
json_check "$T/stats.json" \
	"len([p for p in procs(comm='usm_torture') if p['pid'] != $main and p['faults'] > 0]) >= 4" \
	"fork children attached with faults"
json_check "$T/stats.json" "any(p['faults'] > 0 for p in procs(comm='exe'))" "exec'd image attached with faults"
json_check "$T/stats.json" "d['frames_in_use'] == 0" "every frame returned to the pool"
stop_daemon w2
assert_no_grep "$T/usmd-w2.log" ' error: |ERROR' "usmd logged no error"
