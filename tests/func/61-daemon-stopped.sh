#!/bin/bash
# usmd stopped (SIGSTOP: stuck, not dead) while a managed program is writing
# memory: with USM_AGENT_TIMEOUT_MS=2000 the agent gives up on it, detaches
# and the program finishes correctly.  After SIGCONT the instance carries on
# and stops cleanly.
# timeout: 60
. "$(dirname "$0")/lib.sh"
need_prog "$MEMWRITER"

MB=384
"$MEMWRITER" --mb $MB --threads 2 >"$T/want" || fail "native memwriter failed"
start_daemon s
export USM_AGENT_TIMEOUT_MS=2000
start_bg "$T/out" "$USM" run -i s -- "${PIDWRAP[@]}" "$T/prog.pid" "$MEMWRITER" --mb $MB --ms 3000 --threads 2
run=$BG_PID
wait_for 5 "pid file written" test -s "$T/prog.pid" || fail "the program did not start"
prog=$(cat "$T/prog.pid")
wait_mapped s "$prog" $((MB * 256 / 5))
kill -0 "$prog" 2>/dev/null || fail "the program finished before the stop (too fast to test)"
kill -STOP "$(daemon_pid s)"
stopped=$(now_ms)
log "stopped usmd -i s (pid $(daemon_pid s)) while pid $prog was running"

wait_bg "$run" 25
took=$(($(now_ms) - stopped))
log "the program finished $took ms after SIGSTOP (agent timeout $USM_AGENT_TIMEOUT_MS ms)"
assert_status 0 "$BG_STATUS" "usm run -i s -- usm_memwriter" "$T/out" "$T/out.err"
assert_same "$T/want" "$T/out" "every byte verified, same checksum as a native run"
assert_grep "$T/out.err" "usm-agent\[$prog\]: the instance stopped answering; continuing unmanaged" \
	"the agent detached on its timeout"
[ "$took" -lt 12000 ] || fail "the program took $took ms after SIGSTOP (timeout 2000 ms)"
ok "finished $took ms after SIGSTOP"
grep -q . "$T/usmd-s.log" && log "usmd log so far: $(cat "$T/usmd-s.log")"

kill -CONT "$(daemon_pid s)"
# The instance notices the detached program and carries on.
wait_no_live s
stats_json s "$T/stats.json"
json_summary "$T/stats.json"
json_check "$T/stats.json" "proc($prog, 'usm_memwriter')['faults'] > 0" "the program had been attached to the instance"
json_check "$T/stats.json" "d['frames_in_use'] == 0 and d['frames_free'] == d['memory_frames']" \
	"its frames went back to the pool"
run_limited 30 "$T/out2" "$USM" run -i s -- "$MEMWRITER" --mb 16
assert_status 0 "$RC" "a new program under the resumed instance" "$T/out2" "$T/out2.err"
assert_no_grep "$T/out2.err" 'usm-agent' "the new program stayed attached"
stop_daemon s
