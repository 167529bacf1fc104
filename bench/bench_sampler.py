"""bench_sampler.py - the CPU cost of sampling a 9-process tree (a parent and
8 children) plus the whole system, stall against psutil, in the same run.

psutil collects the same fields stall does: per process, inside oneshot():
name, status, ppid, cpu_times, memory_info (RSS), io_counters,
num_ctx_switches, num_threads, and the children of the root; system-wide:
per-CPU times, load average, virtual and swap memory, per-disk and per-NIC
counters, CPU frequency, and the three /proc/pressure files (psutil has no
PSI, so the script reads them as a psutil user would).

A second row adds PSS on both sides at every sample (psutil's
memory_full_info, stall's smaps_rollup read); stall's default reads PSS every
10th interval, and a third line gives both sides at that cadence.

Usage: /usr/bin/python3 bench/bench_sampler.py BUILD_DIR [SAMPLES]
"""
import os
import subprocess
import sys
import time

import psutil


def make_tree():
    # a parent shell with 8 sleeping children: 9 processes
    script = "for i in 1 2 3 4 5 6 7 8; do sleep 600 & done; wait"
    parent = subprocess.Popen(["/bin/sh", "-c", script])
    for _ in range(200):
        if len(psutil.Process(parent.pid).children()) == 8:
            break
        time.sleep(0.01)
    return parent


def psutil_sample(root, pss):
    procs = [root] + root.children(recursive=True)
    for p in procs:
        try:
            with p.oneshot():
                p.name(), p.status(), p.ppid(), p.cpu_times()
                p.memory_full_info() if pss else p.memory_info()
                p.io_counters(), p.num_ctx_switches(), p.num_threads()
        except psutil.Error:
            pass
    psutil.cpu_times(percpu=True), psutil.cpu_times(), os.getloadavg()
    psutil.virtual_memory(), psutil.swap_memory()
    psutil.disk_io_counters(perdisk=True), psutil.net_io_counters(pernic=True)
    psutil.cpu_freq()
    for name in ("cpu", "io", "memory"):
        try:
            with open("/proc/pressure/" + name) as f:
                f.read()
        except OSError:
            pass
    return len(procs)


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    parent = make_tree()
    try:
        root = psutil.Process(parent.pid)
        cost = {}
        for pss in (0, 1):
            nproc = psutil_sample(root, pss)
            c0 = time.process_time()
            for _ in range(n):
                psutil_sample(root, pss)
            ps_us = (time.process_time() - c0) / n * 1e6
            out = subprocess.run([os.path.join(build, "bench", "bench_sample"), str(parent.pid), str(n), str(pss)],
                                 check=True, capture_output=True, text=True).stdout
            fields = dict(kv.split("=", 1) for kv in out.split())
            st_us = float(fields["cpu_us_per_sample"])
            cost[pss] = (ps_us, st_us)
            print(f"{'PSS at every sample, both sides' if pss else 'RSS only, both sides'}:"
                  f" tree of {nproc} processes (psutil), {fields['processes']} (stall); {n} samples each")
            print(f"  psutil: {ps_us:8.1f} us CPU per sample")
            print(f"  stall : {st_us:8.1f} us CPU per sample  (sampler memory"
                  f" {int(fields['memory_bytes']) / 1048576:.1f} MiB)")
            print(f"  ratio : stall is {ps_us / st_us:.1f}x cheaper")
        ps = cost[0][0] + (cost[1][0] - cost[0][0]) / 10
        st = cost[0][1] + (cost[1][1] - cost[0][1]) / 10
        print("PSS every 10th sample (stall's default cadence), both sides, from the two rows above:")
        print(f"  psutil: {ps:8.1f} us   stall: {st:8.1f} us   ratio: {ps / st:.1f}x")
    finally:
        for c in psutil.Process(parent.pid).children(recursive=True):
            c.kill()
        parent.kill()
        parent.wait()


if __name__ == "__main__":
    main()
