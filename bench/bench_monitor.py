"""bench_monitor.py - the cost of live monitoring at 10 Hz during the bundled
training (examples/train/misconfigured_loader.py's dataset and model, with 2
DataLoader workers), stall's PerformanceMonitor against the psutil loop a
user would write instead, both in the same process over the same run.

stall: the engine (drain thread, sampler thread at 0.1 s), the C monitor
thread at 0.1 s (rules, spike/shift/trend detectors, OOM prediction) and the
Python delivery thread. psutil: one thread that every 0.1 s reads what the
monitor reads (host CPU percent and memory, the process and its children's
CPU times and RSS, the loop's batch count) and keeps the same detectors a
user would write in Python: a rolling median/MAD spike test on step time
and memory, and threshold rules with a duration.

CPU time is read per thread from /proc/self/task/<tid>/stat (utime +
stime), so each side is charged only its own threads. Memory: the monitor's
own state (fixed at creation) and the engine's, at the start and at the end.

Usage: PYTHONPATH=BUILD/python /usr/bin/python3 bench/bench_monitor.py [SECONDS]
"""
import collections
import importlib.util
import os
import statistics
import sys
import threading
import time

import psutil
import torch
from torch import nn
from torch.utils.data import DataLoader

import stall

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "examples", "train", "misconfigured_loader.py")
TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu_s(tid):
    try:
        with open(f"/proc/self/task/{tid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / TICK
    except OSError:
        return 0.0


def threads_named(prefix):
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue
        if name.startswith(prefix):
            out[int(tid)] = name
    return out


class PsutilMonitor(threading.Thread):
    """What a user writes today: a psutil loop with the same checks."""

    def __init__(self, interval, batches):
        super().__init__(name="psutil-monitor", daemon=True)
        self.interval = interval
        self.batches = batches  # a one-element list the loop updates
        self.stop = threading.Event()
        self.alerts = 0
        self.samples = 0

    def run(self):
        proc = psutil.Process()
        psutil.cpu_percent()
        steps = collections.deque(maxlen=60)
        mems = collections.deque(maxlen=60)
        since = {}
        last_b, last_t = self.batches[0], time.monotonic()
        nxt = time.monotonic()
        while not self.stop.is_set():
            cpu = psutil.cpu_percent()
            vm = psutil.virtual_memory()
            kids = proc.children(recursive=True)
            mem = proc.memory_info().rss
            tree_cpu = sum(proc.cpu_times()[:2])
            for k in kids:
                try:
                    mem += k.memory_info().rss
                    tree_cpu += sum(k.cpu_times()[:2])
                except psutil.Error:
                    pass
            now = time.monotonic()
            b = self.batches[0]
            if b > last_b and now - last_t >= 0.5:
                steps.append((now - last_t) / (b - last_b))
                last_b, last_t = b, now
            mems.append(mem)
            for name, series in (("step", steps), ("mem", mems)):
                if len(series) >= 16:
                    med = statistics.median(series)
                    mad = statistics.median(abs(x - med) for x in series) or 1e-12
                    if (series[-1] - med) / (1.4826 * mad) > 6:
                        self.alerts += 1
            for name, val, th in (("cpu", cpu, 90.0), ("mem", vm.percent, 90.0)):
                if val > th:
                    since.setdefault(name, now)
                    if now - since[name] >= 5:
                        self.alerts += 1
                else:
                    since.pop(name, None)
            self.samples += 1
            nxt += self.interval
            self.stop.wait(max(0.0, nxt - time.monotonic()))


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 600.0
    spec = importlib.util.spec_from_file_location("misconfigured_loader", EXAMPLE)
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    data = ex.DecodedImages(10_000_000, 12, 0.0003)
    loader = DataLoader(data, batch_size=32, shuffle=False, num_workers=2, persistent_workers=True)
    model = ex.small_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    loss_fn = nn.CrossEntropyLoss()

    cfg = stall.ProfilingConfig(monitoring_interval=0.1, sampling_interval=0.1)
    mon = stall.PerformanceMonitor(cfg)
    alerts = []
    mon.add_alert_callback(alerts.append)
    mon.start_monitoring()
    eng = stall._engine.engine()
    mon_bytes0, eng_bytes0 = mon.get_monitoring_summary()["monitor_memory_bytes"], eng.memory_bytes()
    batches = [0]
    ps = PsutilMonitor(0.1, batches)
    ps.start()
    time.sleep(0.05)
    stall_tids = threads_named("stall-")
    stall_tids[mon._thread.native_id] = "stall-alerts (Python)"
    t0 = time.monotonic()
    cpu0 = {t: thread_cpu_s(t) for t in list(stall_tids) + [ps.native_id]}
    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    done = False
    while not done:
        for x, y in loader:
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
            batches[0] += 1
            if time.monotonic() - t0 >= seconds:
                done = True
                break
    wall = time.monotonic() - t0
    cpu1 = {t: thread_cpu_s(t) for t in cpu0}
    summary = mon.get_monitoring_summary()
    mon_bytes1, eng_bytes1 = summary["monitor_memory_bytes"], eng.memory_bytes()
    rss1 = proc.memory_info().rss
    ps.stop.set()
    ps.join()
    mon.stop_monitoring()

    def pct(tids):
        return 100.0 * sum(cpu1[t] - cpu0[t] for t in tids) / wall

    print(f"training: {wall:.0f} s, {batches[0]} batches ({batches[0] / wall:.1f}/s), 2 workers, "
          f"monitoring every 0.1 s")
    for tid, name in sorted(stall_tids.items(), key=lambda kv: kv[1]):
        print(f"  {name:24s} {pct([tid]):6.3f}% of one core")
    s_pct = pct(list(stall_tids))
    p_pct = pct([ps.native_id])
    print(f"stall (all its threads):   {s_pct:6.3f}% of one core, {summary['samples']} samples, "
          f"{summary['alerts_fired']} alerts ({len(alerts)} delivered)")
    print(f"psutil loop (same checks): {p_pct:6.3f}% of one core, {ps.samples} samples, {ps.alerts} alerts")
    print(f"ratio stall/psutil: {s_pct / p_pct:.3f}" if p_pct > 0 else "ratio: psutil used no measurable CPU")
    print(f"monitor state: {mon_bytes0} bytes at the start, {mon_bytes1} at the end; engine {eng_bytes0} -> "
          f"{eng_bytes1} bytes; process RSS {rss0 / 1e6:.1f} -> {rss1 / 1e6:.1f} MB")
    print(f"goal: stall <= 1% of one core: {'met' if s_pct <= 1.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
