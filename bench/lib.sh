# shellcheck shell=bash
# bench/lib.sh - shell helpers shared by the benchmark scripts (source it).
#
# The sourcing script sets BENCH (its name, for messages) first; lib.sh sets
# ROOT (the repository) and cds there.  Helpers:
#   die MSG / is_uint / is_pos / in_list X LIST...      argument checking
#   usage                       the script's header comment, as help
#   record_cmdline ARGS...      CMDLINE: the command as typed (with BUILD=)
#   show_cmd ARGS...            a command as a person would type it
#   median / ratio A B          numbers
#   machine_info                STAMP DATE KERNEL CPU NCPU THP LOAD0
#   sysfs_get / sysfs_set / sysfs_restore [FILE...]   sysfs values, restored later
#   pause_page_reporting        no free memory handed back to the hypervisor
#   plot_term W H               TERM_PNG: the best PNG terminal of gnuplot
#   run_warmup MF MB ADVICE     touch and free MB MiB with memflt
#   variant_failure LOG RC      why a run failed, in one line
# The script keeps its own traps; sysfs_restore belongs in its EXIT trap
# when it uses sysfs_set.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2

die() { echo "$BENCH: $*" >&2; exit 2; }
is_uint() { [[ "$1" =~ ^[0-9]{1,9}$ ]]; }
is_pos() { is_uint "$1" && ((10#$1 >= 1)); }
in_list() { local x=$1; shift; [[ " $* " == *" $x "* ]]; }

# The header comment of the script (from line 2 to `set -euo`), as help.
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

# record_cmdline "$@": CMDLINE is the command line as the user typed it,
# with BUILD= in front when it is not the default.
record_cmdline() {
	local a
	CMDLINE="bench/$(basename "$0")"
	for a in "$@"; do CMDLINE+=" $(printf '%q' "$a")"; done
	if [[ -n "${BUILD:-}" && "${BUILD}" != build ]]; then
		CMDLINE="BUILD=$(printf '%q' "$BUILD") $CMDLINE"
	fi
}

# The command as a person would type it: paths relative to ROOT, quoted
# only where needed.
show_cmd() {
	local out="" a
	for a in "$@"; do
		a=${a#"$ROOT/"}
		if [[ "$a" =~ ^[A-Za-z0-9_./=:,+@%-]+$ ]]; then
			out+="$a "
		else
			out+="'${a//\'/\'\\\'\'}' "
		fi
	done
	echo "${out% }"
}

# median: the median of the numbers on stdin, one a line (nothing if none).
median() {
	sort -g | awk '
		{ x[NR] = $1 }
		END {
			if (NR == 0) exit
			m = NR % 2 ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2
			printf "%.10g\n", m
		}'
}

# ratio A B: A / B with two decimals, "-" when either is missing or B is 0.
ratio() {
	if [[ -n "${1:-}" && -n "${2:-}" && "$1" != - && "$2" != - && "$2" != 0 ]]; then
		awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
	else
		echo "-"
	fi
}

THP_DIR=/sys/kernel/mm/transparent_hugepage
declare -A SYSFS_ORIG=()

# The bracketed choice of a sysfs file ("always [madvise] never" -> madvise),
# or its whole content when it has no brackets.
sysfs_get() {
	local v
	v=$(cat "$1") || return 1
	if [[ "$v" == *\[*\]* ]]; then v=${v#*[}; v=${v%%]*}; fi
	echo "$v"
}

# sysfs_set FILE VALUE: write VALUE, remembering the first value seen.
sysfs_set() {
	local f=$1 v=$2
	[[ -n "${SYSFS_ORIG[$f]+x}" ]] || SYSFS_ORIG[$f]=$(sysfs_get "$f")
	echo "$v" >"$f" 2>/dev/null || { echo "$BENCH: cannot write '$v' to $f" >&2; return 1; }
}

# sysfs_restore [FILE...]: write back every value sysfs_set changed (or
# only those of the FILEs given); 1 if one could not be.
sysfs_restore() {
	local f rc=0
	local files=("$@")
	((${#files[@]})) || files=("${!SYSFS_ORIG[@]}")
	for f in "${files[@]}"; do
		[[ -n "${SYSFS_ORIG[$f]+x}" ]] || continue
		[[ "$(sysfs_get "$f")" == "${SYSFS_ORIG[$f]}" ]] && continue
		if ! echo "${SYSFS_ORIG[$f]}" >"$f" 2>/dev/null; then
			echo "$BENCH: WARNING: could not restore $f to '${SYSFS_ORIG[$f]}'" >&2
			rc=1
		fi
	done
	return $rc
}

# Free page reporting (virtio_balloon) hands free blocks of 2^order pages
# back to the hypervisor every few seconds, and the next touch of such
# memory pays the host's fault too: on this VM about 9,000 ns per 4 KiB
# page against 400-2,000 ns, whenever a reporting pass happened to catch
# the memory a warm-up had just freed.  A first-touch benchmark pauses it
# for its run (sysfs_restore puts it back): order 11 is above the buddy
# allocator's largest, so no free block qualifies.  REPORTING says what
# was done, for the results' header.
PAGE_REPORTING_ORDER=/sys/module/page_reporting/parameters/page_reporting_order
pause_page_reporting() {
	if [[ ! -e "$PAGE_REPORTING_ORDER" ]]; then
		REPORTING="not in this kernel"
	elif sysfs_set "$PAGE_REPORTING_ORDER" 11; then
		REPORTING="paused for the run (page_reporting_order 11, was ${SYSFS_ORIG[$PAGE_REPORTING_ORDER]})"
	else
		REPORTING="left on (cannot write $PAGE_REPORTING_ORDER)"
	fi
}

machine_info() {
	STAMP=$(date +%Y%m%d-%H%M%S)
	DATE=$(date '+%Y-%m-%d %H:%M:%S %z')
	KERNEL=$(uname -r)
	CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
	NCPU=$(nproc)
	THP=$(sysfs_get "$THP_DIR/enabled" 2>/dev/null || echo "?")
	LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
}

# plot_term WIDTH HEIGHT: TERM_PNG is pngcairo when gnuplot has it, else png.
plot_term() {
	TERM_PNG="png size $1,$2"
	if gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1; then
		TERM_PNG="pngcairo size $1,$2 font 'sans,10'"
	fi
}

# run_warmup MEMFLT MB ADVICE: touch and free MB MiB once (the VM's first
# touch of guest memory is slow and noisy: DESIGN.md §4).
run_warmup() {
	(($2 > 0)) || return 0
	"$1" warmup --warmup-mb "$2" --warmup-madvise "$3" >/dev/null ||
		die "warm-up failed: $1 warmup --warmup-mb $2 --warmup-madvise $3"
}

# variant_failure LOG RC: one line saying why a run under timeout(1) failed:
# the exit status, time-out or signal, and the log's last lines that are not
# results.  (timeout exits 124 on a time-out, and dies of the signal that
# killed its command: 137 is SIGKILL, from the OOM killer or --kill-after.)
variant_failure() {
	local log=$1 rc=$2 why last
	why="exit status $rc"
	((rc == 124)) && why="timed out"
	((rc > 128 && rc != 124)) && why="killed by signal $((rc - 128))$( ((rc == 137)) && echo ' (SIGKILL)')"
	# (bash's own "script: line N: PID Killed  timeout ..." notice is left out)
	last=$(grep -Ev '^result |: line [0-9]+: +[0-9]+ [A-Z]' "$log" | tail -n 3 | tr '\n' ' ' || true)
	echo "$why${last:+: $last}"
}
