#!/bin/bash
# Swap devices full: two programs whose data fits neither in the 32 MiB
# budget nor in the 24 MiB device together.  With `oom kill`, the one with
# the lower `priority` is killed through its pidfd with a clear log line,
# its frames and slots come back, and the other finishes with every page
# correct.  The daemon keeps running.
# timeout: 120
. "$(dirname "$0")/lib.sh"
need_prog "$EVICT"

cp "$EVICT" "$T/lowprio"
cp "$EVICT" "$T/highprio"
cat >"$T/oom.cfg" <<EOCFG
memory 32
swapdev zmem - 24M
oom kill
priority lowprio 1
priority highprio 10
EOCFG
start_daemon full -c "$T/oom.cfg"

# lowprio: 40 MiB (more than the budget, so part of it is swapped out),
# written once and held.  Its pages are incompressible.
start_bg "$T/low.out" "$USM" run -i full -- "${PIDWRAP[@]}" "$T/low.pid" \
	"$T/lowprio" --mb 40 --passes 1 --ready "$T/low.ready" --hold-ms 60000
low_run=$BG_PID
wait_for 30 "lowprio wrote its 40 MiB" test -e "$T/low.ready" || fail "lowprio did not get its memory"
low=$(cat "$T/low.pid")
stats_json full "$T/before.json"
json_check "$T/before.json" "d['swapped_now'] > 0" "part of lowprio is swapped out"

# highprio needs 40 MiB as well: budget and device cannot hold both.
run_limited 60 "$T/high.out" "$USM" run -i full -- "${PIDWRAP[@]}" "$T/high.pid" \
	"$T/highprio" --mb 40 --passes 2
assert_status 0 "$RC" "highprio (priority 10)" "$T/high.out" "$T/high.out.err" "$T/usmd-full.log"
assert_grep "$T/high.out" "^evict: OK $((40 * 256 * 2)) pages verified$" "highprio checked every page"
high=$(cat "$T/high.pid")

wait_bg "$low_run" 10
assert_status 137 "$BG_STATUS" "lowprio (priority 1): killed by SIGKILL" "$T/low.out" "$T/low.out.err"
assert_grep "$T/usmd-full.log" \
	"killed pid $low \(lowprio, priority 1, [0-9]+ frames\): instance out of frames and nothing left to evict \(oom kill\)" \
	"usmd logged the kill of lowprio and why"
assert_no_grep "$T/usmd-full.log" "killed pid $high " "usmd never killed highprio"

wait_no_live full
stats_json full "$T/after.json"
json_check "$T/after.json" "d['frames_peak'] <= d['memory_frames'] and d['kernel_pages'] == 0" \
	"the budget held, no kernel pages"
json_check "$T/after.json" "d['frames_in_use'] == 0 and d['swap']['slots_used'] == 0" \
	"every frame and slot came back"
stop_daemon full
