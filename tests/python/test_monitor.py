"""PerformanceMonitor (issue 9) on real PyTorch training loops in this
process: a steady phase raises nothing, then one slow step raises one
step-time spike, a slower step from then on one level shift, a leaking loop
one memory trend and one out-of-memory prediction, each within seconds;
callbacks (plain, async on the caller's loop and on a private loop), the
alert_threshold gate, rules, the summary's fields, the JSON-lines log and
Python logging of alerts and findings. The detectors' exact behaviour on
injected series is tested in C (tests/engine/test_monitor.c)."""

import asyncio
import json
import logging
import threading
import time

import pytest

torch = pytest.importorskip("torch")

import stall  # noqa: E402
from stall import monitor as smon  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402


class Numbers(Dataset):
    def __len__(self):
        return 10_000_000

    def __getitem__(self, i):
        return torch.full((16,), float(i % 7))


def train(seconds, step_s, events=(), leak=None, leak_bytes=0, batches=None):
    """A real loop (DataLoader with 2 workers, a linear model) for `seconds`;
    step_s(t, marks) gives the extra time of the step at time t; events:
    [(t, name)] mark marks[name] with the time they came; with leak (a list),
    each step keeps leak_bytes more."""
    model = torch.nn.Linear(16, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    dl = batches if batches is not None else DataLoader(Numbers(), batch_size=8, num_workers=2)
    t0 = time.monotonic()
    pending = sorted(events, key=lambda e: e[0])
    marks = {}
    for x in dl:
        loss = model(x).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        t = time.monotonic() - t0
        while pending and t >= pending[0][0]:
            marks[pending.pop(0)[1]] = time.monotonic()
        if leak is not None:
            leak.append(bytearray(leak_bytes))
        extra = step_s(t, marks)
        if extra:
            time.sleep(extra)
        if t >= seconds:
            break
    return marks


def config(**kw):
    kw.setdefault("monitoring_interval", 0.1)
    kw.setdefault("alert_threshold", 0.5)
    return stall.ProfilingConfig(**kw)


def by(alerts, kind, metric=None):
    return [a for a in alerts if a["type"] == kind and (metric is None or a["metric"] == metric)]


def test_steady_then_spike_then_shift_each_once_and_in_time():
    got = []
    mon = stall.PerformanceMonitor(config())
    mon.add_alert_callback(lambda a: got.append((time.monotonic(), a)))
    mon.start_monitoring()
    try:
        def step(t, marks):
            if "spike" in marks and "spiked" not in marks:
                marks["spiked"] = time.monotonic()
                return 1.2  # one slow step: a checkpoint, a GC pause
            return 0.06 if "shift" in marks else 0.02

        marks = train(26, step, events=[(11, "spike"), (16, "shift")])
    finally:
        mon.stop_monitoring()
    summary = mon.get_monitoring_summary()
    alerts = [a for _, a in got]
    msgs = [a["message"] for a in alerts]
    # a shared machine stalls now and then (a real spike is a real spike), and
    # may be saturated by other programs (the host CPU rule is right then):
    # the steady phase must raise no shift, trend, oom or rule of the loop;
    # the injected spike and shift one alert each, in time
    of_loop = [a for a in alerts if a.get("rule") != "host_cpu_saturated"]
    before = [a for t, a in got if t < marks["spiked"] and a["type"] != "spike" and a in of_loop]
    assert before == [], f"alerts on the steady phase: {msgs}"
    spikes = [a for t, a in got if a["type"] == "spike" and a["metric"] == "step_time_s"
              and marks["spiked"] < t < marks["shift"]]
    shifts = by(alerts, "shift", "step_time_s")
    assert len(spikes) == 1, msgs
    assert len(shifts) == 1, msgs
    assert not by(of_loop, "trend") and not by(of_loop, "oom") and not by(of_loop, "threshold"), msgs
    t_spike = next(t for t, a in got if a is spikes[0])
    t_shift = next(t for t, a in got if a is shifts[0])
    print("spike told after", t_spike - marks["spiked"], "s; shift after", t_shift - marks["shift"], "s")
    assert marks["spiked"] < t_spike < marks["spiked"] + 1.2 + 3.0
    # a new level holds 5 s first (counted from the first sample above one sigma, which jitter can
    # make a sample or two before the change)
    assert marks["shift"] + 3.0 < t_shift < marks["shift"] + 9.0
    assert t_spike < marks["shift"]
    assert shifts[0]["value"] > 1.5 * shifts[0]["baseline"]
    # the seed's fields, in their units
    assert 0 <= summary["avg_cpu_usage"] <= 100 and summary["peak_cpu_usage"] >= summary["avg_cpu_usage"]
    assert 0.02 < summary["avg_memory_usage"] < 8  # GB
    assert summary["peak_memory_usage"] >= summary["avg_memory_usage"]
    assert summary["total_batches"] > 200
    assert 0 <= summary["data_wait_share"] < 0.5
    assert 0.02 < summary["avg_step_time"] < 0.2
    assert summary["avg_throughput"] > 5
    assert summary["alerts_fired"] >= 2 and summary["alerts_by_type"]["spike"] >= 1
    assert summary["avg_gpu_utilization"] is None  # no GPU: unknown, not 0
    assert summary["is_monitoring"] is False and summary["samples"] > 150
    assert summary["monitor_memory_bytes"] < 1 << 20


def test_leak_raises_one_trend_and_one_oom_prediction():
    got = []
    # an hour's horizon: the leak (~30 MB/s) "runs out" in minutes on any machine
    mon = stall.PerformanceMonitor(config(oom_horizon=3 * 24 * 3600.0))
    mon.add_alert_callback(lambda a: got.append(a))
    keep = []
    dl = iter(DataLoader(Numbers(), batch_size=8, num_workers=2))
    next(dl)  # the workers run (and their memory counts) before monitoring starts
    time.sleep(1.0)
    mon.start_monitoring()
    try:
        train(20, lambda t, m: 0.02, leak=keep, leak_bytes=1 << 20, batches=dl)  # 1 MiB a step
    finally:
        mon.stop_monitoring()
    s = mon.get_monitoring_summary()
    keep.clear()
    del dl
    msgs = [a["message"] for a in got]
    assert len(by(got, "trend", "memory_bytes")) <= 1, msgs
    oom = by(got, "oom", "memory_bytes")
    assert len(oom) == 1, msgs
    assert oom[0]["severity"] >= 0.9
    assert 5e6 < oom[0]["baseline"] < 1e8  # bytes per second of growth
    left = s["metrics"]["host_memory_available_bytes"]["last"]
    assert 0.3 * left / oom[0]["baseline"] < oom[0]["value"] < 3 * left / oom[0]["baseline"]
    assert s["oom_prediction"]["host_seconds_left"] is not None
    assert not by(got, "shift", "memory_bytes"), msgs


def test_async_callbacks_run_on_the_callers_loop_or_a_private_one():
    seen = {}
    done = threading.Event()

    async def on_private(alert):
        await asyncio.sleep(0)
        seen["private"] = threading.current_thread().name

    async def main():
        me = threading.get_ident()
        mon = stall.PerformanceMonitor(config())

        async def on_caller(alert):
            await asyncio.sleep(0)
            seen["caller"] = threading.get_ident() == me
            done.set()

        mon.add_alert_callback(on_caller)
        mon.add_alert_rule("memory_bytes", 1.0, severity=0.9)  # at once
        mon.start_monitoring()
        for _ in range(100):
            if done.is_set():
                break
            await asyncio.sleep(0.05)
        mon.stop_monitoring()

    asyncio.run(main())
    assert seen.get("caller") is True
    mon = stall.PerformanceMonitor(config())
    mon.add_alert_callback(on_private)  # no loop running here
    mon.add_alert_rule("memory_bytes", 1.0, severity=0.9)
    mon.start_monitoring()
    for _ in range(100):
        if "private" in seen:
            break
        time.sleep(0.05)
    mon.stop_monitoring()
    assert seen.get("private") == "stall-alert-loop"


def test_alert_threshold_gates_callbacks_and_rules(tmp_path):
    got = []
    mon = stall.PerformanceMonitor(config(alert_threshold=0.8))
    mon.add_alert_callback(got.append)
    low = mon.add_alert_rule("memory_bytes", 1.0, severity=0.3)
    assert low == "memory_bytes_high"
    mon.add_alert_rule("tree_cpu_cores", 1000.0, name="impossible", severity=1.0)
    mon.add_alert_rule("memory_bytes", 1e15, below=True, name="always", duration=0.3, severity=0.85)
    with pytest.raises(ValueError, match="unknown metric 'cpu'"):
        mon.add_alert_rule("cpu", 1)
    with pytest.raises(ValueError, match="severity"):
        mon.add_alert_rule("cpu_percent", 1, severity=2)
    with pytest.raises(ValueError, match="duration"):
        mon.add_alert_rule("cpu_percent", 1, duration=-1)
    with pytest.raises(ValueError, match="exists"):
        mon.add_alert_rule("memory_bytes", 2.0)
    with pytest.raises(TypeError, match="callable"):
        mon.add_alert_callback(3)
    with mon:
        time.sleep(1.0)
    s = mon.get_monitoring_summary()
    assert [a["rule"] for a in got] == ["always"]
    assert got[0]["severity"] == 0.85 and got[0]["state"] == "firing"
    assert s["alerts_suppressed"] == 1 and s["alerts_delivered"] == 1
    assert s["active_alerts"] == 2
    mon.remove_alert_rule("always")
    with pytest.raises(KeyError):
        mon.remove_alert_rule("always")


def test_callback_failure_is_logged_not_raised(caplog):
    calls = []

    def bad(alert):
        raise RuntimeError("boom")

    mon = stall.PerformanceMonitor(config())
    mon.add_alert_callback(bad)
    mon.add_alert_callback(calls.append)
    mon.add_alert_rule("memory_bytes", 1.0, severity=0.9)
    with caplog.at_level(logging.INFO, logger="stall.monitor"):
        mon.start_monitoring()
        time.sleep(0.6)
        mon.stop_monitoring()
    assert len(calls) == 1
    assert any("boom" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert any(getattr(r, "stall_alert", None) for r in caplog.records)


def test_json_lines_log_of_alerts_and_findings(tmp_path):
    path = tmp_path / "stall.jsonl"
    mon = stall.PerformanceMonitor(config(alert_log=str(path)))
    mon.add_alert_rule("memory_bytes", 1.0, severity=0.9, name="mem")
    with mon:
        time.sleep(0.6)
    prof = stall.AdvancedProfiler(stall.ProfilingConfig())
    prof.add_custom_bottleneck_detector(lambda m: {"type": "custom_slow_step", "severity": 0.4,
                                                   "summary": "the step is slow"})
    sid = prof.start_profiling_session("spin")
    with prof.profile_operation("spin", stall.BottleneckType.CPU_COMPUTATION):
        t = time.process_time()
        while time.process_time() - t < 0.3:
            pass
    prof.stop_profiling_session(sid)
    smon.set_json_log(None)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    alerts = [x for x in lines if x["event"] == "alert"]
    assert alerts and alerts[0]["rule"] == "mem" and alerts[0]["level"] == "warning"
    for k in ("ts", "type", "metric", "value", "threshold", "severity", "message", "suppressed"):
        assert k in alerts[0]
    assert alerts[0]["ts"].endswith("Z")
    findings = [x for x in lines if x["event"] == "finding"]
    assert findings and findings[0]["session"] == sid, lines
    assert any(f["type"] == "custom_slow_step" and f["summary"] == "the step is slow" for f in findings)
    with pytest.raises(ValueError, match="cannot open"):
        smon.set_json_log(str(tmp_path / "no" / "such" / "dir.jsonl"))
    with pytest.raises(TypeError):
        smon.set_json_log(3)


def test_start_stop_and_the_engine():
    mon = stall.PerformanceMonitor(config())
    assert mon.get_monitoring_summary()["samples"] == 0
    mon.start_monitoring()
    mon.start_monitoring()  # running: nothing more
    eng = stall._engine.engine()
    with pytest.raises(RuntimeError, match="stop it first"):
        eng.close()
    time.sleep(0.35)
    mon.stop_monitoring()
    mon.stop_monitoring()
    n = mon.get_monitoring_summary()["samples"]
    assert n >= 2
    time.sleep(0.3)
    assert mon.get_monitoring_summary()["samples"] == n  # stopped means stopped
    assert not [t for t in threading.enumerate() if t.name == "stall-alerts"]
    with pytest.raises(TypeError, match="ProfilingConfig"):
        stall.PerformanceMonitor({"monitoring_interval": 1})
    with pytest.raises(ValueError, match="oom_horizon"):
        stall.ProfilingConfig(oom_horizon=0)


LEAKY = r"""
import time, torch
from torch.utils.data import DataLoader, Dataset
class D(Dataset):
    def __len__(self): return 10**7
    def __getitem__(self, i): return torch.full((16,), 1.0)
keep, t0 = [], time.monotonic()
model = torch.nn.Linear(16, 1)
for x in DataLoader(D(), batch_size=8, num_workers=2):
    model(x).sum().backward()
    keep.append(bytearray(1 << 20))  # a leak: 1 MiB a step
    time.sleep(0.02)
    if time.monotonic() - t0 > 14:
        break
"""


def stall_cli():
    """The built stall binary, and an environment without this test process's
    STALL_* variables (its own session must not leak into the run)."""
    import os
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    build = os.environ.get("STALL_BUILD", os.path.join(repo, "build"))
    return os.path.join(build, "stall"), {k: v for k, v in os.environ.items() if not k.startswith("STALL_")}


def test_stall_run_logs_alerts_and_findings_as_json_lines_and_exports_them(tmp_path):
    import socket
    import subprocess
    import urllib.request

    stall_bin, env = stall_cli()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "run.jsonl"
    script = tmp_path / "leaky.py"
    script.write_text(LEAKY)
    p = subprocess.Popen([stall_bin, "run", "--out", str(tmp_path / "out"),
                          "--log", str(log), "--prometheus", f"127.0.0.1:{port}", "--",
                          "/usr/bin/python3", str(script)], stderr=subprocess.PIPE, text=True,
                         env=env)
    text = ""
    deadline = time.monotonic() + 60
    while p.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            pass
        if 'stall_alerts_total{' in text and 'kind="oom"} 1' in text:
            break
        time.sleep(0.5)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert 'kind="oom"} 1' in text, (text[-2000:], err)
    assert "stall_memory_exhaustion_seconds{" in text
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    alerts = [x for x in lines if x["event"] == "alert"]
    oom = [a for a in alerts if a["type"] == "oom"]
    assert len(oom) == 1, alerts
    assert oom[0]["metric"] == "memory_bytes" and oom[0]["level"] == "warning"
    assert "stall alert: host memory runs out" in err  # printed as it came
    findings = [x for x in lines if x["event"] == "finding"]
    assert findings and all({"type", "severity", "summary"} <= set(f) for f in findings)
    # the same shape as the library's lines (stall.monitor.set_json_log)
    assert {"ts", "level", "event", "type", "rule", "metric", "value", "severity", "message"} <= set(oom[0])
    # report.json keeps the run's alert events
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    assert rep["alerts_dropped"] == 0
    kept = [a for a in rep["alerts"] if a["type"] == "oom" and a["state"] == "firing"]
    assert len(kept) == 1, rep["alerts"]
    assert kept[0]["message"] == oom[0]["message"] and kept[0]["suppressed"] is False
    assert 0 < kept[0]["t_s"] < 60 and kept[0]["severity"] >= 0.9


def test_stall_run_alert_threshold_gates_what_is_printed_not_what_is_kept(tmp_path):
    import subprocess

    stall_bin, env = stall_cli()
    script = tmp_path / "leaky.py"
    script.write_text(LEAKY)
    bad = subprocess.run([stall_bin, "run", "--alert-threshold", "high", "--", "true"], capture_output=True,
                         text=True, env=env)
    assert bad.returncode == 2 and "--alert-threshold must be a severity between 0 and 1" in bad.stderr
    p = subprocess.run([stall_bin, "run", "--alert-threshold", "1", "--out", str(tmp_path / "out"), "--",
                        "/usr/bin/python3", str(script)], capture_output=True, text=True, env=env, timeout=180)
    assert p.returncode == 0, p.stderr
    assert "stall alert:" not in p.stderr  # the OOM alert (severity 0.95) is under 1
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    oom = [a for a in rep["alerts"] if a["type"] == "oom" and a["state"] == "firing"]
    assert len(oom) == 1 and oom[0]["suppressed"] is True, rep["alerts"]
