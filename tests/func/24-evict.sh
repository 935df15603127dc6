#!/bin/bash
# Eviction under the embedded instance: working sets of 2x and 4x the
# budget, written sequentially and in random order, by 1 and 8 threads, on
# every kind of swap device; every page is checked after every pass.  Then
# fork after eviction (parent and child each check, write, check again),
# mremap and munmap of partly swapped ranges.  After exit, every frame and
# every swap slot is free again.
# timeout: 240
. "$(dirname "$0")/lib.sh"
need_prog "$EVICT"

BUDGET=32
DEVICES=("zmem - 256M" "zmem - 256M codec=zstd" "file $T/swap.img 256M" "file $T/swap-direct.img 256M direct")

# evict_run NAME DEVICE ARGS...: run usm_evict under a fresh embedded instance.
evict_run() {
	local name=$1 dev=$2
	shift 2
	run_limited 120 "$T/$name.out" "$USM" run --stats-json "$T/$name.json" \
		-o "memory $BUDGET" -o "swapdev $dev" -- "$EVICT" "$@"
	assert_status 0 "$RC" "usm_evict $* on '$dev'" "$T/$name.out" "$T/$name.out.err"
}

expect_ok() { evict_expect_ok "$@"; }

# 2x and 4x the budget, sequential and random, on each device.
i=0
for dev in "${DEVICES[@]}"; do
	evict_run "seq2x-$i" "$dev" --mb $((BUDGET * 2))
	expect_ok "seq2x-$i" $((BUDGET * 2 * 256 * 2))
	evict_run "rand4x-$i" "$dev" --mb $((BUDGET * 4)) --rand
	expect_ok "rand4x-$i" $((BUDGET * 4 * 256 * 2))
	i=$((i + 1))
done

# 8 threads.
evict_run threads "${DEVICES[0]}" --mb $((BUDGET * 4)) --threads 8 --rand
expect_ok threads $((BUDGET * 4 * 256 * 2))

# fork after eviction: the child shares the parent's swapped pages.
evict_run fork "${DEVICES[2]}" --mb $((BUDGET * 2)) --threads 2 --fork
assert_grep "$T/fork.out" "^evict: child OK $((BUDGET * 2 * 256)) pages verified twice$" "the child saw its parent's data"
expect_ok fork $((BUDGET * 2 * 256 * 4))

# mremap and munmap of partly swapped ranges.
# Pages checked: 2 passes, 2 checks around the mremap, then the lower
# half less the eighth (a quarter of it) unmapped in its middle.
P=$((BUDGET * 2 * 256))
evict_run remap "${DEVICES[0]}" --mb $((BUDGET * 2)) --remap --unmap
expect_ok remap $((2 * P + 2 * P + P / 2 - P / 8))

# A per-process limit below the instance budget: the process is held to
# it (its own pages are evicted) while the instance has room to spare.
run_limited 120 "$T/limit.out" "$USM" run --stats-json "$T/limit.json" -o "memory 256" \
	-o "swapdev ${DEVICES[0]}" -o "limit usm_evict 16" -- "$EVICT" --mb 48 --threads 2
assert_status 0 "$RC" "usm_evict under limit usm_evict 16" "$T/limit.out" "$T/limit.out.err"
assert_grep "$T/limit.out" "^evict: OK $((48 * 256 * 2)) pages verified$" "limit: all page checks passed"
json_check "$T/limit.json" "procs(comm='usm_evict')[0]['frames_peak'] <= 16 * 256" \
	"limit: the process never held more than its 16 MiB"
json_check "$T/limit.json" "d['evicted'] > 0 and d['frames_in_use'] == 0 and d['swap']['slots_used'] == 0" \
	"limit: pages were evicted, nothing left after exit"

# Swap-in prefetch under policy control.  prefetch 1: one page per
# swap-in fault.
run_limited 120 "$T/pf1.out" "$USM" run --stats-json "$T/pf1.json" -o "memory $BUDGET" \
	-o "swapdev ${DEVICES[0]}" -o "set fifo.prefetch 1" -- "$EVICT" --mb $((BUDGET * 2))
