#!/bin/bash
# bench/swapwork, the eviction benchmark's workload program: each workload
# (gups, scan, zipf; 1 and 3 threads) verifies its working set and exits 0;
# a flipped bit or a stale page/value (--corrupt, --corrupt=stale) makes the
# verification fail with exit status 1; and it runs unmodified under
# `usm run`, with its faults served by USM.
# timeout: 120
. "$(dirname "$0")/lib.sh"
SW=$BUILD/bench/swapwork
need_prog "$SW"

# result_field FILE KEY: the value of KEY= on the result line
result_field() { sed -n "s/^result .* $2=\([^ ]*\).*/\1/p" "$1"; }

for w in gups scan zipf; do
	for thr in 1 3; do
		what="swapwork $w --threads $thr"
		run_limited 30 "$T/out" "$SW" $w --ws-mb 16 --ops 300000 --threads $thr
		assert_status 0 "$RC" "$what" "$T/out" "$T/out.err"
		assert_eq ok "$(result_field "$T/out" verify)" "$what: verify"
		assert_eq 300000 "$(result_field "$T/out" ops)" "$what: ops done"
		[ "$(result_field "$T/out" lat_samples)" -gt 0 ] || fail "$what: no latency samples"
		for c in --corrupt --corrupt=stale; do
			run_limited 30 "$T/out" "$SW" $w --ws-mb 16 --ops 300000 --threads $thr $c
			assert_status 1 "$RC" "$what $c: verification fails" "$T/out" "$T/out.err"
			assert_eq FAILED "$(result_field "$T/out" verify)" "$what $c: verify"
			assert_grep "$T/out.err" 'verify: ' "$what $c: the mismatch is reported"
		done
	done
	# --seconds stops the run by time, and the verification still holds.
	run_limited 30 "$T/out" "$SW" $w --ws-mb 16 --seconds 0.5 --threads 2
	assert_status 0 "$RC" "swapwork $w --seconds 0.5" "$T/out" "$T/out.err"
	assert_eq ok "$(result_field "$T/out" verify)" "swapwork $w --seconds 0.5: verify"
done
# zipf: every op is a GET or a SET, about 10% SETs (--get-pct 90).
run_limited 30 "$T/out" "$SW" zipf --ws-mb 16 --ops 200000 --get-pct 90
gets=$(result_field "$T/out" gets)
sets=$(result_field "$T/out" sets)
assert_eq 200000 "$((gets + sets))" "zipf: gets + sets = ops"
[ "$sets" -gt 15000 ] && [ "$sets" -lt 25000 ] || fail "zipf: $sets SETs of 200000 ops, expected about 10%"
ok "zipf: $sets SETs of 200000 ops (about 10%)"

# Bad options are refused with a message naming them.
run_limited 10 "$T/out" "$SW" zipf --value-size 1000
assert_status 2 "$RC" "swapwork --value-size 1000"
assert_grep "$T/out.err" 'value-size expects a power of 2' "--value-size 1000: message"
run_limited 10 "$T/out" "$SW" sort
assert_status 2 "$RC" "swapwork sort"
assert_grep "$T/out.err" "unknown workload 'sort'" "unknown workload: message"

# Unmodified under USM (no eviction needed: the budget holds the set).
for w in gups scan zipf; do
	run_limited 60 "$T/out" "$USM" run -o 'memory 256' --stats-json "$T/s.json" -- \
		"${PIDWRAP[@]}" "$T/main.pid" "$SW" $w --ws-mb 32 --ops 200000 --threads 2
	assert_status 0 "$RC" "usm run -- swapwork $w" "$T/out" "$T/out.err"
	assert_eq ok "$(result_field "$T/out" verify)" "usm run -- swapwork $w: verify"
	main=$(cat "$T/main.pid")
	json_check "$T/s.json" "proc($main, 'swapwork')['faults'] >= 32 * 256" \
		"usm run -- swapwork $w: USM served a fault for each of the 8192 pages"
done
