#!/bin/bash
# Copier threads (`copiers <n>`): when two threads of a process fault at
# once, windows are copied in by a copier while the worker reads on.
# Content stays right (memflt checks every page; usm_torture races munmap,
# mremap and fork against the faults), the copiers are used with two
# faulting threads and never with one, `copiers 0` turns them off, and a
# bad count is refused.
# timeout: 180
. "$(dirname "$0")/lib.sh"
MEMFLT=$BUILD/bench/memflt
need_prog "$MEMFLT"
need_prog "$TORTURE"

# memflt PATTERN COPIERS: 256 MiB first-touched under fhp 64.
memflt_run() {
	run_limited 60 "$T/$1-$2.out" "$USM" run -o "copiers $2" -P fhp -o 'set fhp.pages 64' \
		--stats-json "$T/$1-$2.json" -- "${PIDWRAP[@]}" "$T/main.pid" \
		"$MEMFLT" "$1" --size-mb 256 --reps 2 --warmup-mb 0 --madvise none
	assert_status 0 "$RC" "memflt $1 with copiers $2 (every page checked)" \
		"$T/$1-$2.out" "$T/$1-$2.out.err"
	main=$(cat "$T/main.pid")
}

for pat in mt mt-rand; do
	memflt_run $pat 1
	json_check "$T/$pat-1.json" "proc($main, 'memflt')['copier_windows'] > 0" \
		"$pat: two faulting threads: windows went to the copier ($(json_eval "$T/$pat-1.json" "proc($main, 'memflt')['copier_windows']") of $(json_eval "$T/$pat-1.json" "proc($main, 'memflt')['faults']") faults)"
	json_check "$T/$pat-1.json" "proc($main, 'memflt')['pages_mapped'] >= 2 * 256 * 256" \
		"$pat: every page mapped by USM"
	memflt_run $pat 0
	json_check "$T/$pat-0.json" "d['copier_windows'] == 0" "$pat: copiers 0: none used"
done
# fhp_adaptive maps random order with fills (several runs per fault):
# they go over whole.
run_limited 60 "$T/ad.out" "$USM" run -o 'copiers 1' -P fhp_adaptive --stats-json "$T/ad.json" -- \
	"${PIDWRAP[@]}" "$T/main.pid" "$MEMFLT" mt-rand --size-mb 256 --reps 2 --warmup-mb 0 --madvise none
assert_status 0 "$RC" "memflt mt-rand under fhp_adaptive, copiers 1 (every page checked)" "$T/ad.out" "$T/ad.out.err"
main=$(cat "$T/main.pid")
json_check "$T/ad.json" "proc($main, 'memflt')['copier_windows'] > 0" \
	"fhp_adaptive mt-rand: fills went to the copier ($(json_eval "$T/ad.json" "proc($main, 'memflt')['copier_windows']"))"
memflt_run seq 1
json_check "$T/seq-1.json" "d['copier_windows'] == 0" "seq: one faulting thread never hands over"

# Faults racing munmap, mremap and fork, with two copiers.
for mode in "threads" "mmap mremap munmap" "fork threads"; do
	run_limited 60 "$T/tort.out" "$USM" run -o 'copiers 2' -o 'workers 1' -P fhp -o 'set fhp.pages 32' \
		--stats-json "$T/tort.json" -- "$TORTURE" --size-mb 64 $mode
	assert_status 0 "$RC" "usm_torture $mode under fhp 32, copiers 2" "$T/tort.out" "$T/tort.out.err"
	json_check "$T/tort.json" "d['frames_in_use'] == 0" "usm_torture $mode: no frame held after exit"
done

# A bad count is refused, naming the directive.
run_limited 10 "$T/bad.out" "$USM" run -o 'copiers 65' -- /bin/true
assert_status 1 "$RC" "copiers 65 is refused" "$T/bad.out" "$T/bad.out.err"
assert_grep_fixed "$T/bad.out.err" "command line:1: copiers <n>: 65 is out of range [0, 64]" \
	"copiers 65: the message names the directive and the range"
