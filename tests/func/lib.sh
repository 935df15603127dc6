# shellcheck shell=bash disable=SC2034  # (variables are for the tests)
# tests/func/lib.sh - helpers for the functional tests (source it).
#
# A test is `tests/func/NN-name.sh`, run by tests/run.sh with:
#   BUILD            the build directory (build, build-san, ...)
#   USM_RUNTIME_DIR  a directory of its own for instance sockets
#   USM_TEST_TMP     a scratch directory of its own
# It can also be run by hand:  BUILD=build bash tests/func/10-torture-embedded.sh
# (the two directories are then made here and removed on exit).
#
# Exit status: 0 pass, 1 fail, 77 skip.  Everything a test starts in the
# background goes through start_daemon/start_bg, so the EXIT trap can stop it.
# The helpers work with or without `set -e` in the test.

set -u
set -o pipefail

PY=/usr/bin/python3
TEST_NAME=$(basename "$0" .sh)

: "${BUILD:?BUILD must name the build directory (e.g. BUILD=build)}"
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "FAIL: no build directory '$BUILD'" >&2; exit 1; }
USM=$BUILD/bin/usm
USMD=$BUILD/bin/usmd
AGENT=$BUILD/lib/libusm-agent.so
PROGS=$BUILD/tests/progs
BUILD1G=$(dirname "${BASH_SOURCE[0]}")/../progs/build1g.py   # python3, 1 GiB
TORTURE=$PROGS/usm_torture
MEMWRITER=$PROGS/usm_memwriter
TOUCH=$PROGS/usm_touch
EVICT=$PROGS/usm_evict

_LIB_OWN_DIR=
if [ -z "${USM_RUNTIME_DIR:-}" ] || [ -z "${USM_TEST_TMP:-}" ]; then
	_LIB_OWN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/usm-$TEST_NAME.XXXXXX")
	export USM_RUNTIME_DIR=$_LIB_OWN_DIR/run
	export USM_TEST_TMP=$_LIB_OWN_DIR/tmp
	mkdir -p "$USM_TEST_TMP"
fi
export USM_RUNTIME_DIR USM_TEST_TMP
T=$USM_TEST_TMP
# Never let a test talk to a daemon of the machine or of another test.
unset USM_SOCKET USM_POLICY USM_REQUIRED USM_AGENT USM_AGENT_TIMEOUT_MS LD_PRELOAD

for _f in "$USM" "$USMD" "$AGENT"; do
	[ -e "$_f" ] || { echo "FAIL: $_f is missing (build first)" >&2; exit 1; }
done

# ---- reporting --------------------------------------------------------

log() { echo "# $*"; }
ok() { echo "ok: $*"; }

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

skip() {
	echo "SKIP: $*"
	exit 77
}

# Print a file with a header, for failure messages.
show() {
	local f
	for f in "$@"; do
		echo "---- $f" >&2
		if [ -e "$f" ]; then tail -n 40 "$f" >&2; else echo "(missing)" >&2; fi
	done
	echo "----" >&2
}

need_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || skip "$c is not installed"
	done
}

need_root() {
	[ "$(id -u)" = 0 ] || skip "needs root"
}

need_prog() {
	local p
	for p in "$@"; do
		[ -x "$p" ] || fail "$p is missing (build first)"
	done
}

# ---- assertions -------------------------------------------------------

# assert_eq WANT GOT WHAT
assert_eq() {
	[ "$1" = "$2" ] || fail "$3: expected '$1', got '$2'"
	ok "$3 = '$2'"
}

assert_ne() {
	[ "$1" != "$2" ] || fail "$3: expected anything but '$1'"
	ok "$3 != '$1'"
}

