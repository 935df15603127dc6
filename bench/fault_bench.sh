#!/usr/bin/env bash
# bench/fault_bench.sh: cost of one first-touch fault per 4 KiB page, in ONE
# run: the kernel 4K baseline, the raw userfaultfd handler-thread limits, and
# USM (`usm run` of the plain `fault_bench touch` program).
#
# usage: bench/fault_bench.sh [--reps R] [--size-mb N] [--warmup-mb M]
#                             [--modes m1,m2,...] [--timeout S] [--doc]
#
#   --reps R        repetitions of every mode (default 7; at least 5 for
#                   medians worth reporting), interleaved round-robin:
#                   rep 1 of every mode, then rep 2 of every mode, ...
#   --size-mb N     touched mapping in MiB (default 1024; at least 1024)
#   --warmup-mb M   MiB touched and freed right before every measured run
#                   (default 3072, 0 = none), see "Warm-up" below
#   --modes LIST    comma-separated subset of the modes (default: all)
#   --timeout S     kill a run that takes longer than S seconds (default 300)
#   --doc           also write docs/bench-faults.md
#
# Environment: BUILD (default build) is where $BUILD/bin/usm is looked for.
#
# Modes:
#   kernel          fault_bench kernel: anonymous 4K faults (MADV_NOHUGEPAGE)
#   uffd-raw        fault_bench uffd-raw: handler thread in poll(), COPY 4K
#   uffd-raw-spin   fault_bench uffd-raw-spin: handler spins on read(), COPY 4K
#   uffd-raw-16     fault_bench uffd-raw-16: handler in poll(), COPY 64 KiB
#   usm-4k          usm run (first_fit, blocking workers) -- fault_bench touch
#   usm-4k-spin     usm run (first_fit, spinning workers) -- fault_bench touch
#   usm-4k-hybrid   usm run (first_fit, hybrid workers: the default, polling
#                   50 us after each event) -- fault_bench touch
#   uffd-raw-sigbus fault_bench uffd-raw-sigbus: UFFD_FEATURE_SIGBUS, the
#                   faulting thread copies its own page (the in-thread limit)
#   usm-4k-inline   usm run --inline (first_fit)          -- fault_bench touch
#   usm-batch16-inline usm run --inline (batch, 16 pages) -- fault_bench touch
#   usm-batch16     usm run (batch policy, 16 pages)      -- fault_bench touch
#   usm-batch16-spin  the same with spinning workers
#   usm-batch16-hybrid  the same with hybrid workers
# A USM mode is skipped ("skipped: usm not built") if $BUILD/bin/usm is absent.
#
# Warm-up: on this VM the first touch of guest memory is several times slower,
# and virtio-balloon free page reporting hands freed memory back to the host
# within seconds (then it is "first touch" again).  So every measured run,
# of every mode alike, is immediately preceded by `fault_bench warmup`, and
# the measured process itself gets --warmup-mb 0 (under `usm run`, an
# in-process warm-up would also push 3 GiB through USM first).
#
# Output: a table on stdout, the raw results in
# bench/results/fault_bench-<date>.txt, a bar plot next to it (.png, if
# gnuplot is installed), and with --doc docs/bench-faults.md.
set -euo pipefail

BENCH=fault_bench.sh
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL_MODES=(kernel uffd-raw uffd-raw-spin uffd-raw-16 uffd-raw-sigbus usm-4k usm-4k-spin
	   usm-4k-hybrid usm-4k-inline usm-batch16 usm-batch16-spin usm-batch16-hybrid
	   usm-batch16-inline)
REPS=7
SIZE_MB=1024
WARMUP_MB=3072
TIMEOUT=300
DOC=0
MODES=("${ALL_MODES[@]}")

# The exact command, for the results file and the doc.
record_cmdline "$@"
BUILD=${BUILD:-build}


