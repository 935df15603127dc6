#!/bin/bash
# `trace <comm> <file>` records a managed program's faults, swap-ins,
# evictions and frees; the counts in the file match the instance's
# counters exactly, and `usm sim` replays the file through the shipped
# policies.
# timeout: 120
. "$(dirname "$0")/lib.sh"
need_prog "$EVICT"

run_limited 60 "$T/out" "$USM" run --stats-json "$T/stats.json" -o 'memory 32' \
	-o 'swapdev zmem - 256M' -o "trace usm_evict $T/rec.trace" -- "$EVICT" --mb 64 --rand
assert_status 0 "$RC" "usm_evict with a trace" "$T/out" "$T/out.err"
assert_grep "$T/out" "^evict: OK 32768 pages verified$" "the traced program checked every page"
[ -s "$T/rec.trace" ] || fail "no trace file written"

for pol in fifo clock s3fifo; do
	run_limited 30 "$T/sim-$pol" "$USM" sim --trace "$T/rec.trace" --memory 32 --policy $pol
	assert_status 0 "$RC" "usm sim --policy $pol on the recorded trace" "$T/sim-$pol" "$T/sim-$pol.err"
done
cat "$T/sim-fifo"
evicted=$(json_eval "$T/stats.json" "d['evicted']")
swapins=$(json_eval "$T/stats.json" "d['swapped_in'] + d['swapcache_hits']")
mapped=$(json_eval "$T/stats.json" "procs(comm='usm_evict')[0]['pages_mapped']")
assert_grep "$T/sim-fifo" "^trace +$T/rec.trace: [0-9]+ records \(fault $mapped, swapin $swapins, access [0-9]+, free [0-9]+, evict $evicted ignored\)$" \
	"the trace holds exactly the faults ($mapped), swap-ins ($swapins) and evictions ($evicted) counted"
for pol in clock s3fifo; do
	assert_grep "$T/sim-$pol" "^$pol +[0-9]+ +[0-9.]+%$" "usm sim ran the $pol policy"
done
assert_grep "$T/sim-fifo" "^OPT +[0-9]+ +[0-9.]+%$" "usm sim computed Belady's optimum"
