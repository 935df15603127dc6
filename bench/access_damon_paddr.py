#!/usr/bin/env python3
# bench/access_damon_paddr.py BUILD MAX_REGIONS LAYOUT(0|1) - how well DAMON's
# physical-address monitoring (the only DAMON operations set this kernel
# builds: CONFIG_DAMON_VADDR is off) finds a process's hot pages.
#
# Runs access_damon_wl (1 GiB, 10% hot), monitors all System RAM with one
# kdamond (sample 5 ms, aggregation 100 ms, MAX_REGIONS regions), reads the
# regions with nr_accesses >= 1 through a `stat` scheme's tried_regions
# after 4 s, maps the workload's pages to physical addresses through
# /proc/PID/pagemap (root), and prints the fraction of hot and of cold
# pages inside an accessed region.  Needs root and no kdamond configured
# by anyone else (nr_kdamonds 0); leaves nr_kdamonds at 0.
import bisect, os, struct, subprocess, sys, tempfile, time

A = '/sys/kernel/mm/damon/admin/kdamonds'

def w(p, v):
    with open(p, 'w') as f:
        f.write(str(v))

def r(p):
    with open(p) as f:
        return f.read().strip()

def ram_ranges():
    out = []
    for line in open('/proc/iomem'):
        if line.startswith(' ') or 'System RAM' not in line:
            continue
        a, b = line.split(':')[0].split('-')
        if int(b, 16) - int(a, 16) > 1 << 30:
            out.append((int(a, 16), int(b, 16) + 1))
    return out

def main():
    if len(sys.argv) != 4:
        sys.exit('usage: access_damon_paddr.py BUILD MAX_REGIONS LAYOUT(0|1)')
    build, maxr, layout = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if r(A + '/nr_kdamonds') != '0':
        sys.exit('access_damon_paddr: kdamonds are configured already; not touching them')
    lay = tempfile.mktemp()
    wl = subprocess.Popen([build + '/bench/access_damon_wl', '1024', '10', layout, '10', lay],
                          stdout=subprocess.PIPE, text=True)
    pid = int(wl.stdout.readline().split()[1])
    try:
        w(A + '/nr_kdamonds', 1)
        K = A + '/0'
        w(K + '/contexts/nr_contexts', 1)
        C = K + '/contexts/0'
        w(C + '/operations', 'paddr')
        w(C + '/monitoring_attrs/intervals/sample_us', 5000)
        w(C + '/monitoring_attrs/intervals/aggr_us', 100000)
        w(C + '/monitoring_attrs/nr_regions/min', 10)
        w(C + '/monitoring_attrs/nr_regions/max', maxr)
        w(C + '/targets/nr_targets', 1)
        T = C + '/targets/0'
        rr = ram_ranges()
        w(T + '/regions/nr_regions', len(rr))
        for i, (a, b) in enumerate(rr):
            w(f'{T}/regions/{i}/start', a)
            w(f'{T}/regions/{i}/end', b)
        w(C + '/schemes/nr_schemes', 1)
        S = C + '/schemes/0'
        w(S + '/action', 'stat')
        for k, lo, hi in (('nr_accesses', 1, 1 << 30), ('sz', 0, 1 << 62), ('age', 0, 1 << 30)):
            w(f'{S}/access_pattern/{k}/min', lo)
            w(f'{S}/access_pattern/{k}/max', hi)
        w(K + '/state', 'on')
        kpid = int(r(K + '/pid'))
        time.sleep(4)
        t0 = time.time()
        w(K + '/state', 'update_schemes_tried_regions')
        t1 = time.time()
        TR = S + '/tried_regions'
        regs = sorted((int(r(f'{TR}/{d}/start')), int(r(f'{TR}/{d}/end')))
                      for d in os.listdir(TR) if d.isdigit())
        st = open(f'/proc/{kpid}/stat').read().split(')')[1].split()
        kcpu = (int(st[11]) + int(st[12])) / os.sysconf('SC_CLK_TCK')
        with open(lay) as f:
            base, n = f.readline().split()
            hot = f.readline()
        base, n = int(base, 16), int(n)
        with open(f'/proc/{pid}/pagemap', 'rb') as pm:
            pm.seek(base // 4096 * 8)
            data = pm.read(n * 8)
    finally:
        if os.path.exists(A + '/0/state') and r(A + '/0/state') == 'on':
            w(A + '/0/state', 'off')
        w(A + '/nr_kdamonds', 0)
        wl.kill()
        os.path.exists(lay) and os.unlink(lay)
    starts = [a for a, _ in regs]
    hf = hc = cf = cc = 0
    for i in range(n):
        pa = (struct.unpack_from('<Q', data, i * 8)[0] & ((1 << 55) - 1)) * 4096
        j = bisect.bisect_right(starts, pa) - 1
        flagged = j >= 0 and pa < regs[j][1]
        if hot[i] == '1':
            hc += 1; hf += flagged
        else:
            cc += 1; cf += flagged
    print(f'| paddr | {"random" if layout == "1" else "contig"} | {maxr:6d} | {len(regs):5d} | '
          f'{hf / hc:.3f} | {cf / cc:.4f} | {kcpu:.2f} | {t1 - t0:.3f} |')

main()
