#!/bin/bash
# sqlite3 :memory: inserting 1M rows (recursive CTE), indexing and
# aggregating under the embedded instance: exact results, >= 90% managed.
# timeout: 60
. "$(dirname "$0")/lib.sh"
need_cmd sqlite3
SQLITE=$(command -v sqlite3)

N=1000000
cat >"$T/work.sql" <<EOSQL
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, val INTEGER, txt TEXT);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $N)
INSERT INTO t SELECT x, x % 100, (x * 37) % 1000, printf('row-%07d', x) FROM c;
CREATE INDEX t_grp ON t(grp, val);
SELECT count(*), sum(val), min(txt), max(txt) FROM t;
SELECT grp, count(*), sum(val) FROM t WHERE grp IN (0, 7, 99) GROUP BY grp ORDER BY grp;
SELECT count(DISTINCT val), sum(length(txt)) FROM t;
SELECT sum(val) FROM t WHERE grp = 42 AND val >= 500;
EOSQL

# The same numbers computed by awk, independently of sqlite.
awk -v n=$N 'BEGIN {
	for (x = 1; x <= n; x++) {
		g = x % 100; v = (x * 37) % 1000
		sum += v; cnt[g]++; gsum[g] += v; seen[v] = 1
		if (g == 42 && v >= 500) s42 += v
	}
	printf "%d|%d|row-%07d|row-%07d\n", n, sum, 1, n
	split("0 7 99", gs, " ")
	for (i = 1; i <= 3; i++) printf "%d|%d|%d\n", gs[i], cnt[gs[i]], gsum[gs[i]]
	d = 0; for (v in seen) d++
	printf "%d|%d\n", d, n * 11
	printf "%d\n", s42
}' >"$T/expected"
log "expected:"; sed 's/^/#   /' "$T/expected"

start=$(now_ms)
run_limited 40 "$T/out" "$USM" run --stats-json "$T/stats.json" -- "$SQLITE" :memory: <"$T/work.sql"
assert_status 0 "$RC" "usm run -- sqlite3 :memory:" "$T/out" "$T/out.err"
log "sqlite3 ran $(($(now_ms) - start)) ms under USM"
assert_same "$T/expected" "$T/out" "sqlite3 results equal the awk-computed ones"
assert_no_grep "$T/out.err" 'usm-agent' "the agent never detached or complained"

json_summary "$T/stats.json"
json_check "$T/stats.json" "len(procs(comm='sqlite3')) == 1" "one sqlite3 process attached"
sq="procs(comm='sqlite3')[0]"
json_check "$T/stats.json" "${sq}['attached_s'] >= 1.0" "sqlite3 ran >= 1 s (so its RSS was sampled)"
json_check "$T/stats.json" "${sq}['faults'] > 0 and ${sq}['pages_mapped'] > 0" "sqlite3 took faults served by USM"
json_check "$T/stats.json" "${sq}['rss_anon_pages_peak'] >= 5000" "sqlite3 peaked above 19 MiB of anonymous memory"
log "managed ratio at peak: $(json_eval "$T/stats.json" "ratio($sq)")"
json_check "$T/stats.json" "ratio($sq) >= 0.90" "usm_pages_at_peak / rss_anon_pages_peak >= 0.90"
