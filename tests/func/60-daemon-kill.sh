#!/bin/bash
# kill -9 of usmd while a managed program is writing memory: the agent sees
# the hang-up, detaches, and the program finishes with every byte intact,
# long before the agent's silence timeout could have fired.  A new usmd of
# the same name then replaces the dead one's stale socket.
# timeout: 60
. "$(dirname "$0")/lib.sh"
need_prog "$MEMWRITER"

MB=384
"$MEMWRITER" --mb $MB --threads 2 >"$T/want" || fail "native memwriter failed"
start_daemon k
export USM_AGENT_TIMEOUT_MS=30000
start_bg "$T/out" "$USM" run -i k -- "${PIDWRAP[@]}" "$T/prog.pid" "$MEMWRITER" --mb $MB --ms 4000 --threads 2
run=$BG_PID
wait_for 5 "pid file written" test -s "$T/prog.pid" || fail "the program did not start"
prog=$(cat "$T/prog.pid")
wait_mapped k "$prog" $((MB * 256 / 5))
kill -0 "$prog" 2>/dev/null || fail "the program finished before the kill (too fast to test)"
kill -9 "$(daemon_pid k)"
killed=$(now_ms)
log "killed usmd -i k (pid $(daemon_pid k)) while pid $prog was running"
forget_daemon k
assert_eq 137 $? "usmd exit status (SIGKILL)"

wait_bg "$run" 25
took=$(($(now_ms) - killed))
log "the program finished $took ms after the kill (agent timeout $USM_AGENT_TIMEOUT_MS ms)"
assert_status 0 "$BG_STATUS" "usm run -i k -- usm_memwriter" "$T/out" "$T/out.err"
assert_same "$T/want" "$T/out" "every byte verified, same checksum as a native run"
assert_grep "$T/out.err" "usm-agent\[$prog\]: the instance went away; continuing unmanaged" \
	"the agent detached because the instance went away"
[ "$took" -lt 10000 ] || fail "the program took $took ms after the kill: it waited for a timeout instead of the hang-up"
ok "finished $took ms after the kill (< 10000 ms, timeout 30000 ms)"

# The dead instance's socket file is stale: a new instance takes the name.
[ -S "$USM_RUNTIME_DIR/k.sock" ] && log "stale socket left by the killed usmd"
start_daemon k
run_limited 30 "$T/out2" "$USM" run -i k --stats-json "$T/after.json" -- "$MEMWRITER" --mb 16
assert_status 0 "$RC" "usm run under the new usmd -i k" "$T/out2" "$T/out2.err"
json_check "$T/after.json" "len(procs(comm='usm_memwriter')) == 1 and procs(comm='usm_memwriter')[0]['pages_mapped'] >= 16 * 256" \
	"the new instance manages programs again"
stop_daemon k