# assert_status WANT GOT WHAT [FILE...]: exit status, showing FILEs on failure
assert_status() {
	local want=$1 got=$2 what=$3
	shift 3
	if [ "$want" != "$got" ]; then
		[ $# -gt 0 ] && show "$@"
		fail "$what: exit status $got, expected $want"
	fi
	ok "$what: exit status $got"
}

# assert_grep FILE EXTENDED-REGEX WHAT [-i]: some line of FILE matches
assert_grep() {
	if ! grep -Eq ${4:-} -- "$2" "$1"; then
		show "$1"
		fail "$3: no line of $(basename "$1") matches /$2/"
	fi
	ok "$3"
}

# assert_grep_fixed FILE STRING WHAT
assert_grep_fixed() {
	if ! grep -Fq -- "$2" "$1"; then
		show "$1"
		fail "$3: $(basename "$1") does not contain '$2'"
	fi
	ok "$3"
}

# assert_no_grep FILE EXTENDED-REGEX WHAT [-i]: no line of FILE matches
assert_no_grep() {
	if grep -Eq ${4:-} -- "$2" "$1"; then
		show "$1"
		fail "$3: $(basename "$1") has a line matching /$2/: $(grep -Em1 ${4:-} -- "$2" "$1")"
	fi
	ok "$3"
}

# assert_same EXPECTED-FILE ACTUAL-FILE WHAT: byte-identical
assert_same() {
	if ! cmp -s "$1" "$2"; then
		echo "---- diff -u expected actual" >&2
		diff -u "$1" "$2" | head -n 40 >&2
		fail "$3: output differs from the expected output"
	fi
	ok "$3"
}

# ---- JSON (no jq: python3 from Debian) --------------------------------

# Python prelude for json_eval/json_check: d is the document; helpers:
#   procs(pid=None, comm=None)  process entries (a pid may appear twice: exec)
#   proc(pid, comm=None)        the single matching entry (error if not 1)
#   ratio(p)                    usm_pages_at_peak / rss_anon_pages_peak
_JSON_PRELUDE='
import json, sys
d = json.load(open(sys.argv[1]))
def procs(pid=None, comm=None):
    return [p for p in d.get("processes", [])
            if (pid is None or p["pid"] == int(pid)) and (comm is None or p["comm"] == comm)]
def proc(pid, comm=None):
    m = procs(pid, comm)
    if len(m) != 1:
        raise SystemExit("expected one process entry for pid %s comm %s, found %d" % (pid, comm, len(m)))
    return m[0]
def ratio(p):
    return p["usm_pages_at_peak"] / p["rss_anon_pages_peak"] if p["rss_anon_pages_peak"] else 0.0
def fmt(v):
    if isinstance(v, bool): return "true" if v else "false"
    if isinstance(v, float): return "%.4f" % v
    if isinstance(v, (list, tuple)): return " ".join(fmt(x) for x in v)
    return str(v)
'

# json_eval FILE PYTHON-EXPR: print the value
json_eval() {
	"$PY" -c "$_JSON_PRELUDE
print(fmt($2))" "$1" || fail "cannot evaluate '$2' on $1"
}

# json_check FILE PYTHON-EXPR WHAT: the expression must be true
json_check() {
	if ! "$PY" -c "$_JSON_PRELUDE
sys.exit(0 if ($2) else 3)" "$1"; then
		json_summary "$1" >&2
		fail "$3: false on $(basename "$1"): $2"
	fi
	ok "$3"
}

# json_true FILE PYTHON-EXPR: status 0 if true (no message; for polling)
json_true() {
	"$PY" -c "$_JSON_PRELUDE
sys.exit(0 if ($2) else 3)" "$1" 2>/dev/null
}

# A readable table of a stats JSON file.
json_summary() {
	"$PY" -c "$_JSON_PRELUDE
print('instance %s: workers %s mode %s oom %s frames %s free %s peak %s faults %s mapped %s kernel_pages %s' % (
    d.get('instance'), d.get('workers'), d.get('mode'), d.get('oom'), d.get('memory_frames'),
    d.get('frames_free'), d.get('frames_peak'), d.get('faults'), d.get('pages_mapped'), d.get('kernel_pages')))
print('%8s %-16s %-10s %5s %8s %9s %9s %9s %9s %9s %6s' % ('pid', 'comm', 'policy', 'alive', 'attached',
      'faults', 'mapped', 'fr_peak', 'rss_peak', 'usm@peak', 'ratio'))
for p in d.get('processes', []):
    print('%8d %-16s %-10s %5s %8.3f %9d %9d %9d %9d %9d %6.3f' % (p['pid'], p['comm'], p['policy'],
          p['alive'], p['attached_s'], p['faults'], p['pages_mapped'], p['frames_peak'],
          p['rss_anon_pages_peak'], p['usm_pages_at_peak'], ratio(p)))
" "$1" 2>&1 || cat "$1"
}

# stats_json INSTANCE FILE: `usm stat --json` of a running instance
stats_json() {
	"$USM" stat -i "$1" --json >"$2" 2>"$2.err" || { show "$2.err"; fail "usm stat -i $1 --json failed"; }
	"$PY" -c 'import json,sys; json.load(open(sys.argv[1]))' "$2" 2>"$2.err" ||
		{ show "$2" "$2.err"; fail "usm stat -i $1 --json printed invalid JSON"; }
}

# ---- waiting ----------------------------------------------------------

# wait_for SECONDS WHAT COMMAND...: poll COMMAND every 0.05 s until it succeeds
wait_for() {
	local secs=$1 what=$2 end
	shift 2
	end=$(($(date +%s%N) + secs * 1000000000))
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s%N)" -lt "$end" ] || return 1
		sleep 0.05
	done
	ok "$what"
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

_no_live() {
	"$USM" stat -i "$1" --json >"$T/.live-$1.json" 2>/dev/null &&
		json_true "$T/.live-$1.json" "not any(p['alive'] for p in procs())"
}

# wait_no_live NAME [SECONDS]: until instance NAME shows no live process
# (it learns of an exit a moment after the parent's wait returns).
wait_no_live() {
	wait_for "${2:-10}" "instance $1 has no live process left" _no_live "$1" ||
		fail "instance $1 still shows a live process after ${2:-10} s"
}

_mapped_at_least() {
	"$USM" stat -i "$1" --json >"$T/.mapped-$1.json" 2>/dev/null &&
		json_true "$T/.mapped-$1.json" "any(p['alive'] and p['pages_mapped'] >= $3 for p in procs($2))"
}

# wait_mapped NAME PID PAGES [SECONDS]: until live pid PID of instance NAME
# has had at least PAGES pages mapped by USM.
wait_mapped() {
	wait_for "${4:-10}" "pid $2 attached to $1 with >= $3 pages mapped" _mapped_at_least "$1" "$2" "$3" ||
		{ json_summary "$T/.mapped-$1.json" >&2; fail "pid $2 did not reach $3 mapped pages under instance $1 within ${4:-10} s"; }
}

# ---- eviction ---------------------------------------------------------

# evict_held_nothing NAME: after exit, $T/NAME.json shows no frame, swapped
# page or swap slot held.
evict_held_nothing() {
	json_check "$T/$1.json" "d['frames_in_use'] == 0 and d['swapped_now'] == 0" \
		"$1: no frame or swapped page held after exit"
	json_check "$T/$1.json" "d['swap']['slots_used'] == 0" "$1: no swap slot held after exit"
}

# evict_expect_ok NAME PAGES: usm_evict's exact verdict in $T/NAME.out,
# evictions, the budget kept, nothing left after exit.
evict_expect_ok() {
	assert_grep "$T/$1.out" "^evict: OK $2 pages verified$" "$1: all $2 page checks passed"
	assert_no_grep "$T/$1.out.err" "usm-agent" "$1: the agent never detached"
	json_check "$T/$1.json" "d['evicted'] > 0 and d['swapped_in'] > 0" "$1: pages were evicted and swapped in"
	json_check "$T/$1.json" "d['frames_peak'] <= d['memory_frames']" "$1: frames never exceeded the budget"
	json_check "$T/$1.json" "d['kernel_pages'] == 0" "$1: no page went to the kernel"
	evict_held_nothing "$1"
}

# evict_adv_run "USM-RUN-OPTIONS" BUDGET DEVICE MODE ARGS...: usm_evict_adv
# MODE under a fresh embedded instance; every page checked, evictions,
# nothing left after exit ($T/MODE.out, $T/MODE.json).
evict_adv_run() {
	local opts=$1 budget=$2 dev=$3 mode=$4
	shift 4
	# shellcheck disable=SC2086
	run_limited 90 "$T/$mode.out" "$USM" run $opts --stats-json "$T/$mode.json" \
		-o "memory $budget" -o "swapdev $dev" -- "$PROGS/usm_evict_adv" "$mode" "$@"
	assert_status 0 "$RC" "usm_evict_adv $mode $* $opts" "$T/$mode.out" "$T/$mode.out.err"
	assert_grep "$T/$mode.out" "^adv: OK $mode [0-9]+ pages verified$" "$mode: every page checked"
	assert_no_grep "$T/$mode.out.err" "usm-agent" "$mode: the agent never detached"
	json_check "$T/$mode.json" "d['evicted'] > 0" "$mode: pages were evicted"
	evict_held_nothing "$mode"
}

# evict_oom_two NAME CONFIG-LINES...: two programs that fit
# neither in the 32 MiB budget nor on the swap devices together, under
# instance NAME started with CONFIG-LINES (which must say `oom kill` and
# give lowprio priority 1, highprio 10): the lower priority is killed with
# a log line saying why, the other finishes with every page right, and
# every frame and slot comes back.
evict_oom_two() {
	local name=$1 low_run low high
	shift
	cp "$EVICT" "$T/lowprio"
	cp "$EVICT" "$T/highprio"
	printf '%s\n' "$@" >"$T/$name.cfg"
	start_daemon "$name" -c "$T/$name.cfg"
	start_bg "$T/low.out" "$USM" run -i "$name" -- "${PIDWRAP[@]}" "$T/low.pid" \
		"$T/lowprio" --mb 40 --passes 1 --ready "$T/low.ready" --hold-ms 60000
	low_run=$BG_PID
	wait_for 30 "lowprio wrote its 40 MiB" test -e "$T/low.ready" || fail "lowprio did not get its memory"
	low=$(cat "$T/low.pid")
	run_limited 60 "$T/high.out" "$USM" run -i "$name" -- "${PIDWRAP[@]}" "$T/high.pid" \
		"$T/highprio" --mb 40 --passes 2
	assert_status 0 "$RC" "highprio (priority 10)" "$T/high.out" "$T/high.out.err" "$T/usmd-$name.log"
	assert_grep "$T/high.out" "^evict: OK $((40 * 256 * 2)) pages verified$" "highprio checked every page"
	high=$(cat "$T/high.pid")
	wait_bg "$low_run" 10
	assert_status 137 "$BG_STATUS" "lowprio (priority 1): killed by SIGKILL" "$T/low.out" "$T/low.out.err"
	assert_grep "$T/usmd-$name.log" \
		"killed pid $low \(lowprio, priority 1, [0-9]+ frames\): instance out of frames and nothing left to evict \(oom kill\)" \
		"usmd logged the kill of lowprio and why"
	assert_no_grep "$T/usmd-$name.log" "killed pid $high " "usmd never killed highprio"
	wait_no_live "$name"
	stats_json "$name" "$T/after.json"
	json_check "$T/after.json" "d['frames_peak'] <= d['memory_frames'] and d['kernel_pages'] == 0" \
		"the budget held, no kernel pages"
	json_check "$T/after.json" "d['frames_in_use'] == 0 and d['swap']['slots_used'] == 0" \
		"every frame and slot came back"
	stop_daemon "$name"
}

# ---- background processes and daemons ---------------------------------

declare -A DAEMON_PID=()
BG_PIDS=()

# start_daemon NAME [usmd options...]: start usmd -i NAME, wait until it answers.
# Its stdout+stderr go to $T/usmd-NAME.log.
start_daemon() {
	local name=$1 pid
	shift
	"$USMD" -i "$name" "$@" >"$T/usmd-$name.log" 2>&1 &
	pid=$!
	DAEMON_PID[$name]=$pid
	local end=$(($(date +%s%N) + 10000000000))
	until "$USM" stat -i "$name" >/dev/null 2>&1; do
		if ! kill -0 "$pid" 2>/dev/null; then
			local rc=0
			wait "$pid" || rc=$?
			unset "DAEMON_PID[$name]"
			show "$T/usmd-$name.log"
			fail "usmd -i $name $* exited with status $rc while starting"
		fi
		[ "$(date +%s%N)" -lt "$end" ] || { show "$T/usmd-$name.log"; fail "usmd -i $name did not answer within 10 s"; }
		sleep 0.05
	done
	log "usmd -i $name $* running as pid $pid"
}

daemon_pid() { echo "${DAEMON_PID[$1]}"; }

# stop_daemon NAME: `usm stop`, then expect usmd to exit 0 within 10 s.
stop_daemon() {
	local name=$1 pid=${DAEMON_PID[$1]:-} rc
	[ -n "$pid" ] || fail "stop_daemon: no daemon '$name' was started"
	"$USM" stop -i "$name" >"$T/stop-$name.out" 2>&1 ||
		{ show "$T/stop-$name.out" "$T/usmd-$name.log"; fail "usm stop -i $name failed"; }
	if ! wait_for 10 "usmd -i $name exited after usm stop" eval "! kill -0 $pid"; then
		kill -9 "$pid" 2>/dev/null
		show "$T/usmd-$name.log"
		fail "usmd -i $name (pid $pid) did not exit within 10 s of usm stop"
	fi
	rc=0
	wait "$pid" || rc=$?
	unset "DAEMON_PID[$name]"
	[ "$rc" = 0 ] || { show "$T/usmd-$name.log"; fail "usmd -i $name exited with status $rc after usm stop"; }
	[ ! -e "$USM_RUNTIME_DIR/$name.sock" ] || fail "usmd -i $name left its socket behind"
}

# forget_daemon NAME: the test killed it itself; reap it and return its status.
forget_daemon() {
	local pid=${DAEMON_PID[$1]:-} rc=0
	wait "$pid" 2>/dev/null || rc=$?
	unset "DAEMON_PID[$1]"
	return $rc
}

# hang_report: what every process of this test is blocked in (threads
# sitting in handle_userfault wait for a fault nobody resolves).
hang_report() {
	local p pid t
	for p in /proc/[0-9]*; do
		pid=${p#/proc/}
		[ "$pid" = "$$" ] && continue
		grep -qzx "USM_RUNTIME_DIR=$USM_RUNTIME_DIR" "$p/environ" 2>/dev/null || continue
		echo "  pid $pid ($(cat "$p/comm" 2>/dev/null)):"
		for t in "$p"/task/*; do
			echo "    tid ${t##*/} $(cat "$t/comm" 2>/dev/null): $(tr -d '\0' <"$t/wchan" 2>/dev/null)"
		done
	done
}

# run_limited SECONDS OUT COMMAND...: run COMMAND with stdout in OUT and
# stderr in OUT.err; status in RC.  If it is still running after SECONDS
# (a hang: e.g. a fault nobody resolves), the test fails with a report of
# where its processes are blocked.
run_limited() {
	local secs=$1 out=$2 pid
	shift 2
	RC=0
	# <&0: a background job would otherwise read /dev/null, not our stdin
	timeout -k 5 $((secs + 10)) "$@" <&0 >"$out" 2>"$out.err" &
	pid=$!
	if ! wait_for "$secs" "'$(basename "$1") ${*:2:2} ...' finished" eval "! kill -0 $pid" >/dev/null; then
		echo "---- still running after $secs s:" >&2
		hang_report >&2
		kill -TERM "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		show "$out" "$out.err"
		fail "'$*' did not finish within $secs s (hung) and was killed"
	fi
	wait "$pid" || RC=$?
	return 0
}

# start_bg OUT COMMAND...: run COMMAND in the background with stdout in OUT
# and stderr in OUT.err; BG_PID is its pid.
start_bg() {
	local out=$1
	shift
	"$@" >"$out" 2>"$out.err" &
	BG_PID=$!
	BG_PIDS+=("$BG_PID")
}

# wait_bg PID SECONDS: wait for a start_bg command; status in BG_STATUS,
# fails if it runs longer than SECONDS.
wait_bg() {
	local pid=$1 secs=$2
	if ! wait_for "$secs" "pid $pid finished" eval "! kill -0 $pid"; then
		fail "pid $pid still running after $secs s"
	fi
	BG_STATUS=0
	wait "$pid" || BG_STATUS=$?
}

# Run a program so that the pid of the exec'd PROGRAM is written to PIDFILE:
#   "$USM" run -- "${PIDWRAP[@]}" PIDFILE PROGRAM ARGS...
# (the shell writes its pid and execs PROGRAM in the same process).
# shellcheck disable=SC2016
PIDWRAP=(/bin/sh -c 'echo $$ >"$0"; exec "$@"')

_lib_cleanup() {
	local name pid
	for name in "${!DAEMON_PID[@]}"; do
		pid=${DAEMON_PID[$name]}
		kill -CONT "$pid" 2>/dev/null
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${BG_PIDS[@]}"; do
		kill -CONT "$pid" 2>/dev/null
		kill -KILL "$pid" 2>/dev/null
	done
	for name in "${!DAEMON_PID[@]}"; do
		pid=${DAEMON_PID[$name]}
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null
	done
	wait 2>/dev/null
	if [ -n "$_LIB_OWN_DIR" ]; then rm -rf "$_LIB_OWN_DIR"; fi
	return 0
}
trap _lib_cleanup EXIT
