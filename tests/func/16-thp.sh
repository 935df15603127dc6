#!/bin/bash
# Real 2 MiB pages (policy thp), in both hosts: PMD-mapped (AnonHugePages
# as the kernel reports it), counted in the stats, zero-filled, correct
# next to 4 KiB windows at the mapping's ends, and through fork; a
# sequential stream mapped ahead (one fault for several 2 MiB windows),
# and not with ahead=0; two streaming threads; threads that fault into
# windows mapped ahead.
# timeout: 180
. "$(dirname "$0")/lib.sh"
need_prog "$TOUCH"
MEMFLT=$BUILD/bench/memflt
need_prog "$MEMFLT"
[ "$(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)" != "${THP_NEVER:-always madvise [never]}" ] ||
	skip "transparent huge pages are disabled on this machine"

MB=256
for host in "" --inline; do
	what="thp ${host:-daemon}"
	run_limited 60 "$T/out" "$USM" run $host -P thp --stats-json "$T/s.json" -- \
		"${PIDWRAP[@]}" "$T/main.pid" "$TOUCH" $MB 1
	assert_status 0 "$RC" "$what: usm_touch $MB 1" "$T/out" "$T/out.err"
	assert_grep "$T/out" '^usm_touch: OK$' "$what: every page right"
	main=$(cat "$T/main.pid")
	huge_kb=$(sed -n 's/^usm_touch: mapping AnonHugePages \([0-9]*\) kB$/\1/p' "$T/out")
	[ "${huge_kb:-0}" -ge $((MB * 1024 * 9 / 10)) ] || fail "$what: AnonHugePages $huge_kb kB < 90 % of $MB MiB"
	ok "$what: the kernel reports $huge_kb kB of PMD-mapped anonymous memory"
	json_check "$T/s.json" "proc($main, 'usm_touch')['huge_pages'] >= $MB // 2 * 9 // 10" \
		"$what: stats count the 2 MiB pages ($(json_eval "$T/s.json" "proc($main, 'usm_touch')['huge_pages']"))"
	# 128 windows in a stream: about one fault per 9 windows once it runs
	# (the program's own startup faults come on top).
	json_check "$T/s.json" "proc($main, 'usm_touch')['faults'] <= $MB // 2 // 4 + 30" \
		"$what: the stream is mapped ahead ($(json_eval "$T/s.json" "proc($main, 'usm_touch')['faults']") faults)"
	# Two threads streaming at once: one's page-table REMOVE holds up the
	# other's moves (EAGAIN) for a moment, which must not leave windows
	# to be faulted in page by page (4608 faults for one stream of 9).
	run_limited 120 "$T/out" "$USM" run $host -P thp --stats-json "$T/s.json" -- \
		"${PIDWRAP[@]}" "$T/main.pid" "$MEMFLT" mt --size-mb $MB --reps 4
	assert_status 0 "$RC" "$what: memflt mt, 4 x $MB MiB (every page verified)" "$T/out" "$T/out.err"
	main=$(cat "$T/main.pid")
	json_check "$T/s.json" "proc($main, 'memflt')['faults'] <= 4 * ($MB // 2 // 4) + 60" \
		"$what: two streams mapped ahead, no page-by-page windows ($(json_eval "$T/s.json" "proc($main, 'memflt')['faults']") faults)"
	run_limited 60 "$T/out" "$USM" run $host -P thp -o 'set thp.ahead 0' --stats-json "$T/s.json" -- \
		"${PIDWRAP[@]}" "$T/main.pid" "$TOUCH" $MB 1
	assert_grep "$T/out" '^usm_touch: OK$' "$what: ahead 0: every page right"
	main=$(cat "$T/main.pid")
	json_check "$T/s.json" "proc($main, 'usm_touch')['faults'] >= $MB // 2" \
		"$what: ahead 0: one fault per window ($(json_eval "$T/s.json" "proc($main, 'usm_touch')['faults']"))"
	# Every window was faulted first: the kernel's 4 KiB fault path left a
	# page table under it, which must be freed before the move (else the
	# page is split), without the planned pages being dropped.
	huge_kb=$(sed -n 's/^usm_touch: mapping AnonHugePages \([0-9]*\) kB$/\1/p' "$T/out")
	[ "${huge_kb:-0}" -ge $((MB * 1024 * 9 / 10)) ] || fail "$what: ahead 0: AnonHugePages $huge_kb kB < 90 % of $MB MiB"
	ok "$what: ahead 0: faulted windows are PMD-mapped too ($huge_kb kB)"
	json_check "$T/s.json" "proc($main, 'usm_touch')['pages_freed'] * 4096 < 2 << 20" \
		"$what: ahead 0: no planned window was dropped ($(json_eval "$T/s.json" "proc($main, 'usm_touch')['pages_freed']") pages freed)"
	USM_TOUCH_RANDOM=1 run_limited 60 "$T/out" "$USM" run $host -P thp -- "$TOUCH" $MB 1
	assert_grep "$T/out" '^usm_touch: OK$' "$what: random order: every page right"
	huge_kb=$(sed -n 's/^usm_touch: mapping AnonHugePages \([0-9]*\) kB$/\1/p' "$T/out")
	[ "${huge_kb:-0}" -ge $((MB * 1024 * 9 / 10)) ] || fail "$what: random order: AnonHugePages $huge_kb kB < 90 % of $MB MiB"
	ok "$what: random order: $huge_kb kB PMD-mapped"
	run_limited 60 "$T/out" "$USM" run $host -P thp -- "$TORTURE" --size-mb 64 threads
	assert_status 0 "$RC" "$what: torture threads" "$T/out" "$T/out.err"
	run_limited 60 "$T/out" "$USM" run $host -P thp -- "$TOUCH" 9 3 5
	assert_status 0 "$RC" "$what: unaligned 9 MiB, sparse" "$T/out" "$T/out.err"
	assert_grep "$T/out" '^usm_touch: OK$' "$what: unaligned mapping, sparse touch right"
	run_limited 60 "$T/out" "$USM" run $host -P thp -- "$TORTURE" --size-mb 64 mmap mremap munmap fork
	assert_status 0 "$RC" "$what: torture mmap mremap munmap fork" "$T/out" "$T/out.err"
done
