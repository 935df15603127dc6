#!/bin/bash
# usm sim: offline replay of traces with known answers.
#
# The traces are written here by a small Python writer of the documented
# format (core/trace.c), independent of the C writer, so the reader is
# checked against the documentation too.  Known answers:
#  - a cyclic scan of K+1 pages with K frames: FIFO, LRU and CLOCK miss
#    on every reference; Belady's optimum misses K+1 times in the first
#    round and then once every K references;
#  - a hot set reused between one-time scans larger than memory: FIFO,
#    LRU and CLOCK lose the hot set every round, S3-FIFO keeps it in its
#    main queue and misses only on first touches, as the optimum does;
#  - a second sequential pass with prefetch N: one miss per group of N;
#  - a random multi-process trace with frees, access and evict records,
#    npages > 1 and records out of time order: every column equals a
#    naive Python simulation, the clock policy equals CLOCK exactly, and
#    the s3fifo policy a naive S3-FIFO written from docs/eviction.md.
# Then the error cases with their exact messages.
# timeout: 120
set -eu
. "$(dirname "$0")/lib.sh"
trap '_lib_cleanup || :' EXIT

SRC=$(cd "$(dirname "$0")/../.." && pwd)
GEN=$T/gen.py

cat >"$GEN" <<'EOF'
import bisect, random, struct, sys

def write(path, recs, page=4096):
    """recs: (kind, pid, vpn, npages, time_ns) in file order."""
    with open(path, "wb") as f:
        f.write(b"USMTRACE" + struct.pack("<IIIIQ", 1, page, 0, 32, 0))
        for kind, pid, vpn, n, t in recs:
            f.write(struct.pack("<B3xIQQII", kind, pid, vpn, t, n, 0))

FAULT, SWAPIN, EVICT, ACCESS, FREE = 1, 2, 3, 4, 5

def cyclic(path, k, rounds):
    write(path, [(FAULT, 100, 0x1000 + p, 1, 0) for _ in range(rounds) for p in range(k)])

def hotscan(path, hot, reps, scan, rounds):
    recs, nxt = [], 0x100000
    for _ in range(rounds):
        for _ in range(reps):
            recs += [(FAULT, 7, 0x1000 + p, 1, 0) for p in range(hot)]
        recs += [(FAULT, 7, nxt + p, 1, 0) for p in range(scan)]
        nxt += scan
    write(path, recs)

def seq(path, n, passes):
    kinds = [FAULT] + [SWAPIN] * (passes - 1)
    write(path, [(kinds[r], 9, 0x2000 + p, 1, 0) for r in range(passes) for p in range(n)])

def random_trace(path, seed, nrec):
    """Two processes, each buffering blocks of records as the recorder
    does; blocks land in the file out of time order."""
    rnd = random.Random(seed)
    per_pid = {11: [], 22: []}
    for t in range(nrec):
        pid = rnd.choice((11, 22))
        r = rnd.random()
        kind = FAULT if r < .55 else SWAPIN if r < .7 else ACCESS if r < .85 else EVICT if r < .93 else FREE
        # a skewed page choice: some pages are hot
        vpn = 0x400 + int(rnd.paretovariate(1.2) * 3) % 160
        n = rnd.choice((1, 1, 1, 2, 4)) if kind != ACCESS else 1
        per_pid[pid].append((kind, pid, vpn, n, 1000 * t))
    recs = []
    while per_pid[11] or per_pid[22]:
        pid = rnd.choice([p for p in per_pid if per_pid[p]])
        block, per_pid[pid] = per_pid[pid][:37], per_pid[pid][37:]
        recs += block
    write(path, recs)
    return recs

def ops_of(recs):
    """The page operations, as usm sim defines them (docs/eviction.md)."""
    ops = []
    for kind, pid, vpn, n, t in sorted(recs, key=lambda r: r[4]):   # stable
        if kind == EVICT:
            continue
        ops += [("free" if kind == FREE else "ref", (pid, vpn + i)) for i in range(n)]
    return ops

def queue_sim(ops, frames, kind):
    q, ref, misses = [], {}, 0          # q: resident pages, oldest first
    for op, p in ops:
        if op == "free":
            if p in q:
                q.remove(p)
            continue
        if p in q:
            ref[p] = 1
            if kind == "LRU":
                q.remove(p); q.append(p)
            continue
        misses += 1
        if len(q) == frames:
            while kind == "CLOCK" and ref[q[0]]:
                ref[q[0]] = 0
                q.append(q.pop(0))
            q.pop(0)
        q.append(p)
        ref[p] = 1
    return misses

