#!/bin/bash
# A full budget with `oom kernel` (the default): a program touching 256 MiB
# under a 64 MiB instance completes correctly; USM serves the budget and
# hands the rest to the kernel; frames in use never exceed the budget.
# timeout: 60
. "$(dirname "$0")/lib.sh"
need_prog "$MEMWRITER"

"$MEMWRITER" --mb 256 --threads 2 >"$T/want" || fail "native memwriter failed"
run_limited 30 "$T/out" "$USM" run -o 'memory 64' --stats-json "$T/stats.json" -- \
	"${PIDWRAP[@]}" "$T/prog.pid" "$MEMWRITER" --mb 256 --threads 2
assert_status 0 "$RC" "usm run -o 'memory 64' -- usm_memwriter --mb 256" "$T/out" "$T/out.err"
assert_same "$T/want" "$T/out" "all 256 MiB verified, same checksum as a native run"
assert_grep "$T/out.err" 'budget full \(16384 frames\).*gets kernel pages' "the instance said the budget is full"
prog=$(cat "$T/prog.pid")
json_summary "$T/stats.json"
P="proc($prog, 'usm_memwriter')"
json_check "$T/stats.json" "d['oom'] == 'kernel' and d['memory_frames'] == 16384" "instance: oom kernel, 16384 frames (64 MiB)"
json_check "$T/stats.json" "d['frames_peak'] <= d['memory_frames']" "instance frames_peak <= budget"
json_check "$T/stats.json" "${P}['frames_peak'] <= d['memory_frames']" "process frames_peak <= budget"
json_check "$T/stats.json" "d['frames_peak'] >= 0.9 * d['memory_frames']" "the budget was used (frames_peak >= 90% of it)"
json_check "$T/stats.json" "${P}['kernel_pages'] > 0 and d['kernel_pages'] > 0" "kernel_pages > 0"
json_check "$T/stats.json" "${P}['oom_events'] > 0" "oom_events > 0"
json_check "$T/stats.json" "${P}['pages_mapped'] + ${P}['kernel_pages'] >= 256 * 256" \
	"USM pages + kernel pages cover the 256 MiB touched"
json_check "$T/stats.json" "d['frames_in_use'] == 0 and d['frames_free'] == d['memory_frames']" "every frame returned to the pool"
