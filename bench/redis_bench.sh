#!/usr/bin/env bash
# redis_bench.sh: redis-server under the kernel (4K, THP) and under USM
# policies (4K, N pages per fault, adaptive, 2 MiB; handler thread and
# --inline), driven by redis-benchmark on 127.0.0.1: SET and GET throughput,
# p99 latency, dataset load time (wall time of the SET phase) and RSS.
#
# Usage: bench/redis_bench.sh [--reps R] [--keys N] [--sizes D1,D2,...]
#                             [--variants v1,v2,...] [--port P]
#                             [--pipeline P] [--clients C] [--warmup-mb M]
#                             [--usm-memory MiB] [--usm-opt LINE]...
#                             [--timeout S] [--budget-min M] [--doc] [--list]
#
#   --reps R          repetitions of every variant x value size (default 5),
#                     interleaved: rep 1 of everything, then rep 2, ...
#   --keys N          requests per phase and key space (-n N -r N; default
#                     1000000): the SET phase writes ~63% of N distinct keys
#   --sizes LIST      value sizes in bytes (-d; default 1024,4096)
#   --variants LIST   comma-separated subset of the variants (default: all)
#   --port P          TCP port on 127.0.0.1 for the private server (default
#                     16379; must be free)
#   --pipeline P      redis-benchmark -P (default 16)
#   --clients C       redis-benchmark -c (default 50)
#   --warmup-mb M     MiB touched and freed by a separate process right
#                     before every run (default 4096, 0 = none): M MiB
#                     with MADV_HUGEPAGE plus M MiB with MADV_NOHUGEPAGE
#                     (memflt warmup --warmup-madvise both), so that 4K and
#                     THP allocations both find host-backed memory (the
#                     VM's free page reporting is paused for the run and
#                     restored after, so that it stays backed: bench/lib.sh)
#   --usm-memory MiB  budget of the embedded USM instance (default 8192:
#                     must hold the data set, or the OOM policy kicks in)
#   --usm-opt LINE    extra config line for every USM variant (repeatable)
#   --timeout S       limit for one redis-benchmark phase (default 600)
#   --budget-min M    if R reps of everything would take longer than M
#                     minutes (measured on the first round), run fewer reps
#                     (not fewer than 3) and say so (default 25; 0 = no limit)
#   --doc             also write docs/bench-redis.md
#   --list            print the variants and their commands, and exit
#
# Environment: BUILD (default build) is where $BUILD/bin/usm is looked for;
# the warm-up uses $BUILD/bench/memflt.
#
# Variants:
#   kernel-4k        redis-server alone (the machine's THP setting, madvise:
#                    redis does not madvise, so 4K pages)
#   kernel-thp       redis-server alone with THP enabled=always for the run
#                    (restored after every run and on exit)
#   usm-4k           usm run -P first_fit
#   usm-batch16      usm run -P batch -o 'set batch.pages 16'
#   usm-fhp-N        usm run -P fhp -o 'set fhp.pages N', N = 16 ... 512
#   usm-adaptive     usm run -P fhp_adaptive
#   usm-2m           usm run -P thp
#   usm-*-inline     the same with `usm run --inline`
# USM variants also get -o 'memory <--usm-memory>'.  Each USM variant is
# probed first; one whose policy or option does not exist yet is reported
# as "skipped: <variant>: <reason>".
#
# Every run starts a fresh redis-server (--save '' --appendonly no
# --disable-thp no, loopback only), waits for PING, runs
#   redis-benchmark -h 127.0.0.1 -p P -t set -n N -r N -d D -P 16 --csv --precision 3
# then the same with -t get, checks DBSIZE and the length of a few random
# values, reads INFO memory, and stops the server with SHUTDOWN NOSAVE
# (TERM, then KILL of its session if it does not exit within 20 s).
#
# Needs redis-server and redis-benchmark >= 7 (percentiles in --csv): if
# missing, installs the Debian packages redis-server and redis-tools and
# stops/disables the service the package would start.
#
# Output: a table on stdout (medians, ratios to kernel-4k and usm-4k of the
# same run), raw results in bench/results/redis_bench-<date>.txt, a plot
# (.png) next to it, and with --doc docs/bench-redis.md.
set -euo pipefail

BENCH=redis_bench.sh
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

FHP_SIZES=(16 32 64 128 256 512)
ALL_VARIANTS=(kernel-4k kernel-thp usm-4k usm-4k-inline usm-batch16)
for n in "${FHP_SIZES[@]}"; do ALL_VARIANTS+=("usm-fhp-$n" "usm-fhp-$n-inline"); done
ALL_VARIANTS+=(usm-adaptive usm-adaptive-inline usm-2m usm-2m-inline)

REPS=5
KEYS=1000000
SIZES=(1024 4096)
PORT=16379
PIPELINE=16
CLIENTS=50
WARMUP_MB=4096
USM_MEMORY=8192
TIMEOUT=600
BUDGET_MIN=25
DOC=0
LIST=0
VARIANTS=("${ALL_VARIANTS[@]}")
USM_OPTS=()

