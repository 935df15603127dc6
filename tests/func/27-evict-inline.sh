#!/bin/bash
# Eviction in the in-process host (usm run --inline): the same programs
# and checks as the daemon host's eviction tests (24, 26, 63), with the
# policies, the reclaimer and the compressed devices inside the program.
# Working sets of 2x and 4x the budget, sequential and random, 1 and 8
# threads, fork after eviction, mremap and munmap of swapped ranges, a
# per-process limit, prefetch, MADV_DONTNEED races, the access-tracking
# policies, the adversarial address-space changes and forks, and usmd
# killed or stopped while pages are swapped out.  Every page is checked;
# after exit no frame, swapped page or slot is held.
# timeout: 300
. "$(dirname "$0")/lib.sh"
need_prog "$EVICT"
ADV=$PROGS/usm_evict_adv
need_prog "$ADV"

BUDGET=32
ZMEM="zmem - 256M"

# evict_run NAME DEVICE ARGS...: usm_evict in-process under a fresh
# embedded instance.
evict_run() {
	local name=$1 dev=$2
	shift 2
	run_limited 120 "$T/$name.out" "$USM" run --inline --stats-json "$T/$name.json" \
		-o "memory $BUDGET" -o "swapdev $dev" -- "$EVICT" "$@"
	assert_status 0 "$RC" "usm_evict $* in-process on '$dev'" "$T/$name.out" "$T/$name.out.err"
}

# expect_ok NAME PAGES: as in the daemon host, and in-process.
expect_ok() {
	evict_expect_ok "$@"
	json_check "$T/$1.json" "procs(comm='usm_evict')[-1]['inline']" "$1: ran in-process"
}

i=0
for dev in "$ZMEM" "zmem - 256M codec=zstd"; do
	evict_run "seq2x-$i" "$dev" --mb $((BUDGET * 2))
	expect_ok "seq2x-$i" $((BUDGET * 2 * 256 * 2))
	evict_run "rand4x-$i" "$dev" --mb $((BUDGET * 4)) --rand
	expect_ok "rand4x-$i" $((BUDGET * 4 * 256 * 2))
	i=$((i + 1))
done
json_check "$T/seq2x-0.json" "d['swap']['stored'] > 0 and d['swap']['raw_bytes'] == 0" \
	"the process's own device reached the instance's stats"

evict_run threads "$ZMEM" --mb $((BUDGET * 4)) --threads 8 --rand
expect_ok threads $((BUDGET * 4 * 256 * 2))

# fork after eviction: the child brings its parent's swapped pages back
# from its own copy of the device.
evict_run fork "$ZMEM" --mb $((BUDGET * 2)) --threads 2 --fork
assert_grep "$T/fork.out" "^evict: child OK $((BUDGET * 2 * 256)) pages verified twice$" "the child saw its parent's data"
expect_ok fork $((BUDGET * 2 * 256 * 4))

P=$((BUDGET * 2 * 256))
evict_run remap "$ZMEM" --mb $((BUDGET * 2)) --remap --unmap
expect_ok remap $((2 * P + 2 * P + P / 2 - P / 8))

# A limit caps the process's lease: it evicts its own pages while the
# instance has room to spare.
run_limited 120 "$T/limit.out" "$USM" run --inline --stats-json "$T/limit.json" -o "memory 256" \
	-o "swapdev $ZMEM" -o "limit usm_evict 16" -- "$EVICT" --mb 48 --threads 2
assert_status 0 "$RC" "usm_evict in-process under limit usm_evict 16" "$T/limit.out" "$T/limit.out.err"
assert_grep "$T/limit.out" "^evict: OK $((48 * 256 * 2)) pages verified$" "limit: all page checks passed"
json_check "$T/limit.json" "procs(comm='usm_evict')[0]['frames_peak'] <= 16 * 256" \
	"limit: the process never held more than its 16 MiB"
json_check "$T/limit.json" "d['evicted'] > 0" "limit: pages were evicted"
evict_held_nothing limit

