#!/bin/bash
# fhp_adaptive: a sequential stream takes one fault per 2 MiB region
# (two would mean the stream was not recognized), sparse touches map
# little more than they touch, and every page is right.  The bloat the
# framework measures (fhp track_bloat=1) is right for known patterns:
# one page touched per 2 MiB window, and every page touched.
# timeout: 240
. "$(dirname "$0")/lib.sh"
need_prog "$TOUCH"

MB=256
PAGES=$((MB * 256))
for host in "" --inline; do
	what="fhp_adaptive ${host:-daemon}"
	run_limited 60 "$T/out" "$USM" run $host -P fhp_adaptive --stats-json "$T/s.json" -- \
		"${PIDWRAP[@]}" "$T/main.pid" "$TOUCH" $MB 1
	assert_status 0 "$RC" "$what: dense" "$T/out" "$T/out.err"
	assert_grep "$T/out" '^usm_touch: OK$' "$what: dense touch right"
	main=$(cat "$T/main.pid")
	json_check "$T/s.json" "proc($main, 'usm_touch')['faults'] <= $MB // 2 + 40" \
		"$what: stream: 1 fault per 2 MiB ($(json_eval "$T/s.json" "proc($main, 'usm_touch')['faults']"))"
	# In a random order: one page, then the whole rest of the region
	# (both sides of the first page) - at most two faults per region.
	run_limited 60 "$T/out" env USM_TOUCH_RANDOM=1 "$USM" run $host -P fhp_adaptive \
		--stats-json "$T/s.json" -- "${PIDWRAP[@]}" "$T/main.pid" "$TOUCH" $MB 1
	assert_status 0 "$RC" "$what: random order" "$T/out" "$T/out.err"
	assert_grep "$T/out" '^usm_touch: OK$' "$what: random order: every page right"
	main=$(cat "$T/main.pid")
	json_check "$T/s.json" "proc($main, 'usm_touch')['faults'] <= $MB + 40" \
		"$what: random order: <= 2 faults per 2 MiB ($(json_eval "$T/s.json" "proc($main, 'usm_touch')['faults']"))"
	run_limited 60 "$T/out" "$USM" run $host -P fhp_adaptive --stats-json "$T/s.json" -- \
		"${PIDWRAP[@]}" "$T/main.pid" "$TOUCH" $MB 512 0 touched
	assert_status 0 "$RC" "$what: one page per 2 MiB" "$T/out" "$T/out.err"
	assert_grep "$T/out" '^usm_touch: OK$' "$what: sparse touch right"
	main=$(cat "$T/main.pid")
	json_check "$T/s.json" "proc($main, 'usm_touch')['pages_mapped'] <= 2 * ($PAGES // 512) + 200" \
		"$what: sparse: maps about what it touches ($(json_eval "$T/s.json" "proc($main, 'usm_touch')['pages_mapped']"))"
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
