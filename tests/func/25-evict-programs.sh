#!/bin/bash
# Real programs larger than the budget, with swap devices: stress-ng
# --vm 2 --vm-bytes 512M --verify under a 256 MiB budget, and python3
# building a 1 GiB structure under a 256 MiB budget.  Both give exactly the
# output of a native run, pages were evicted, and the budget held.
# timeout: 180
. "$(dirname "$0")/lib.sh"
need_cmd stress-ng
STRESS=$(command -v stress-ng)

# stress-ng writes patterns and checks them (--verify) while its pages
# come and go.
run_limited 60 "$T/sng" "$USM" run --stats-json "$T/sng.json" -o 'memory 256' \
	-o "swapdev zmem - 1G" -- "$STRESS" --vm 2 --vm-bytes 512M --verify -t 10s
cat "$T/sng.err" >>"$T/sng"
assert_status 0 "$RC" "stress-ng --vm 2 --vm-bytes 512M --verify under a 256 MiB budget" "$T/sng"
assert_grep "$T/sng" 'successful run completed in [0-9.]+s' "stress-ng: successful run completed"
assert_no_grep "$T/sng" 'fail|error|unsuccessful|verif' "stress-ng reported no failure or verification error" -i
json_summary "$T/sng.json"
json_check "$T/sng.json" "d['evicted'] > 0 and d['swapped_in'] > 0" "stress-ng: pages were evicted and swapped in"
json_check "$T/sng.json" "d['frames_peak'] <= d['memory_frames'] and d['kernel_pages'] == 0" \
	"stress-ng: the budget held, no kernel pages"
json_check "$T/sng.json" "d['frames_in_use'] == 0 and d['swap']['slots_used'] == 0" \
	"stress-ng: every frame and slot free after exit"

# python3: 1 GiB of distinct 4 KiB objects, then a digest over all of them.
"$PY" "$BUILD1G" >"$T/py.want" || fail "native python3 failed"
run_limited 120 "$T/py" "$USM" run --stats-json "$T/py.json" -o 'memory 256' \
	-o "swapdev file $T/py.swap 2G" -- "$PY" "$BUILD1G"
assert_status 0 "$RC" "python3 building 1 GiB under a 256 MiB budget" "$T/py" "$T/py.err"
assert_same "$T/py.want" "$T/py" "python3: same output as a native run"
json_check "$T/py.json" "d['evicted'] >= 150000" "python3: >= 150000 pages evicted"
json_check "$T/py.json" "d['frames_peak'] <= d['memory_frames'] and d['kernel_pages'] == 0" \
	"python3: the budget held, no kernel pages"
json_check "$T/py.json" "d['frames_in_use'] == 0 and d['swap']['slots_used'] == 0" \
	"python3: every frame and slot free after exit"
