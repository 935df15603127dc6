#!/bin/bash
# fhp_adaptive: a sequential stream takes one fault per 2 MiB region
# (two would mean the stream was not recognized), random and strided
# orders take fewer than two, sparse touches map
# little more than they touch, and every page is right.  The bloat the
# framework measures (fhp track_bloat=1) is right for known patterns:
# one page touched per 2 MiB window, and every page touched.
# timeout: 240
. "$(dirname "$0")/lib.sh"
need_prog "$TOUCH"

MB=256
PAGES=$((MB * 256))

# adaptive <label> [VAR=value ...] -- <usm_touch args>: usm_touch under
# fhp_adaptive in $host, which must exit 0 with every page right; sets
# $main to its pid for the counters in $T/s.json.
adaptive() {
	local label=$1 envs=()
	shift
	while [[ $1 != -- ]]; do envs+=("$1"); shift; done
	shift
	run_limited 60 "$T/out" env "${envs[@]+"${envs[@]}"}" "$USM" run $host -P fhp_adaptive \
		--stats-json "$T/s.json" -- "${PIDWRAP[@]}" "$T/main.pid" "$TOUCH" "$@"
	assert_status 0 "$RC" "$what: $label" "$T/out" "$T/out.err"
	assert_grep "$T/out" '^usm_touch: OK$' "$what: $label: every page right"
	main=$(cat "$T/main.pid")
}
# at_most <counter> <max> <label>: usm_touch's counter in $T/s.json <= max
at_most() {
	json_check "$T/s.json" "proc($main, 'usm_touch')['$1'] <= $2" \
		"$what: $3: <= $2 $1 ($(json_eval "$T/s.json" "proc($main, 'usm_touch')['$1']"))"
}

for host in "" --inline; do
	what="fhp_adaptive ${host:-daemon}"
	adaptive dense -- $MB 1
	at_most faults $((MB / 2 + 40)) "stream, 1 fault per 2 MiB"
	# In a random order: one page, then the whole rest of the region
	# (both sides of the first page), two faults per region - unless
	# recent regions filled up, then one (the policy's record of probes:
	# 186-190 faults here, 221 without it).  In strided passes the second
	# fault of the first region comes at once, and the regions above
	# follow as a stream, except above a region that was itself filled on
	# its first fault: the first pass does not write its last page, a
	# write sentinel (147).
	adaptive "random order" USM_TOUCH_RANDOM=16 -- $MB 1
	at_most faults $((MB * 3 / 4 + 8)) "random order, $((MB / 2)) regions"
	adaptive "strided order" USM_TOUCH_STRIDE=16 -- $MB 1
	at_most faults $((MB * 5 / 8 + 16)) "strided order, $((MB / 2)) regions"
	# Dense in random order, then one page per region: the prediction
	# has to notice within a few regions (9 filled in vain here; all 64
	# sparse regions would be 32,704 pages too many).
	adaptive "dense, then sparse" USM_TOUCH_RANDOM=1 USM_TOUCH_DENSE_MB=$((MB / 2)) -- \
		$MB 512 0 touched
	at_most pages_mapped $((PAGES / 2 + MB / 4 + 14 * 512 + 200)) "dense, then sparse"
	# Dense and ascending (one fault per region, a stream), then one page
	# per region, ascending on: to the faults alone this is a stream too,
	# and without write sentinels every region above the dense part was
	# filled (65,569 pages mapped; with them 33,376: the first sparse
	# region filled in vain, then no more).
	adaptive "dense, then sparse upwards" USM_TOUCH_SPARSE_UP=1 USM_TOUCH_DENSE_MB=$((MB / 2)) -- \
		$MB 512 0 touched
	at_most pages_mapped $((PAGES / 2 + MB / 4 + 2 * 512 + 200)) "dense, then sparse upwards"
	at_most faults $((MB / 2 + 10)) "dense, then sparse upwards: the dense part a stream"
	adaptive "one page per 2 MiB" -- $MB 512 0 touched
	at_most pages_mapped $((2 * (PAGES / 512) + 200)) "sparse: maps about what it touches"
	run_limited 120 "$T/out" "$USM" run $host -P fhp_adaptive -- \
		"$TORTURE" --size-mb 64 mmap mremap munmap madvise fork threads
	assert_status 0 "$RC" "$what: torture" "$T/out" "$T/out.err"
done

# 256 windows of 512 pages mapped, one page of each touched: 256 * 511
# pages mapped and never touched.  Sampled on one window in 32 and
# scaled, so within 20 %.
BMB=512
for host in "" --inline; do
	what="bloat ${host:-daemon}"
	run_limited 60 "$T/out" env USM_TOUCH_HOLD_MS=1500 "$USM" run $host -P fhp \
		-o 'set fhp.pages 512' -o 'set fhp.track_bloat 1' --stats-json "$T/s.json" -- \
		"${PIDWRAP[@]}" "$T/main.pid" "$TOUCH" $BMB 512 0 touched
	assert_status 0 "$RC" "$what: sparse" "$T/out" "$T/out.err"
	main=$(cat "$T/main.pid")
	want=$((BMB / 2 * 511))
	json_check "$T/s.json" "abs(proc($main, 'usm_touch')['bloat_pages'] - $want) <= $want // 5" \
		"$what: one page in 512 touched: $(json_eval "$T/s.json" "proc($main, 'usm_touch')['bloat_pages']") pages of bloat, $want expected"
	run_limited 60 "$T/out" env USM_TOUCH_HOLD_MS=1500 "$USM" run $host -P fhp \
		-o 'set fhp.pages 512' -o 'set fhp.track_bloat 1' --stats-json "$T/s.json" -- \
		"${PIDWRAP[@]}" "$T/main.pid" "$TOUCH" $BMB 1
	assert_status 0 "$RC" "$what: dense" "$T/out" "$T/out.err"
	main=$(cat "$T/main.pid")
	json_check "$T/s.json" "proc($main, 'usm_touch')['bloat_pages'] <= $want // 50" \
		"$what: every page touched: $(json_eval "$T/s.json" "proc($main, 'usm_touch')['bloat_pages']") pages of bloat"
done