# Prefetch: one page per swap-in fault with prefetch 1; a sequential
# pass comes back in groups by default (readahead).
run_limited 120 "$T/pf1.out" "$USM" run --inline --stats-json "$T/pf1.json" -o "memory $BUDGET" \
	-o "swapdev $ZMEM" -o "set fifo.prefetch 1" -- "$EVICT" --mb $((BUDGET * 2))
assert_status 0 "$RC" "usm_evict in-process with set fifo.prefetch 1" "$T/pf1.out" "$T/pf1.out.err"
expect_ok pf1 $((BUDGET * 2 * 256 * 2))
json_check "$T/pf1.json" "d['swapped_in'] == d['swapin_faults']" "prefetch 1: one page per swap-in fault"
json_check "$T/seq2x-0.json" "d['swapped_in'] >= 16 * d['swapin_faults']" \
	"readahead: a sequential pass brings back at least 16 pages per swap-in fault"

# MADV_DONTNEED and a rewrite racing the eviction of the same page.
for r in 1 2; do
	run_limited 60 "$T/dn$r.out" "$USM" run --inline -o "memory $BUDGET" -o "swapdev $ZMEM" \
		-- "$PROGS/usm_dontneed" $((BUDGET * 2)) 4
	assert_status 0 "$RC" "usm_dontneed in-process round $r" "$T/dn$r.out" "$T/dn$r.out.err"
	assert_grep "$T/dn$r.out" "^dontneed: OK [0-9]+ operations, 0 wrong pages$" "no page lost its last write (round $r)"
done

# The policies that use access information: write tracking runs in the
# process too.
SW=$BUILD/bench/swapwork
need_prog "$SW"
for pol in clock s3fifo; do
	run_limited 90 "$T/sw-$pol.out" "$USM" run --inline --stats-json "$T/sw-$pol.json" \
		-o "memory $BUDGET" -o "swapdev $ZMEM" -o "swap_policy $pol" -- \
		"$SW" gups --ws-mb $((BUDGET * 2)) --ops 600000
	assert_status 0 "$RC" "swapwork gups in-process under swap_policy $pol" "$T/sw-$pol.out" "$T/sw-$pol.out.err"
	assert_grep "$T/sw-$pol.out" "verify=ok errors=0" "$pol: every word verified"
	json_check "$T/sw-$pol.json" "d['swap']['access_scans'] > 0 and d['evicted'] > 0" \
		"$pol: access scans ran while pages were evicted"
done

# The program changes its address space under eviction; forks over
# swapped pages (see 26-evict-adversarial.sh).
adv_run() { evict_adv_run --inline $BUDGET "$ZMEM" "$@"; }
adv_run dontneed --mb 64 --threads 4 --secs 3
adv_run munmap --mb 64 --threads 4 --secs 3
adv_run mremap --mb 64 --threads 4 --secs 3
adv_run mprotect --mb 64 --threads 4 --secs 3
adv_run signals --mb 64 --threads 4 --secs 3
adv_run fork --mb 64 --threads 2 --forks 24
adv_run forkidle --mb 64 --threads 4 --forks 8
adv_run cow --mb 64

# System calls on swapped-out memory: the kernel cannot wait for a fault
# in the in-process host, so the agent brings the memory in first and
# pins it (agent/pretouch.c).  usm_syscalls checks each result and that
# most calls really found their memory out.
SC=$PROGS/usm_syscalls
need_prog "$SC"
mkdir -p "$T/sc"
run_limited 120 "$T/sc.out" "$USM" run --inline --stats-json "$T/sc.json" -o "memory $BUDGET" \
	-o "swapdev $ZMEM" -- "$SC" $((BUDGET * 2)) "$T/sc"
assert_status 0 "$RC" "usm_syscalls in-process" "$T/sc.out" "$T/sc.out.err"
assert_grep "$T/sc.out" "^syscalls: OK 116 calls checked" "every system call's result checked"
json_check "$T/sc.json" "d['kernel_pages'] == 0" "no page went to the kernel (forks share the budget)"
out=$(sed -n 's/.* \([0-9]*\) on memory swapped out$/\1/p' "$T/sc.out")
[ "${out:-0}" -ge 58 ] || fail "only ${out:-0} of 116 calls found their memory swapped out"
ok "$out of 116 calls found their memory swapped out"