while (($#)); do
	case "$1" in
	--reps|--size-mb|--warmup-mb|--timeout|--modes)
		(($# >= 2)) || die "$1 needs a value"
		case "$1" in
		--reps)      is_pos "$2" || die "--reps expects a positive integer, got '$2'"; REPS=$2 ;;
		--size-mb)   is_pos "$2" || die "--size-mb expects a positive integer, got '$2'"; SIZE_MB=$2 ;;
		--warmup-mb) is_uint "$2" || die "--warmup-mb expects an integer >= 0, got '$2'"; WARMUP_MB=$2 ;;
		--timeout)   is_pos "$2" || die "--timeout expects a positive integer, got '$2'"; TIMEOUT=$2 ;;
		--modes)
			IFS=, read -r -a MODES <<<"$2"
			for m in "${MODES[@]}"; do
				[[ " ${ALL_MODES[*]} " == *" $m "* ]] ||
					die "unknown mode '$m' (modes: ${ALL_MODES[*]})"
			done ;;
		esac
		shift 2 ;;
	--doc) DOC=1; shift ;;
	-h|--help) usage; exit 0 ;;
	*) die "unexpected argument '$1' (see --help)" ;;
	esac
done
((REPS >= 5)) || echo "warning: --reps $REPS < 5: medians of so few runs are not worth reporting" >&2
((SIZE_MB >= 1024)) || echo "warning: --size-mb $SIZE_MB < 1024: below the 1 GiB the benchmark is meant for" >&2

command -v timeout >/dev/null || die "timeout(1) (coreutils) not found"

