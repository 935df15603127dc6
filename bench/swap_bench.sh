#!/usr/bin/env bash
# swap_bench.sh: a working set twice the memory limit, three workloads
# (bench/swapwork gups, scan, zipf), under the kernel (cgroup v1 memory
# limit with a swap file, or with zram) and under USM (file and compressed
# swap devices, eviction policies), all in one run.
#
# Usage: bench/swap_bench.sh [--reps R] [--limit-mb L] [--ws-mb W]
#                            [--seconds S | --ops N] [--threads T]
#                            [--workloads w1,w2,...] [--variants v1,v2,...]
#                            [--warmup-mb M] [--timeout S] [--swap-dir DIR]
#                            [--doc] [--list]
#
#   --reps R          runs of every workload x variant (default 5), interleaved:
#                     rep 1 of every workload x variant, then rep 2, ...
#   --limit-mb L      memory limit in MiB (default 256): the cgroup's
#                     memory.limit_in_bytes, USM's `memory L`
#   --ws-mb W         working set in MiB (default 2 x L)
#   --seconds S       timed phase of each run (default 10)
#   --ops N           or: a fixed number of operations per run
#   --threads T       swapwork threads (default 1)
#   --workloads LIST  subset of gups,scan,zipf (default all)
#   --variants LIST   which variants (default kernel-swapfile,kernel-zram,
#                     usm-file,usm-zmem); see --list for all
#   --warmup-mb M     MiB touched and freed by memflt before every round
#                     of runs (default 3072, 0 = none)
#   --timeout S       kill a run that takes longer than S seconds (default 300)
#   --swap-dir DIR    where the swap files go (default: the repository,
#                     so that both swap files share its filesystem)
#   --doc             also write docs/bench-swap.md
#   --list            print the variants and their commands, and exit
#
# Environment: BUILD (default build): $BUILD/bin/usm, $BUILD/bench/swapwork,
# $BUILD/bench/memflt (built here if missing).  Needs root (cgroup, swapon,
# zram), jq, and gnuplot for the plot.
#
# Variants:
#   kernel-swapfile  swapwork in the cgroup v1 memory group swap_bench.<pid>
#                    (memory.limit_in_bytes = L), a swap file of W + 64 MiB
#                    in --swap-dir (fallocate, mkswap), swapon for each run
#   kernel-zram      the same group, swap on /dev/zram0 (lz4, disksize
#                    W + 64 MiB), set up for each run and reset after it
#   usm-file         usm run -o 'memory L' -o 'swapdev file PATH SIZE'
#   usm-zmem         usm run -o 'memory L' -o 'swapdev zmem - SIZE codec=lz4'
#   usm-D-P          USM on device D (file, zmem) with -o 'swap_policy P',
#                    P = fifo, clock, s3fifo
#   usm-D[-P]-pfN    ... and swap-in prefetch: -o 'set P.prefetch N'
#                    (P = fifo when not given), N = 1 (demand paging),
#                    8, 64, or auto (readahead on sequential streams);
#                    without it the policy's default, auto
#   usm-...-colocate any USM variant with -o 'mode colocate' (the worker and
#                    the faulting thread share a CPU; default: mode hybrid)
#   usm-zmem...-inline  a zmem variant with `usm run --inline`: the policies
#                    run in the program, faulting threads swap in (and
#                    evict: reclaim direct) themselves
# Only one swap area is active at a time, and only during its variant's run.
# Every system setting (swap areas, zram, the cgroup, the swap files) is
# undone after each run and on any exit (trap), also on Ctrl-C.  A USM
# variant is first probed with a small run that must evict; one that fails
# (e.g. no eviction engine yet) is reported as "failed: <reason>" in the
# table and the benchmark goes on with the others.
#
# Output: a table on stdout (median ops/s, ratio to kernel-swapfile of the
# same run, faults, p99 operation latency, USM's p99 fault latency, swap
# traffic), raw results in bench/results/swap_bench-<date>.txt, a plot (.png)
# next to it, and with --doc docs/bench-swap.md.
set -euo pipefail

BENCH=swap_bench.sh
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

POLICIES=(fifo clock s3fifo)
ALL_VARIANTS=(kernel-swapfile kernel-zram usm-file usm-zmem)
for d in file zmem; do
	for p in "${POLICIES[@]}"; do ALL_VARIANTS+=("usm-$d-$p"); done
	for n in 1 8 64 auto; do
		ALL_VARIANTS+=("usm-$d-pf$n")
		for p in "${POLICIES[@]}"; do ALL_VARIANTS+=("usm-$d-$p-pf$n"); done
	done
done
for v in "${ALL_VARIANTS[@]}"; do [[ $v == usm-* ]] && ALL_VARIANTS+=("$v-colocate"); done
for v in "${ALL_VARIANTS[@]}"; do
	[[ $v == usm-zmem* && $v != *-colocate ]] && ALL_VARIANTS+=("$v-inline")
done
ALL_WORKLOADS=(gups scan zipf)