record_cmdline "$@"
BUILD=${BUILD:-build}

while (($#)); do
	case "$1" in
	--reps|--keys|--sizes|--variants|--port|--pipeline|--clients|--warmup-mb|--usm-memory|--usm-opt|--timeout|--budget-min)
		(($# >= 2)) || die "$1 needs a value"
		case "$1" in
		--reps)       is_pos "$2" || die "--reps expects a positive integer, got '$2'"; REPS=$((10#$2)) ;;
		--keys)       is_pos "$2" || die "--keys expects a positive integer, got '$2'"; KEYS=$((10#$2)) ;;
		--port)       is_pos "$2" && ((10#$2 >= 1024 && 10#$2 <= 65535)) || die "--port expects 1024..65535, got '$2'"; PORT=$((10#$2)) ;;
		--pipeline)   is_pos "$2" || die "--pipeline expects a positive integer, got '$2'"; PIPELINE=$((10#$2)) ;;
		--clients)    is_pos "$2" || die "--clients expects a positive integer, got '$2'"; CLIENTS=$((10#$2)) ;;
		--warmup-mb)  is_uint "$2" || die "--warmup-mb expects an integer >= 0, got '$2'"; WARMUP_MB=$((10#$2)) ;;
		--usm-memory) is_pos "$2" || die "--usm-memory expects a positive integer (MiB), got '$2'"; USM_MEMORY=$((10#$2)) ;;
		--usm-opt)    USM_OPTS+=("$2") ;;
		--timeout)    is_pos "$2" || die "--timeout expects a positive integer, got '$2'"; TIMEOUT=$((10#$2)) ;;
		--budget-min) is_uint "$2" || die "--budget-min expects an integer >= 0, got '$2'"; BUDGET_MIN=$((10#$2)) ;;
		--sizes)
			IFS=, read -r -a SIZES <<<"$2"
			((${#SIZES[@]})) || die "--sizes: empty list"
			for d in "${SIZES[@]}"; do is_pos "$d" || die "--sizes: '$d' is not a positive integer"; done ;;
		--variants)
			IFS=, read -r -a VARIANTS <<<"$2"
			((${#VARIANTS[@]})) || die "--variants: empty list"
			for v in "${VARIANTS[@]}"; do
				in_list "$v" "${ALL_VARIANTS[@]}" || die "unknown variant '$v' (variants: ${ALL_VARIANTS[*]})"
			done ;;
		esac
		shift 2 ;;
	--doc) DOC=1; shift ;;
	--list) LIST=1; shift ;;
	-h|--help) usage; exit 0 ;;
	*) die "unexpected argument '$1' (see --help)" ;;
	esac
done
((REPS >= 5)) || echo "warning: --reps $REPS < 5: medians of so few runs are not worth reporting" >&2
((KEYS >= 1000000)) || echo "warning: --keys $KEYS < 1000000: below the data set the benchmark is meant for" >&2

USM="$BUILD/bin/usm"
[[ "$USM" == /* ]] || USM="$ROOT/$USM"
MF="$BUILD/bench/memflt"
THP_DIR=/sys/kernel/mm/transparent_hugepage

is_usm() { [[ "$1" == usm-* ]]; }

usm_args() {    # sets UARGS
	local v=$1 base=${1%-inline} l
	UARGS=()
	[[ "$v" == *-inline ]] && UARGS+=(--inline)
	case "$base" in
	usm-4k)       UARGS+=(-P first_fit) ;;
	usm-batch16)  UARGS+=(-P batch -o 'set batch.pages 16') ;;
	usm-fhp-*)    UARGS+=(-P fhp -o "set fhp.pages ${base#usm-fhp-}") ;;
	usm-2m)       UARGS+=(-P thp) ;;
	usm-adaptive) UARGS+=(-P fhp_adaptive) ;;
	*) die "internal: no usm arguments for $v" ;;
	esac
	UARGS+=(-o "memory $USM_MEMORY")
	for l in "${USM_OPTS[@]+"${USM_OPTS[@]}"}"; do UARGS+=(-o "$l"); done
}
REDIS_ARGS=(--port "$PORT" --bind 127.0.0.1 --protected-mode yes --save '' --appendonly no
	--disable-thp no --daemonize no --logfile '')
server_cmd() {  # server_cmd <variant> [stats.json] -> CMD
	local v=$1 js=${2:-}
	if is_usm "$v"; then
		usm_args "$v"
		CMD=("$USM" run "${UARGS[@]}")
		[[ -n "$js" ]] && CMD+=(--stats-json "$js")
		CMD+=(-- redis-server "${REDIS_ARGS[@]}")
	else
		CMD=(redis-server "${REDIS_ARGS[@]}")
	fi
}
bench_cmd() {   # bench_cmd <set|get> <size> -> BCMD
	BCMD=(redis-benchmark -h 127.0.0.1 -p "$PORT" -t "$1" -n "$KEYS" -r "$KEYS" -d "$2"
		-P "$PIPELINE" -c "$CLIENTS" --csv --precision 3)
}
variant_cmd_doc() {
	server_cmd "$1"
	local s
	s=$(show_cmd "${CMD[@]}")
	[[ "$1" == kernel-thp ]] && s="(THP enabled=always) $s"
	echo "$s"
}
variant_what() {
	local v=$1 base=${1%-inline} il=""
	[[ "$v" == *-inline ]] && il=", in-thread (--inline)"
	case "$base" in
	kernel-4k)    echo "kernel, 4K pages (THP madvise, redis does not madvise)" ;;
	kernel-thp)   echo "kernel, THP enabled=always for the run" ;;
	usm-4k)       echo "USM first_fit, one 4K page per fault$il" ;;
	usm-batch16)  echo "USM batch policy, 16 pages per fault$il" ;;
	usm-fhp-*)    echo "USM fhp, ${base#usm-fhp-} pages ($((${base#usm-fhp-} * 4)) KiB) per fault$il" ;;
	usm-2m)       echo "USM thp: PMD-mapped 2 MiB pages$il" ;;
	usm-adaptive) echo "USM fhp_adaptive$il" ;;
	esac
}
variant_color() {
	local v=$1 base=${1%-inline} il=0 i
	[[ "$v" == *-inline ]] && il=1
	local blues=('#c6dbef' '#9ecae1' '#6baed6' '#4292c6' '#2171b5' '#08519c')
	local greens=('#c7e9c0' '#a1d99b' '#74c476' '#41ab5d' '#238b45' '#006d2c')
	case "$base" in
	kernel-4k)    echo '#444444' ;;
	kernel-thp)   echo '#888888' ;;
	usm-4k)       ((il)) && echo '#8c1a1b' || echo '#d62728' ;;
	usm-batch16)  ((il)) && echo '#c76b69' || echo '#ff9896' ;;
	usm-fhp-*)
		for i in "${!FHP_SIZES[@]}"; do
			[[ "${FHP_SIZES[$i]}" == "${base#usm-fhp-}" ]] || continue
			((il)) && echo "${greens[$i]}" || echo "${blues[$i]}"
			return
		done
		echo '#1f77b4' ;;
	usm-2m)       ((il)) && echo '#5b3a80' || echo '#9467bd' ;;
	usm-adaptive) ((il)) && echo '#b35900' || echo '#ff7f0e' ;;
	*)            echo '#17becf' ;;
	esac
}

if ((LIST)); then
	for v in "${ALL_VARIANTS[@]}"; do
		printf '%-20s %s\n%-20s   %s\n' "$v" "$(variant_what "$v")" "" "$(variant_cmd_doc "$v")"
	done
	bench_cmd set D; echo "client: $(show_cmd "${BCMD[@]}") (then -t get)"
	exit 0
fi

command -v timeout >/dev/null || die "timeout(1) (coreutils) not found"
command -v jq >/dev/null || die "jq not found (apt-get install -y jq): needed to read usm run --stats-json"

# ------------------------------------------------------ redis packages
stop_debian_service() {
	# The package may start (and enable) its own redis-server on 6379.
	if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
		systemctl stop redis-server >/dev/null 2>&1 || true
		systemctl disable redis-server >/dev/null 2>&1 || true
	else
		if command -v invoke-rc.d >/dev/null; then invoke-rc.d redis-server stop >/dev/null 2>&1 || true
		elif command -v service >/dev/null; then service redis-server stop >/dev/null 2>&1 || true; fi
		command -v update-rc.d >/dev/null && { update-rc.d redis-server disable >/dev/null 2>&1 || true; }
	fi
	if [[ -s /run/redis/redis-server.pid ]]; then
		local pid
		pid=$(cat /run/redis/redis-server.pid)
		if [[ "$pid" =~ ^[0-9]+$ ]] && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == redis-server ]]; then
			echo "redis_bench.sh: stopping the packaged redis-server (pid $pid)"
			kill -TERM "$pid" 2>/dev/null || true
		fi
	fi
}
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null || ! command -v redis-cli >/dev/null; then
	echo "redis_bench.sh: installing redis-server redis-tools (apt-get)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server redis-tools >/tmp/redis_bench-apt.log 2>&1 || {
		DEBIAN_FRONTEND=noninteractive apt-get update >>/tmp/redis_bench-apt.log 2>&1 &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server redis-tools >>/tmp/redis_bench-apt.log 2>&1
	} || die "apt-get install redis-server redis-tools failed (see /tmp/redis_bench-apt.log)"
	stop_debian_service
fi
REDIS_VER=$(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')
BENCH_VER=$(redis-benchmark --version 2>/dev/null | awk '{ print $2 }' || true)
MALLOC=$(redis-server --version | sed -n 's/.* malloc=\([^ ]*\).*/\1/p')

# -------------------------------------------------------------- build
if ((WARMUP_MB > 0)); then
	make -s BUILD="$BUILD" "$MF" >/dev/null || die "cannot build $MF (make BUILD=$BUILD $MF)"
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/redis_bench.XXXXXX")
SERVER_PID=""

# ------------------------------------------------ server and cleanup
rcli() { timeout 10 redis-cli -h 127.0.0.1 -p "$PORT" "$@" 2>/dev/null; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
# All processes of the server's session (the server was started by setsid:
# its session id is its pid), i.e. usm run, its embedded instance, redis.
session_pids() { ps -e -o pid=,sid= | awk -v s="$1" '$2 == s { print $1 }'; }
stop_server() {     # stop_server: returns 0 if the server exited by itself
	local pid=$SERVER_PID i clean=1
	[[ -n "$pid" ]] || return 0
	rcli shutdown nosave >/dev/null || true
	for ((i = 0; i < 200; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		clean=0
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	fi
	local left
	left=$(session_pids "$pid")
	if [[ -n "$left" ]]; then
		clean=0
		# shellcheck disable=SC2086
		kill -KILL $left 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	SERVER_PID=""
	for ((i = 0; i < 50; i++)); do port_busy || break; sleep 0.1; done
	((clean))
}
cleanup() {
	stop_server || true
	sysfs_restore || true
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# start_server <variant> <log> [stats.json]: returns 1 if it is not up in 30 s.
start_server() {
	local i
	server_cmd "$1" "${3:-}"
	setsid "${CMD[@]}" >"$2" 2>&1 </dev/null &
	SERVER_PID=$!
	for ((i = 0; i < 300; i++)); do
		[[ "$(rcli ping)" == PONG ]] && return 0
		kill -0 "$SERVER_PID" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# --------------------------------------------------------------- info
pause_page_reporting
machine_info
mkdir -p bench/results
RAW="bench/results/redis_bench-$STAMP.txt"
PNG="bench/results/redis_bench-$STAMP.png"
RES="$TMP/results"  # variant size set_rps get_rps set_p99 get_p99 load_s rss_mib faults mapped
: >"$RES"
declare -A SKIP=() FAILS=()
WARN=()
[[ "$THP" == always ]] && WARN+=("THP enabled=always on this machine: kernel-4k is not a 4K baseline")
port_busy && die "port $PORT on 127.0.0.1 is in use: pick another with --port"

{
	echo "# redis_bench.sh raw results"
	echo "# date:    $DATE"
	echo "# kernel:  $KERNEL"
	echo "# cpu:     $CPU ($NCPU CPUs); THP enabled=$THP"
	echo "# load:    $LOAD0 (1/5/15 min) at start"
	echo "# free page reporting: $REPORTING"
	echo "# redis:   redis-server $REDIS_VER (malloc $MALLOC), redis-benchmark $BENCH_VER"
	echo "# command: $CMDLINE"
	echo "# keys=$KEYS sizes=${SIZES[*]} pipeline=$PIPELINE clients=$CLIENTS warmup_mb=$WARMUP_MB usm_memory=$USM_MEMORY"
	for v in "${VARIANTS[@]}"; do echo "# $v: $(variant_cmd_doc "$v")"; done
	bench_cmd set D; echo "# client: $(show_cmd "${BCMD[@]}"), then -t get"
} >"$RAW"

# ------------------------------------------------------------ probing
skip() {
	SKIP[$1]=$2
	echo "skipped: $1: $2"
	echo "# skipped: $1: $2" >>"$RAW"
}
for v in "${VARIANTS[@]}"; do
	if [[ "$v" == kernel-thp && ! -w "$THP_DIR/enabled" ]]; then
		skip "$v" "$THP_DIR/enabled not writable"
		continue
	fi
	is_usm "$v" || continue
	if [[ ! -x "$USM" ]]; then
		skip "$v" "usm not built ($USM missing; run make BUILD=$BUILD)"
		continue
	fi
	usm_args "$v"
	probe=("$USM" run "${UARGS[@]}" -- redis-server --version)
	rc=0
	timeout --kill-after=5 60 "${probe[@]}" >"$TMP/probe.log" 2>&1 </dev/null || rc=$?
	if ((rc == 0)) && grep -q 'Redis server' "$TMP/probe.log"; then
		continue
	fi
	why=$(grep -m1 -iE 'unknown policy|unrecogni[sz]ed option|unknown option|invalid option|not supported|unknown parameter' "$TMP/probe.log" || true)
	if [[ -n "$why" ]]; then
		skip "$v" "$(sed 's/^usmd\[[^]]*\] [a-z]*: //; s/^refused pid [0-9]* ([^)]*): //' <<<"$why")"
	else
		((rc == 124 || rc == 137)) && why="timed out after 60 s" || why="exit status $rc"
		last=$(tail -n 3 "$TMP/probe.log" | tr '\n' ' ' || true)
		skip "$v" "probe run failed ($why): $last"
		WARN+=("$v: the probe run failed ($why): \`$(show_cmd "${probe[@]}")\`: $last")
	fi
done
RUN_VARIANTS=()
for v in "${VARIANTS[@]}"; do [[ -n "${SKIP[$v]:-}" ]] || RUN_VARIANTS+=("$v"); done
((${#RUN_VARIANTS[@]})) || die "no variant to run"

# --------------------------------------------------------------- run
# csv_field <file> <column name>: the value in the first data line.
csv_field() {
	awk -F, -v col="\"$2\"" '
		NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
		c && NF >= c { v = $c; gsub(/"/, "", v); print v; exit }' "$1"
}
now_s() { date +%s.%N; }

# one_run <variant> <size> <rep>: appends to RES or records a failure.
one_run() {
	local v=$1 d=$2 rep=$3 log="$TMP/server.log" js="$TMP/stats.json" why="" t0 t1
	local set_rps get_rps set_p99 get_p99 load rss keys faults=- mapped=- i k len

	if ((WARMUP_MB > 0)); then
		"$MF" warmup --warmup-mb "$WARMUP_MB" --warmup-madvise both >/dev/null ||
			die "warm-up failed: $MF warmup --warmup-mb $WARMUP_MB --warmup-madvise both"
	fi
	rm -f "$js"
	if [[ "$v" == kernel-thp ]]; then sysfs_set "$THP_DIR/enabled" always || die "cannot enable THP"; fi
	if ! start_server "$v" "$log" "$js"; then
		why="server not up within 30 s: $(tail -n 3 "$log" | tr '\n' ' ')"
	fi
	if [[ -z "$why" ]]; then
		bench_cmd set "$d"
		t0=$(now_s)
		timeout --kill-after=10 "$TIMEOUT" "${BCMD[@]}" >"$TMP/set.csv" 2>"$TMP/bench.err" </dev/null ||
			why="redis-benchmark -t set failed: $(tail -n 2 "$TMP/bench.err" | tr '\n' ' ')"
		t1=$(now_s)
		load=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	fi
	if [[ -z "$why" ]]; then
		rss=$(rcli info memory | tr -d '\r' | sed -n 's/^used_memory_rss:\([0-9]*\)$/\1/p') || rss=""
		[[ "$rss" =~ ^[0-9]+$ ]] || why="no used_memory_rss in INFO memory"
		keys=$(rcli dbsize | tr -d '\r') || keys=""
		# redis-benchmark -n N -r N: about N (1 - 1/e) distinct keys.
		if [[ -n "$why" ]]; then :
		elif ! [[ "$keys" =~ ^[0-9]+$ ]] || ((keys < KEYS * 55 / 100 || keys > KEYS * 70 / 100)); then
			why="DBSIZE $keys after $KEYS random SETs (expected ~$((KEYS * 63 / 100)))"
		fi
		for ((i = 0; i < 5; i++)); do
			[[ -z "$why" ]] || break
			k=$(rcli randomkey | tr -d '\r') || k=""
			len=$(rcli strlen "$k" | tr -d '\r') || len=""
			[[ "$len" == "$d" ]] || why="value of '$k' is '$len' bytes long, SET $d"
		done
	fi
	if [[ -z "$why" ]]; then
		bench_cmd get "$d"
		timeout --kill-after=10 "$TIMEOUT" "${BCMD[@]}" >"$TMP/get.csv" 2>"$TMP/bench.err" </dev/null ||
			why="redis-benchmark -t get failed: $(tail -n 2 "$TMP/bench.err" | tr '\n' ' ')"
	fi
	if [[ -n "$SERVER_PID" ]] && ! kill -0 "$SERVER_PID" 2>/dev/null && [[ -z "$why" ]]; then
		why="server died: $(tail -n 3 "$log" | tr '\n' ' ')"
	fi
	stop_server || { [[ -n "$why" ]] || why="server did not stop on SHUTDOWN NOSAVE within 20 s (killed)"; }
	if [[ "$v" == kernel-thp ]]; then sysfs_restore "$THP_DIR/enabled" || die "could not restore $THP_DIR/enabled"; fi

	if [[ -z "$why" ]]; then
		set_rps=$(csv_field "$TMP/set.csv" rps)
		get_rps=$(csv_field "$TMP/get.csv" rps)
		set_p99=$(csv_field "$TMP/set.csv" p99_latency_ms)
		get_p99=$(csv_field "$TMP/get.csv" p99_latency_ms)
		[[ -n "$set_rps" && -n "$get_rps" && -n "$set_p99" && -n "$get_p99" ]] ||
			why="no rps/p99 in redis-benchmark --csv output (redis-benchmark >= 7 needed): $(head -c 200 "$TMP/set.csv" | tr '\n' ' ')"
	fi
	if [[ -z "$why" ]] && is_usm "$v"; then
		if [[ -s "$js" ]] && read -r faults mapped < <(jq -r '
			[.processes[]? | select(.comm == "redis-server")] as $m
			| if ($m | length) > 0
			  then "\([$m[].faults] | add) \([$m[].pages_mapped] | add)"
			  else "\(.faults) \(.pages_mapped)" end' "$js" 2>/dev/null); then :
		else
			faults=-; mapped=-
			WARN+=("$v/$d rep $rep: no usable --stats-json output")
		fi
	fi
	if [[ -n "$why" ]]; then
		FAILS[$v/$d]=$((${FAILS[$v/$d]:-0} + 1))
		printf '  [%d/%d] %-20s %5s B FAILED: %s\n' "$RUN_I" "$NRUNS" "$v" "$d" "$why"
		echo "# FAILED variant=$v size=$d rep=$rep: $why" >>"$RAW"
		return
	fi
	local rss_mib
	rss_mib=$(awk -v r="$rss" 'BEGIN { printf "%.0f", r / 1048576 }')
	printf '  [%d/%d] %-20s %5s B  SET %9.0f/s p99 %7s ms  GET %9.0f/s p99 %7s ms  load %6.2f s  RSS %5s MiB  faults %s mapped %s\n' \
		"$RUN_I" "$NRUNS" "$v" "$d" "$set_rps" "$set_p99" "$get_rps" "$get_p99" "$load" "$rss_mib" "$faults" "$mapped"
	echo "result variant=$v size=$d rep=$rep set_rps=$set_rps get_rps=$get_rps set_p99_ms=$set_p99 get_p99_ms=$get_p99 load_s=$load rss_mib=$rss_mib keys=$keys faults=$faults pages_mapped=$mapped load1=$(cut -d' ' -f1 /proc/loadavg)" >>"$RAW"
	echo "$v $d $set_rps $get_rps $set_p99 $get_p99 $load $rss_mib $faults $mapped" >>"$RES"
}

NRUNS=$((REPS * ${#SIZES[@]} * ${#RUN_VARIANTS[@]}))
echo "redis_bench: $KEYS keys, values ${SIZES[*]} B, ${#RUN_VARIANTS[@]} variants, $REPS reps, interleaved; kernel $KERNEL, $NCPU CPUs, load $LOAD0"
RUN_I=0
REPS_DONE=0
REPS_NOTE=""
T_START=$(date +%s)
for ((rep = 0; rep < REPS; rep++)); do
	for d in "${SIZES[@]}"; do
		for v in "${RUN_VARIANTS[@]}"; do
			RUN_I=$((RUN_I + 1))
			one_run "$v" "$d" "$rep"
		done
	done
	REPS_DONE=$((rep + 1))
	if ((rep == 0 && BUDGET_MIN > 0 && REPS > 3)); then
		round=$(($(date +%s) - T_START))
		if ((round * REPS > BUDGET_MIN * 60)); then
			fit=$((BUDGET_MIN * 60 / (round > 0 ? round : 1)))
			((fit < 3)) && fit=3
			if ((fit < REPS)); then
				REPS_NOTE="one round (every variant x size once) took ${round} s: $REPS reps would take ~$((round * REPS / 60)) min, over the ${BUDGET_MIN}-minute budget (--budget-min), so $fit reps were run"
				echo "note: $REPS_NOTE"
				echo "# note: $REPS_NOTE" >>"$RAW"
				REPS=$fit
				NRUNS=$((REPS * ${#SIZES[@]} * ${#RUN_VARIANTS[@]}))
			fi
		fi
	fi
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
T_TOTAL=$(($(date +%s) - T_START))
echo "# load:    $LOAD1 (1/5/15 min) at the end; total time ${T_TOTAL} s" >>"$RAW"

# ------------------------------------------------------------- table
# med <variant> <size> <column 3..8> -> median (empty if no runs)
med() {
	awk -v v="$1" -v d="$2" -v c="$3" '$1 == v && $2 == d { print $c }' "$RES" | sort -g | awk '
		{ x[NR] = $1 }
		END {
			if (NR == 0) exit
			m = NR % 2 ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2
			printf "%.6g\n", m
		}'
}
nruns() { awk -v v="$1" -v d="$2" '$1 == v && $2 == d { n++ } END { print n + 0 }' "$RES"; }
ppf() {
	awk -v v="$1" -v d="$2" '$1 == v && $2 == d && $9 != "-" && $9 > 0 { f += $9; m += $10 }
		END { if (f) printf "%.1f\n", m / f; else print "-" }' "$RES"
}

TABLE="$TMP/table"
: >"$TABLE"
for d in "${SIZES[@]}"; do
	ks=$(med kernel-4k "$d" 3); kg=$(med kernel-4k "$d" 4); kl=$(med kernel-4k "$d" 7)
	us=$(med usm-4k "$d" 3); ug=$(med usm-4k "$d" 4); ul=$(med usm-4k "$d" 7)
	for v in "${VARIANTS[@]}"; do
		[[ -z "${SKIP[$v]:-}" ]] || continue
		n=$(nruns "$v" "$d")
		if ((n == 0)); then echo "$v $d all runs failed (see $RAW)" >>"$TABLE"; continue; fi
		s=$(med "$v" "$d" 3); g=$(med "$v" "$d" 4); sp=$(med "$v" "$d" 5); gp=$(med "$v" "$d" 6)
		l=$(med "$v" "$d" 7); r=$(med "$v" "$d" 8)
		# 16 fields: v d n set xk xu get xk xu setp99 getp99 load xk xu rss ppf
		echo "$v $d $n $s $(ratio "$s" "$ks") $(ratio "$s" "$us") $g $(ratio "$g" "$kg") $(ratio "$g" "$ug") $sp $gp $l $(ratio "$l" "$kl") $(ratio "$l" "$ul") $r $(ppf "$v" "$d")" >>"$TABLE"
		[[ -z "${FAILS[$v/$d]:-}" ]] || WARN+=("$v/$d: ${FAILS[$v/$d]} of $REPS_DONE runs failed (see $RAW)")
	done
done

print_table() {     # print_table text|md
	awk -v fmt="$1" '
		BEGIN {
			if (fmt == "md") {
				print "| variant | value B | runs | SET kops/s | x k-4k | x usm-4k | GET kops/s | x k-4k | x usm-4k | SET p99 ms | GET p99 ms | load s | x k-4k | x usm-4k | RSS MiB | pages/fault |"
				print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
			} else
				printf "%-20s %5s %4s %8s %6s %6s %8s %6s %6s %8s %8s %7s %6s %6s %7s %7s\n", "variant", "value", "runs",
					"SET k/s", "x k4k", "x u4k", "GET k/s", "x k4k", "x u4k", "SETp99", "GETp99", "load s", "x k4k", "x u4k", "RSS MiB", "pg/flt"
		}
		NF == 16 && $4 ~ /^[0-9.e+]+$/ {
			if (fmt == "md")
				printf "| %s | %s | %d | %.1f | %s | %s | %.1f | %s | %s | %.3f | %.3f | %.2f | %s | %s | %.0f | %s |\n",
					$1, $2, $3, $4 / 1000, $5, $6, $7 / 1000, $8, $9, $10, $11, $12, $13, $14, $15, $16
			else
				printf "%-20s %5s %4d %8.1f %6s %6s %8.1f %6s %6s %8.3f %8.3f %7.2f %6s %6s %7.0f %7s\n",
					$1, $2, $3, $4 / 1000, $5, $6, $7 / 1000, $8, $9, $10, $11, $12, $13, $14, $15, $16
			next
		}
		{
			v = $1; d = $2; $1 = ""; $2 = ""; sub(/^  /, "")
			if (fmt == "md") printf "| %s | %s | %s |||||||||||||\n", v, d, $0
			else printf "%-20s %5s %s\n", v, d, $0
		}' "$TABLE"
	local v
	for v in "${VARIANTS[@]}"; do
		[[ -n "${SKIP[$v]:-}" ]] || continue
		if [[ "$1" == md ]]; then echo "| $v | (all) | skipped: ${SKIP[$v]//|/\\|} |||||||||||||"
		else printf '%-20s %5s skipped: %s\n' "$v" "(all)" "${SKIP[$v]}"; fi
	done
}

echo
print_table text
[[ -z "$REPS_NOTE" ]] || echo "note: $REPS_NOTE"
for w in "${WARN[@]+"${WARN[@]}"}"; do echo "warning: $w"; done
{
	echo "#"
	print_table text | sed 's/^/# /'
	for w in "${WARN[@]+"${WARN[@]}"}"; do echo "# warning: $w"; done
} >>"$RAW"
echo
echo "raw results: $RAW (total ${T_TOTAL} s)"

# -------------------------------------------------------------- plot
PLOT_NOTE=""
PV=()
for v in "${VARIANTS[@]}"; do
	awk -v v="$v" '$1 == v && NF == 16 && $4 ~ /^[0-9.e+]+$/ { f = 1 } END { exit !f }' "$TABLE" && PV+=("$v")
done
if ! command -v gnuplot >/dev/null; then
	PLOT_NOTE="plot skipped: gnuplot not installed (apt-get install -y gnuplot-nox)"
	echo "$PLOT_NOTE"
elif ((${#PV[@]} == 0)); then
	PLOT_NOTE="plot skipped: no results"
	echo "$PLOT_NOTE"
else
	# One data file per metric: rows = value sizes, columns = variants.
	for col in 4:set 7:get 10:setp99 12:load; do
		c=${col%%:*} name=${col#*:}
		{
			printf 'size'; for v in "${PV[@]}"; do printf ' %s' "$v"; done; echo
			for d in "${SIZES[@]}"; do
				printf '%s' "${d}B"
				for v in "${PV[@]}"; do
					x=$(awk -v v="$v" -v d="$d" -v c="$c" '$1 == v && $2 == d && NF == 16 && $4 ~ /^[0-9.e+]+$/ {
						print (c == 4 || c == 7) ? $c / 1000 : $c }' "$TABLE")
					printf ' %s' "${x:-?}"
				done
				echo
			done
		} >"$TMP/$name.dat"
	done
	ncol=$((${#PV[@]} + 1))
	COLS=""
	for v in "${PV[@]}"; do COLS+=" $(variant_color "$v")"; done
	width=$((900 + ${#SIZES[@]} * ${#PV[@]} * 24))
	((width > 2400)) && width=2400
	plot_term "$width" 900
	term=$TERM_PNG
	if gnuplot >"$TMP/gnuplot.log" 2>&1 <<EOF
set terminal $term
set output '$PNG'
COLS = "$COLS"
set datafile missing '?'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set grid ytics
set yrange [0:*]
set xtics nomirror noenhanced
set multiplot layout 2,2 title "redis-server: $KEYS random keys per phase, -P $PIPELINE -c $CLIENTS, median of $REPS\nkernel $KERNEL, $NCPU CPUs, redis $REDIS_VER, $DATE" noenhanced
set key off
set title "SET throughput (kops/s, higher is better)"
plot for [c=2:$ncol] '$TMP/set.dat' using c:xtic(1) title columnheader(c) lc rgb word(COLS, c - 1)
set title "GET throughput (kops/s, higher is better)"
plot for [c=2:$ncol] '$TMP/get.dat' using c:xtic(1) title columnheader(c) lc rgb word(COLS, c - 1)
set title "SET p99 latency (ms, lower is better)"
plot for [c=2:$ncol] '$TMP/setp99.dat' using c:xtic(1) title columnheader(c) lc rgb word(COLS, c - 1)
set title "data set load time = SET phase wall time (s, lower is better)"
set key outside right top vertical Left reverse noenhanced
plot for [c=2:$ncol] '$TMP/load.dat' using c:xtic(1) title columnheader(c) lc rgb word(COLS, c - 1)
unset multiplot
EOF
	then
		echo "plot: $PNG"
	else
		PLOT_NOTE="plot failed: $(tail -n 2 "$TMP/gnuplot.log" | tr '\n' ' ')"
		echo "$PLOT_NOTE"
	fi
fi

# --------------------------------------------------------------- doc
if ((DOC)); then
	DOCF=docs/bench-redis.md
	mkdir -p docs
	bench_cmd set D
	{
		echo "# redis-server under the kernel and under USM policies"
		echo
		echo "Generated by \`bench/redis_bench.sh --doc\`; rerun it to refresh this page."
		echo
		echo "- date: $DATE"
		echo "- kernel (\`uname -r\`): \`$KERNEL\`"
		echo "- machine: $CPU, $NCPU CPUs, THP \`enabled=$THP\`; load average $LOAD0 at the start, $LOAD1 at the end; free page reporting $REPORTING"
		echo "- redis-server $REDIS_VER (malloc $MALLOC), redis-benchmark $BENCH_VER, server and client on the same $NCPU CPUs"
		echo "- command: \`$CMDLINE\` (took $((T_TOTAL / 60)) min $((T_TOTAL % 60)) s)"
		echo "- client, per value size D: \`$(show_cmd "${BCMD[@]}")\`, then the same with \`-t get\`"
		echo "- $REPS_DONE runs per variant and value size, interleaved (rep 1 of every size x variant, then rep 2, ...);" \
		     "each run a fresh server$(if ((WARMUP_MB > 0)); then echo ", preceded by \`$(show_cmd "$MF") warmup --warmup-mb $WARMUP_MB --warmup-madvise both\`"; fi)."
		[[ -z "$REPS_NOTE" ]] || echo "- **Fewer repetitions:** $REPS_NOTE."
		echo "- raw results: [\`$RAW\`](../$RAW)"
		echo
		print_table md
		echo
		if [[ -z "$PLOT_NOTE" ]]; then
			echo "![redis-server SET/GET throughput, p99 and load time](../$PNG)"
		else
			echo "($PLOT_NOTE)"
		fi
		echo
		for w in "${WARN[@]+"${WARN[@]}"}"; do echo "**Warning:** $w"; echo; done
		echo "- Medians over the runs. kops/s and p99 are redis-benchmark's own (\`--csv --precision 3\`)."
		echo "- load s: wall time of the SET phase (redis-benchmark -t set, start to exit) into an empty server."
		echo "- RSS MiB: \`used_memory_rss\` (INFO memory) after the SET phase: compare it across variants" \
		     "to see the memory a policy maps but the data set does not use."
		echo "- pages/fault: USM variants, pages mapped / faults of redis-server (\`usm run --stats-json\`)."
		echo "- The machine is a noisy 2-vCPU VM shared by server, client and (under USM) the fault handler:" \
		     "compare the ratio columns within one run, not absolute numbers across runs."
		echo
		echo "## Variants and exact server commands"
		echo
		echo "| variant | what | server command |"
		echo "|---|---|---|"
		for v in "${VARIANTS[@]}"; do
			echo "| $v | $(variant_what "$v")${SKIP[$v]:+ — **skipped:** ${SKIP[$v]//|/\\|}} | \`$(variant_cmd_doc "$v")\` |"
		done
		echo
		echo "USM runs also pass \`--stats-json FILE\`. kernel-thp writes \`always\` to" \
		     "\`$THP_DIR/enabled\` just before each of its runs and restores it right after" \
		     "(and on any exit of the script)."
	} >"$DOCF"
	echo "doc: $DOCF"
fi
