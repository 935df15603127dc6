#!/bin/bash
# kill -9 of usmd while pages are swapped out, on each kind of swap device:
# the agent reads every swapped-out page back from the device (and any
# page in flight from the outbox), puts it in place, hands the memory to
# the kernel, and the program finds every byte it wrote.
# timeout: 120
. "$(dirname "$0")/lib.sh"
need_prog "$EVICT"

MB=96
i=0
for dev in "zmem - 256M" "zmem - 256M codec=zstd" "file $T/swap.img 256M" "file $T/swapd.img 256M direct"; do
	name=k$i
	printf 'memory 32\nswapdev %s\n' "$dev" >"$T/$name.cfg"
	start_daemon $name -c "$T/$name.cfg"
	export USM_AGENT_TIMEOUT_MS=30000
	rm -f "$T/$name.ready"
	start_bg "$T/$name.out" "$USM" run -i $name -- "${PIDWRAP[@]}" "$T/$name.pid" \
		"$EVICT" --mb $MB --threads 2 --rand --passes 1 --ready "$T/$name.ready" --hold-ms 3000
	run=$BG_PID
	wait_for 60 "the program wrote its $MB MiB" test -e "$T/$name.ready" || fail "no ready file"
	stats_json $name "$T/$name.json"
	json_check "$T/$name.json" "d['swapped_now'] > 0" "pages are swapped out on '$dev' when usmd dies"
	log "swapped out now: $(json_eval "$T/$name.json" "d['swapped_now']") pages"
	kill -9 "$(daemon_pid $name)"
	forget_daemon $name
	assert_eq 137 $? "usmd exit status (SIGKILL)"
	wait_bg "$run" 60
	assert_status 0 "$BG_STATUS" "usm_evict after the kill ('$dev')" "$T/$name.out" "$T/$name.out.err"
	assert_grep "$T/$name.out" "^evict: OK $((MB * 256)) pages verified$" "every page read back after the kill"
	assert_grep "$T/$name.out.err" "usm-agent\[[0-9]+\]: restored [0-9]+ swapped-out page\(s\)$" \
		"the agent restored the swapped-out pages"
	i=$((i + 1))
done

# `usm stop` (SIGTERM alike) with pages swapped out: the instance leaves
# them in the swap table and the agent puts them back.
printf 'memory 32\nswapdev zmem - 256M\n' >"$T/stop.cfg"
start_daemon st -c "$T/stop.cfg"
start_bg "$T/st.out" "$USM" run -i st -- "$EVICT" --mb $MB --passes 1 --ready "$T/st.ready" --hold-ms 3000
run=$BG_PID
wait_for 60 "the program wrote its $MB MiB" test -e "$T/st.ready" || fail "no ready file"
stats_json st "$T/st.json"
json_check "$T/st.json" "d['swapped_now'] > 0" "pages are swapped out when the instance is stopped"
stop_daemon st
wait_bg "$run" 60
assert_status 0 "$BG_STATUS" "usm_evict after usm stop" "$T/st.out" "$T/st.out.err"
assert_grep "$T/st.out" "^evict: OK $((MB * 256)) pages verified$" "every page read back after usm stop"

# A fork child whose parent exits at once still gets the parent's
# swapped-out pages (it names the parent by the pid that asked, not by
# getppid(), which is then 1).
printf 'memory 32\nswapdev zmem - 256M\n' >"$T/fe.cfg"
start_daemon fe -c "$T/fe.cfg"
for r in 1 2 3; do
	rm -f "$T/child.ready" "$T/child.out"
	run_limited 60 "$T/fe$r.out" "$USM" run -i fe -- "$EVICT" --mb 64 --passes 1 --fork-exit "$T/child.out"
	assert_status 0 "$RC" "usm_evict --fork-exit (round $r)" "$T/fe$r.out" "$T/fe$r.out.err"
	wait_for 30 "the orphaned child finished" test -s "$T/child.out" || fail "the child wrote no result"
	assert_grep "$T/child.out" "^evict: child OK 16384 pages verified$" "the orphaned child read its parent's data (round $r)"
done
stop_daemon fe