# Real programs: stress-ng (its alternate signal stacks are the
# kernel's) and python3, larger than the budget.
need_cmd stress-ng
run_limited 60 "$T/sng" "$USM" run --inline --stats-json "$T/sng.json" -o 'memory 256' \
	-o "swapdev zmem - 1G" -- "$(command -v stress-ng)" --vm 2 --vm-bytes 512M --verify -t 8s
cat "$T/sng.err" >>"$T/sng"
assert_status 0 "$RC" "stress-ng --vm 2 --vm-bytes 512M --verify in-process, 256 MiB" "$T/sng"
assert_grep "$T/sng" 'successful run completed in [0-9.]+s' "stress-ng: successful run completed"
assert_no_grep "$T/sng" 'fail|error|unsuccessful|verif' "stress-ng reported no failure" -i
json_check "$T/sng.json" "d['evicted'] > 0 and d['swapped_in'] > 0" "stress-ng: pages were evicted and swapped in"
"$PY" "$BUILD1G" >"$T/py.want" || fail "native python3 failed"
run_limited 120 "$T/py" "$USM" run --inline --stats-json "$T/py.json" -o 'memory 256' \
	-o "swapdev zmem - 2G" -- "$PY" "$BUILD1G"
assert_status 0 "$RC" "python3 building 1 GiB in-process under a 256 MiB budget" "$T/py" "$T/py.err"
assert_same "$T/py.want" "$T/py" "python3: same output as a native run"
json_check "$T/py.json" "d['evicted'] >= 150000 and d['frames_peak'] <= d['memory_frames']" \
	"python3: >= 150000 pages evicted, the budget held"

# Two programs that fit neither in the budget nor on their devices: the
# instance shares the budget out between them (it asks the one holding it
# all for half back), and when both are stuck `oom kill` takes the lower
# priority.  The other finishes with every page right.
# (Each process's compressed device is its own: 12 MiB each here.)
evict_oom_two full "memory 32" "swapdev zmem - 12M" "host inline" "oom kill" \
	"priority lowprio 1" "priority highprio 10"

# usmd killed, or stopped, while pages are swapped out: the in-process
# host puts every page back from its own device before the memory goes
# to the kernel, and the program reads every byte it wrote.
MB=96
export USM_AGENT_TIMEOUT_MS=30000
# pushed_out NAME: the process's pushed counters (about once a second)
# show pages swapped out.
pushed_out() {
	"$USM" stat -i "$1" --json >"$T/$1.json" 2>/dev/null &&
		json_true "$T/$1.json" "d['swapped_now'] > 0"
}
for how in kill stop; do
	printf 'memory 32\nswapdev %s\nhost inline\n' "$ZMEM" >"$T/$how.cfg"
	start_daemon $how -c "$T/$how.cfg"
	rm -f "$T/$how.ready"
	start_bg "$T/$how.out" "$USM" run -i $how -- "$EVICT" --mb $MB --threads 2 --rand \
		--passes 1 --ready "$T/$how.ready" --hold-ms 3000
	run=$BG_PID
	wait_for 60 "the program wrote its $MB MiB" test -e "$T/$how.ready" || fail "no ready file"
	wait_for 10 "its counters reached the instance" pushed_out $how ||
		fail "no swapped-out pages in the counters of the in-process host ($how)"
	json_check "$T/$how.json" "procs(comm='usm_evict')[0]['inline']" "$how: the program runs in-process"
	json_check "$T/$how.json" "d['swapped_now'] > 0" "pages are swapped out when usmd goes ($how)"
	if [ $how = kill ]; then
		kill -9 "$(daemon_pid $how)"
		forget_daemon $how
	else
		stop_daemon $how
	fi
	wait_bg "$run" 60
	assert_status 0 "$BG_STATUS" "usm_evict after usmd's $how" "$T/$how.out" "$T/$how.out.err"
	assert_grep "$T/$how.out" "^evict: OK $((MB * 256)) pages verified$" "every page read back after the $how"
	assert_grep "$T/$how.out.err" "restored [0-9]+ swapped-out page\(s\)$" \
		"the in-process host restored the swapped-out pages ($how)"
done
