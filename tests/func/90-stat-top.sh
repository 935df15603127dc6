#!/bin/bash
# usm stat, usm stat --json and usm top against a running usmd with a live
# managed process: each shows that process, with consistent counters.
# timeout: 60
. "$(dirname "$0")/lib.sh"
need_prog "$MEMWRITER"

start_daemon st -o 'memory 1024'
dpid=$(daemon_pid st)
start_bg "$T/prog.out" "$USM" run -i st -- "${PIDWRAP[@]}" "$T/prog.pid" \
	"$MEMWRITER" --mb 64 --ready "$T/ready" --hold-ms 4000
run=$BG_PID
wait_for 10 "the program holds its 64 MiB" test -e "$T/ready" || fail "the program did not get its memory"
prog=$(cat "$T/prog.pid")

# usm stat (text)
"$USM" stat -i st >"$T/stat.txt" 2>"$T/stat.err"
assert_status 0 $? "usm stat -i st" "$T/stat.txt" "$T/stat.err"
cat "$T/stat.txt"
assert_grep "$T/stat.txt" "^instance st \(pid $dpid, up [0-9.]+ s\): 1 worker\(s\), hybrid \(50 us\), policy first_fit" "usm stat: instance header"
assert_grep "$T/stat.txt" "^  budget   262144 frames of 4096 B \(1024 MiB\)" "usm stat: budget line"
assert_grep "$T/stat.txt" "^ +$prog usm_memwriter +[a-z_()]+ +live +[0-9]+ +[0-9]+ +[0-9]+ " "usm stat: the live process is listed"
# usm stat with no -i lists every instance of the runtime directory
"$USM" stat >"$T/stat-all.txt" 2>&1
assert_status 0 $? "usm stat (all instances)" "$T/stat-all.txt"
assert_grep "$T/stat-all.txt" "^instance st \(pid $dpid" "usm stat with no -i shows instance st"
assert_grep "$T/stat-all.txt" "^ +$prog usm_memwriter .* live " "usm stat with no -i shows the live process"

# usm stat --json
stats_json st "$T/stat.json"
json_summary "$T/stat.json"
P="proc($prog, 'usm_memwriter')"
json_check "$T/stat.json" "d['instance'] == 'st' and d['pid'] == $dpid and d['memory_frames'] == 262144 and d['page_size'] == 4096" \
	"json: instance st, pid $dpid, 262144 frames of 4096 B"
json_check "$T/stat.json" "${P}['alive'] is True" "json: process $prog is alive"
json_check "$T/stat.json" "${P}['frames_in_use'] >= 64 * 256 and ${P}['pages_mapped'] >= 64 * 256 and ${P}['faults'] > 0" \
	"json: process $prog holds its 64 MiB in frames"
json_check "$T/stat.json" "${P}['attached_s'] > 0 and ${P}['rss_anon_pages_peak'] >= 64 * 256" "json: attached time and RSS peak sampled"
json_check "$T/stat.json" "d['memory_frames'] - d['frames_free'] == d['frames_in_use']" "json: free + in use = budget"
json_check "$T/stat.json" "d['frames_in_use'] == sum(p['frames_in_use'] for p in procs() if p['alive'])" \
	"json: instance frames in use = sum over live processes"
json_check "$T/stat.json" "d['faults'] == d['events']['fault'] and d['frames_peak'] >= d['frames_in_use']" "json: fault and peak counters agree"
json_check "$T/stat.json" "0 < d['latency_ns']['p50'] <= d['latency_ns']['p99'] <= d['latency_ns']['max']" "json: latency p50 <= p99 <= max"
json_check "$T/stat.json" "d['latency_ns']['max'] < 10 * 10**9 and ${P}['latency_ns']['max'] < 10 * 10**9" \
	"json: the slowest fault of a few-second run took < 10 s"

# usm top -n 2 -d 0.2
start=$(now_ms)
"$USM" top -i st -n 2 -d 0.2 >"$T/top.txt" 2>"$T/top.err"
assert_status 0 $? "usm top -i st -n 2 -d 0.2" "$T/top.txt" "$T/top.err"
took=$(($(now_ms) - start))
cat "$T/top.txt"
assert_eq 2 "$(grep -c "^instance st (pid $dpid" "$T/top.txt")" "usm top: number of refreshes"
assert_eq 2 "$(grep -cE "^ +$prog usm_memwriter .* live " "$T/top.txt")" "usm top: the live process in each refresh"
[ "$took" -ge 200 ] || fail "usm top -n 2 -d 0.2 returned after $took ms, before its 0.2 s delay"
ok "usm top waited between refreshes ($took ms)"
assert_no_grep "$T/top.txt" $'\033' "usm top prints no terminal escapes to a pipe"

wait_bg "$run" 20
assert_status 0 "$BG_STATUS" "the program" "$T/prog.out" "$T/prog.out.err"
assert_grep "$T/prog.out" '^memwriter: OK 64 MiB verified' "the program verified its memory"
wait_no_live st
"$USM" stat -i st >"$T/stat2.txt" || fail "usm stat after the exit failed"
assert_grep "$T/stat2.txt" "^ +$prog usm_memwriter +[a-z_()]+ +exit " "usm stat: the process is listed as exited"
stop_daemon st
