#!/bin/bash
# usm_torture (every test) under the embedded instance of `usm run`; the
# stats show the main process, its fork children and its exec'd image
# attached and served by USM.
# timeout: 90
. "$(dirname "$0")/lib.sh"
need_prog "$TORTURE"

run_limited 45 "$T/out" "$USM" run --stats-json "$T/stats.json" -- "${PIDWRAP[@]}" "$T/main.pid" "$TORTURE" all
assert_status 0 "$RC" "usm run -- usm_torture all" "$T/out" "$T/out.err"
assert_grep "$T/out" '^torture: all: OK$' "torture reports all: OK"
assert_no_grep "$T/out" 'FAIL' "no torture test failed"
for t in malloc calloc realloc mmap mremap munmap madvise brk threads fork exec-child exec; do
	assert_grep "$T/out" "^torture: $t: OK \\([0-9]+ bytes verified\\)\$" "torture test $t passed"
done
assert_no_grep "$T/out.err" 'usm-agent' "the agent never detached or complained"

main=$(cat "$T/main.pid")
json_summary "$T/stats.json"
json_check "$T/stats.json" "len(procs($main, 'usm_torture')) == 1" "main process $main (usm_torture) attached"
json_check "$T/stats.json" "proc($main, 'usm_torture')['faults'] > 0" "main process took faults"
json_check "$T/stats.json" "proc($main, 'usm_torture')['pages_mapped'] > 0" "main process had pages mapped"
json_check "$T/stats.json" "proc($main, 'usm_torture')['pages_mapped'] >= 65536" "main process had >= 256 MiB mapped by USM"
json_check "$T/stats.json" "not any(p['alive'] for p in procs())" "no process is left alive after the run"
# The fork test's children: separate pids, attached with faults of their own.
json_check "$T/stats.json" \
	"len([p for p in procs(comm='usm_torture') if p['pid'] != $main and p['faults'] > 0 and p['pages_mapped'] > 0]) >= 4" \
	"at least 4 fork children attached with faults > 0 and pages_mapped > 0"
# The exec test runs /proc/self/exe in a child: the new image (comm "exe")
# attaches again under the same pid as the child that exec'd.
json_check "$T/stats.json" \
	"any(p['faults'] > 0 and p['pages_mapped'] > 0 and any(q['comm'] == 'usm_torture' for q in procs(p['pid'])) for p in procs(comm='exe'))" \
	"the exec'd image attached (same pid as a usm_torture child) with faults > 0"
# Instance totals are the sum over processes (all in the history).
json_check "$T/stats.json" "d['faults'] == sum(p['faults'] for p in procs())" "instance faults = sum of process faults"
json_check "$T/stats.json" "d['pages_mapped'] == sum(p['pages_mapped'] for p in procs())" "instance pages_mapped = sum of process pages_mapped"
json_check "$T/stats.json" "d['frames_in_use'] == 0 and d['frames_free'] == d['memory_frames']" "every frame returned to the pool"
