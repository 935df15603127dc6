#!/bin/bash
# A full budget with `oom kill`: two programs whose memory does not fit in
# the 64 MiB budget together; the one with the lower `priority` is killed
# (SIGKILL), its frames free up, and the higher-priority one, which fits
# alone, completes correctly.
# timeout: 60
. "$(dirname "$0")/lib.sh"
need_prog "$MEMWRITER"

# The config matches processes by name (comm): two copies of memwriter.
cp "$MEMWRITER" "$T/lowprio"
cp "$MEMWRITER" "$T/highprio"
cat >"$T/oom.cfg" <<EOCFG
memory 64
oom kill
priority lowprio 1
priority highprio 10
EOCFG
"$MEMWRITER" --mb 40 >"$T/want" || fail "native memwriter failed"
start_daemon ok -c "$T/oom.cfg"

# lowprio takes 40 MiB of the 64 and holds it.
start_bg "$T/low.out" "$USM" run -i ok -- "${PIDWRAP[@]}" "$T/low.pid" \
	"$T/lowprio" --mb 40 --ready "$T/low.ready" --hold-ms 30000
low_run=$BG_PID
wait_for 10 "lowprio holds its 40 MiB" test -e "$T/low.ready" || fail "lowprio did not get its memory"
low=$(cat "$T/low.pid")
stats_json ok "$T/before.json"
json_check "$T/before.json" "proc($low, 'lowprio')['frames_in_use'] >= 40 * 256" "lowprio holds >= 40 MiB of frames"

# highprio needs 40 MiB too: the budget runs out, lowprio must go.
run_limited 30 "$T/high.out" "$USM" run -i ok -- "${PIDWRAP[@]}" "$T/high.pid" "$T/highprio" --mb 40
assert_status 0 "$RC" "highprio (priority 10)" "$T/high.out" "$T/high.out.err" "$T/usmd-ok.log"
assert_same "$T/want" "$T/high.out" "highprio verified all its memory"
high=$(cat "$T/high.pid")

wait_bg "$low_run" 10
assert_status 137 "$BG_STATUS" "lowprio (priority 1): killed by SIGKILL" "$T/low.out" "$T/low.out.err"
[ ! -s "$T/low.out" ] || fail "lowprio printed a result although it was to be killed: $(cat "$T/low.out")"
assert_grep "$T/usmd-ok.log" "killed pid $low \(lowprio, priority 1, [0-9]+ frames\): instance out of frames" \
	"usmd logged the kill of lowprio"
assert_no_grep "$T/usmd-ok.log" "killed pid $high " "usmd never killed highprio"

wait_no_live ok
stats_json ok "$T/after.json"
json_summary "$T/after.json"
json_check "$T/after.json" "d['oom'] == 'kill' and d['frames_peak'] <= d['memory_frames']" "frames never exceeded the budget"
json_check "$T/after.json" "proc($high, 'highprio')['pages_mapped'] >= 40 * 256" "highprio got its 40 MiB from USM"
json_check "$T/after.json" "proc($high, 'highprio')['kernel_pages'] == 0" "highprio got no kernel pages (oom kill, not kernel)"
json_check "$T/after.json" "d['frames_in_use'] == 0" "every frame returned to the pool"
stop_daemon ok
