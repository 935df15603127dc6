#!/bin/bash
# One name, one instance: a second usmd of the same name refuses to start
# and leaves the first intact.  Two instances of different names run side
# by side, each managing only its own program.
# timeout: 60
. "$(dirname "$0")/lib.sh"
need_prog "$MEMWRITER"

start_daemon one -o 'memory 256'
timeout 10 "$USMD" -i one -o 'memory 128' >"$T/dup.out" 2>&1
rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ] || { show "$T/dup.out"; fail "second usmd -i one: status $rc, expected a refusal"; }
assert_grep "$T/dup.out" "instance 'one' is already running" "second usmd -i one refused: already running (status $rc)"
# The same through `usm daemon`.
timeout 10 "$USM" daemon -i one >"$T/dup2.out" 2>&1
rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ] || { show "$T/dup2.out"; fail "usm daemon -i one: status $rc, expected a refusal"; }
assert_grep "$T/dup2.out" "instance 'one' is already running" "usm daemon -i one refused: already running (status $rc)"
# The first one still owns the name, with its own config.
kill -0 "$(daemon_pid one)" || fail "the first usmd -i one died"
[ -S "$USM_RUNTIME_DIR/one.sock" ] || fail "the socket of instance one is gone"
stats_json one "$T/one0.json"
json_check "$T/one0.json" "d['pid'] == $(daemon_pid one) and d['memory_frames'] == 65536" \
	"instance one still answers from the first usmd (256 MiB)"

start_daemon two -o 'memory 512' -o 'workers 2'
start_bg "$T/a.out" "$USM" run -i one -- "${PIDWRAP[@]}" "$T/a.pid" "$MEMWRITER" --mb 96 --ms 1500
a=$BG_PID
start_bg "$T/b.out" "$USM" run -i two -- "${PIDWRAP[@]}" "$T/b.pid" "$MEMWRITER" --mb 80 --ms 1500 --threads 3
b=$BG_PID
wait_bg "$a" 30
assert_status 0 "$BG_STATUS" "program under instance one" "$T/a.out" "$T/a.out.err"
wait_bg "$b" 30
assert_status 0 "$BG_STATUS" "program under instance two" "$T/b.out" "$T/b.out.err"
"$MEMWRITER" --mb 96 >"$T/a.want" && "$MEMWRITER" --mb 80 >"$T/b.want" || fail "native memwriter failed"
assert_same "$T/a.want" "$T/a.out" "program under one: same output as a native run"
assert_same "$T/b.want" "$T/b.out" "program under two: same output as a native run"

wait_no_live one
wait_no_live two
stats_json one "$T/one.json"
stats_json two "$T/two.json"
json_summary "$T/one.json"
json_summary "$T/two.json"
json_check "$T/one.json" "d['instance'] == 'one' and d['memory_frames'] == 65536 and d['workers'] == 1" "instance one: 256 MiB, 1 worker"
json_check "$T/two.json" "d['instance'] == 'two' and d['memory_frames'] == 131072 and d['workers'] == 2" "instance two: 512 MiB, 2 workers"
# Each saw exactly its own program (the shell that wrote the pid file and
# the usm_memwriter it exec'd, one pid), nothing of the other's.
pa=$(cat "$T/a.pid")
pb=$(cat "$T/b.pid")
json_check "$T/one.json" "all(p['pid'] == $pa for p in procs()) and len(procs($pa, 'usm_memwriter')) == 1" \
	"instance one managed its program (pid $pa) and nothing else"
json_check "$T/two.json" "all(p['pid'] == $pb for p in procs()) and len(procs($pb, 'usm_memwriter')) == 1" \
	"instance two managed its program (pid $pb) and nothing else"
json_check "$T/one.json" "$(( 96 * 256 )) <= proc($pa, 'usm_memwriter')['pages_mapped'] < $(( 130 * 256 ))" \
	"instance one mapped the 96 MiB of its program, not the other's memory as well"
json_check "$T/two.json" "$(( 80 * 256 )) <= proc($pb, 'usm_memwriter')['pages_mapped'] < $(( 130 * 256 ))" \
	"instance two mapped the 80 MiB of its program, not the other's memory as well"
stop_daemon one
# Stopping one leaves the other running.
"$USM" stat -i two >/dev/null || fail "instance two stopped answering when one was stopped"
ok "instance two still answers after instance one stopped"
stop_daemon two
