#!/bin/bash
# Command-line mistakes: a message on stderr and exit status 2 (usage
# errors), never a started instance or a program run by accident.
# timeout: 30
. "$(dirname "$0")/lib.sh"

# cli_error 'EXTENDED REGEX of the message' COMMAND...: exit 2 with that message
cli_error() {
	local want=$1 rc
	shift
	timeout 10 "$@" >"$T/cli.out" 2>"$T/cli.err"
	rc=$?
	[ "$rc" = 2 ] || { show "$T/cli.out" "$T/cli.err"; fail "'${*#"$BUILD"/bin/}': exit status $rc, expected 2"; }
	grep -Eq -- "$want" "$T/cli.err" || { show "$T/cli.err"; fail "'$*': stderr does not match /$want/"; }
	ok "$(basename "$1") ${*:2} -> 2: $(grep -Em1 -- "$want" "$T/cli.err")"
}

cli_error '^usage: usm COMMAND' "$USM"
cli_error "unknown command 'frobnicate'" "$USM" frobnicate
cli_error "unknown command 'frobnicate'" "$USM" frobnicate --help
cli_error 'usm run: no program given' "$USM" run
cli_error 'usm run: no program given' "$USM" run --
cli_error 'usm run: no program given' "$USM" run -i foo --stats
cli_error "unrecognized option '--bogus'" "$USM" run --bogus -- touch "$T/ran"
cli_error "bad instance name 'bad/name'" "$USM" run -i bad/name -- touch "$T/ran"
cli_error "bad instance name ''" "$USM" run -i '' -- touch "$T/ran"
long=$(printf 'n%.0s' $(seq 64))
cli_error "bad instance name '$long'" "$USM" run -i "$long" -- touch "$T/ran"
cli_error "policy name '$(printf 'p%.0s' $(seq 40))' is too long" "$USM" run -P "$(printf 'p%.0s' $(seq 40))" -- touch "$T/ran"
[ ! -e "$T/ran" ] || fail "a program ran despite a command-line error"
ok "no program ran"
cli_error "bad instance name 'a b'" "$USM" stat -i 'a b'
cli_error "bad instance name '../x'" "$USM" stop -i '../x'
cli_error "unexpected argument 'extra'" "$USM" stat extra
cli_error "-n wants a count > 0, got '0'" "$USM" top -n 0
cli_error "-d wants seconds > 0, got 'soon'" "$USM" top -d soon
cli_error "bad instance name 'bad/x'" "$USMD" -i bad/x
cli_error "unexpected argument 'extra'" "$USMD" -i ok extra
cli_error '^usage: ' "$USMD" --bogus
[ -z "$(ls -A "$USM_RUNTIME_DIR" 2>/dev/null)" ] || fail "a socket appeared in $USM_RUNTIME_DIR: $(ls -A "$USM_RUNTIME_DIR")"
ok "no instance was started"

# Not usage errors, but errors with their own status and message:
"$USM" run -- "$T/no-such-program" >"$T/np.out" 2>&1
assert_status 127 $? "usm run -- no-such-program" "$T/np.out"
assert_grep "$T/np.out" "usm run: cannot run $T/no-such-program: No such file or directory" "usm run names the missing program"
"$USM" run -P nosuch -- touch "$T/ran" >"$T/pol.out" 2>&1
assert_status 126 $? "usm run -P nosuch" "$T/pol.out"
assert_grep "$T/pol.out" "unknown policy 'nosuch' \(registered: .*first_fit.*\)" "usm run -P nosuch names the policies that exist"
[ ! -e "$T/ran" ] || fail "usm run -P nosuch ran the program unmanaged although USM_REQUIRED"
ok "the program did not run"
"$USM" stat -i nosuchinstance >"$T/ni.out" 2>&1
assert_status 1 $? "usm stat -i nosuchinstance" "$T/ni.out"
assert_grep "$T/ni.out" "usm stat: no instance at $USM_RUNTIME_DIR/nosuchinstance\.sock" "usm stat names the missing instance"
"$USM" stop -i nosuchinstance >"$T/ns.out" 2>&1
assert_status 1 $? "usm stop -i nosuchinstance" "$T/ns.out"
assert_grep "$T/ns.out" "usm stop: no instance at" "usm stop names the missing instance"
