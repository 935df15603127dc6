#!/bin/bash
# Swap devices full: two programs whose data fits neither in the 32 MiB
# budget nor in the 24 MiB device together.  With `oom kill`, the one with
# the lower `priority` is killed through its pidfd with a clear log line,
# its frames and slots come back, and the other finishes with every page
# correct.  The daemon keeps running.
# timeout: 120
. "$(dirname "$0")/lib.sh"
need_prog "$EVICT"

# lowprio: 40 MiB (more than the budget, so part of it is swapped out),
# written once and held; its pages are incompressible.  highprio needs
# 40 MiB as well: budget and device cannot hold both.
evict_oom_two full "memory 32" "swapdev zmem - 24M" "oom kill" "priority lowprio 1" \
	"priority highprio 10"
