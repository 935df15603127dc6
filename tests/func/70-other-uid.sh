#!/bin/bash
# Only the instance's owner (or root) may attach a process, read its stats
# or stop it.  usmd runs as root; a program run as nobody with the agent
# preloaded, USM_SOCKET pointing at the instance and USM_REQUIRED=1 must be
# refused (exit 126, a permission message) and never attached:
#   1. as created: the runtime directory is 0700 and the socket 0600, so
#      nobody cannot even connect;
#   2. with both opened up (chmod 0711 / 0666), nobody connects and the
#      instance itself must refuse it (SO_PEERCRED).
# timeout: 60
. "$(dirname "$0")/lib.sh"
need_root
need_cmd setpriv
need_prog "$MEMWRITER"
id nobody >/dev/null 2>&1 || skip "no user 'nobody'"
getent group nogroup >/dev/null || skip "no group 'nogroup'"
AS_NOBODY=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
"${AS_NOBODY[@]}" test -r "$AGENT" -a -x "$MEMWRITER" -a -x "$USM" ||
	skip "nobody cannot read the build tree ($BUILD)"

# Let nobody traverse the (temporary) directories above the runtime
# directory, so that only usmd's own modes stand in its way.
d=$(dirname "$USM_RUNTIME_DIR")
while [ "$d" != / ]; do
	"${AS_NOBODY[@]}" test -x "$d" || chmod o+x "$d" || fail "cannot open up $d"
	d=$(dirname "$d")
done
start_daemon owned
SOCK=$USM_RUNTIME_DIR/owned.sock
assert_eq 700 "$(stat -c %a "$USM_RUNTIME_DIR")" "mode of the runtime directory created by usmd"
assert_eq 0 "$(stat -c %u "$USM_RUNTIME_DIR")" "owner of the runtime directory"
assert_eq 600 "$(stat -c %a "$SOCK")" "mode of the instance socket"
[ -S "$SOCK" ] || fail "$SOCK is not a socket"

# as_nobody OUT COMMAND...: run COMMAND as nobody with the agent set up to
# attach to the instance; status in RC.
as_nobody_managed() {
	local out=$1
	shift
	RC=0
	"${AS_NOBODY[@]}" env USM_SOCKET="$SOCK" LD_PRELOAD="$AGENT" USM_REQUIRED=1 \
		USM_RUNTIME_DIR="$USM_RUNTIME_DIR" "$@" >"$out" 2>"$out.err" || RC=$?
}

check_refused() {
	local case=$1 want=$2
	as_nobody_managed "$T/$case" "$MEMWRITER" --mb 8
	assert_status 126 "$RC" "$case: program as nobody with USM_REQUIRED=1" "$T/$case" "$T/$case.err"
	assert_grep "$T/$case.err" "$want" "$case: the agent says why" -i
	[ ! -s "$T/$case" ] || fail "$case: the program ran: $(cat "$T/$case")"
	ok "$case: the program did not run"

	# Without USM_REQUIRED the program runs, unmanaged.
	RC=0
	"${AS_NOBODY[@]}" env USM_SOCKET="$SOCK" LD_PRELOAD="$AGENT" "$MEMWRITER" --mb 8 \
		>"$T/$case.opt" 2>"$T/$case.opt.err" || RC=$?
	assert_status 0 "$RC" "$case: the same without USM_REQUIRED" "$T/$case.opt" "$T/$case.opt.err"
	assert_grep "$T/$case.opt" '^memwriter: OK 8 MiB verified' "$case: it ran correctly, unmanaged"
	assert_grep "$T/$case.opt.err" "running unmanaged" "$case: the agent said it runs unmanaged"

	# usm stat / usm stop as nobody fail.
	RC=0
	"${AS_NOBODY[@]}" env USM_RUNTIME_DIR="$USM_RUNTIME_DIR" "$USM" stat -i owned --json \
		>"$T/$case.stat" 2>"$T/$case.stat.err" || RC=$?
	assert_status 1 "$RC" "$case: usm stat as nobody" "$T/$case.stat" "$T/$case.stat.err"
	[ ! -s "$T/$case.stat" ] || fail "$case: usm stat as nobody printed statistics"
	assert_grep "$T/$case.stat.err" "$want" "$case: usm stat says why" -i
	RC=0
	"${AS_NOBODY[@]}" env USM_RUNTIME_DIR="$USM_RUNTIME_DIR" "$USM" stop -i owned \
		>"$T/$case.stop" 2>&1 || RC=$?
	assert_status 1 "$RC" "$case: usm stop as nobody" "$T/$case.stop"
	kill -0 "$(daemon_pid owned)" || fail "$case: usm stop as nobody stopped the instance"
	ok "$case: the instance is still running"

	# Nothing of nobody's ever attached.
	stats_json owned "$T/$case.json"
	json_check "$T/$case.json" "procs() == [] and d['faults'] == 0" "$case: the instance never attached a process"
}

# 1. As usmd made them: nobody cannot connect at all.
check_refused closed 'permission denied'

# 2. Opened up: nobody reaches the socket; the instance must refuse it.
chmod 0711 "$USM_RUNTIME_DIR"
chmod 0666 "$SOCK"
check_refused open "permission denied.*instance 'owned' belongs to uid 0"

# Root (the owner) is still served.
run_limited 30 "$T/root.out" "$USM" run -i owned -- "$MEMWRITER" --mb 8
assert_status 0 "$RC" "the owner's program" "$T/root.out" "$T/root.out.err"
assert_no_grep "$T/root.out.err" 'usm-agent' "the owner's program stayed attached"
stop_daemon owned