# ---------------------------------------------------------------- build
FB="$BUILD/bench/fault_bench"   # plain C, never sanitized, in any BUILD
make -s BUILD="$BUILD" "$FB" >/dev/null || die "cannot build $FB (make BUILD=$BUILD $FB)"
USM="$BUILD/bin/usm"
[[ "$USM" == /* ]] || USM="$ROOT/$USM"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/fault_bench.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# ---------------------------------------------------------- USM configs
# `memory` must hold the touched mapping with room to spare.
USM_MEMORY=$((SIZE_MB + 512 > 4096 ? SIZE_MB + 512 : 4096))
write_cfg() {   # write_cfg <mode> <mode-line> <policy> [set-lines...]
	local f="$TMP/$1.cfg"
	{
		echo "# fault_bench.sh: $1"
		echo "memory $USM_MEMORY"
		echo "workers 1"
		echo "page 4096"
		echo "mode $2"
		echo "process alloc fault_bench $3"
		shift 3
		for l in "$@"; do echo "$l"; done
	} >"$f"
}
write_cfg usm-4k      blocking first_fit
write_cfg usm-4k-spin spinning first_fit
write_cfg usm-4k-hybrid "hybrid 50" first_fit
write_cfg usm-batch16 blocking batch "set batch.pages 16"
write_cfg usm-batch16-spin spinning batch "set batch.pages 16"
write_cfg usm-batch16-hybrid "hybrid 50" batch "set batch.pages 16"
write_cfg usm-4k-inline blocking first_fit "host inline"
write_cfg usm-batch16-inline blocking batch "set batch.pages 16" "host inline"

is_usm() { [[ "$1" == usm-* ]]; }

# The command of one measured run of <mode> (printed into the doc verbatim).
mode_cmd() {
	local m=$1 args="--size-mb $SIZE_MB --reps 1 --warmup-mb 0"
	if is_usm "$m"; then
		echo "$BUILD/bin/usm run --config <$m.cfg> -- $FB touch $args"
	else
		echo "$FB $m $args"
	fi
}

# ------------------------------------------------------------------ run
machine_info
mkdir -p bench/results
RAW="bench/results/fault_bench-$STAMP.txt"
PNG="bench/results/fault_bench-$STAMP.png"
RES="$TMP/results"          # "mode ns_per_page" per successful run
: >"$RES"
declare -A SKIP=() FAILS=()

{
	echo "# fault_bench.sh raw results"
	echo "# date:    $DATE"
	echo "# kernel:  $KERNEL"
	echo "# cpu:     $CPU ($NCPU CPUs), THP enabled=$THP"
	echo "# command: $CMDLINE"
	echo "# size_mb=$SIZE_MB reps=$REPS warmup_mb=$WARMUP_MB (separate process before every run)"
	for m in "${MODES[@]}"; do echo "# $m: $(mode_cmd "$m")"; done
	for m in "${MODES[@]}"; do
		if is_usm "$m"; then
			echo "# $m.cfg:"
			sed 's/^/#     /' "$TMP/$m.cfg"
		fi
	done
} >"$RAW"

for m in "${MODES[@]}"; do
	if is_usm "$m" && [[ ! -x "$USM" ]]; then
		SKIP[$m]="skipped: usm not built ($BUILD/bin/usm missing)"
		echo "$m: ${SKIP[$m]}"
		echo "# $m: ${SKIP[$m]}" >>"$RAW"
	fi
done

echo "fault_bench: $SIZE_MB MiB, $REPS reps per mode, round-robin; kernel $KERNEL, $NCPU CPUs"
for ((rep = 0; rep < REPS; rep++)); do
	for m in "${MODES[@]}"; do
		[[ -z "${SKIP[$m]:-}" ]] || continue
		log="$TMP/run.log"
		if ((WARMUP_MB > 0)); then
			"$FB" warmup --warmup-mb "$WARMUP_MB" >/dev/null ||
				die "warm-up failed: $FB warmup --warmup-mb $WARMUP_MB"
		fi
		args=(--size-mb "$SIZE_MB" --reps 1 --warmup-mb 0)
		if is_usm "$m"; then
			cmd=("$USM" run --config "$TMP/$m.cfg" -- "$FB" touch "${args[@]}")
		else
			cmd=("$FB" "$m" "${args[@]}")
		fi
		rc=0
		timeout --kill-after=10 "$TIMEOUT" "${cmd[@]}" >"$log" 2>&1 </dev/null || rc=$?
		ns=$(sed -n 's/^result .* ns_per_page=\([0-9.]*\)$/\1/p; T; q' "$log")
		if ((rc != 0)) || [[ -z "$ns" ]]; then
			FAILS[$m]=$((${FAILS[$m]:-0} + 1))
			why="exit status $rc"
			((rc == 124 || rc == 137)) && why="timed out after ${TIMEOUT}s"
			last=$(grep -v '^result ' "$log" | tail -n 3 | tr '\n' ' ' || true)
			printf '  [%d/%d] %-14s FAILED (%s): %s\n' $((rep + 1)) "$REPS" "$m" "$why" "$last"
			echo "# FAILED mode=$m rep=$rep ($why): $last" >>"$RAW"
			continue
		fi
		printf '  [%d/%d] %-14s %10.1f ns/page\n' $((rep + 1)) "$REPS" "$m" "$ns"
		echo "result mode=$m size_mb=$SIZE_MB rep=$rep ns_per_page=$ns" >>"$RAW"
		echo "$m $ns" >>"$RES"
	done
done

# ---------------------------------------------------------------- table
# stats <mode> -> "median min max n" (nothing if the mode has no result)
stats() {
	awk -v m="$1" '$1 == m { print $2 }' "$RES" | sort -g | awk '
		{ v[NR] = $1 }
		END {
			if (NR == 0) exit
			med = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			printf "%.1f %.1f %.1f %d\n", med, v[1], v[NR], NR
		}'
}
median_of() { local s; s=$(stats "$1"); echo "${s%% *}"; }
KMED=$(median_of kernel)
UMED=$(median_of uffd-raw)
SMED=$(median_of uffd-raw-spin)

TABLE="$TMP/table"      # mode median min max n r_kernel r_uffd | skipped-note
PLOTDAT="$TMP/plot.dat"
: >"$TABLE"; : >"$PLOTDAT"
WARN=()
for m in "${MODES[@]}"; do
	if [[ -n "${SKIP[$m]:-}" ]]; then
		echo "$m ${SKIP[$m]}" >>"$TABLE"
		continue
	fi
	s=$(stats "$m")
	if [[ -z "$s" ]]; then
		echo "$m all runs failed" >>"$TABLE"
		continue
	fi
	read -r med min max n <<<"$s"
	echo "$m $med $min $max $n $(ratio "$med" "$KMED") $(ratio "$med" "$UMED")" >>"$TABLE"
	echo "$m $med $min $max" >>"$PLOTDAT"
	if [[ -n "${FAILS[$m]:-}" ]]; then
		WARN+=("$m: ${FAILS[$m]} of $REPS runs failed (see $RAW)")
	fi
	# A 4K USM mode faster than the raw spinning-handler limit did not go
	# through a handler thread at all: the agent probably did not register.
	if [[ ( "$m" == usm-4k || "$m" == usm-4k-spin || "$m" == usm-4k-hybrid ) && -n "$SMED" ]] &&
		awk -v a="$med" -v b="$SMED" 'BEGIN { exit !(a < 0.8 * b) }'; then
		WARN+=("$m is faster than uffd-raw-spin, the raw handler-thread limit: check that USM really resolved the faults (usm stat)")
	fi
done

print_table() {     # print_table text|md
	awk -v fmt="$1" '
		BEGIN {
			if (fmt == "md") {
				print "| mode | median ns/4K page | min | max | runs | vs kernel 4K | vs uffd-raw |"
				print "|---|---:|---:|---:|---:|---:|---:|"
			} else {
				printf "%-14s %12s %10s %10s %5s %10s %10s\n", "mode", "median ns/pg", "min", "max", "runs", "x kernel", "x uffd-raw"
			}
		}
		NF == 7 && $2 ~ /^[0-9.]+$/ {
			if (fmt == "md")
				printf "| %s | %.0f | %.0f | %.0f | %d | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7
			else
				printf "%-14s %12.0f %10.0f %10.0f %5d %10s %10s\n", $1, $2, $3, $4, $5, $6, $7
			next
		}
		{
			m = $1; $1 = ""; sub(/^ /, "")
			if (fmt == "md") printf "| %s | %s | | | | | |\n", m, $0
			else printf "%-14s %s\n", m, $0
		}' "$TABLE"
}

echo
print_table text
for w in "${WARN[@]+"${WARN[@]}"}"; do echo "warning: $w"; done
{
	echo "#"
	print_table text | sed 's/^/# /'
	for w in "${WARN[@]+"${WARN[@]}"}"; do echo "# warning: $w"; done
} >>"$RAW"
echo
echo "raw results: $RAW"

# ----------------------------------------------------------------- plot
PLOT_NOTE=""
if ! command -v gnuplot >/dev/null; then
	PLOT_NOTE="plot skipped: gnuplot not installed (apt-get install -y gnuplot-nox)"
	echo "$PLOT_NOTE"
elif [[ ! -s "$PLOTDAT" ]]; then
	PLOT_NOTE="plot skipped: no results"
	echo "$PLOT_NOTE"
else
	plot_term 1000 560
	term=$TERM_PNG
	if gnuplot >"$TMP/gnuplot.log" 2>&1 <<EOF
set terminal $term
set output '$PNG'
set title "First-touch fault cost per 4 KiB page ($SIZE_MB MiB, median of $REPS, bars: min-max)\nkernel $KERNEL, $NCPU CPUs, $DATE"
set ylabel "ns per 4 KiB page"
set style fill solid 0.6 border -1
set boxwidth 0.6
set grid ytics
set yrange [0:*]
set xtics nomirror
set xrange [-0.6:$(($(wc -l <"$PLOTDAT") - 1)).6]
plot '$PLOTDAT' using 0:2:xtic(1) with boxes lc rgb '#4477aa' notitle, \
     '' using 0:2:3:4 with yerrorbars lc rgb 'black' pt -1 notitle, \
     '' using 0:4:(sprintf("%.0f", \$2)) with labels offset 0,0.8 notitle
EOF
	then
		echo "plot: $PNG"
	else
		PLOT_NOTE="plot failed: $(tail -n 2 "$TMP/gnuplot.log" | tr '\n' ' ')"
		echo "$PLOT_NOTE"
	fi
fi

# ------------------------------------------------------------------ doc
if ((DOC)); then
	DOCF=docs/bench-faults.md
	mkdir -p docs
	{
		echo "# First-touch fault cost: kernel, raw userfaultfd, USM"
		echo
		echo "Generated by \`bench/fault_bench.sh --doc\`; rerun it to refresh this page."
		echo
		echo "- date: $DATE"
		echo "- kernel (\`uname -r\`): \`$KERNEL\`"
		echo "- machine: $CPU, $NCPU CPUs, THP \`enabled=$THP\`"
		echo "- command: \`$CMDLINE\`"
		echo "- $SIZE_MB MiB touched per run (one write per 4 KiB page), $REPS runs per mode," \
		     "interleaved round-robin across modes; each run is a fresh process" \
		     "$(if ((WARMUP_MB > 0)); then echo "preceded by \`$FB warmup --warmup-mb $WARMUP_MB\`"; else echo "with no warm-up (--warmup-mb 0)"; fi)."
		echo "- raw results: [\`$RAW\`](../$RAW)"
		echo
		print_table md
		echo
		for w in "${WARN[@]+"${WARN[@]}"}"; do echo "**Warning:** $w"; echo; done
		if [[ -z "$PLOT_NOTE" ]]; then
			echo "![first-touch fault cost per 4 KiB page](../$PNG)"
		else
			echo "($PLOT_NOTE)"
		fi
		echo
		echo "Numbers are ns per 4 KiB page of the timed touch loop only (not mmap," \
		     "registration or munmap). The machine is noisy: compare the ratio columns" \
		     "within one run rather than absolute numbers across runs."
		echo
		echo "## Modes and exact commands"
		echo
		echo "| mode | what | command of one run |"
		echo "|---|---|---|"
		for m in "${MODES[@]}"; do
			case "$m" in
			kernel)        what="kernel anonymous fault, 4K (MADV_NOHUGEPAGE)" ;;
			uffd-raw)      what="userfaultfd MISSING, handler thread blocking in poll(), UFFDIO_COPY 4K per fault" ;;
			uffd-raw-spin) what="as uffd-raw, handler spinning on a non-blocking read()" ;;
			uffd-raw-16)   what="as uffd-raw, UFFDIO_COPY of the aligned 16-page (64 KiB) window per fault" ;;
			usm-4k)        what="USM, policy first_fit, blocking worker" ;;
			usm-4k-spin)   what="USM, policy first_fit, spinning worker" ;;
			usm-4k-hybrid) what="USM, policy first_fit, hybrid worker (the default: polls 50 us after each event)" ;;
			usm-batch16)   what="USM, policy batch, 16 pages per fault" ;;
			usm-batch16-spin) what="USM, policy batch, 16 pages per fault, spinning worker" ;;
			usm-batch16-hybrid) what="USM, policy batch, 16 pages per fault, hybrid worker" ;;
			uffd-raw-sigbus) what="userfaultfd with UFFD_FEATURE_SIGBUS: the faulting thread copies its own 4K page in its SIGBUS handler" ;;
			usm-4k-inline) what="USM in-process host (host inline), policy first_fit" ;;
			usm-batch16-inline) what="USM in-process host (host inline), policy batch, 16 pages per fault" ;;
			esac
			echo "| $m | $what | \`$(mode_cmd "$m")\` |"
		done
		echo
		for m in "${MODES[@]}"; do
			is_usm "$m" || continue
			echo "\`$m.cfg\`${SKIP[$m]:+ (${SKIP[$m]})}:"
			echo
			echo '```'
			cat "$TMP/$m.cfg"
			echo '```'
			echo
		done
		echo "The blocking handler-thread path (uffd-raw, and USM's blocking workers) is" \
		     "bimodal on a 2-vCPU VM: ~4,600 ns/page when the scheduler keeps the faulting" \
		     "thread and the handler on one vCPU (a direct switch), ~11,000–13,000 when" \
		     "they sit on different vCPUs (every fault is a cross-CPU wake-up of a halted" \
		     "vCPU). \`taskset -c 0 $FB uffd-raw\` shows the first mode; a wide min–max of" \
		     "uffd-raw usually means some runs landed in it."
		echo
		echo "Reference ranges measured on the development machine (DESIGN.md §4):" \
		     "kernel 4K ~1,400 ns/page; handler thread COPY 4K ~11,000–13,000 (blocking)" \
		     "and ~7,400 (spinning); handler thread COPY 64K ~1,300–2,200 ns/page."
	} >"$DOCF"
	echo "doc: $DOCF"
fi