def opt_sim(ops, frames):
    refs, frees = {}, {}
    for i, (op, p) in enumerate(ops):
        (frees if op == "free" else refs).setdefault(p, []).append(i)
    def next_use(p, i):
        r, f = refs.get(p, []), frees.get(p, [])
        nr = r[bisect.bisect_right(r, i)] if bisect.bisect_right(r, i) < len(r) else None
        nf = f[bisect.bisect_right(f, i)] if bisect.bisect_right(f, i) < len(f) else None
        if nr is None or (nf is not None and nf < nr):
            return float("inf")
        return nr
    res, misses = set(), 0
    for i, (op, p) in enumerate(ops):
        if op == "free":
            res.discard(p)
            continue
        if p in res:
            continue
        misses += 1
        if len(res) == frames:
            res.remove(max(res, key=lambda q: next_use(q, i)))
        res.add(p)
    return misses

def s3fifo_sim(ops, frames):
    """policies/s3fifo.c as docs/eviction.md describes it, with the
    simulator's access bit: set on mapping (and consumed by the policy)
    and on every hit."""
    small, main, ghost = [], [], {}
    freq, ref, resident = {}, {}, set()
    gseq, misses = 0, 0
    tracked = lambda: len(small) + len(main)
    def ghost_take(p):
        if p in ghost and gseq - ghost[p] <= max(1, tracked() * 9 // 10):
            del ghost[p]
            return True
        return False
    def evict():
        nonlocal gseq
        while True:
            if small and (10 * len(small) >= tracked() or not main):
                p = small.pop(0)
                was, ref[p] = ref[p], False
                if was:
                    main.append(p)
                    freq[p] = 0
                    continue
                ghost[p] = gseq
                gseq += 1
                return p
            p = main[0]
            f = freq[p]
            if ref[p]:
                ref[p] = False
                f = min(f + 1, 3)
            if f:
                freq[p] = f - 1
                main.append(main.pop(0))
                continue
            return main.pop(0)
    for op, p in ops:
        if op == "free":
            if p in resident:
                resident.discard(p)
                (small if p in small else main).remove(p)
            continue
        if p in resident:
            ref[p] = True
            continue
        misses += 1
        if len(resident) == frames:
            resident.discard(evict())
        resident.add(p)
        ref[p] = False                  # mapped referenced; the policy consumes it
        freq[p] = 0
        (main if ghost_take(p) else small).append(p)
    return misses

if __name__ == "__main__":
    cmd, path = sys.argv[1], sys.argv[2]
    args = [int(a) for a in sys.argv[3:]]
    if cmd == "cyclic":
        cyclic(path, *args)
    elif cmd == "hotscan":
        hotscan(path, *args)
    elif cmd == "seq":
        seq(path, *args)
    elif cmd == "random":
        seed, nrec, frames = args
        ops = ops_of(random_trace(path, seed, nrec))
        print("refs", sum(op == "ref" for op, _ in ops))
        seen, frees = set(), 0
        for op, p in ops:
            if op == "ref":
                seen.add(p)
            elif p in seen:
                frees += 1
        print("frees", frees)
        for k in ("FIFO", "LRU", "CLOCK"):
            print(k, queue_sim(ops, frames, k))
        print("OPT", opt_sim(ops, frames))
        print("s3fifo", s3fifo_sim(ops, frames))
EOF

# faults NAME OUT: the faults column of row NAME
faults() { awk -v n="$1" '$1 == n { print $2 }' "$2"; }
ratio() { awk -v n="$1" '$1 == n { print $3 }' "$2"; }

# sim OUT ARGS...: usm sim must succeed
sim() {
	local out=$1
	shift
	"$USM" sim "$@" >"$out" 2>"$out.err" || { show "$out" "$out.err"; fail "usm sim $* failed"; }
}

# pct A B: A/B in percent, two decimals, as usm sim prints it
pct() { "$PY" -c "print('%.2f%%' % (100.0 * $1 / $2))"; }

# ---- cyclic scan ------------------------------------------------------------

for kr in 8:10 16:20; do
	K=${kr%:*} R=${kr#*:}
	"$PY" "$GEN" cyclic "$T/cyc.trace" $((K + 1)) "$R"
	refs=$((R * (K + 1)))
	opt=$((K + 1 + (refs - 1 - K) / K))
	for pol in clock s3fifo; do
		sim "$T/cyc.out" --trace "$T/cyc.trace" --memory "${K}p" --policy "$pol" --prefetch 1
		assert_grep_fixed "$T/cyc.out" "references $refs, frees 0" "cyclic K=$K: $refs references"
		assert_grep_fixed "$T/cyc.out" "memory     $K pages" "cyclic K=$K: memory in pages"
		for alg in FIFO LRU CLOCK; do
			assert_eq "$refs" "$(faults $alg "$T/cyc.out")" "cyclic K=$K R=$R: $alg faults"
			assert_eq "100.00%" "$(ratio $alg "$T/cyc.out")" "cyclic K=$K: $alg miss ratio"
		done
		assert_eq "$opt" "$(faults OPT "$T/cyc.out")" "cyclic K=$K R=$R: OPT faults"
		assert_eq "$(pct "$opt" "$refs")" "$(ratio OPT "$T/cyc.out")" "cyclic K=$K: OPT miss ratio"
	done
	sim "$T/cyc.out" --trace "$T/cyc.trace" --memory "${K}p" --policy clock --prefetch 1
	assert_eq "$refs" "$(faults clock "$T/cyc.out")" "cyclic K=$K: the clock policy misses every time"
done
# 16 pages = 64K: the same with a size
sim "$T/cyc.out" --trace "$T/cyc.trace" --memory 64K --policy clock --prefetch 1
assert_eq "$opt" "$(faults OPT "$T/cyc.out")" "--memory 64K is 16 pages"

# ---- scan resistance ----------------------------------------------------------

# hot set of 10 pages touched 3 times, then 30 new pages, 5 rounds; 20 frames
"$PY" "$GEN" hotscan "$T/hs.trace" 10 3 30 5
sim "$T/hs.out" --trace "$T/hs.trace" --memory 20p --policy s3fifo --prefetch 1
assert_eq 300 "$(awk '$1 == "references" { print $2 }' "$T/hs.out" | tr -d ,)" "hot/scan: 300 references"
for alg in FIFO LRU CLOCK; do
	assert_eq 200 "$(faults $alg "$T/hs.out")" "hot/scan: $alg loses the hot set every round"
done
assert_eq 160 "$(faults OPT "$T/hs.out")" "hot/scan: OPT misses on first touches only"
assert_eq 160 "$(faults s3fifo "$T/hs.out")" "hot/scan: s3fifo keeps the hot set"
assert_eq "53.33%" "$(ratio s3fifo "$T/hs.out")" "hot/scan: s3fifo miss ratio"
assert_grep_fixed "$T/hs.out" "s3fifo: 140 evictions, 0 swap-ins" "hot/scan: s3fifo evicted only scan pages"

# ---- prefetch -----------------------------------------------------------------

# 64 pages written, then read again (swap-ins), with 16 frames
"$PY" "$GEN" seq "$T/seq.trace" 64 2
for pol in clock s3fifo; do
	sim "$T/seq.out" --trace "$T/seq.trace" --memory 16p --policy "$pol" --prefetch 1
	assert_eq 128 "$(faults $pol "$T/seq.out")" "sequential, $pol, no prefetch: every page misses"
	# auto: readahead grows the groups along the stream, 1, 2, 4, 8 and
	# then 16 (as many as the memory holds) per swap-in
	sim "$T/seq.out" --trace "$T/seq.trace" --memory 16p --policy "$pol" --prefetch auto
	assert_eq 72 "$(faults $pol "$T/seq.out")" "sequential, $pol, prefetch auto: 64 + 8 misses"
	assert_grep_fixed "$T/seq.out" "$pol: 112 evictions, 8 swap-ins, 56 pages prefetched, 56 of them used" \
		"sequential, $pol, prefetch auto: every prefetched page used"
	sim "$T/seq.out" --trace "$T/seq.trace" --memory 16p --policy "$pol" --prefetch 4
	assert_eq 80 "$(faults $pol "$T/seq.out")" "sequential, $pol, prefetch 4: one miss per group of 4 on the second pass"
	assert_grep_fixed "$T/seq.out" "$pol: 112 evictions, 16 swap-ins, 48 pages prefetched, 48 of them used" \
		"sequential, $pol, prefetch 4: every prefetched page used"
	assert_eq 128 "$(faults LRU "$T/seq.out")" "sequential: the references do not prefetch"
done
# the same through the config line the policy reads
sim "$T/seq.out" --trace "$T/seq.trace" --memory 16p --policy clock -o 'set clock.prefetch 8'
assert_eq 72 "$(faults clock "$T/seq.out")" "set clock.prefetch 8: 64 + 64/8 misses"

# ---- a random trace against naive simulations ------------------------------------

for case in 1:3000:24 2:4000:60 3:2000:7; do
	IFS=: read -r seed nrec frames <<<"$case"
	"$PY" "$GEN" random "$T/rnd.trace" "$seed" "$nrec" "$frames" >"$T/rnd.want"
	sim "$T/rnd.out" --trace "$T/rnd.trace" --memory "${frames}p" --policy clock --prefetch 1
	assert_grep_fixed "$T/rnd.out" "references $(awk '$1 == "refs" { print $2 }' "$T/rnd.want"), frees $(awk '$1 == "frees" { print $2 }' "$T/rnd.want")" \
		"random $seed: references, and frees of pages referenced before"
	for alg in FIFO LRU CLOCK OPT; do
		assert_eq "$(awk -v a=$alg '$1 == a { print $2 }' "$T/rnd.want")" "$(faults $alg "$T/rnd.out")" \
			"random $seed, $frames frames: $alg as the naive simulation"
	done
	assert_eq "$(faults CLOCK "$T/rnd.out")" "$(faults clock "$T/rnd.out")" \
		"random $seed: the clock policy through its ops equals CLOCK"
	sim "$T/rnd.s3" --trace "$T/rnd.trace" --memory "${frames}p" --policy s3fifo --prefetch 1
	assert_eq "$(awk '$1 == "s3fifo" { print $2 }' "$T/rnd.want")" "$(faults s3fifo "$T/rnd.s3")" \
		"random $seed, $frames frames: the s3fifo policy as the naive S3-FIFO"
	# the built-in fifo policy, where it exists, must be FIFO exactly
	if "$USM" sim --trace "$T/rnd.trace" --memory "${frames}p" --policy fifo --prefetch 1 >"$T/rnd.fifo" 2>/dev/null; then
		assert_eq "$(faults FIFO "$T/rnd.fifo")" "$(faults fifo "$T/rnd.fifo")" "random $seed: fifo policy equals FIFO"
	fi
done

# ---- a plugin policy ---------------------------------------------------------------

if command -v "${CC:-cc}" >/dev/null; then
	cat >"$T/lifo.c" <<'EOF'
/* Evicts the page mapped last. */
#include <usm/usm.h>
static USM_LIST_HEAD(stack);
static void mapped(struct usm_page *pg) { usm_list_add_tail(&pg->list2, &stack); }
static void unmapped(struct usm_page *pg) { usm_list_del(&pg->list2); }
static unsigned evict(struct usm_page **out, unsigned want)
{
	unsigned n = 0;
	while (n < want && !usm_list_empty(&stack)) {
		struct usm_page *pg = usm_list_entry(stack.prev, struct usm_page, list2);
		unmapped(pg);
		out[n++] = pg;
	}
	return n;
}
static const struct usm_swap_policy_ops ops = {
	.usm_page_mapped = mapped, .usm_page_unmapped = unmapped, .usm_evict_fallback = evict,
};
__attribute__((constructor)) static void reg(void) { usm_register_swap_policy(&ops, "lifo_test", false); }
EOF
	"${CC:-cc}" -shared -fPIC -I"$SRC/include" "$T/lifo.c" -o "$T/lifo.so" || fail "cannot build the plugin"
	"$PY" "$GEN" cyclic "$T/cyc.trace" 9 10
	sim "$T/lifo.out" --trace "$T/cyc.trace" --memory 8p --policy lifo_test --plugin "$T/lifo.so"
	# 9 misses in round 1, then pages 8 and 9 evict each other: 2 per round
	assert_eq $((9 + 2 * 9)) "$(faults lifo_test "$T/lifo.out")" "plugin lifo_test: 27 faults"
else
	log "no C compiler: plugin case skipped"
fi

# ---- errors ------------------------------------------------------------------------

# sim_error STATUS MESSAGE ARGS...: exit STATUS, stderr is exactly MESSAGE, nothing on stdout
sim_error() {
	local want_rc=$1 want=$2 rc=0
	shift 2
	"$USM" sim "$@" >"$T/err.out" 2>"$T/err.err" || rc=$?
	assert_status "$want_rc" "$rc" "usm sim $*" "$T/err.out" "$T/err.err"
	assert_eq "$want" "$(cat "$T/err.err")" "usm sim $*: message"
	[ ! -s "$T/err.out" ] || { show "$T/err.out"; fail "usm sim $*: printed results despite the error"; }
}

good=$T/cyc.trace
sim_error 1 "usm sim: $T/none.trace: cannot open: No such file or directory" \
	--trace "$T/none.trace" --memory 8 --policy clock
printf '#!/bin/sh\necho not a trace at all\n' >"$T/script.trace"
sim_error 1 "usm sim: $T/script.trace: offset 0: bad magic (not a USM trace file: expected \"USMTRACE\")" \
	--trace "$T/script.trace" --memory 8 --policy clock
head -c 20 "$good" >"$T/short.trace"
sim_error 1 "usm sim: $T/short.trace: offset 0: truncated header (20 of 32 bytes)" \
	--trace "$T/short.trace" --memory 8 --policy clock
head -c $((32 + 5 * 32 + 7)) "$good" >"$T/cut.trace"
sim_error 1 "usm sim: $T/cut.trace: offset 192: truncated record (7 of 32 bytes)" \
	--trace "$T/cut.trace" --memory 8 --policy clock
"$PY" - "$good" "$T/kind.trace" <<'EOF'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[32 + 3 * 32] = 9
open(sys.argv[2], "wb").write(b)
EOF
sim_error 1 "usm sim: $T/kind.trace: offset 128: unknown record kind 9 (expected 1-5)" \
	--trace "$T/kind.trace" --memory 8 --policy clock
"$PY" - "$good" "$T/ver.trace" <<'EOF'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[8] = 3
open(sys.argv[2], "wb").write(b)
EOF
sim_error 1 "usm sim: $T/ver.trace: offset 8: unsupported version 3 (this usm reads version 1)" \
	--trace "$T/ver.trace" --memory 8 --policy clock
"$PY" -c 'import sys; sys.path.insert(0, sys.argv[1]); import gen
gen.write(sys.argv[2], [(1, 5, 0, 1, 0)], page=2 << 20)' "$T" "$T/huge.trace"
sim_error 1 "usm sim: $T/huge.trace: page size 2097152 is above 1048576, the largest usm sim supports" \
	--trace "$T/huge.trace" --memory 8 --policy clock

names=$({ "$USM" sim --trace "$good" --memory 8 --policy nosuch 2>&1 || :; } |
	sed -n "s/.*(registered: \(.*\))$/\1/p")
for pol in clock s3fifo; do
	case ", $names," in *", $pol,"*) ;; *) fail "usm sim --policy nosuch does not list $pol: '$names'" ;; esac
