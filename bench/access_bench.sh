#!/bin/bash
# bench/access_bench.sh BUILD - the access tracker's accuracy and cost
# (docs/access-tracking.md): PAGEMAP_SCAN write tracking on 1 GiB with a
# 10% hot set, ticks of 100 and 200 ms; then, as root with no kdamond in
# use, DAMON physical-address monitoring on the same kind of workload.
set -eu
B=${1:?usage: $0 BUILD}
"$B/bench/access_bench" 1024 10 100 3
"$B/bench/access_bench" 1024 10 200 3 | tail -n 2
if [ "$(id -u)" = 0 ] && [ "$(cat /sys/kernel/mm/damon/admin/kdamonds/nr_kdamonds 2>/dev/null)" = 0 ]; then
	echo
	echo "| ops   | hot    | max    | acc.  | hot   | cold   | kdamond | update |"
	echo "|       | layout | regions| regs  | flagd | flagged| CPU s/4s| s      |"
	echo "|-------|--------|--------|-------|-------|--------|---------|--------|"
	for layout in 0 1; do
		for maxr in 1000 10000; do
			python3 "$(dirname "$0")/access_damon_paddr.py" "$B" "$maxr" "$layout"
		done
	done
fi
