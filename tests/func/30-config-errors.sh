#!/bin/bash
# Every class of bad configuration makes usmd exit non-zero without
# starting (no socket), printing "FILE:LINE: message" that names what was
# expected.  Also: a missing config file, a missing plugin, a plugin that
# registers no policy, and bad -o lines.
# timeout: 60
. "$(dirname "$0")/lib.sh"

re_escape() { printf '%s' "$1" | sed 's/[][\.*^$()+?{}|/]/\\&/g'; }

n=0
# bad_config LINE 'CONFIG TEXT (printf format)' 'EXTENDED REGEX of the message after "FILE:LINE: "'
bad_config() {
	local line=$1 text=$2 want=$3 f rc
	n=$((n + 1))
	f=$T/bad$n.cfg
	# shellcheck disable=SC2059
	printf "$text" >"$f"
	timeout 10 "$USMD" -i cfgtest -c "$f" >"$T/bad$n.out" 2>&1
	rc=$?
	if [ "$rc" = 0 ] || [ "$rc" = 124 ]; then
		echo "---- $f"; cat -n "$f"
		show "$T/bad$n.out"
		fail "config #$n: usmd accepted it (status $rc) instead of refusing line $line"
	fi
	[ ! -e "$USM_RUNTIME_DIR/cfgtest.sock" ] || fail "config #$n: usmd created its socket despite the bad config"
	if ! grep -Eq -- "(^|: )$(re_escape "$f"):$line: $want" "$T/bad$n.out"; then
		echo "---- $f" >&2; cat -n "$f" >&2
		show "$T/bad$n.out"
		fail "config #$n: expected '$f:$line: ' followed by /$want/"
	fi
	ok "config #$n (status $rc): $(head -n 1 "$T/bad$n.out")"
}

# unknown directive (after comments and blank lines: line numbers count them)
bad_config 4 '# a comment\n\nmemory 64\nfrobnicate 12\n' \
	"unknown directive 'frobnicate'.*expected one of.*memory.*workers"
# wrong number of arguments
bad_config 2 'memory 64\nmemory\n' "expected 'memory <MiB>'"
bad_config 1 'workers 1 2\n' "expected 'workers <n>'"
bad_config 3 'memory 64\nworkers 1\nprocess onlyone\n' "expected 'process \[alloc\|swap\] <name> <policy> \[key=value\]\.\.\.'"
bad_config 1 'threshold 50\n' "expected 'threshold <pct> <policy>'"
bad_config 1 'set batch.pages\n' "expected 'set <key> <value>'"
# not a number
bad_config 1 'workers two\n' "workers <n>: expected a whole number, got 'two'"
bad_config 2 '\nmemory 12abc\n' "memory <MiB>: expected a whole number, got '12abc'"
bad_config 1 'priority myprog high\n' "priority <name> <n>: expected a whole number, got 'high'"
# out of range
bad_config 1 'workers 65\n' "workers <n>: 65 is out of range \[1, 64\]"
bad_config 1 'workers 0\n' "workers <n>: 0 is out of range \[1, 64\]"
bad_config 1 'memory 0\n' "memory <MiB>: 0 is out of range \[1, [0-9]+\]"
bad_config 1 'threshold 101 first_fit\n' "threshold <pct> <policy>: 101 is out of range \[1, 100\]"
# page size
bad_config 1 'page 8192\n' "page <bytes>: only 4096 .*got 8192"
bad_config 1 'page 4k\n' "page <bytes>: expected a whole number, got '4k'"
# mode, oom
bad_config 2 'workers 2\nmode turbo\n' "mode: expected 'blocking', 'spinning', 'hybrid' or 'colocate', got 'turbo'"
bad_config 1 'mode hybrid -5\n' "mode hybrid <us>: -5 is out of range \\[1, 100000\\]"
bad_config 1 'oom panic\n' "oom: expected 'kernel', 'kill' or 'wait', got 'panic'"
# process kind
bad_config 1 'process bogus myprog first_fit\n' "process: expected 'alloc' or 'swap', got 'bogus'"
# duplicate threshold: names the earlier line
bad_config 5 'memory 64\nthreshold 80 first_fit\nthreshold 50 batch\n\nthreshold 80 batch\n' \
	"threshold 80% is already set on line 2"
