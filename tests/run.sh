#!/bin/bash
# tests/run.sh BUILD_DIR [NAME-PATTERN...] - run the unit and functional tests.
#
# Runs every executable in BUILD_DIR/tests/unit/ and every tests/func/*.sh
# (with BUILD=BUILD_DIR exported), each under a timeout (60 s, or the
# number on a "# timeout: N" line of a functional test), and prints
#   PASS name (secs) | FAIL name (why, with the test's output tail) | SKIP name (reason)
# then "N passed, N failed, N skipped".  Exit status 1 if any failed.
#
# Each functional test gets its own USM_RUNTIME_DIR (instance sockets) and
# USM_TEST_TMP (scratch), under one temporary directory; afterwards any
# process still running with that USM_RUNTIME_DIR (a daemon the test did
# not stop, a program it left behind) is killed and named in the report.
# A test exits 0 to pass, 77 to skip, anything else fails.
#
# Optional NAME-PATTERNs (shell globs) select tests by name, e.g.
#   ./tests/run.sh build '1*' '7*'
# USM_TEST_VERBOSE=1 prints every test's whole output, not only failures'.
# USM_FUNC_DIR=DIR runs the functional tests of DIR instead of tests/func.
set -u

if [ $# -lt 1 ] || [ ! -d "$1" ]; then
	echo "usage: $0 BUILD_DIR [NAME-PATTERN...]" >&2
	exit 2
fi
BUILD=$(cd "$1" && pwd)
shift
PATTERNS=("$@")
SRC=$(cd "$(dirname "$0")/.." && pwd)
FUNC_DIR=${USM_FUNC_DIR:-$SRC/tests/func}      # USM_FUNC_DIR: to test the runner itself
DEFAULT_TIMEOUT=60
TAIL_LINES=40

passed=0
failed=0
skipped=0
failed_names=()
TOP=$(mktemp -d "${TMPDIR:-/tmp}/usm-tests.XXXXXX")
trap 'rm -rf "$TOP"' EXIT

selected() {
	local name=$1 p
	[ ${#PATTERNS[@]} -eq 0 ] && return 0
	for p in "${PATTERNS[@]}"; do
		# shellcheck disable=SC2053
		[[ $name == $p ]] && return 0
	done
	return 1
}

# Processes whose environment has USM_RUNTIME_DIR=DIR (or a directory below).
procs_under() {
	local dir=$1 p
	for p in /proc/[0-9]*; do
		[ "${p#/proc/}" = "$$" ] && continue
		if grep -qzE "^USM_RUNTIME_DIR=$dir(/|\$)" "$p/environ" 2>/dev/null; then
			echo "${p#/proc/}"
		fi
	done
}

# Kill what a test left behind: usm/usmd instances first, then the rest.
kill_leftovers() {
	local dir=$1 pids pid comm killed=()
	pids=$(procs_under "$dir")
	[ -z "$pids" ] && return 0
	for pid in $pids; do
		comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
		case $comm in
		usmd | usm) kill -CONT "$pid" 2>/dev/null; kill -KILL "$pid" 2>/dev/null && killed+=("$pid:$comm") ;;
		esac
	done
	for pid in $(procs_under "$dir"); do
		comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
		kill -CONT "$pid" 2>/dev/null
		kill -KILL "$pid" 2>/dev/null && killed+=("$pid:$comm")
	done
	[ ${#killed[@]} -gt 0 ] && echo "      (killed leftover processes: ${killed[*]})"
	return 0
}

elapsed() {
	# elapsed START_NS -> seconds with one decimal
	local d=$(($(date +%s%N) - $1))
	printf '%d.%d' $((d / 1000000000)) $((d % 1000000000 / 100000000))
}

report() {
	# report NAME STATUS SECS LOG [TIMEOUT]
	local name=$1 rc=$2 secs=$3 log=$4 tmo=${5:-}
	case $rc in
	0)
		echo "PASS $name ($secs s)"
		[ "${USM_TEST_VERBOSE:-0}" = 1 ] && sed 's/^/    | /' "$log"
		passed=$((passed + 1))
		;;
	77)
		local why
		why=$(grep -E '^SKIP: ' "$log" | tail -n 1 | sed 's/^SKIP: //')
		echo "SKIP $name (${why:-no reason given})"
		skipped=$((skipped + 1))
		;;
	*)
		if [ "$rc" = 124 ] || [ "$rc" = 137 ] && [ -n "$tmo" ]; then
			echo "FAIL $name (timed out after $tmo s)"
		else
			echo "FAIL $name (exit status $rc, $secs s)"
		fi
		tail -n "$TAIL_LINES" "$log" | sed 's/^/    | /'
		failed=$((failed + 1))
		failed_names+=("$name")
		;;
	esac
}

# ---- unit tests -------------------------------------------------------

if [ -d "$BUILD/tests/unit" ]; then
	for t in "$BUILD"/tests/unit/*; do
		[ -f "$t" ] && [ -x "$t" ] || continue
		name=unit/$(basename "$t")
		selected "$(basename "$t")" || selected "$name" || continue
		dir=$(mktemp -d "$TOP/unit.XXXXXX")
		start=$(date +%s%N)
		(cd "$dir" && USM_RUNTIME_DIR=$dir/run timeout -k 5 "$DEFAULT_TIMEOUT" "$t") >"$dir/log" 2>&1 </dev/null
		rc=$?
		report "$name" "$rc" "$(elapsed "$start")" "$dir/log" "$DEFAULT_TIMEOUT"
	done
fi

# ---- functional tests -------------------------------------------------

for t in "$FUNC_DIR"/[0-9]*.sh; do
	[ -f "$t" ] || continue
	base=$(basename "$t" .sh)
	selected "$base" || continue
	name=func/$base
	tmo=$(sed -n 's/^# timeout: *\([0-9][0-9]*\).*/\1/p' "$t" | head -n 1)
	tmo=${tmo:-$DEFAULT_TIMEOUT}
	dir=$(mktemp -d "$TOP/$base.XXXXXX")
	mkdir -p "$dir/tmp"
	start=$(date +%s%N)
	(cd "$dir/tmp" && exec env BUILD="$BUILD" USM_RUNTIME_DIR="$dir/run" USM_TEST_TMP="$dir/tmp" \
		timeout -k 5 "$tmo" bash "$t") >"$dir/log" 2>&1 </dev/null
	rc=$?
	secs=$(elapsed "$start")
	leftovers=$(kill_leftovers "$dir/run")
	report "$name" "$rc" "$secs" "$dir/log" "$tmo"
	[ -n "$leftovers" ] && echo "$leftovers"
	rm -rf "$dir"
done

echo
[ "$failed" -gt 0 ] && echo "failed: ${failed_names[*]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