REPS=5
LIMIT_MB=256
WS_MB=
SECONDS_RUN=10
OPS=
THREADS=1
WARMUP_MB=3072
TIMEOUT=300
SWAP_DIR=$ROOT
DOC=0
LIST=0
VARIANTS=(kernel-swapfile kernel-zram usm-file usm-zmem)
WORKLOADS=("${ALL_WORKLOADS[@]}")

record_cmdline "$@"
BUILD=${BUILD:-build}

parse_list() {    # parse_list OPTION VALUE ALLOWED...: PARSED, each checked
	local opt=$1 val=$2 x
	shift 2
	IFS=, read -r -a PARSED <<<"$val"
	((${#PARSED[@]})) || die "$opt: empty list"
	for x in "${PARSED[@]}"; do
		in_list "$x" "$@" || die "$opt: unknown '$x' (one of: $*)"
	done
}

while (($#)); do
	case "$1" in
	--doc) DOC=1; shift; continue ;;
	--list) LIST=1; shift; continue ;;
	-h|--help) usage; exit 0 ;;
	--reps|--limit-mb|--ws-mb|--seconds|--ops|--threads|--workloads|--variants|--warmup-mb|--timeout|--swap-dir)
		(($# >= 2)) || die "$1 needs a value" ;;
	*) die "unexpected argument '$1' (see --help)" ;;
	esac
	case "$1" in
	--reps)      is_pos "$2" || die "--reps expects a positive integer, got '$2'"; REPS=$((10#$2)) ;;
	--limit-mb)  is_uint "$2" && ((10#$2 >= 16)) || die "--limit-mb expects an integer >= 16, got '$2'"; LIMIT_MB=$((10#$2)) ;;
	--ws-mb)     is_uint "$2" && ((10#$2 >= 16)) || die "--ws-mb expects an integer >= 16, got '$2'"; WS_MB=$((10#$2)) ;;
	--seconds)   is_pos "$2" || die "--seconds expects a positive integer, got '$2'"; SECONDS_RUN=$((10#$2)); OPS= ;;
	--ops)       is_pos "$2" || die "--ops expects a positive integer, got '$2'"; OPS=$((10#$2)) ;;
	--threads)   is_pos "$2" && ((10#$2 <= 64)) || die "--threads expects an integer in [1, 64], got '$2'"; THREADS=$((10#$2)) ;;
	--warmup-mb) is_uint "$2" || die "--warmup-mb expects an integer >= 0, got '$2'"; WARMUP_MB=$((10#$2)) ;;
	--timeout)   is_pos "$2" || die "--timeout expects a positive integer, got '$2'"; TIMEOUT=$((10#$2)) ;;
	--swap-dir)  [[ -d "$2" && -w "$2" ]] || die "--swap-dir: '$2' is not a writable directory"; SWAP_DIR=$(cd "$2" && pwd) ;;
	--workloads) parse_list "$1" "$2" "${ALL_WORKLOADS[@]}"; WORKLOADS=("${PARSED[@]}") ;;
	--variants)  parse_list "$1" "$2" "${ALL_VARIANTS[@]}"; VARIANTS=("${PARSED[@]}") ;;
	esac
	shift 2
done
WS_MB=${WS_MB:-$((2 * LIMIT_MB))}
((WS_MB > LIMIT_MB)) || echo "warning: --ws-mb $WS_MB <= --limit-mb $LIMIT_MB: nothing needs to be swapped" >&2
((REPS >= 5)) || echo "warning: --reps $REPS < 5: medians of so few runs are rough" >&2
DEV_MB=$((WS_MB + 64))      # swap space: the working set and some room

USM="$BUILD/bin/usm"
[[ "$USM" == /* ]] || USM="$ROOT/$USM"
SW="$BUILD/bench/swapwork"
MF="$BUILD/bench/memflt"
CG_NAME="swap_bench.$$"
CG=/sys/fs/cgroup/memory/$CG_NAME
SWAPFILE="$SWAP_DIR/.swap_bench.$$.swapfile"     # kernel-swapfile
USMFILE="$SWAP_DIR/.swap_bench.$$.usmswap"       # usm-file*
ZRAM=/sys/block/zram0

is_usm() { [[ "$1" == usm-* ]]; }

# swapwork_args <workload> <ws-mb>: SWARGS, swapwork's arguments.
swapwork_args() {
	SWARGS=("$1" --ws-mb "$2" --threads "$THREADS")
	if [[ -n "$OPS" ]]; then SWARGS+=(--ops "$OPS"); else SWARGS+=(--seconds "$SECONDS_RUN"); fi
}

# usm_variant_parts usm-D[-P][-pfN][-colocate|-inline]: UDEV, UPOL (or
# empty), UPF (or empty), UCOLO and UINLINE (1 or empty).
usm_variant_parts() {
	local rest=${1#usm-}
	UCOLO=
	UINLINE=
	if [[ "$rest" == *-inline ]]; then
		UINLINE=1
		rest=${rest%-inline}
	fi
	if [[ "$rest" == *-colocate ]]; then
		UCOLO=1
		rest=${rest%-colocate}
	fi
	UDEV=${rest%%-*}
	rest=${rest#"$UDEV"}
	rest=${rest#-}
	UPF=
	if [[ "$rest" =~ (^|-)pf([0-9]+|auto)$ ]]; then
		UPF=${BASH_REMATCH[2]}
		rest=${rest%pf"$UPF"}
		rest=${rest%-}
	fi
	UPOL=$rest
}

# run_cmd <variant> <workload> [ws-mb limit-mb stats.json]: CMD, one run.
run_cmd() {
	local v=$1 w=$2 ws=${3:-$WS_MB} lim=${4:-$LIMIT_MB} js=${5:-}
	swapwork_args "$w" "$ws"
	case "$v" in
	kernel-*)
		# Enter the memory group, then become swapwork.
		CMD=(/bin/sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG" "$SW" "${SWARGS[@]}") ;;
	usm-*)
		usm_variant_parts "$v"
		CMD=("$USM" run ${UINLINE:+--inline} -o "memory $lim")
		case "$UDEV" in
		zmem) CMD+=(-o "swapdev zmem - $((ws + 64))M codec=lz4") ;;
		file) CMD+=(-o "swapdev file $USMFILE $((ws + 64))M") ;;
		esac
		[[ -n "$UPOL" ]] && CMD+=(-o "swap_policy $UPOL")
		[[ -n "$UPF" ]] && CMD+=(-o "set ${UPOL:-fifo}.prefetch $UPF")
		[[ -n "$UCOLO" ]] && CMD+=(-o "mode colocate")
		[[ -n "$js" ]] && CMD+=(--stats-json "$js")
		CMD+=(-- "$SW" "${SWARGS[@]}") ;;
	esac
}
variant_what() {
	case "$1" in
	kernel-swapfile) echo "kernel: cgroup v1 memory limit, swap file on the repository's filesystem" ;;
	kernel-zram)     echo "kernel: cgroup v1 memory limit, swap on /dev/zram0 (lz4)" ;;
	usm-file)        echo "USM: file swap device (io_uring), default eviction policy (fifo, readahead)" ;;
	usm-zmem)        echo "USM: compressed in-memory swap device (lz4), default eviction policy (fifo, readahead)" ;;
	usm-*)
		usm_variant_parts "$1"
		echo "USM: $UDEV swap device, eviction policy ${UPOL:-fifo}${UPF:+, swap-in prefetch $UPF}${UCOLO:+, mode colocate}${UINLINE:+, in-process host (--inline)}" ;;
	esac
}
# doc_cmd ARGS...: show_cmd without this run's pid and the repository's
# path (the same for every run).
doc_cmd() {
	local s
	s=$(show_cmd "$@")
	s=${s//"$CG"/"/sys/fs/cgroup/memory/swap_bench.PID"}
	s=${s//".swap_bench.$$."/".swap_bench.PID."}
	echo "${s//"$ROOT/"/}"
}
variant_cmd_doc() {
	run_cmd "$1" "${2:-WORKLOAD}"
	local s
	s=$(doc_cmd "${CMD[@]}")
	case "$1" in
	kernel-swapfile) s="(memory.limit_in_bytes=${LIMIT_MB}M; swapon .swap_bench.PID.swapfile, ${DEV_MB} MiB) $s" ;;
	kernel-zram)     s="(memory.limit_in_bytes=${LIMIT_MB}M; zram0 lz4 disksize ${DEV_MB}M, swapon) $s" ;;
	esac
	echo "$s"
}
variant_color() {
	case "$1" in
	kernel-swapfile) echo '#444444' ;;
	kernel-zram)     echo '#999999' ;;
	usm-file)        echo '#1f77b4' ;;
	usm-zmem)        echo '#2ca02c' ;;
	usm-file-colocate) echo '#6baed6' ;;
	usm-zmem-colocate) echo '#98df8a' ;;
	usm-zmem-inline) echo '#006d2c' ;;
	usm-file-fifo)   echo '#9ecae1' ;;
	usm-file-clock)  echo '#ff7f0e' ;;
	usm-file-s3fifo) echo '#d62728' ;;
	*)               echo '#17becf' ;;
	esac
}

if ((LIST)); then
	for v in "${ALL_VARIANTS[@]}"; do
		printf '%-18s %s\n%-18s   %s\n' "$v" "$(variant_what "$v")" "" "$(variant_cmd_doc "$v")"
	done
	exit 0
fi

# ------------------------------------------------------------ checks
((EUID == 0)) || die "must run as root (cgroup memory limit, swapon, zram)"
command -v timeout >/dev/null || die "timeout(1) (coreutils) not found"
command -v jq >/dev/null || die "jq not found (apt-get install -y jq): needed to read usm run --stats-json"
for c in mkswap swapon swapoff fallocate; do
	command -v "$c" >/dev/null || die "$c not found (util-linux)"
done
make -s BUILD="$BUILD" "$SW" "$MF" >/dev/null || die "cannot build $SW and $MF (make BUILD=$BUILD $SW $MF)"
[[ -x "$SW" && -x "$MF" ]] || die "$SW or $MF missing after make"
if in_list kernel-swapfile "${VARIANTS[@]}" || in_list kernel-zram "${VARIANTS[@]}"; then
	[[ -w /sys/fs/cgroup/memory ]] || die "no cgroup v1 memory controller at /sys/fs/cgroup/memory"
fi
if in_list kernel-zram "${VARIANTS[@]}"; then
	[[ -d "$ZRAM" ]] || die "no /sys/block/zram0 (modprobe zram), or drop kernel-zram from --variants"
	grep -q '^/dev/zram0 ' /proc/swaps && die "/dev/zram0 is already a swap area: not touching it"
	[[ "$(cat "$ZRAM/disksize")" == 0 ]] || die "/dev/zram0 is in use (disksize $(cat "$ZRAM/disksize")): not touching it"
	grep -qw lz4 "$ZRAM/comp_algorithm" || die "zram0 has no lz4 ($(cat "$ZRAM/comp_algorithm"))"
fi
OTHER_SWAP=$(awk 'NR > 1 { print $1 }' /proc/swaps | tr '\n' ' ')

# -------------------------------------------------- system settings
# Everything set up is undone after each run and, whatever happens, on exit.
TMP=$(mktemp -d "${TMPDIR:-/tmp}/swap_bench.XXXXXX")
ZRAM_ALG0=
swap_active() { awk -v f="$1" 'NR > 1 && $1 == f { x = 1 } END { exit !x }' /proc/swaps; }
swapfile_off() {
	if swap_active "$SWAPFILE"; then
		swapoff "$SWAPFILE" || { echo "$BENCH: WARNING: swapoff $SWAPFILE failed" >&2; return 1; }
	fi
}
zram_off() {
	[[ -n "$ZRAM_ALG0" ]] || return 0
	if swap_active /dev/zram0; then
		swapoff /dev/zram0 || { echo "$BENCH: WARNING: swapoff /dev/zram0 failed" >&2; return 1; }
	fi
	echo 1 >"$ZRAM/reset" || { echo "$BENCH: WARNING: cannot reset zram0" >&2; return 1; }
	echo "$ZRAM_ALG0" >"$ZRAM/comp_algorithm" 2>/dev/null ||
		echo "$BENCH: WARNING: cannot restore zram0 comp_algorithm $ZRAM_ALG0" >&2
}
# run_timeout SECONDS COMMAND...: COMMAND under timeout(1), waited for in
# the background so that Ctrl-C reaches the trap at once (timeout puts
# COMMAND in a process group of its own, out of the terminal's reach).
RUN_PID=
run_timeout() {
	local secs=$1 rc=0
	shift
	timeout --kill-after=10 "$secs" "$@" &
	RUN_PID=$!
	wait "$RUN_PID" || rc=$?
	RUN_PID=
	return $rc
}
cleanup() {
	set +e
	if [[ -n "$RUN_PID" ]]; then
		kill -TERM "$RUN_PID" 2>/dev/null
		wait "$RUN_PID" 2>/dev/null
	fi
	swapfile_off
	zram_off
	rm -f "$SWAPFILE" "$USMFILE"
	if [[ -d "$CG" ]]; then
		local p
		for p in $(cat "$CG/cgroup.procs" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
		sleep 0.2
		rmdir "$CG" 2>/dev/null || echo "$BENCH: WARNING: could not remove $CG" >&2
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

cgroup_setup() {
	mkdir "$CG" || die "cannot create $CG"
	echo $((LIMIT_MB << 20)) >"$CG/memory.limit_in_bytes" || die "cannot set $CG/memory.limit_in_bytes"
}
swapfile_setup() {
	fallocate -l "${DEV_MB}M" "$SWAPFILE" || die "fallocate -l ${DEV_MB}M $SWAPFILE failed"
	chmod 600 "$SWAPFILE"
	mkswap "$SWAPFILE" >/dev/null || die "mkswap $SWAPFILE failed"
	# Some filesystems refuse fallocated swap files: then write it out.
	if ! swapon "$SWAPFILE" 2>/dev/null; then
		dd if=/dev/zero of="$SWAPFILE" bs=1M count="$DEV_MB" status=none || die "dd to $SWAPFILE failed"
		mkswap "$SWAPFILE" >/dev/null || die "mkswap $SWAPFILE failed"
		swapon "$SWAPFILE" || die "swapon $SWAPFILE failed"
	fi
	swapoff "$SWAPFILE" || die "swapoff $SWAPFILE failed"
}
zram_on() {
	[[ -n "$ZRAM_ALG0" ]] || ZRAM_ALG0=$(sysfs_get "$ZRAM/comp_algorithm")
	echo lz4 >"$ZRAM/comp_algorithm" && echo "${DEV_MB}M" >"$ZRAM/disksize" &&
		mkswap /dev/zram0 >/dev/null && swapon /dev/zram0
}
# variant_on / variant_off <variant>: the variant's swap area around a run.
variant_on() {
	case "$1" in
	kernel-swapfile) swapon "$SWAPFILE" ;;
	kernel-zram)     zram_on ;;
	*)               rm -f "$USMFILE" ;;
	esac
}
variant_off() {
	case "$1" in
	kernel-swapfile) swapfile_off ;;
	kernel-zram)     zram_off ;;
	*)               rm -f "$USMFILE" ;;
	esac
}

# ------------------------------------------------------------- info
machine_info
mkdir -p bench/results
RAW="bench/results/swap_bench-$STAMP.txt"
PNG="bench/results/swap_bench-$STAMP.png"
RES="$TMP/results"
: >"$RES"
declare -A FAILED=() FAILS=() FAILWHY=()
WARN=()
[[ -z "$OTHER_SWAP" ]] || WARN+=("swap areas active before the run (used by the kernel variants too): $OTHER_SWAP")
{
	echo "# swap_bench.sh raw results"
	echo "# date:    $DATE"
	echo "# kernel:  $KERNEL"
	echo "# cpu:     $CPU ($NCPU CPUs); THP enabled=$THP"
	echo "# load:    $LOAD0 (1/5/15 min) at start"
	echo "# command: $CMDLINE"
	echo "# limit_mb=$LIMIT_MB ws_mb=$WS_MB swap_mb=$DEV_MB reps=$REPS threads=$THREADS ${OPS:+ops=$OPS}${OPS:-seconds=$SECONDS_RUN} warmup_mb=$WARMUP_MB"
	for v in "${VARIANTS[@]}"; do echo "# $v: $(variant_cmd_doc "$v")"; done
	echo "# result lines: swapwork's result line with variant, rep and, for USM, usm_faults,"
	echo "#   usm_fault_p99_ns from usm run --stats-json; for the kernel, pswpin/pswpout"
	echo "#   (/proc/vmstat deltas over the whole run)"
} >"$RAW"

# ----------------------------------------------------------- probes
fail_variant() {
	FAILED[$1]=$2
	echo "failed: $1: $2"
	echo "# failed: $1: $2" >>"$RAW"
}
for v in "${VARIANTS[@]}"; do
	if [[ "$v" == kernel-* ]]; then continue; fi
	if [[ ! -x "$USM" ]]; then
		fail_variant "$v" "usm not built ($USM missing; make BUILD=$BUILD)"
		continue
	fi
	# A small run that must evict: 24 MiB through a 16 MiB budget.
	OPS='' SECONDS_RUN=1 run_cmd "$v" gups 24 16
	probe=("${CMD[@]}")
	rc=0
	run_timeout 60 "${probe[@]}" >"$TMP/probe.log" 2>&1 </dev/null || rc=$?
	rm -f "$USMFILE"
	if ((rc == 0)) && grep -q '^result .* verify=ok' "$TMP/probe.log"; then continue; fi
	fail_variant "$v" "probe \`$(doc_cmd "${probe[@]}")\` failed ($(variant_failure "$TMP/probe.log" "$rc"))"
done
RUN_VARIANTS=()
for v in "${VARIANTS[@]}"; do [[ -n "${FAILED[$v]:-}" ]] || RUN_VARIANTS+=("$v"); done

if in_list kernel-swapfile "${RUN_VARIANTS[@]+"${RUN_VARIANTS[@]}"}" || in_list kernel-zram "${RUN_VARIANTS[@]+"${RUN_VARIANTS[@]}"}"; then
	cgroup_setup
fi
if in_list kernel-swapfile "${RUN_VARIANTS[@]+"${RUN_VARIANTS[@]}"}"; then swapfile_setup; fi

# -------------------------------------------------------------- run
cg_oom_kills() { awk '$1 == "oom_kill" { print $2 }' "$CG/memory.oom_control"; }
vmstat_get() { awk -v k="$1" '$1 == k { print $2 }' /proc/vmstat; }
field() { sed -n "s/^result .* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

# one_run <variant> <workload> <rep>: appends to RES, or records a failure.
one_run() {
	local v=$1 w=$2 rep=$3 log="$TMP/run.log" js="$TMP/stats.json" rc=0 line extra="" why=""
	local in0 out0 oom0=0 ufaults=- up99=-

	run_cmd "$v" "$w" "$WS_MB" "$LIMIT_MB" "$js"
	rm -f "$js"
	variant_on "$v" || die "cannot set up the swap area of $v"
	in0=$(vmstat_get pswpin); out0=$(vmstat_get pswpout)
	[[ "$v" != kernel-* ]] || oom0=$(cg_oom_kills)
	run_timeout "$TIMEOUT" "${CMD[@]}" >"$log" 2>&1 </dev/null || rc=$?
	extra=" pswpin=$(($(vmstat_get pswpin) - in0)) pswpout=$(($(vmstat_get pswpout) - out0))"
	variant_off "$v" || die "cannot undo the swap area of $v"

	line=$(grep -m1 '^result ' "$log" || true)
	if ((rc != 0)) || [[ "$(field verify "$line")" != ok ]]; then
		why=$(variant_failure "$log" "$rc")
		if [[ "$v" == kernel-* ]] && (($(cg_oom_kills) > oom0)); then
			why="killed by the memory group's OOM killer (oom_kill in memory.oom_control): $why"
		fi
		FAILS[$v/$w]=$((${FAILS[$v/$w]:-0} + 1))
		FAILWHY[$v/$w]=${why%%:*}
		printf '  [%d/%d] %-16s %-5s FAILED (%s)\n' "$RUN_I" "$NRUNS" "$v" "$w" "$why"
		echo "# FAILED variant=$v workload=$w rep=$rep: $(show_cmd "${CMD[@]}"): $why" >>"$RAW"
		return
	fi
	if is_usm "$v"; then
		if [[ -s "$js" ]] && read -r ufaults up99 < <(jq -r '
			[.processes[]? | select(.comm == "swapwork")] as $m
			| if ($m | length) > 0
			  then "\([$m[].faults] | add) \([$m[].latency_ns.p99] | max)"
			  else "\(.faults) \(.latency_ns.p99)" end' "$js" 2>/dev/null); then :
		else
			ufaults=-; up99=-
			WARN+=("$v/$w rep $rep: no usable --stats-json output")
		fi
		extra+=" usm_faults=$ufaults usm_fault_p99_ns=$up99"
	fi
	local ops_s faults p99
	ops_s=$(field ops_per_s "$line"); faults=$(field faults "$line"); p99=$(field lat_p99_ns "$line")
	# USM resolves faults itself: count what it saw, the kernel's minflt
	# counts them too but also the resolved-in-kernel ones.
	is_usm "$v" && [[ "$ufaults" != - ]] && faults=$ufaults
	printf '  [%d/%d] %-16s %-5s %10.0f ops/s  faults %-9s p99 %8.1f us%s\n' \
		"$RUN_I" "$NRUNS" "$v" "$w" "$ops_s" "$faults" "$(awk -v x="$p99" 'BEGIN { print x / 1000 }')" "$extra"
	echo "${line/#result /result variant=$v rep=$rep }$extra load1=$(cut -d' ' -f1 /proc/loadavg)" >>"$RAW"
	echo "$v $w $ops_s $faults $p99 $up99 $(sed -n 's/.* pswpin=\([0-9]*\) pswpout=\([0-9]*\).*/\1 \2/p' <<<"$extra" | grep . || echo '- -')" >>"$RES"
}

NRUNS=$((REPS * ${#WORKLOADS[@]} * ${#RUN_VARIANTS[@]}))
echo "swap_bench: ws $WS_MB MiB, limit $LIMIT_MB MiB, ${WORKLOADS[*]} x ${#RUN_VARIANTS[@]} variants x $REPS reps = $NRUNS runs, interleaved; kernel $KERNEL, $NCPU CPUs, load $LOAD0"
RUN_I=0
T_START=$(date +%s)
for ((rep = 0; rep < REPS; rep++)); do
	((NRUNS)) || break
	run_warmup "$MF" "$WARMUP_MB" nohuge
	for w in "${WORKLOADS[@]}"; do
		for v in "${RUN_VARIANTS[@]}"; do
			RUN_I=$((RUN_I + 1))
			one_run "$v" "$w" "$rep"
		done
	done
done
T_TOTAL=$(($(date +%s) - T_START))
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
echo "# load:    $LOAD1 (1/5/15 min) at the end; total time ${T_TOTAL} s" >>"$RAW"

# ------------------------------------------------------------ table
# med <variant> <workload> <column 3..8>: median over the runs ("-" if none)
med() {
	local m
	m=$(awk -v v="$1" -v w="$2" -v c="$3" '$1 == v && $2 == w && $c != "-" { print $c }' "$RES" | median)
	echo "${m:--}"
}
nruns() { awk -v v="$1" -v w="$2" '$1 == v && $2 == w { n++ } END { print n + 0 }' "$RES"; }

TABLE="$TMP/table"      # variant workload runs ops xk faults p99 fp99 pswpin pswpout | variant workload note
: >"$TABLE"
for w in "${WORKLOADS[@]}"; do
	kops=$(med kernel-swapfile "$w" 3)
	for v in "${VARIANTS[@]}"; do
		if [[ -n "${FAILED[$v]:-}" ]]; then echo "$v $w failed" >>"$TABLE"; continue; fi
		n=$(nruns "$v" "$w")
		if ((n == 0)); then echo "$v $w failed: all $REPS runs (see $RAW)" >>"$TABLE"; continue; fi
		ops=$(med "$v" "$w" 3)
		echo "$v $w $n $ops $(ratio "$ops" "$kops") $(med "$v" "$w" 4) $(med "$v" "$w" 5) $(med "$v" "$w" 6) $(med "$v" "$w" 7) $(med "$v" "$w" 8)" >>"$TABLE"
		[[ -z "${FAILS[$v/$w]:-}" ]] || WARN+=("$v/$w: ${FAILS[$v/$w]} of $REPS runs failed, the last one ${FAILWHY[$v/$w]} (see $RAW)")
	done
done

print_table() {     # print_table text|md
	awk -v fmt="$1" '
		function us(x) { return x == "-" ? "-" : sprintf("%.1f", x / 1000) }
		function n(x) { return x == "-" ? "-" : sprintf("%.0f", x) }
		BEGIN {
			if (fmt == "md") {
				print "| workload | variant | runs | ops/s | x kernel-swapfile | faults | p99 op latency us | USM p99 fault us | pswpin | pswpout |"
				print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
			} else
				printf "%-5s %-16s %4s %10s %7s %10s %10s %10s %9s %9s\n", "wl", "variant", "runs",
					"ops/s", "x k-swf", "faults", "p99 op us", "USM p99", "pswpin", "pswpout"
		}
		NF == 10 {
			if (fmt == "md")
				printf "| %s | %s | %d | %.0f | %s | %s | %s | %s | %s | %s |\n", $2, $1, $3, $4, $5, n($6), us($7), us($8), n($9), n($10)
			else
				printf "%-5s %-16s %4d %10.0f %7s %10s %10s %10s %9s %9s\n", $2, $1, $3, $4, $5, n($6), us($7), us($8), n($9), n($10)
			next
		}
		{
			v = $1; w = $2; $1 = ""; $2 = ""; sub(/^  /, "")
			if (fmt == "md") printf "| %s | %s | %s |||||||\n", w, v, $0
			else printf "%-5s %-16s %s\n", w, v, $0
		}' "$TABLE"
}

echo
print_table text
for v in "${VARIANTS[@]}"; do [[ -z "${FAILED[$v]:-}" ]] || echo "failed: $v: ${FAILED[$v]}"; done
for x in "${WARN[@]+"${WARN[@]}"}"; do echo "warning: $x"; done
{
	echo "#"
	print_table text | sed 's/^/# /'
	for x in "${WARN[@]+"${WARN[@]}"}"; do echo "# warning: $x"; done
} >>"$RAW"
echo
echo "raw results: $RAW (total ${T_TOTAL} s)"

# ------------------------------------------------------------- plot
PLOT_NOTE=""
PV=()
for v in "${VARIANTS[@]}"; do
	awk -v v="$v" '$1 == v && NF == 10 { f = 1 } END { exit !f }' "$TABLE" && PV+=("$v")
done
if ! command -v gnuplot >/dev/null; then
	PLOT_NOTE="plot skipped: gnuplot not installed (apt-get install -y gnuplot-nox)"
elif ((${#PV[@]} == 0)); then
	PLOT_NOTE="plot skipped: no results"
fi
if [[ -z "$PLOT_NOTE" ]]; then
	# One data file per metric: rows = workloads, columns = variants.
	for col in 4:ops 5:ratio 7:p99; do
		c=${col%%:*}
		{
			printf 'workload'; for v in "${PV[@]}"; do printf ' %s' "$v"; done; echo
			for w in "${WORKLOADS[@]}"; do
				printf '%s' "$w"
				for v in "${PV[@]}"; do
					x=$(awk -v v="$v" -v w="$w" -v c="$c" '$1 == v && $2 == w && NF == 10 && $c != "-" {
						print (c == 7) ? $c / 1000 : $c }' "$TABLE")
					printf ' %s' "${x:-?}"
				done
				echo
			done
		} >"$TMP/${col#*:}.dat"
	done
	ncol=$((${#PV[@]} + 1))
	COLS=""
	for v in "${PV[@]}"; do COLS+=" $(variant_color "$v")"; done
	plot_term 1500 520
	if gnuplot >"$TMP/gnuplot.log" 2>&1 <<EOF
set terminal $TERM_PNG
set output '$PNG'
COLS = "$COLS"
set datafile missing '?'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set grid ytics
set xtics nomirror noenhanced
set multiplot layout 1,3 title "swapwork, working set $WS_MB MiB, memory limit $LIMIT_MB MiB, $THREADS thread(s), median of $REPS\nkernel $KERNEL, $NCPU CPUs, $DATE" noenhanced
set key off
set logscale y
set title "throughput (ops/s, log scale, higher is better)"
plot for [c=2:$ncol] '$TMP/ops.dat' using c:xtic(1) title columnheader(c) lc rgb word(COLS, c - 1)
unset logscale y
set yrange [0:*]
set title "throughput / kernel-swapfile (higher is better)"
plot for [c=2:$ncol] '$TMP/ratio.dat' using c:xtic(1) title columnheader(c) lc rgb word(COLS, c - 1), 1 with lines dt 2 lc rgb '#000000' notitle
set logscale y
set yrange [*:*]
set title "p99 operation latency (us, log scale, lower is better)"
set key outside right top vertical Left reverse noenhanced
plot for [c=2:$ncol] '$TMP/p99.dat' using c:xtic(1) title columnheader(c) lc rgb word(COLS, c - 1)
unset multiplot
EOF
	then
		echo "plot: $PNG"
	else
		PLOT_NOTE="plot failed: $(tail -n 2 "$TMP/gnuplot.log" | tr '\n' ' ')"
	fi
fi
[[ -z "$PLOT_NOTE" ]] || echo "$PLOT_NOTE"

# -------------------------------------------------------------- doc
if ((DOC)); then
	DOCF=docs/bench-swap.md
	mkdir -p docs
	{
		echo "# Swapping under a memory limit: kernel (swap file, zram) vs USM eviction"
		echo
		echo "Generated by \`bench/swap_bench.sh --doc\`; rerun it to refresh this page."
		echo
		echo "- date: $DATE"
		echo "- kernel (\`uname -r\`): \`$KERNEL\`"
		echo "- machine: $CPU, $NCPU CPUs, THP \`enabled=$THP\`; load average $LOAD0 at the start, $LOAD1 at the end"
		echo "- command: \`$CMDLINE\` (took $((T_TOTAL / 60)) min $((T_TOTAL % 60)) s)"
		echo "- working set $WS_MB MiB, memory limit $LIMIT_MB MiB, swap space $DEV_MB MiB;" \
		     "swapwork with $THREADS thread(s), $(if [[ -n "$OPS" ]]; then echo "$OPS operations"; else echo "$SECONDS_RUN s timed"; fi) per run" \
		     "after populating every page; $REPS runs per workload and variant, interleaved" \
		     "(rep 1 of every workload x variant, then rep 2, ...)$(if ((WARMUP_MB > 0)); then echo "; each round preceded by \`$(show_cmd "$MF") warmup --warmup-mb $WARMUP_MB --warmup-madvise nohuge\`"; fi)."
		echo "- raw results: [\`$RAW\`](../$RAW)"
		echo
		print_table md
		echo
		if [[ -z "$PLOT_NOTE" ]]; then
			echo "![swapwork throughput, ratio to kernel-swapfile, p99 latency](../$PNG)"
		else
			echo "($PLOT_NOTE)"
		fi
		echo
		for v in "${VARIANTS[@]}"; do
			[[ -z "${FAILED[$v]:-}" ]] || { echo "**$v failed:** ${FAILED[$v]}"; echo; }
		done
		nfail=0
		for v in "${VARIANTS[@]}"; do is_usm "$v" && [[ -n "${FAILED[$v]:-}" ]] && nfail=$((nfail + 1)); done
		if ((nfail)); then
			echo "The USM rows marked failed are pending: this build of \`usm\` could not run" \
			     "their probe (a small run that must evict), so none of their runs were made."
			echo
		fi
		for x in "${WARN[@]+"${WARN[@]}"}"; do echo "**Warning:** $x"; echo; done
		echo "- Medians over the runs that succeeded (runs column). Every run verified its whole" \
		     "working set at the end (swapwork exits 1 on a mismatch, and such a run counts as" \
		     "failed); a kernel run killed by its memory group's OOM killer counts as failed too."
		echo "- ops/s: operations of the timed phase / its wall time. gups: one 8-byte" \
		     "read-modify-write at a random place; scan: one page (8 cache lines read," \
		     "one word written), sweeping the working set; zipf: one GET (90%, 1 KiB" \
		     "value read and checksummed) or SET (10%, value rewritten), keys Zipfian" \
		     "(theta 0.99, hot keys scattered)."
		echo "- faults: kernel variants, swapwork's \`getrusage\` majflt + minflt over the timed" \
		     "phase; USM variants, the faults USM served for swapwork (\`usm run --stats-json\`," \
		     "whole run, populate included)."
		echo "- p99 op latency: swapwork's own, one operation in 64 timed with \`clock_gettime\`." \
		     "USM p99 fault: USM's fault-service latency (\`latency_ns.p99\` of swapwork in" \
		     "\`--stats-json\`)."
		echo "- pswpin / pswpout: pages swapped in / out by the kernel during the run" \
		     "(\`/proc/vmstat\` deltas; the populate phase included)."
		echo "- The cgroup limit counts all of swapwork's memory (anonymous, page cache," \
		     "kernel); USM's \`memory\` budget counts the frames it manages. The machine is a" \
		     "noisy 2-vCPU VM: compare ratios within one run."
		echo
		echo "## Variants and exact commands"
		echo
		echo "| variant | what | command of one run |"
		echo "|---|---|---|"
		for v in "${VARIANTS[@]}"; do
			echo "| $v | $(variant_what "$v")${FAILED[$v]:+ — **failed**} | \`$(variant_cmd_doc "$v")\` |"
		done
		echo
		echo "The swap areas exist only during their variant's runs: the swap file is" \
		     "created once (\`fallocate\`, \`mkswap\`) and enabled with \`swapon\` for each run," \
		     "zram0 is set up (\`comp_algorithm lz4\`, \`disksize\`, \`mkswap\`, \`swapon\`) and" \
		     "reset after each run; the memory group is removed and the swap file deleted" \
		     "at the end, also on errors and Ctrl-C."
	} >"$DOCF"
	echo "doc: $DOCF"
fi