done
ok "registered swap policies: $names"
sim_error 2 "usm sim: unknown swap policy 'nosuch' (registered: $names)" \
	--trace "$good" --memory 8 --policy nosuch

memerr() { echo "usm sim: bad --memory '$1': expected MiB (64), a size in whole 4096-byte pages (512K, 1G) or a page count (1000p)"; }
for m in 0 8x 6K -1 '' 0p 1.5 99999999999999999999; do
	sim_error 2 "$(memerr "$m")" --trace "$good" --memory "$m" --policy clock
done
sim_error 2 "usm sim: --prefetch wants 'auto' or a power of two from 1 to 512, got '3'" \
	--trace "$good" --memory 8 --policy clock --prefetch 3
sim_error 2 "usm sim: --prefetch wants 'auto' or a power of two from 1 to 512, got '1024'" \
	--trace "$good" --memory 8 --policy clock --prefetch 1024
sim_error 1 "usm error: set s3fifo.prefetch: 'many' is not a whole number
usm sim: policy s3fifo: usm_init failed" \
	--trace "$good" --memory 8 --policy s3fifo -o 'set s3fifo.prefetch many'
sim_error 1 "usm error: set clock.prefetch: expected 'auto' or a power of two from 1 to 512, got '6'
usm sim: policy clock: usm_init failed" \
	--trace "$good" --memory 8 --policy clock -o 'set clock.prefetch 6'
sim_error 1 "usm sim: plugin $T/none.so: cannot load: $T/none.so: cannot open shared object file: No such file or directory" \
	--trace "$good" --memory 8 --policy clock --plugin "$T/none.so"

usage="usage: usm sim --trace FILE --memory SIZE --policy NAME [--prefetch N|auto]
               [--plugin FILE.so]... [-o LINE]...
  SIZE: MiB (64), a size with K/M/G (512K, 1G), or pages (1000p)"
sim_error 2 "usm sim: --trace is required
$usage" --memory 8 --policy clock
sim_error 2 "usm sim: --memory is required
$usage" --trace "$good" --policy clock
sim_error 2 "usm sim: --policy is required
$usage" --trace "$good" --memory 8
sim_error 2 "usm sim: unexpected argument 'extra'" --trace "$good" --memory 8 --policy clock extra
