#!/bin/bash
# /usr/bin/python3 building a ~700 MB list and dict under the embedded
# instance: exact output, and >= 90% of its anonymous memory managed by USM.
# timeout: 60
. "$(dirname "$0")/lib.sh"
[ -x /usr/bin/python3 ] || skip "/usr/bin/python3 is not installed"

N=4000000
cat >"$T/work.py" <<'PYEOF'
import hashlib, sys
n = int(sys.argv[1])
lst = [i * 7 + 3 for i in range(n)]
d = {i: str(i) for i in range(n)}
total = sum(lst) + sum(len(v) for v in d.values())
h = hashlib.sha256()
for i in range(0, n, 1000):
    h.update(d[i].encode())
print(len(lst), len(d), total, h.hexdigest())
PYEOF

# The expected line, computed without Python: sum(7i+3) = 7n(n-1)/2 + 3n,
# plus the total number of decimal digits of 0..n-1; the digest of every
# 1000th number's digits concatenated.
digits=0 lo=1 len=1
while [ "$lo" -le "$N" ]; do
	hi=$((lo * 10)); [ "$hi" -gt "$N" ] && hi=$N
	digits=$((digits + (hi - lo) * len))
	lo=$((lo * 10)); len=$((len + 1))
done
digits=$((digits + 1))          # the number 0
total=$((7 * N * (N - 1) / 2 + 3 * N + digits))
digest=$(seq 0 1000 $((N - 1)) | tr -d '\n' | sha256sum | cut -d' ' -f1)
echo "$N $N $total $digest" >"$T/expected"
log "expected: $(cat "$T/expected")"

start=$(now_ms)
run_limited 40 "$T/out" "$USM" run --stats-json "$T/stats.json" -- /usr/bin/python3 "$T/work.py" "$N"
assert_status 0 "$RC" "usm run -- python3 work.py" "$T/out" "$T/out.err"
log "python3 ran $(($(now_ms) - start)) ms under USM"
assert_same "$T/expected" "$T/out" "python3 printed the independently computed line"
assert_no_grep "$T/out.err" 'usm-agent' "the agent never detached or complained"

json_summary "$T/stats.json"
json_check "$T/stats.json" "len(procs(comm='python3')) == 1" "one python3 process attached"
py="procs(comm='python3')[0]"
json_check "$T/stats.json" "${py}['attached_s'] >= 1.0" "python3 ran >= 1 s (so its RSS was sampled)"
json_check "$T/stats.json" "${py}['faults'] > 0 and ${py}['pages_mapped'] > 0" "python3 took faults served by USM"
json_check "$T/stats.json" "${py}['rss_anon_pages_peak'] >= 100000" "python3 peaked above 390 MiB of anonymous memory"
log "managed ratio at peak: $(json_eval "$T/stats.json" "ratio($py)")"
json_check "$T/stats.json" "ratio($py) >= 0.90" "usm_pages_at_peak / rss_anon_pages_peak >= 0.90"