# unknown policies (checked once plugins are loaded), in every kind of line
bad_config 2 'memory 64\nprocess myprog nosuch\n' "unknown policy 'nosuch' \(registered: .*first_fit.*\)"
bad_config 1 'process alloc myprog nosuch2\n' "unknown policy 'nosuch2' \(registered: .*first_fit.*\)"
bad_config 3 'memory 64\n# x\nthreshold 90 nosuch3\n' "unknown policy 'nosuch3' \(registered: .*first_fit.*\)"
bad_config 2 'workers 1\npolicy nosuch4\n' "unknown policy 'nosuch4' \(registered: .*first_fit.*\)"
# names too long
long32=$(printf 'p%.0s' $(seq 32))
long16=$(printf 'c%.0s' $(seq 16))
bad_config 1 "policy $long32\n" "policy name '$long32' is longer than 31 characters"
bad_config 1 "threshold 70 $long32\n" "policy name '$long32' is longer than 31 characters"
bad_config 1 "process $long16 first_fit\n" "process name '$long16' is longer than 15 characters"
bad_config 1 "priority $long16 5\n" "process name '$long16' is longer than 15 characters"
bad_config 1 "process myprog $long32\n" "policy name '$long32' is longer than 31 characters"

# eviction: swap devices, swap policy, watermarks, limits, traces
bad_config 2 'memory 64\nswapdev tape /dev/st0 1G\n' "swapdev: unknown device kind 'tape' \\(expected file or zmem\\)"
bad_config 1 'swapdev zmem - 0\n' "swapdev zmem: size '0' out of range"
bad_config 1 'swapdev file /tmp/x.swap 12Q\n' "swapdev file: bad size '12Q' \\(expected bytes, or a number with K, M or G\\)"
bad_config 1 'swapdev file /tmp/x.swap 1G codec=lz4\n' "swapdev file: option 'codec=lz4' applies only to zmem devices"
bad_config 1 'swapdev zmem - 1G direct\n' "swapdev zmem: option 'direct' applies only to file devices"
bad_config 1 'swapdev zmem - 1G priority=x\n' "swapdev: bad priority 'priority=x'"
bad_config 3 'memory 64\nswapdev zmem - 64M\nswap_policy lru\n' "unknown swap policy 'lru' \\(registered: .*fifo.*\\)"
bad_config 1 'watermarks 9 3\n' "watermarks: high \\(3%\\) is below low \\(9%\\)"
bad_config 1 'limit redis-server\n' "expected 'limit <name> <MiB>'"
bad_config 1 'trace redis-server\n' "expected 'trace <name> <file>'"
# a device that cannot be opened: the file and the device's line are named
n=$((n + 1))
printf 'memory 64\nswapdev file %s/no/such/dir/x.swap 64M\n' "$T" >"$T/bad$n.cfg"
timeout 10 "$USMD" -i cfgtest -c "$T/bad$n.cfg" >"$T/bad$n.out" 2>&1 && fail "usmd started with an unopenable swap file"
assert_grep "$T/bad$n.out" "$(re_escape "$T/bad$n.cfg"): swapdev file .*/no/such/dir/x.swap \\(line 2\\): open: No such file or directory" \
	"an unopenable swap file is named with its config line"

# A good config with the same directives starts (so the cases above fail
# for the reason they name, not for something else).
printf '# good\nmemory 64\nworkers 2\npage 4096\nmode blocking\noom kernel\npolicy first_fit\nprocess myprog batch\nprocess alloc other first_fit\npriority myprog 5\nthreshold 80 first_fit\nthreshold 50 batch\nset batch.pages 16\n' >"$T/good.cfg"
start_daemon cfgtest -c "$T/good.cfg"
stats_json cfgtest "$T/good.json"
json_check "$T/good.json" "d['memory_frames'] == 16384 and d['workers'] == 2 and d['default_policy'] == 'first_fit' and d['oom'] == 'kernel'" \
	"the good config is in effect (64 MiB, 2 workers, first_fit, oom kernel)"