assert_status 0 "$RC" "usm_evict with set fifo.prefetch 1" "$T/pf1.out" "$T/pf1.out.err"
expect_ok pf1 $((BUDGET * 2 * 256 * 2))
json_check "$T/pf1.json" "d['swapped_in'] == d['swapin_faults']" \
	"prefetch 1: one page per swap-in fault"
# The default, auto: readahead on sequential streams only; a sequential
# pass comes back in groups, strided access (never two neighbours in a
# row) one page per fault, exactly.
json_check "$T/seq2x-0.json" "d['swapped_in'] >= 16 * d['swapin_faults']" \
	"readahead (default): a sequential pass brings back at least 16 pages per swap-in fault"
run_limited 120 "$T/ra-rand.out" "$USM" run --stats-json "$T/ra-rand.json" -o "memory $BUDGET" \
	-o "swapdev ${DEVICES[0]}" -o "set fifo.prefetch auto" -- "$EVICT" --mb $((BUDGET * 2)) --rand
assert_status 0 "$RC" "usm_evict --rand with set fifo.prefetch auto" "$T/ra-rand.out" "$T/ra-rand.out.err"
expect_ok ra-rand $((BUDGET * 2 * 256 * 2))
json_check "$T/ra-rand.json" "d['swapped_in'] == d['swapin_faults']" \
	"readahead: strided access brings back only the faulting page"
# fifo with the aligned group of 8 around each fault; the sequential
# re-reads use them (pf1 is the same run without prefetch).
run_limited 120 "$T/pf.out" "$USM" run --stats-json "$T/pf.json" -o "memory $BUDGET" \
	-o "swapdev ${DEVICES[0]}" -o "set fifo.prefetch 8" -- "$EVICT" --mb $((BUDGET * 2))
assert_status 0 "$RC" "usm_evict with set fifo.prefetch 8" "$T/pf.out" "$T/pf.out.err"
assert_grep "$T/pf.out" "^evict: OK $((BUDGET * 2 * 256 * 2)) pages verified$" "prefetch: all page checks passed"
json_check "$T/pf.json" "d['swapped_in'] >= 4 * d['swapin_faults']" \
	"prefetch 8: at least 4 pages come back per swap-in fault"
json_check "$T/pf.json" "d['swapin_faults'] * 2 <= $(json_eval "$T/pf1.json" "d['swapin_faults']")" \
	"prefetch 8: at most half the swap-in faults of prefetch 1"

# MADV_DONTNEED and a rewrite racing the eviction of the same page: the
# new value is never lost (a request naming the old page is called off).
for r in 1 2; do
	run_limited 60 "$T/dn$r.out" "$USM" run -o "memory $BUDGET" -o "swapdev ${DEVICES[0]}" \
		-- "$PROGS/usm_dontneed" $((BUDGET * 2)) 4
	assert_status 0 "$RC" "usm_dontneed round $r" "$T/dn$r.out" "$T/dn$r.out.err"
	assert_grep "$T/dn$r.out" "^dontneed: OK [0-9]+ operations, 0 wrong pages$" "no page lost its last write (round $r)"
done

# The policies that ask for access information (clock, s3fifo) turn on
# write tracking: pages are write-protected by PAGEMAP_SCAN while the agent
# moves them out.  Random 8-byte updates, every page verified after.
SW=$BUILD/bench/swapwork
if [ -x "$SW" ]; then
	for pol in clock s3fifo; do
		run_limited 90 "$T/sw-$pol.out" "$USM" run --stats-json "$T/sw-$pol.json" -o "memory $BUDGET" \
			-o "swapdev ${DEVICES[0]}" -o "swap_policy $pol" -- "$SW" gups --ws-mb $((BUDGET * 2)) --ops 600000
		assert_status 0 "$RC" "swapwork gups under swap_policy $pol" "$T/sw-$pol.out" "$T/sw-$pol.out.err"
		assert_grep "$T/sw-$pol.out" "verify=ok errors=0" "$pol: every word verified"
		json_check "$T/sw-$pol.json" "d['swap']['access_scans'] > 0 and d['evicted'] > 0" \
			"$pol: access scans ran while pages were evicted"
	done
else
	log "no $SW: the access-tracking runs are skipped"
fi
