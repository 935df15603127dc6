#!/bin/bash
# usm_torture with the batch policy (16 pages per fault) in the embedded
# instance: still correct, and it maps more than 4 pages per fault.
# timeout: 90
. "$(dirname "$0")/lib.sh"
need_prog "$TORTURE"

run_limited 45 "$T/out" "$USM" run -P batch -o 'set batch.pages 16' --stats-json "$T/stats.json" -- \
	"${PIDWRAP[@]}" "$T/main.pid" "$TORTURE" all
assert_status 0 "$RC" "usm run -P batch -o 'set batch.pages 16' -- usm_torture all" "$T/out" "$T/out.err"
assert_grep "$T/out" '^torture: all: OK$' "torture reports all: OK"
assert_no_grep "$T/out" 'FAIL' "no torture test failed"
assert_no_grep "$T/out.err" 'usm-agent' "the agent never detached or complained"

main=$(cat "$T/main.pid")
json_summary "$T/stats.json"
json_check "$T/stats.json" "proc($main, 'usm_torture')['policy'] == 'batch'" "main process runs the batch policy"
json_check "$T/stats.json" "all(p['policy'] == 'batch' for p in procs() if p['faults'] > 0)" \
	"fork children and the exec'd image inherit the batch policy"
json_check "$T/stats.json" "proc($main, 'usm_torture')['faults'] > 0" "main process took faults"
log "main process: $(json_eval "$T/stats.json" "proc($main, 'usm_torture')['pages_mapped'] / proc($main, 'usm_torture')['faults']") pages per fault"
json_check "$T/stats.json" "proc($main, 'usm_torture')['pages_mapped'] > 4 * proc($main, 'usm_torture')['faults']" \
	"main process: pages_mapped / faults > 4"
json_check "$T/stats.json" "d['pages_mapped'] > 4 * d['faults']" "instance: pages_mapped / faults > 4"
json_check "$T/stats.json" "d['frames_in_use'] == 0" "every frame returned to the pool"
