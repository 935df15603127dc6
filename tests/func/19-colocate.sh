#!/bin/bash
# mode colocate: a thread that faults alone is pinned to the CPU of its
# worker, and the worker to the same CPU; with two threads faulting nobody
# is pinned; two workers never share a CPU; a thread always gets its own CPU mask back: when the instance
# is killed (the agent does it), and in a fork child of a pinned thread.
# Every byte the programs write is checked.
# timeout: 240
. "$(dirname "$0")/lib.sh"
need_prog "$MEMWRITER"
need_cmd python3
[ "$(nproc)" -ge 2 ] || skip "needs at least 2 CPUs"

FULL=$(awk '/^Cpus_allowed_list/ {print $2}' /proc/self/status)
log "CPU mask of the test: $FULL"

# cpus PID TID: the thread's Cpus_allowed_list.
cpus() { awk '/^Cpus_allowed_list/ {print $2}' "/proc/$1/task/$2/status" 2>/dev/null; }

# pinned_threads PID: "tid:cpus" of every thread of PID not on the full mask.
pinned_threads() {
	local t c
	for t in /proc/"$1"/task/*; do
		c=$(cpus "$1" "${t##*/}")
		[ -n "$c" ] && [ "$c" != "$FULL" ] && echo "${t##*/}:$c"
	done
}

# worker_cpus PID: the CPU masks of usmd's workers, one per line, sorted.
worker_cpus() {
	local t
	for t in /proc/"$1"/task/*; do
		case "$(cat "$t/comm" 2>/dev/null)" in
		usm-worker*) cpus "$1" "${t##*/}" ;;
		esac
	done | sort
}

one_pinned() { [ "$(pinned_threads "$1" | wc -l)" = 1 ]; }

# pinned_with_worker PID USMD: one thread of PID pinned, on a worker's CPU.
pinned_with_worker() {
	local pin
	one_pinned "$1" || return 1
	pin=$(pinned_threads "$1")
	worker_cpus "$2" | grep -qx "${pin#*:}"
}

"$MEMWRITER" --mb 256 --threads 1 >"$T/want1" || fail "native memwriter failed"
"$MEMWRITER" --mb 256 --threads 2 >"$T/want2" || fail "native memwriter failed"
export USM_AGENT_TIMEOUT_MS=30000
start_daemon c -o 'mode colocate'
usmd=$(daemon_pid c)

# One thread faulting: it and the worker share one CPU.
start_bg "$T/one" "$USM" run -i c -- "${PIDWRAP[@]}" "$T/one.pid" "$MEMWRITER" --mb 256 --ms 3000 --threads 1
run=$BG_PID
wait_for 5 "pid file written" test -s "$T/one.pid" || fail "the program did not start"
prog=$(cat "$T/one.pid")
wait_for 5 "a thread of pid $prog pinned on a worker's CPU" pinned_with_worker "$prog" "$usmd" ||
	fail "no thread of the single-threaded writer pinned with a worker" \
	     "(threads: $(pinned_threads "$prog"); workers on: $(worker_cpus "$usmd" | tr '\n' ' '))"
wait_bg "$run" 30
assert_status 0 "$BG_STATUS" "usm run -i c -- usm_memwriter --threads 1" "$T/one" "$T/one.err"
assert_same "$T/want1" "$T/one" "single thread: every byte verified"

# Two threads faulting: nobody is pinned, and the worker is back on every CPU.
start_bg "$T/two" "$USM" run -i c -- "${PIDWRAP[@]}" "$T/two.pid" "$MEMWRITER" --mb 256 --ms 3000 --threads 2
run=$BG_PID
wait_for 5 "pid file written" test -s "$T/two.pid" || fail "the program did not start"
prog=$(cat "$T/two.pid")
sleep 1
for i in 1 2 3 4 5; do
	[ -z "$(pinned_threads "$prog")" ] || fail "two threads faulting, yet pinned: $(pinned_threads "$prog")"
	sleep 0.2
done
ok "two threads faulting: no thread pinned in 5 looks over 1 s"
[ -z "$(worker_cpus "$usmd" | grep -vx "$FULL")" ] ||
	fail "a worker is still pinned: $(worker_cpus "$usmd" | tr '\n' ' ')"
ok "every worker runs on every CPU again"
wait_bg "$run" 30
assert_status 0 "$BG_STATUS" "usm run -i c -- usm_memwriter --threads 2" "$T/two" "$T/two.err"
assert_same "$T/want2" "$T/two" "two threads: every byte verified"

# Two single-threaded programs on two workers: never both on one CPU.
# (Started without PIDWRAP: its shell would attach too, and move the
# writers' turn in the workers' round robin.)
start_daemon w2 -o 'workers 2' -o 'mode colocate'
start_bg "$T/a" "$USM" run -i w2 -- "$MEMWRITER" --mb 256 --ms 3000 --threads 1
run_a=$BG_PID
wait_for 5 "writer a started" pgrep -x usm_memwriter || fail "writer a did not start"
pa=$(pgrep -x usm_memwriter)
start_bg "$T/b" "$USM" run -i w2 -- "$MEMWRITER" --mb 256 --ms 3000 --threads 1
run_b=$BG_PID
wait_for 5 "writer b started" eval '[ "$(pgrep -x usm_memwriter | wc -l)" = 2 ]' || fail "writer b did not start"
pb=$(pgrep -x usm_memwriter | grep -vx "$pa")
wait_for 5 "both writers pinned" eval 'one_pinned '"$pa"' && one_pinned '"$pb" ||
	fail "not both pinned: a: $(pinned_threads "$pa"), b: $(pinned_threads "$pb")"
