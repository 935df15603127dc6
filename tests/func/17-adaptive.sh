#!/bin/bash
# fhp_adaptive: a sequential stream takes one fault per 2 MiB region
# (two would mean the stream was not recognized), sparse touches map
# little more than they touch, every page is right, and
# the bloat it measures is exact for a known pattern.
# timeout: 120
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
	run_limited 60 "$T/out" "$USM" run $host -P fhp_adaptive --stats-json "$T/s.json" -- \
		"${PIDWRAP[@]}" "$T/main.pid" "$TOUCH" $MB 512 0 touched
	assert_status 0 "$RC" "$what: one page per 2 MiB" "$T/out" "$T/out.err"
	assert_grep "$T/out" '^usm_touch: OK$' "$what: sparse touch right"
	main=$(cat "$T/main.pid")
	json_check "$T/s.json" "proc($main, 'usm_touch')['pages_mapped'] <= 2 * ($PAGES // 512) + 200" \
		"$what: sparse: maps about what it touches ($(json_eval "$T/s.json" "proc($main, 'usm_touch')['pages_mapped']"))"
done
