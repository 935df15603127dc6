#!/usr/bin/env bash
# memflt.sh: first-touch fault cost per 4 KiB page, by access pattern, for
# the kernel (4K, THP, 64 KiB mTHP) and for USM policies (4K, N pages per
# fault, 2 MiB, adaptive; handler thread and --inline), all in one run.
#
# Usage: bench/memflt.sh [--reps R] [--size-mb N] [--warmup-mb M] [--warmup-madvise A]
#                        [--variants v1,v2,...] [--patterns p1,p2,...]
#                        [--stride K] [--threads T] [--usm-opt LINE]...
#                        [--timeout S] [--keep-page-reporting] [--doc] [--list]
#
#   --reps R          repetitions of every variant x pattern (default 5; at
#                     least 5 for medians worth reporting), interleaved:
#                     rep 1 of every pattern x variant, then rep 2, ...
#   --size-mb N       measured mapping in MiB (default 1024, even)
#   --warmup-mb M     MiB touched and freed by a separate process right
#                     before every measured run (default 3072, 0 = none)
#   --warmup-madvise A  huge, nohuge or both (default): advice of the
#                     warm-up mapping; both = M MiB with MADV_HUGEPAGE plus
#                     M MiB with MADV_NOHUGEPAGE (a 4K-only warm-up leaves
#                     THP allocations on memory the host has not backed)
#   --variants LIST   comma-separated subset of the variants (default: all)
#   --patterns LIST   comma-separated subset of seq,rand,stride,mt,mt-rand
#   --stride K        stride of the stride pattern (default 16)
#   --threads T       threads of mt and mt-rand (default 2)
#   --usm-opt LINE    extra config line for every USM variant (repeatable),
#                     e.g. --usm-opt 'mode spinning'
#   --timeout S       kill a run that takes longer than S seconds (default 300)
#   --keep-page-reporting  leave the VM's free page reporting on (default:
#                     paused for the run and restored after, see bench/lib.sh;
#                     memory handed back to the host costs several times
#                     more on its next first touch, whoever touches it)
#   --doc             also write docs/bench-memflt.md
#   --list            print the variants and their commands, and exit
#
# Environment: BUILD (default build) is where $BUILD/bin/usm is looked for;
# memflt is built into $BUILD/bench/memflt.
#
# Variants (memflt never madvises under USM: the policy decides):
#   kernel-4k        memflt alone, MADV_NOHUGEPAGE on the mapping
#   kernel-thp       memflt alone, MADV_HUGEPAGE (PMD THP)
#   kernel-mthp64    memflt alone, MADV_HUGEPAGE, with 64 KiB mTHP `always`
#                    and 2 MiB `never` in sysfs for the run (restored after
#                    every run and on exit, whatever happens)
#   usm-4k           usm run -P first_fit
#   usm-batch16      usm run -P batch -o 'set batch.pages 16'
#   usm-fhp-N        usm run -P fhp -o 'set fhp.pages N', N = 16 ... 512
#   usm-2m           usm run -P thp (PMD-mapped 2 MiB pages)
#   usm-adaptive     usm run -P fhp_adaptive
#   usm-*-inline     the same with `usm run --inline` (faults handled in the
#                    faulting thread)
#   usm-4k-colocate, usm-fhp-64-colocate
#                    the daemon host with -o 'mode colocate' (the worker and
#                    a thread that faults alone share a CPU; default: hybrid)
# Each USM variant is first probed with a small run; one whose policy or
# option does not exist (yet) is reported as "skipped: <variant>: <reason>"
# and the benchmark goes on with the others.
#
# Patterns: see `memflt --help` (seq, rand, stride, mt, mt-rand).
#
# Output: tables on stdout (median ns per 4 KiB page, ratios to kernel-4k
# and usm-4k of the same run, pages per fault, pages mapped / touched; the
# issue's targets for the variants that ran, met or missed, with per-rep
# paired ratios), raw results in bench/results/memflt-<date>.txt, a grouped
# bar plot (.png) next to it, and with --doc docs/bench-memflt.md.
set -euo pipefail

BENCH=memflt.sh
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

FHP_SIZES=(16 32 64 128 256 512)
ALL_VARIANTS=(kernel-4k kernel-thp kernel-mthp64 usm-4k usm-4k-inline usm-batch16)
for n in "${FHP_SIZES[@]}"; do ALL_VARIANTS+=("usm-fhp-$n" "usm-fhp-$n-inline"); done
ALL_VARIANTS+=(usm-2m usm-2m-inline usm-adaptive usm-adaptive-inline)
ALL_VARIANTS+=(usm-4k-colocate usm-fhp-64-colocate)
ALL_PATTERNS=(seq rand stride mt mt-rand)

REPS=5
SIZE_MB=1024
WARMUP_MB=3072
WARMUP_ADV=both
TIMEOUT=300
STRIDE=16
THREADS=2
DOC=0
LIST=0
KEEP_REPORTING=0
VARIANTS=("${ALL_VARIANTS[@]}")
PATTERNS=("${ALL_PATTERNS[@]}")
USM_OPTS=()

record_cmdline "$@"
BUILD=${BUILD:-build}