stop_daemon cfgtest

# A missing config file.
timeout 10 "$USMD" -i cfgtest -c "$T/nonexistent.cfg" >"$T/nofile.out" 2>&1
rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "usmd -c nonexistent.cfg: status $rc"
assert_grep "$T/nofile.out" "$(re_escape "$T/nonexistent.cfg"): cannot open config: No such file or directory" \
	"missing config file: 'FILE: cannot open config: No such file or directory' (status $rc)"
[ ! -e "$USM_RUNTIME_DIR/cfgtest.sock" ] || fail "usmd created its socket without a config"

# Bad -o lines are reported too.
timeout 10 "$USMD" -i cfgtest -o 'workers 99' >"$T/opt.out" 2>&1
rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "usmd -o 'workers 99': status $rc"
assert_grep "$T/opt.out" "workers <n>: 99 is out of range \[1, 64\]" "bad -o line refused (status $rc)"
timeout 10 "$USMD" -i cfgtest -o 'nonsense 1' >"$T/opt2.out" 2>&1
rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "usmd -o 'nonsense 1': status $rc"
assert_grep "$T/opt2.out" "unknown directive 'nonsense'" "unknown -o directive refused (status $rc)"

# usm run with a bad -o: the embedded instance refuses, the program never runs.
timeout 10 "$USM" run -o 'mode turbo' -- touch "$T/ran" >"$T/run-o.out" 2>&1
rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "usm run -o 'mode turbo': status $rc"
assert_grep "$T/run-o.out" "mode: expected 'blocking', 'spinning', 'hybrid' or 'colocate', got 'turbo'" "usm run -o 'mode turbo' names the problem (status $rc)"
[ ! -e "$T/ran" ] || fail "usm run ran the program although its instance could not start"
ok "the program did not run"

# Plugins: a missing .so, and one that registers no policy.
timeout 10 "$USMD" -i cfgtest -p /nonexistent.so >"$T/plug1.out" 2>&1
rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "usmd -p /nonexistent.so: status $rc"
assert_grep "$T/plug1.out" "plugin /nonexistent\.so: cannot load: .*No such file or directory" \
	"-p /nonexistent.so: 'cannot load' (status $rc)"
[ ! -e "$USM_RUNTIME_DIR/cfgtest.sock" ] || fail "usmd created its socket with a missing plugin"

printf 'plugin /nonexistent-too.so\n' >"$T/plug.cfg"
timeout 10 "$USMD" -i cfgtest -c "$T/plug.cfg" >"$T/plug2.out" 2>&1
rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "config 'plugin /nonexistent-too.so': status $rc"
assert_grep "$T/plug2.out" "/nonexistent-too\.so: cannot load" "config plugin line with a missing .so: 'cannot load' (status $rc)"

if command -v cc >/dev/null 2>&1; then
	printf 'int usm_test_not_a_policy(void) { return 42; }\n' >"$T/nopolicy.c"
	cc -shared -fPIC "$T/nopolicy.c" -o "$T/nopolicy.so" || fail "cannot build nopolicy.so"
	timeout 10 "$USMD" -i cfgtest -p "$T/nopolicy.so" >"$T/plug3.out" 2>&1
	rc=$?
	[ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "usmd -p nopolicy.so: status $rc"
	assert_grep "$T/plug3.out" "plugin $(re_escape "$T/nopolicy.so"): .*registered no policy" \
		"-p nopolicy.so: 'registered no policy' (status $rc)"
	[ ! -e "$USM_RUNTIME_DIR/cfgtest.sock" ] || fail "usmd created its socket with a plugin that registers nothing"
else
	log "no C compiler: the no-policy plugin case is not run"
fi
