#!/bin/bash
# kill -9 of usmd while an in-process host (--inline) writes memory: its
# faults never needed the daemon, but its frames are leased from it; the
# agent sees the hang-up, detaches, and the program finishes with every
# byte intact.
# timeout: 60
. "$(dirname "$0")/lib.sh"
need_prog "$MEMWRITER"

MB=384
"$MEMWRITER" --mb $MB --threads 2 >"$T/want" || fail "native memwriter failed"
start_daemon k
export USM_AGENT_TIMEOUT_MS=30000
start_bg "$T/out" "$USM" run --inline -i k -- "${PIDWRAP[@]}" "$T/prog.pid" "$MEMWRITER" --mb $MB --ms 4000 --threads 2
run=$BG_PID
wait_for 5 "pid file written" test -s "$T/prog.pid" || fail "the program did not start"
prog=$(cat "$T/prog.pid")
sleep 1
kill -0 "$prog" 2>/dev/null || fail "the program finished before the kill (too fast to test)"
kill -9 "$(daemon_pid k)"
killed=$(now_ms)
forget_daemon k
wait_bg "$run" 25
took=$(($(now_ms) - killed))
log "the program finished $took ms after the kill"
assert_status 0 "$BG_STATUS" "usm run --inline -i k -- usm_memwriter" "$T/out" "$T/out.err"
assert_same "$T/want" "$T/out" "every byte verified, same checksum as a native run"
assert_grep "$T/out.err" "usm-agent\[$prog\]: the instance went away; continuing unmanaged" \
	"the agent detached because the instance went away"