while (($#)); do
	case "$1" in
	--reps|--size-mb|--warmup-mb|--warmup-madvise|--timeout|--variants|--patterns|--stride|--threads|--usm-opt)
		(($# >= 2)) || die "$1 needs a value"
		case "$1" in
		--reps)      is_pos "$2" || die "--reps expects a positive integer, got '$2'"; REPS=$((10#$2)) ;;
		--size-mb)   is_pos "$2" && ((10#$2 % 2 == 0)) || die "--size-mb expects an even positive integer, got '$2'"; SIZE_MB=$((10#$2)) ;;
		--warmup-mb) is_uint "$2" || die "--warmup-mb expects an integer >= 0, got '$2'"; WARMUP_MB=$((10#$2)) ;;
		--timeout)   is_pos "$2" || die "--timeout expects a positive integer, got '$2'"; TIMEOUT=$((10#$2)) ;;
		--stride)    is_uint "$2" && ((10#$2 >= 2)) || die "--stride expects an integer >= 2, got '$2'"; STRIDE=$((10#$2)) ;;
		--threads)   is_pos "$2" && ((10#$2 <= 256)) || die "--threads expects an integer in [1, 256], got '$2'"; THREADS=$((10#$2)) ;;
		--usm-opt)   USM_OPTS+=("$2") ;;
		--warmup-madvise)
			in_list "$2" huge nohuge both none || die "--warmup-madvise expects huge, nohuge, both or none, got '$2'"
			WARMUP_ADV=$2 ;;
		--variants)
			IFS=, read -r -a VARIANTS <<<"$2"
			((${#VARIANTS[@]})) || die "--variants: empty list"
			for v in "${VARIANTS[@]}"; do
				in_list "$v" "${ALL_VARIANTS[@]}" || die "unknown variant '$v' (variants: ${ALL_VARIANTS[*]})"
			done ;;
		--patterns)
			IFS=, read -r -a PATTERNS <<<"$2"
			((${#PATTERNS[@]})) || die "--patterns: empty list"
			for p in "${PATTERNS[@]}"; do
				in_list "$p" "${ALL_PATTERNS[@]}" || die "unknown pattern '$p' (patterns: ${ALL_PATTERNS[*]})"
			done ;;
		esac
		shift 2 ;;
	--doc) DOC=1; shift ;;
	--list) LIST=1; shift ;;
	--keep-page-reporting) KEEP_REPORTING=1; shift ;;
	-h|--help) usage; exit 0 ;;
	*) die "unexpected argument '$1' (see --help)" ;;
	esac
done
((REPS >= 5)) || echo "warning: --reps $REPS < 5: medians of so few runs are not worth reporting" >&2
((SIZE_MB >= 1024)) || echo "warning: --size-mb $SIZE_MB < 1024: below the 1 GiB the benchmark is meant for" >&2

USM="$BUILD/bin/usm"
[[ "$USM" == /* ]] || USM="$ROOT/$USM"
MF="$BUILD/bench/memflt"
# The embedded instance's budget must hold the mapping with room to spare
# (the default budget is 4096 MiB).
if ((SIZE_MB + 512 > 4096)); then USM_OPTS=("memory $((SIZE_MB + 512))" "${USM_OPTS[@]+"${USM_OPTS[@]}"}"); fi

is_usm() { [[ "$1" == usm-* ]]; }

# usm_args <variant>: sets UARGS to the `usm run` options of the variant.
usm_args() {
	local v=$1 base=${1%-inline}
	base=${base%-colocate}
	UARGS=()
	[[ "$v" == *-inline ]] && UARGS+=(--inline)
	[[ "$v" == *-colocate ]] && UARGS+=(-o 'mode colocate')
	case "$base" in
	usm-4k)       UARGS+=(-P first_fit) ;;
	usm-batch16)  UARGS+=(-P batch -o 'set batch.pages 16') ;;
	usm-fhp-*)    UARGS+=(-P fhp -o "set fhp.pages ${base#usm-fhp-}") ;;
	usm-2m)       UARGS+=(-P thp) ;;
	usm-adaptive) UARGS+=(-P fhp_adaptive) ;;
	*) die "internal: no usm arguments for $v" ;;
	esac
	local l
	for l in "${USM_OPTS[@]+"${USM_OPTS[@]}"}"; do UARGS+=(-o "$l"); done
}

# run_cmd <variant> <pattern> <size-mb> [stats.json]: sets CMD to the
# command of one measured run.
run_cmd() {
	local v=$1 p=$2 mb=$3 js=${4:-}
	local margs=("$p" --size-mb "$mb" --reps 1 --warmup-mb 0)
	[[ "$p" == stride ]] && margs+=(--stride "$STRIDE")
	[[ "$p" == mt* ]] && margs+=(--threads "$THREADS")
	case "$v" in
	kernel-4k) CMD=("$MF" "${margs[@]}" --madvise nohuge) ;;
	kernel-thp|kernel-mthp64) CMD=("$MF" "${margs[@]}" --madvise huge) ;;
	*)
		usm_args "$v"
		CMD=("$USM" run "${UARGS[@]}")
		[[ -n "$js" ]] && CMD+=(--stats-json "$js")
		CMD+=(-- "$MF" "${margs[@]}" --madvise none) ;;
	esac
}
variant_cmd_doc() {
	run_cmd "$1" "${2:-PATTERN}" "$SIZE_MB"
	local s
	s=$(show_cmd "${CMD[@]}")
	[[ "$1" == kernel-mthp64 ]] && s="(64kB enabled=always, 2048kB enabled=never) $s"
	echo "$s"
}
variant_what() {
	local v=$1 base=${1%-inline} il=""
	base=${base%-colocate}
	[[ "$v" == *-inline ]] && il=", in-thread (--inline)"
	[[ "$v" == *-colocate ]] && il=", mode colocate"
	case "$base" in
	kernel-4k)     echo "kernel anonymous faults, 4K (MADV_NOHUGEPAGE)" ;;
	kernel-thp)    echo "kernel THP, MADV_HUGEPAGE (2 MiB per fault when aligned)" ;;
	kernel-mthp64) echo "kernel 64 KiB mTHP (hugepages-64kB always, 2048kB never), MADV_HUGEPAGE" ;;
	usm-4k)        echo "USM first_fit, one 4K page per fault$il" ;;
	usm-batch16)   echo "USM batch policy, 16 pages per fault$il" ;;
	usm-fhp-*)     echo "USM fhp, ${base#usm-fhp-} pages ($((${base#usm-fhp-} * 4)) KiB) per fault$il" ;;
	usm-2m)        echo "USM thp: PMD-mapped 2 MiB pages$il" ;;
	usm-adaptive)  echo "USM fhp_adaptive$il" ;;
	esac
}
# Bar colour: kernel greys, first_fit reds, batch pink, fhp blues (inline:
# greens), 2 MiB purples, adaptive oranges; the inline twin is darker.
variant_color() {
	local v=$1 base=${1%-inline} il=0 i
	base=${base%-colocate}
	[[ "$v" == *-inline || "$v" == *-colocate ]] && il=1
	local blues=('#c6dbef' '#9ecae1' '#6baed6' '#4292c6' '#2171b5' '#08519c')
	local greens=('#c7e9c0' '#a1d99b' '#74c476' '#41ab5d' '#238b45' '#006d2c')
	case "$base" in
	kernel-4k)     echo '#444444' ;;
	kernel-thp)    echo '#888888' ;;
	kernel-mthp64) echo '#c0c0c0' ;;
	usm-4k)        ((il)) && echo '#8c1a1b' || echo '#d62728' ;;
	usm-batch16)   ((il)) && echo '#c76b69' || echo '#ff9896' ;;
	usm-fhp-*)
		for i in "${!FHP_SIZES[@]}"; do
			[[ "${FHP_SIZES[$i]}" == "${base#usm-fhp-}" ]] || continue
			((il)) && echo "${greens[$i]}" || echo "${blues[$i]}"
			return
		done
		echo '#1f77b4' ;;
	usm-2m)        ((il)) && echo '#5b3a80' || echo '#9467bd' ;;
	usm-adaptive)  ((il)) && echo '#b35900' || echo '#ff7f0e' ;;
	*)             echo '#17becf' ;;
	esac
}
# Pages per fault the variant should reach on seq ("" = no expectation).
expect_ppf() {
	local base=${1%-inline}
	case "$base" in
	kernel-4k|usm-4k) echo 1 ;;
	kernel-thp) echo 512 ;;
	usm-2m) echo 4608 ;;   # thp maps 8 windows ahead of a stream: 9 per fault
	kernel-mthp64|usm-batch16) echo 16 ;;
	usm-fhp-*) echo "${base#usm-fhp-}" ;;
	*) echo "" ;;
	esac
}

if ((LIST)); then
	for v in "${ALL_VARIANTS[@]}"; do
		printf '%-20s %s\n%-20s   %s\n' "$v" "$(variant_what "$v")" "" "$(variant_cmd_doc "$v")"
	done
	exit 0
fi

command -v timeout >/dev/null || die "timeout(1) (coreutils) not found"
command -v jq >/dev/null || die "jq not found (apt-get install -y jq): needed to read usm run --stats-json"

# ---------------------------------------------------------------- build
make -s BUILD="$BUILD" "$MF" >/dev/null || die "cannot build $MF (make BUILD=$BUILD $MF)"
[[ -x "$MF" ]] || die "$MF missing after make"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/memflt.XXXXXX")

# ---------------------------------------------------------------- sysfs
# Every value changed is remembered the first time and written back after
# every kernel-mthp64 run, and on any exit (trap).
cleanup() {
	sysfs_restore || true
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
mthp_on() {
	sysfs_set "$THP_DIR/hugepages-2048kB/enabled" never &&
		sysfs_set "$THP_DIR/hugepages-64kB/enabled" always
}
mthp_off() { sysfs_restore "$THP_DIR/hugepages-2048kB/enabled" "$THP_DIR/hugepages-64kB/enabled"; }
mthp_stat() { cat "$THP_DIR/hugepages-64kB/stats/anon_fault_alloc" 2>/dev/null || echo 0; }

# ------------------------------------------------------------------ info
REPORTING="left on (--keep-page-reporting)"
((KEEP_REPORTING)) || pause_page_reporting
machine_info
THP64=$(sysfs_get "$THP_DIR/hugepages-64kB/enabled" 2>/dev/null || echo "?")
THP2M=$(sysfs_get "$THP_DIR/hugepages-2048kB/enabled" 2>/dev/null || echo "?")
mkdir -p bench/results
RAW="bench/results/memflt-$STAMP.txt"
PNG="bench/results/memflt-$STAMP.png"
RES="$TMP/results"      # variant pattern ns faults mapped touched rep
: >"$RES"
declare -A SKIP=() FAILS=()
WARN=()

{
	echo "# memflt.sh raw results"
	echo "# date:    $DATE"
	echo "# kernel:  $KERNEL"
	echo "# cpu:     $CPU ($NCPU CPUs); THP enabled=$THP, hugepages-64kB=$THP64, hugepages-2048kB=$THP2M"
	echo "# load:    $LOAD0 (1/5/15 min) at start"
	echo "# free page reporting: $REPORTING"
	echo "# command: $CMDLINE"
	echo "# size_mb=$SIZE_MB reps=$REPS warmup_mb=$WARMUP_MB warmup_madvise=$WARMUP_ADV (separate process before every run) stride=$STRIDE threads=$THREADS"
	for v in "${VARIANTS[@]}"; do echo "# $v: $(variant_cmd_doc "$v")"; done
	echo "# result lines: variant pattern rep ns_per_page, faults and pages_mapped"
	echo "#   (usm run --stats-json, the memflt process; kernel: minflt of the timed loop),"
	echo "#   touched = measured pages + pages of memflt's permutation array,"
	echo "#   cpu_ns_per_page = user + system time of the memflt process over the timed"
	echo "#   loop (an in-process host's threads included, a daemon's not) per page"
} >"$RAW"

# ------------------------------------------------------------ probing
# A variant whose policy or option does not exist yet is skipped; so is one
# that cannot even run a small seq (its runs would all fail or time out).
skip() {
	SKIP[$1]=$2
	echo "skipped: $1: $2"
	echo "# skipped: $1: $2" >>"$RAW"
}
for v in "${VARIANTS[@]}"; do
	if [[ "$v" == kernel-mthp64 ]]; then
		for f in "$THP_DIR/hugepages-64kB/enabled" "$THP_DIR/hugepages-2048kB/enabled"; do
			if [[ ! -w "$f" ]]; then skip "$v" "$f not writable (no mTHP support, or not root)"; break; fi
		done
		continue
	fi
	is_usm "$v" || continue
	if [[ ! -x "$USM" ]]; then
		skip "$v" "usm not built ($USM missing; run make BUILD=$BUILD)"
		continue
	fi
	run_cmd "$v" seq 8 "$TMP/probe.json"
	rc=0
	timeout --kill-after=5 60 "${CMD[@]}" >"$TMP/probe.log" 2>&1 </dev/null || rc=$?
	if ((rc == 0)) && grep -q '^result ' "$TMP/probe.log"; then
		continue
	fi
	why=$(grep -m1 -iE 'unknown policy|unrecogni[sz]ed option|unknown option|invalid option|not supported|unknown parameter' "$TMP/probe.log" || true)
	if [[ -n "$why" ]]; then
		# "usmd[run-123] warning: refused pid 456 (memflt): unknown policy ..." -> "unknown policy ..."
		skip "$v" "$(sed 's/^usmd\[[^]]*\] [a-z]*: //; s/^refused pid [0-9]* ([^)]*): //' <<<"$why")"
	else
		((rc == 124 || rc == 137)) && why="timed out after 60 s" || why="exit status $rc"
		last=$(grep -v '^result ' "$TMP/probe.log" | tail -n 3 | tr '\n' ' ' || true)
		skip "$v" "probe run failed ($why): $last"
		WARN+=("$v: the probe run failed ($why): \`$(show_cmd "${CMD[@]}")\`: $last")
	fi
done

# ------------------------------------------------------------------ run
RUN_VARIANTS=()
for v in "${VARIANTS[@]}"; do [[ -n "${SKIP[$v]:-}" ]] || RUN_VARIANTS+=("$v"); done
NRUNS=$((REPS * ${#PATTERNS[@]} * ${#RUN_VARIANTS[@]}))
echo "memflt: $SIZE_MB MiB, ${#RUN_VARIANTS[@]} variants x ${#PATTERNS[@]} patterns x $REPS reps = $NRUNS runs, interleaved; kernel $KERNEL, $NCPU CPUs, load $LOAD0; free page reporting $REPORTING"

JS="$TMP/stats.json"
i=0
for ((rep = 0; rep < REPS; rep++)); do
	for p in "${PATTERNS[@]}"; do
		for v in "${RUN_VARIANTS[@]}"; do
			i=$((i + 1))
			log="$TMP/run.log"
			if ((WARMUP_MB > 0)); then
				"$MF" warmup --warmup-mb "$WARMUP_MB" --warmup-madvise "$WARMUP_ADV" >/dev/null ||
					die "warm-up failed: $MF warmup --warmup-mb $WARMUP_MB --warmup-madvise $WARMUP_ADV"
			fi
			run_cmd "$v" "$p" "$SIZE_MB" "$JS"
			rm -f "$JS"
			extra=""
			if [[ "$v" == kernel-mthp64 ]]; then
				mthp_on || die "cannot enable 64 KiB mTHP"
				m0=$(mthp_stat)
			fi
			rc=0
			timeout --kill-after=10 "$TIMEOUT" "${CMD[@]}" >"$log" 2>&1 </dev/null || rc=$?
			if [[ "$v" == kernel-mthp64 ]]; then
				m1=$(mthp_stat)
				mthp_off || die "could not restore THP sysfs settings"
				extra=" mthp64_anon_fault_alloc=$((m1 - m0))"
			fi
			line=$(grep -m1 '^result ' "$log" || true)
			ns=$(sed -n 's/.* ns_per_page=\([0-9.]*\).*/\1/p' <<<"$line")
			if ((rc != 0)) || [[ -z "$ns" ]]; then
				FAILS[$v/$p]=$((${FAILS[$v/$p]:-0} + 1))
				why="exit status $rc"
				((rc == 124 || rc == 137)) && why="timed out after ${TIMEOUT}s"
				last=$(grep -v '^result ' "$log" | tail -n 3 | tr '\n' ' ' || true)
				printf '  [%d/%d] %-20s %-8s FAILED (%s): %s\n' "$i" "$NRUNS" "$v" "$p" "$why" "$last"
				echo "# FAILED variant=$v pattern=$p rep=$rep ($why): $(show_cmd "${CMD[@]}"): $last" >>"$RAW"
				continue
			fi
			cpu=$(sed -n 's/.* cpu_ns_per_page=\([0-9.]*\).*/\1/p' <<<"$line")
			pages=$(sed -n 's/.* pages=\([0-9]*\).*/\1/p' <<<"$line")
			aux=$(sed -n 's/.* aux_pages=\([0-9]*\).*/\1/p' <<<"$line")
			touched=$((pages + aux))
			if is_usm "$v"; then
				if [[ -s "$JS" ]] && read -r faults mapped < <(jq -r '
					[.processes[]? | select(.comm == "memflt")] as $m
					| if ($m | length) > 0
					  then "\([$m[].faults] | add) \([$m[].pages_mapped] | add)"
					  else "\(.faults) \(.pages_mapped)" end' "$JS" 2>/dev/null); then :
				else
					faults=-; mapped=-
					WARN+=("$v/$p rep $rep: no usable --stats-json output")
				fi
			else
				faults=$(sed -n 's/.* minflt=\([0-9]*\).*/\1/p' <<<"$line")
				mapped=-
			fi
			printf '  [%d/%d] %-20s %-8s %9.1f ns/page  faults %-8s mapped %s\n' \
				"$i" "$NRUNS" "$v" "$p" "$ns" "$faults" "$mapped"
			echo "result variant=$v pattern=$p rep=$rep ns_per_page=$ns cpu_ns_per_page=${cpu:--} faults=$faults pages_mapped=$mapped touched=$touched load1=$(cut -d' ' -f1 /proc/loadavg)$extra" >>"$RAW"
			echo "$v $p $ns $faults $mapped $touched $rep" >>"$RES"
		done
	done
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
echo "# load:    $LOAD1 (1/5/15 min) at the end" >>"$RAW"

# ---------------------------------------------------------------- table
# stats <variant> <pattern> -> "median min max n"
stats() {
	awk -v v="$1" -v p="$2" '$1 == v && $2 == p { print $3 }' "$RES" | sort -g | awk '
		{ x[NR] = $1 }
		END {
			if (NR == 0) exit
			med = NR % 2 ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2
			printf "%.1f %.1f %.1f %d\n", med, x[1], x[NR], NR
		}'
}
median_of() { local s; s=$(stats "$1" "$2"); echo "${s%% *}"; }
# ppf_bloat <variant> <pattern> -> "pages_per_fault mapped_over_touched" (totals over runs)
ppf_bloat() {
	awk -v v="$1" -v p="$2" -v usm="$(is_usm "$1" && echo 1 || echo 0)" '
		$1 == v && $2 == p && $4 != "-" {
			f += $4; t += $6
			if ($5 != "-") m += $5; else nm = 1
		}
		END {
			if (f == 0) { print "- -"; exit }
			if (usm && !nm) printf "%.1f %.4f\n", m / f, m / t
			else printf "%.1f -\n", t / f
		}' "$RES"
}

TABLE="$TMP/table"      # variant pattern median min max n xk xu ppf bloat | variant pattern note...
: >"$TABLE"
for p in "${PATTERNS[@]}"; do
	KMED=$(median_of kernel-4k "$p")
	UMED=$(median_of usm-4k "$p")
	for v in "${VARIANTS[@]}"; do
		[[ -z "${SKIP[$v]:-}" ]] || continue
		s=$(stats "$v" "$p")
		if [[ -z "$s" ]]; then
			echo "$v $p all runs failed (see $RAW)" >>"$TABLE"
			continue
		fi
		read -r med min max n <<<"$s"
		read -r ppf bloat <<<"$(ppf_bloat "$v" "$p")"
		echo "$v $p $med $min $max $n $(ratio "$med" "$KMED") $(ratio "$med" "$UMED") $ppf $bloat" >>"$TABLE"
		[[ -z "${FAILS[$v/$p]:-}" ]] || WARN+=("$v/$p: ${FAILS[$v/$p]} of $REPS runs failed (see $RAW)")
		# Sanity: does the variant map what it claims to?
		e=$(expect_ppf "$v")
		if [[ "$p" == seq && -n "$e" && "$ppf" != - ]] &&
			awk -v a="$ppf" -v e="$e" 'BEGIN { exit !(a < 0.9 * e || a > 1.1 * e) }'; then
			WARN+=("$v/seq: $ppf pages per fault, expected about $e")
		fi
		if is_usm "$v" && [[ "$ppf" == - ]]; then
			WARN+=("$v/$p: no faults recorded by USM: did the agent register the mapping?")
		fi
	done
done

# ---------------------------------------------------------------- targets
# The issue's targets, checked on this run's medians.  The paired ratio is
# the median over reps of v's run / base's run of the same rep: the runs
# of one rep and pattern follow each other within a minute, so a change in
# the VM's speed during the run cancels out of it.
# paired <v> <base> <pattern> -> "median min max n" of the per-rep ratios
paired() {
	awk -v v="$1" -v b="$2" -v p="$3" '
		$2 == p && $1 == v { x[$7] = $3 }
		$2 == p && $1 == b { y[$7] = $3 }
		END { for (r in x) if ((r in y) && y[r] > 0) print x[r] / y[r] }' "$RES" | sort -g | awk '
		{ x[NR] = $1 }
		END {
			if (NR == 0) exit
			med = NR % 2 ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2
			printf "%.2f %.2f %.2f %d\n", med, x[1], x[NR], NR
		}'
}
# best_fixed <suffix> <pattern>: the usm-fhp-N<suffix> with the lowest median
best_fixed() {
	local n m best="" bm=""
	for n in "${FHP_SIZES[@]}"; do
		m=$(median_of "usm-fhp-$n$1" "$2")
		[[ -n "$m" ]] || continue
		if [[ -z "$bm" ]] || awk -v a="$m" -v b="$bm" 'BEGIN { exit !(a < b) }'; then
			best="usm-fhp-$n$1"; bm=$m
		fi
	done
	echo "$best"
}
TARGETS="$TMP/targets"  # target limit variant base pattern ratio paired min max n verdict
: >"$TARGETS"
target() {          # target <name> <limit> <variant> <base|best:SUFFIX>
	local name=$1 limit=$2 v=$3 base p b vm bm r pr verdict
	for p in "${PATTERNS[@]}"; do
		b=$4
		[[ "$b" == best:* ]] && b=$(best_fixed "${b#best:}" "$p")
		[[ -n "$b" ]] || continue
		vm=$(median_of "$v" "$p"); bm=$(median_of "$b" "$p")
		[[ -n "$vm" && -n "$bm" ]] || continue
		r=$(ratio "$vm" "$bm")
		pr=$(paired "$v" "$b" "$p")
		verdict=$(awk -v r="$r" -v l="$limit" 'BEGIN { print (r <= l ? "met" : "missed") }')
		echo "$name $limit $v $b $p $r ${pr:-- - - 0} $verdict" >>"$TARGETS"
	done
}
for h in "" -inline; do
	target fhp-over-usm-4k 0.92 "usm-fhp-16$h" "usm-4k$h"
	target fhp64-vs-kernel-4k 1.00 "usm-fhp-64$h" kernel-4k
	target 2m-vs-kernel-thp 1.25 "usm-2m$h" kernel-thp
	target adaptive-vs-best-fixed 1.10 "usm-adaptive$h" "best:$h"
done
print_targets() {   # print_targets text|md
	[[ -s "$TARGETS" ]] || return 0
	awk -v fmt="$1" '
		BEGIN {
			if (fmt == "md") {
				print "| target | variant | against | pattern | ratio of medians | limit | paired ratio, median [min-max] of reps | verdict |"
				print "|---|---|---|---|---:|---:|---|---|"
			} else
				printf "%-22s %-20s %-18s %-8s %6s %6s %-22s %s\n", "target", "variant", "against",
					"pattern", "ratio", "limit", "paired [min-max] (n)", "verdict"
		}
		{
			pr = $10 > 0 ? sprintf("%s [%s-%s] (%d)", $7, $8, $9, $10) : "-"
			if (fmt == "md")
				printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $3, $4, $5, $6, $2, pr, $11
			else
				printf "%-22s %-20s %-18s %-8s %6s %6s %-22s %s\n", $1, $3, $4, $5, $6, $2, pr, $11
		}' "$TARGETS"
}

print_table() {     # print_table text|md
	awk -v fmt="$1" '
		BEGIN {
			if (fmt == "md") {
				print "| variant | pattern | median ns/4K page | min | max | runs | x kernel-4k | x usm-4k | pages/fault | mapped/touched |"
				print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
			} else
				printf "%-20s %-8s %10s %8s %8s %4s %8s %8s %8s %8s\n", "variant", "pattern",
					"median", "min", "max", "runs", "x k-4k", "x usm-4k", "pg/fault", "bloat"
		}
		NF == 10 && $3 ~ /^[0-9.]+$/ {
			if (fmt == "md")
				printf "| %s | %s | %.0f | %.0f | %.0f | %d | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10
			else
				printf "%-20s %-8s %10.0f %8.0f %8.0f %4d %8s %8s %8s %8s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10
			next
		}
		{
			v = $1; p = $2; $1 = ""; $2 = ""; sub(/^  /, "")
			if (fmt == "md") printf "| %s | %s | %s | | | | | | | |\n", v, p, $0
			else printf "%-20s %-8s %s\n", v, p, $0
		}' "$TABLE"
	local v
	for v in "${VARIANTS[@]}"; do
		[[ -n "${SKIP[$v]:-}" ]] || continue
		if [[ "$1" == md ]]; then echo "| $v | (all) | skipped: ${SKIP[$v]//|/\\|} | | | | | | | |"
		else printf '%-20s %-8s skipped: %s\n' "$v" "(all)" "${SKIP[$v]}"; fi
	done
}
# Variants x patterns: median ns/page, and (x kernel-4k).
print_matrix() {    # print_matrix text|md
	local fmt=$1 v p row hdr sep
	hdr="variant"; sep="|---"
	for p in "${PATTERNS[@]}"; do hdr+=" $p"; sep+="|---:"; done
	if [[ "$fmt" == md ]]; then
		echo "| ${hdr// / | } |"
		echo "$sep|"
	else
		printf '%-20s' variant
		for p in "${PATTERNS[@]}"; do printf ' %16s' "$p"; done
		echo
	fi
	for v in "${VARIANTS[@]}"; do
		if [[ -n "${SKIP[$v]:-}" ]]; then
			if [[ "$fmt" == md ]]; then echo "| $v | skipped: ${SKIP[$v]//|/\\|} |"; else printf '%-20s skipped\n' "$v"; fi
			continue
		fi
		[[ "$fmt" == md ]] && row="| $v |" || row=$(printf '%-20s' "$v")
		for p in "${PATTERNS[@]}"; do
			local c
			c=$(awk -v v="$v" -v p="$p" '$1 == v && $2 == p && NF == 10 && $3 ~ /^[0-9.]+$/ {
				printf "%.0f (%s)", $3, $7; f = 1 } END { if (!f) printf "-" }' "$TABLE")
			if [[ "$fmt" == md ]]; then row+=" $c |"; else row+=$(printf ' %16s' "$c"); fi
		done
		echo "$row"
	done
}

echo
echo "median ns per 4 KiB page (x kernel-4k), $SIZE_MB MiB, $REPS reps:"
print_matrix text
echo
print_table text
if [[ -s "$TARGETS" ]]; then
	echo
	echo "targets (ratio of medians against the limit; paired: per-rep ratios):"
	print_targets text
fi
for w in "${WARN[@]+"${WARN[@]}"}"; do echo "warning: $w"; done
{
	echo "#"
	print_matrix text | sed 's/^/# /'
	echo "#"
	print_table text | sed 's/^/# /'
	echo "#"
	print_targets text | sed 's/^/# /'
	for w in "${WARN[@]+"${WARN[@]}"}"; do echo "# warning: $w"; done
} >>"$RAW"
echo
echo "raw results: $RAW"

# ----------------------------------------------------------------- plot
PLOT_NOTE=""
PLOTDAT="$TMP/plot.dat"
PV=()
for v in "${VARIANTS[@]}"; do
	[[ -n "${SKIP[$v]:-}" ]] && continue
	awk -v v="$v" '$1 == v && NF == 10 && $3 ~ /^[0-9.]+$/ { f = 1 } END { exit !f }' "$TABLE" && PV+=("$v")
done
if ! command -v gnuplot >/dev/null; then
	PLOT_NOTE="plot skipped: gnuplot not installed (apt-get install -y gnuplot-nox)"
	echo "$PLOT_NOTE"
elif ((${#PV[@]} == 0)); then
	PLOT_NOTE="plot skipped: no results"
	echo "$PLOT_NOTE"
else
	{
		printf 'pattern'; for v in "${PV[@]}"; do printf ' %s' "$v"; done; echo
		for p in "${PATTERNS[@]}"; do
			printf '%s' "$p"
			for v in "${PV[@]}"; do
				m=$(awk -v v="$v" -v p="$p" '$1 == v && $2 == p && NF == 10 && $3 ~ /^[0-9.]+$/ { print $3 }' "$TABLE")
				printf ' %s' "${m:-?}"
			done
			echo
		done
	} >"$PLOTDAT"
	ncol=$((${#PV[@]} + 1))
	COLS=""
	for v in "${PV[@]}"; do COLS+=" $(variant_color "$v")"; done
	width=$((700 + ${#PATTERNS[@]} * ${#PV[@]} * 14))
	((width > 2400)) && width=2400
	plot_term "$width" 640
	term=$TERM_PNG
	if gnuplot >"$TMP/gnuplot.log" 2>&1 <<EOF
set terminal $term
set output '$PNG'
set title "First-touch cost per 4 KiB page by access pattern ($SIZE_MB MiB, median of $REPS)\nkernel $KERNEL, $NCPU CPUs, $DATE"
set ylabel "ns per 4 KiB page (log scale)"
set logscale y
set yrange [50:*]
set grid ytics
set datafile missing '?'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set key outside right top vertical Left reverse noenhanced
set xtics nomirror noenhanced
COLS = "$COLS"
plot for [c=2:$ncol] '$PLOTDAT' using c:xtic(1) title columnheader(c) lc rgb word(COLS, c - 1)
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
	DOCF=docs/bench-memflt.md
	mkdir -p docs
	{
		echo "# First-touch fault cost by access pattern: kernel 4K / THP / mTHP vs USM policies"
		echo
		echo "Generated by \`bench/memflt.sh --doc\`; rerun it to refresh this page."
		echo
		echo "- date: $DATE"
		echo "- kernel (\`uname -r\`): \`$KERNEL\`"
		echo "- machine: $CPU, $NCPU CPUs, THP \`enabled=$THP\`, \`hugepages-64kB=$THP64\`, \`hugepages-2048kB=$THP2M\`; load average $LOAD0 at the start, $LOAD1 at the end; free page reporting $REPORTING"
		echo "- command: \`$CMDLINE\`"
		echo "- $SIZE_MB MiB mapped (2 MiB-aligned) and first-touched per run, one 8-byte store per 4 KiB page;" \
		     "$REPS runs per variant and pattern, interleaved (rep 1 of every pattern x variant, then rep 2, ...);" \
		     "each run is a fresh process$(if ((WARMUP_MB > 0)); then echo " preceded by \`$(show_cmd "$MF") warmup --warmup-mb $WARMUP_MB --warmup-madvise $WARMUP_ADV\`"; else echo " with no warm-up"; fi)."
		echo "- raw results: [\`$RAW\`](../$RAW)"
		echo
		echo "## Median ns per 4 KiB page (ratio to kernel-4k of the same run)"
		echo
		print_matrix md
		echo
		if [[ -z "$PLOT_NOTE" ]]; then
			echo "![first-touch cost per 4 KiB page by pattern](../$PNG)"
		else
			echo "($PLOT_NOTE)"
		fi
		echo
		for w in "${WARN[@]+"${WARN[@]}"}"; do echo "**Warning:** $w"; echo; done
		if [[ -s "$TARGETS" ]]; then
			echo "## Targets"
			echo
			echo "Ratio of medians against each target's limit (the verdict); the paired" \
			     "ratio is the median over reps of the variant's run divided by the other's" \
			     "run of the same rep, which a change of the VM's speed during the run does" \
			     "not move. \"best\" fixed FHP: the usm-fhp-N of the same host with the" \
			     "lowest median on that pattern."
			echo
			print_targets md
			echo
		fi
		echo "## All numbers"
		echo
		print_table md
		echo
		echo "- ns per 4 KiB page of the timed touch loop only (not mmap, madvise, munmap" \
		     "or the check). For mt and mt-rand it is the wall time of all threads divided by" \
		     "all pages (throughput), with $THREADS threads on $NCPU CPUs."
		echo "- pages/fault: USM variants, pages mapped / faults of the memflt process" \
		     "(\`usm run --stats-json\`); kernel variants, touched pages / minor faults of" \
		     "the timed loop (\`getrusage\`). Totals over all runs."
		echo "- mapped/touched (bloat): pages USM mapped / pages memflt touched (the measured" \
		     "mapping plus its permutation array; the program's own few startup pages are" \
		     "counted in \"mapped\" only). memflt touches every page, so a value near 1.00" \
		     "means no bloat in this benchmark; N pages per fault cannot map more than" \
		     "is touched here."
		echo "- The machine is a noisy 2-vCPU VM: compare the ratio columns within one run," \
		     "not absolute numbers across runs."
		echo
		echo "## Patterns"
		echo
		echo "| pattern | order of first touch |"
		echo "|---|---|"
		for p in "${PATTERNS[@]}"; do
			case "$p" in
			seq)     echo "| seq | ascending pages |" ;;
			rand)    echo "| rand | a random permutation of all pages (seeded, computed before timing, stored outside the measured mapping) |" ;;
			stride)  echo "| stride | every ${STRIDE}th page ascending, then all the others ascending |" ;;
			mt)      echo "| mt | $THREADS threads, each its own contiguous slice, ascending |" ;;
			mt-rand) echo "| mt-rand | $THREADS threads, each its own contiguous slice in random order |" ;;
			esac
		done
		echo
		echo "## Variants and exact commands"
		echo
		echo "| variant | what | command of one run |"
		echo "|---|---|---|"
		for v in "${VARIANTS[@]}"; do
			echo "| $v | $(variant_what "$v")${SKIP[$v]:+ — **skipped:** ${SKIP[$v]//|/\\|}} | \`$(variant_cmd_doc "$v")\` |"
		done
		echo
		echo "USM runs also pass \`--stats-json FILE\` to read faults and pages mapped." \
		     "kernel-mthp64 writes \`always\` to \`$THP_DIR/hugepages-64kB/enabled\` and" \
		     "\`never\` to \`hugepages-2048kB/enabled\` just before each of its runs and" \
		     "restores both right after it (and on any exit of the script)."
	} >"$DOCF"
	echo "doc: $DOCF"
fi
