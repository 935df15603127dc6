#!/bin/bash
# Real programs in the in-process host: python3 and sqlite3 read files,
# pipes and sockets into fresh memory, which in SIGBUS mode only works
# because the agent touches system calls' output buffers first.  Exact
# output, and the instance saw their faults.
# timeout: 90
. "$(dirname "$0")/lib.sh"
need_cmd /usr/bin/python3
need_cmd sqlite3

py='import json, hashlib
d = {i: str(i) * 10 for i in range(300000)}
print(hashlib.sha256(json.dumps(d).encode()).hexdigest())'
/usr/bin/python3 -c "$py" >"$T/want" || fail "native python3 failed"
run_limited 60 "$T/out" "$USM" run --inline --stats-json "$T/py.json" -- /usr/bin/python3 -c "$py"
assert_status 0 "$RC" "usm run --inline -- python3" "$T/out" "$T/out.err"
assert_same "$T/want" "$T/out" "python3: same digest as a native run"
json_check "$T/py.json" "any(p['inline'] and p['faults'] > 1000 for p in procs(comm='python3'))" \
	"python3 ran in the in-process host and took faults"

sql="with recursive c(x) as (select 1 union all select x + 1 from c where x < 300000)
select count(*), sum(x), sum(length(printf('%d-row', x))) from c;"
echo "$sql" | sqlite3 :memory: >"$T/want" || fail "native sqlite3 failed"
echo "$sql" >"$T/q.sql"
run_limited 60 "$T/out" "$USM" run --inline -- sh -c "sqlite3 :memory: <'$T/q.sql'"
assert_status 0 "$RC" "usm run --inline -- sqlite3" "$T/out" "$T/out.err"
assert_same "$T/want" "$T/out" "sqlite3: same result as a native run"
assert_no_grep "$T/out.err" 'usm-agent' "the agent never detached or complained"
