#!/bin/bash
# fhp for every window size, in both hosts: content is right across window
# and mapping boundaries (mappings that start and end mid-window, sparse
# and dense touches, mremap/munmap/fork from the torture test), and the
# counters match: one fault per window for a dense sequential touch.
# timeout: 240
. "$(dirname "$0")/lib.sh"
need_prog "$TOUCH"
need_prog "$TORTURE"

MB=32
PAGES=$((MB * 256))
for host in "" --inline; do
	for n in 16 32 64 128 256 512; do
		what="fhp pages=$n ${host:-daemon}"
		run_limited 60 "$T/out" "$USM" run $host -P fhp -o "set fhp.pages $n" \
			--stats-json "$T/s.json" -- "${PIDWRAP[@]}" "$T/main.pid" "$TOUCH" $MB 1 7
		assert_status 0 "$RC" "$what: usm_touch $MB 1 7" "$T/out" "$T/out.err"
		assert_grep "$T/out" '^usm_touch: OK$' "$what: every page right (dense, off-aligned)"
		main=$(cat "$T/main.pid")
		# Dense touch: a fault per window, the mapping's two partial
		# windows and a few for the program's own heap.
		json_check "$T/s.json" "proc($main, 'usm_touch')['faults'] <= $PAGES // $n + 40" \
			"$what: faults <= pages/$n + 40 ($(json_eval "$T/s.json" "proc($main, 'usm_touch')['faults']"))"
		json_check "$T/s.json" "proc($main, 'usm_touch')['pages_mapped'] >= $PAGES" \
			"$what: pages_mapped covers the $PAGES pages"
		run_limited 60 "$T/out" "$USM" run $host -P fhp -o "set fhp.pages $n" -- "$TOUCH" $MB 37 3
		assert_status 0 "$RC" "$what: usm_touch sparse" "$T/out" "$T/out.err"
		assert_grep "$T/out" '^usm_touch: OK$' "$what: sparse touch, untouched pages read zero"
		# mremap, munmap and MADV_DONTNEED inside windows, fork.
		run_limited 60 "$T/out" "$USM" run $host -P fhp -o "set fhp.pages $n" -- \
			"$TORTURE" --size-mb 16 mremap munmap madvise fork
		assert_status 0 "$RC" "$what: torture mremap munmap madvise fork" "$T/out" "$T/out.err"
	done
	run_limited 60 "$T/out" "$USM" run $host -P fhp -o "set fhp.pages 64" -- "$TORTURE" --size-mb 64 mmap mremap munmap madvise fork malloc
	assert_status 0 "$RC" "fhp 64 ${host:-daemon}: torture mmap mremap munmap madvise fork malloc" "$T/out" "$T/out.err"
done
# Per-process size from the process line beats the instance-wide one.
run_limited 60 "$T/out" "$USM" run -o 'process alloc usm_touch fhp pages=256' -o 'set fhp.pages 16' \
	--stats-json "$T/s.json" -- "${PIDWRAP[@]}" "$T/main.pid" "$TOUCH" $MB 1
assert_status 0 "$RC" "process line pages=256" "$T/out" "$T/out.err"
main=$(cat "$T/main.pid")
json_check "$T/s.json" "proc($main, 'usm_touch')['faults'] <= $PAGES // 256 + 40" "process line pages=256 wins over set fhp.pages 16"
