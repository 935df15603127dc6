#!/bin/bash
# stress-ng --vm 2 --vm-bytes 256M --verify -t 10s under the embedded
# instance: a successful run with no verification failure; the vm workers
# (forked children) are attached, and >= 90% of the anonymous memory of
# the children that ran >= 1 s is managed by USM.
# timeout: 60
. "$(dirname "$0")/lib.sh"
need_cmd stress-ng
STRESS=$(command -v stress-ng)

run_limited 40 "$T/out" "$USM" run --stats-json "$T/stats.json" -- "${PIDWRAP[@]}" "$T/main.pid" \
	"$STRESS" --vm 2 --vm-bytes 256M --verify -t 10s
cat "$T/out.err" >>"$T/out"      # stress-ng reports on stderr
assert_status 0 "$RC" "usm run -- stress-ng --vm 2 --vm-bytes 256M --verify -t 10s" "$T/out"
assert_grep "$T/out" 'successful run completed in [0-9.]+s' "stress-ng: successful run completed"
assert_grep "$T/out" 'dispatching hogs: 2 vm' "stress-ng dispatched 2 vm hogs"
assert_no_grep "$T/out" 'fail|error|unsuccessful|verif' "stress-ng reported no failure or verification error" -i
assert_no_grep "$T/out" 'usm-agent' "the agent never detached or complained"

main=$(cat "$T/main.pid")
json_summary "$T/stats.json"
json_check "$T/stats.json" "proc($main, 'stress-ng')['faults'] > 0" "stress-ng main process $main attached"
workers="[p for p in procs(comm='stress-ng-vm') if p['pid'] != $main]"
json_check "$T/stats.json" "len($workers) == 2" "both vm workers (stress-ng-vm) attached"
json_check "$T/stats.json" "all(p['attached_s'] >= 5 and p['faults'] > 0 and p['pages_mapped'] > 0 for p in $workers)" \
	"each vm worker ran >= 5 s with faults served by USM"
json_check "$T/stats.json" "all(p['rss_anon_pages_peak'] >= 30000 for p in $workers)" \
	"each vm worker peaked at >= 117 MiB of anonymous memory (its 128 MiB share)"
long="[p for p in procs() if p['pid'] != $main and p['attached_s'] >= 1.0]"
log "children that ran >= 1 s: $(json_eval "$T/stats.json" "len($long)"), managed ratio over them: $(json_eval "$T/stats.json" "sum(p['usm_pages_at_peak'] for p in $long) / sum(p['rss_anon_pages_peak'] for p in $long)")"
json_check "$T/stats.json" "sum(p['usm_pages_at_peak'] for p in $long) >= 0.90 * sum(p['rss_anon_pages_peak'] for p in $long)" \
	"children that ran >= 1 s: sum(usm_pages_at_peak) / sum(rss_anon_pages_peak) >= 0.90"
json_check "$T/stats.json" "all(ratio(p) >= 0.90 for p in $workers)" "each vm worker's managed ratio >= 0.90"
