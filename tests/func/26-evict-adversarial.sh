#!/bin/bash
# Eviction while the program changes its address space under it: threads
# that MADV_DONTNEED, munmap, mremap or mprotect ranges the reclaimer is
# evicting,
# a timer signal whose handler reads swapped-out pages, a fork storm over
# swapped pages (children that check and exit, or exec), forks while idle
# threads' descriptors are swapped out, copy-on-write
# memory written by parent and child, a child whose parent exits at once.
# Every byte is checked (tests/progs/usm_evict_adv.c); frames and slots
# return to zero after exit.  Then usmd is killed while a thread waits in
# MADV_DONTNEED for it: the agent must still put every swapped-out page back.
# timeout: 120
. "$(dirname "$0")/lib.sh"
ADV=$PROGS/usm_evict_adv
need_prog "$ADV"

BUDGET=32
DEV="zmem - 256M"

# adv_run MODE ARGS...: usm_evict_adv under a fresh embedded instance.
adv_run() { evict_adv_run "" $BUDGET "$DEV" "$@"; }

adv_run dontneed --mb 64 --threads 4 --secs 3
adv_run munmap --mb 64 --threads 4 --secs 3
adv_run mremap --mb 64 --threads 4 --secs 3
adv_run mprotect --mb 64 --threads 4 --secs 3
adv_run signals --mb 64 --threads 4 --secs 3
adv_run fork --mb 64 --threads 2 --forks 24
# Threads asleep and exited long enough for their descriptors to be
# swapped out: a child's glibc walks them inside fork.
adv_run forkidle --mb 64 --threads 4 --forks 8
assert_grep "$T/forkidle.out" "^adv: descriptor pages out before fork: [1-9]" \
	"forkidle: descriptor pages were swapped out when it forked"
# The same with stacks the program allocated (pthread_attr_setstack): the
# child's glibc does not read those descriptors.
adv_run forkuser --mb 64 --threads 4 --forks 8
assert_grep "$T/forkuser.out" "^adv: descriptor pages out before fork: [1-9]" \
	"forkuser: descriptor pages were swapped out when it forked"
adv_run cow --mb 64

# A child whose parent exits at once, under a daemon (usm run returns when
# the parent exits): it checks and rewrites the array it inherited.
printf 'memory %s\nswapdev %s\n' $BUDGET "$DEV" >"$T/k.cfg"
start_daemon k -c "$T/k.cfg"
run_limited 60 "$T/orphan.out" "$USM" run -i k -- "$ADV" orphan --mb 64
assert_status 0 "$RC" "usm_evict_adv orphan (the parent)" "$T/orphan.out" "$T/orphan.out.err"
wait_for 60 "the orphan finished" grep -q "^adv: " "$T/orphan.out" || fail "the orphan never reported"
assert_grep "$T/orphan.out" "^adv: OK orphan [0-9]+ pages verified$" "orphan: every page checked"
wait_no_live k 30
stats_json k "$T/orphan.json"
json_check "$T/orphan.json" "d['evicted'] > 0" "orphan: pages were evicted"
json_check "$T/orphan.json" "d['frames_in_use'] == 0 and d['swapped_now'] == 0" \
	"orphan: no frame or swapped page held after exit"
json_check "$T/orphan.json" "d['swap']['slots_used'] == 0" "orphan: no swap slot held after exit"

# usmd dies while a thread waits for it to read a MADV_DONTNEED event:
# until somebody reads it, the kernel refuses to put pages back (EAGAIN).
export USM_AGENT_TIMEOUT_MS=30000
start_bg "$T/blocked.out" "$USM" run -i k -- "$ADV" blocked --mb 96 --threads 1 \
	--ready "$T/ready" --go "$T/go"
run=$BG_PID
wait_for 60 "the program wrote its memory" test -e "$T/ready" || fail "no ready file"
stats_json k "$T/k.json"
json_check "$T/k.json" "d['swapped_now'] > 1000" "pages are swapped out when usmd stops"
kill -STOP "$(daemon_pid k)"
touch "$T/go"
sleep 0.5
kill -9 "$(daemon_pid k)"
forget_daemon k
wait_bg "$run" 60
assert_status 0 "$BG_STATUS" "usm_evict_adv blocked after the kill" "$T/blocked.out" "$T/blocked.out.err"
assert_grep "$T/blocked.out" "^adv: OK blocked [0-9]+ pages verified$" "every page read back after the kill"
assert_grep "$T/blocked.out.err" "usm-agent\[[0-9]+\]: restored [0-9]+ swapped-out page\(s\)$" \
	"the agent restored the swapped-out pages"