ca=$(pinned_threads "$pa")
cb=$(pinned_threads "$pb")
assert_ne "${ca#*:}" "${cb#*:}" "the two writers (and their workers) are on different CPUs ($ca, $cb)"
wait_bg "$run_a" 30
assert_status 0 "$BG_STATUS" "writer a under workers 2" "$T/a" "$T/a.err"
assert_same "$T/want1" "$T/a" "writer a: every byte verified"
wait_bg "$run_b" 30
assert_status 0 "$BG_STATUS" "writer b under workers 2" "$T/b" "$T/b.err"
assert_same "$T/want1" "$T/b" "writer b: every byte verified"
stop_daemon w2

# A pinned thread forks: the child starts on the thread's own mask.
cat >"$T/fork.py" <<'EOF'
import os, time
def cpus():
    for line in open('/proc/self/status'):
        if line.startswith('Cpus_allowed_list'):
            return line.split()[1]
keep, t0 = [], time.time()
while time.time() - t0 < 1.0:          # fault alone for a while
    b = bytearray(1 << 20)
    b[::4096] = b'\x01' * 256
    keep.append(b)
print('parent', cpus(), flush=True)
pid = os.fork()
if pid == 0:
    print('child', cpus(), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
print('sum', sum(sum(b[::4096]) for b in keep) == 256 * len(keep), flush=True)
EOF
run_limited 30 "$T/fork" "$USM" run -i c -- python3 "$T/fork.py"
assert_status 0 "$RC" "usm run -i c -- python3 fork.py" "$T/fork" "$T/fork.err"
assert_grep "$T/fork" "^sum True$" "the parent's pages read back"
parent=$(awk '$1 == "parent" {print $2}' "$T/fork")
[ "$parent" != "$FULL" ] || fail "the parent was not pinned when it forked ($parent): nothing tested"
ok "the parent forked while pinned to CPU $parent"
assert_grep "$T/fork" "^child $FULL$" "the fork child starts on the full mask"

# A pinned thread starts another: the new thread was born with the pinned
# mask, and gets the full one back once it faults.  It faults briefly and
# looks at once: a thread that goes on faulting alone for 100 ms is
# pinned in its turn (with 2048 faults, a slow run got there first).
cat >"$T/thread.py" <<'EOF'
import os, time, threading
keep, t0 = [], time.time()
while time.time() - t0 < 1.0:          # fault alone for a while
    b = bytearray(1 << 20)
    b[::4096] = b'\x01' * 256
    keep.append(b)
print('main', len(os.sched_getaffinity(0)), flush=True)
def later():
    x = bytearray(1 << 20)
    x[::4096] = b'\x02' * 256             # faults of its own
    time.sleep(0.02)
    print('thread', len(os.sched_getaffinity(0)), flush=True)
t = threading.Thread(target=later)
t.start()
t.join()
EOF
run_limited 30 "$T/thread" "$USM" run -i c -- python3 "$T/thread.py"
assert_status 0 "$RC" "usm run -i c -- python3 thread.py" "$T/thread" "$T/thread.err"
assert_grep "$T/thread" "^main 1$" "the main thread was pinned when it started the thread"
assert_grep "$T/thread" "^thread $(nproc)$" "the thread it started runs on every CPU again"

# kill -9 of usmd while a thread is pinned: the agent gives its mask back.
start_bg "$T/kill" "$USM" run -i c -- "${PIDWRAP[@]}" "$T/kill.pid" "$MEMWRITER" --mb 256 --ms 4000 --threads 1
run=$BG_PID
wait_for 5 "pid file written" test -s "$T/kill.pid" || fail "the program did not start"
prog=$(cat "$T/kill.pid")
wait_for 5 "a thread of pid $prog pinned" one_pinned "$prog" || fail "the writer was not pinned"
kill -9 "$usmd"
forget_daemon c
wait_for 5 "the pinned thread's mask given back" eval '[ -z "$(pinned_threads '"$prog"')" ]' ||
	fail "still pinned after the instance died: $(pinned_threads "$prog")"
wait_bg "$run" 30
assert_status 0 "$BG_STATUS" "usm_memwriter after usmd was killed" "$T/kill" "$T/kill.err"
assert_same "$T/want1" "$T/kill" "after the kill: every byte verified"
assert_grep "$T/kill.err" "the instance went away; continuing unmanaged" "the agent detached"

# The torture suite (threads, fork, exec, mremap, ...) under mode colocate.
# It takes about 5 s; it is given 120 s because a rare run under this
# mode has been seen to take several times as long (see the limits in
# docs/architecture.md §3).
need_prog "$TORTURE"
start_daemon t -o 'mode colocate'
run_limited 120 "$T/torture" "$USM" run -i t -- "$TORTURE" all
assert_status 0 "$RC" "usm run -i t -- usm_torture all" "$T/torture" "$T/torture.err" "$T/usmd-t.log"
assert_grep "$T/torture" '^torture: all: OK$' "torture under mode colocate: all OK"
wait_no_live t
stats_json t "$T/t.json"
json_check "$T/t.json" "d['mode'] == 'colocate'" "instance runs in mode colocate"
json_check "$T/t.json" "d['frames_in_use'] == 0" "every frame returned to the pool"
stop_daemon t
assert_no_grep "$T/usmd-t.log" ' error: |ERROR' "usmd logged no error"
