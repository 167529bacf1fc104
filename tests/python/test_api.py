"""Tests of the seeds' API (issue 4): names, configs, sessions, metrics,
save/load, custom detectors, DataLoader workers, later-issue stubs."""

import json
import logging
import os
import pickle
import time

import pytest

import stall
from stall import BottleneckType as BT

SEED_NAMES = [
    "ProfilingConfig", "ProfilingLevel", "PerformanceMetrics", "BottleneckType", "CPUMemoryProfiler",
    "GPUProfiler", "DataLoadingProfiler", "AdvancedProfiler", "CodeOptimizer", "PerformanceMonitor",
    "profile_function", "profile_context", "BottleneckProfiler", "BottleneckProfilerConfig",
    "DataLoadingProfilerConfig", "PreprocessingProfiler", "PreprocessingProfilerConfig",
]

SEED_TYPES = [
    "DATA_LOADING", "PREPROCESSING", "CPU_COMPUTATION", "CPU_BOUND",
    "SLOW_DISK_IO", "INSUFFICIENT_WORKERS", "MEMORY_PRESSURE", "GPU_TRANSFER_OVERHEAD",
    "PREPROCESSING_BOTTLENECK", "BATCH_SIZE_INEFFICIENCY", "SAMPLER_OVERHEAD", "COLLATE_FUNCTION_SLOW",
    "CPU_INTENSIVE", "MEMORY_INTENSIVE", "GPU_UNDERUTILIZED", "I_O_BOUND", "VECTORIZATION_INEFFICIENT",
    "CACHING_MISSED", "BATCH_SIZE_INEFFICIENT", "ALGORITHM_INEFFICIENT",
]


def cfg(**kw):
    kw.setdefault("save_profiles", False)
    return stall.BottleneckProfilerConfig(**kw)


def burn(seconds):
    t = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < t:
        x += 1
    return x


def test_every_public_name_is_exported():
    for n in SEED_NAMES:
        assert n in stall.__all__, n
        assert getattr(stall, n) is not None
    ns = {}
    exec("from stall import " + ", ".join(SEED_NAMES), ns)
    assert set(SEED_NAMES) <= set(ns)
    for old in ("span", "Session", "Reader", "SpanKind"):  # issue 2 names kept
        assert hasattr(stall, old)


def test_bottleneck_type_has_every_seed_value():
    for n in SEED_TYPES:
        assert isinstance(getattr(BT, n), BT), n
    assert len({BT[n].value for n in SEED_TYPES}) == len(SEED_TYPES)


def test_levels_document_their_cost():
    for lv in ("BASIC", "DETAILED", "COMPREHENSIVE", "PRODUCTION"):
        m = stall.ProfilingLevel[lv]
        assert m.cost and m.__doc__ == m.cost
    assert "400 ns" in stall.ProfilingLevel.COMPREHENSIVE.cost
    assert "1 s" in stall.ProfilingLevel.PRODUCTION.cost


def test_seed_configs_construct():
    stall.ProfilingConfig(enabled=True, level=stall.ProfilingLevel.DETAILED, sampling_rate=0.1, auto_optimize=True,
                          enable_monitoring=True, monitoring_interval=1.0, alert_threshold=0.8)
    stall.ProfilingConfig(enable_tracemalloc=False, max_samples=1000)
    stall.ProfilingConfig(cpu_threshold=90.0, memory_threshold=90.0, gpu_threshold=95.0)
    stall.BottleneckProfilerConfig(profiling_level=stall.ProfilingLevel.DETAILED, enable_real_time_monitoring=True,
                                   auto_optimize=False)
    stall.DataLoadingProfilerConfig(batch_size_range=[16, 32, 64, 128], worker_range=[0, 2, 4, 8])
    stall.PreprocessingProfilerConfig(batch_size_range=[1, 8, 16, 32, 64], enable_caching=True)


@pytest.mark.parametrize("cls,field,value,exc", [
    (stall.ProfilingConfig, "enabled", 1, TypeError),
    (stall.ProfilingConfig, "level", "detailed", TypeError),
    (stall.ProfilingConfig, "sampling_rate", 0.0, ValueError),
    (stall.ProfilingConfig, "sampling_rate", 1.5, ValueError),
    (stall.ProfilingConfig, "monitoring_interval", -1, ValueError),
    (stall.ProfilingConfig, "alert_threshold", "high", TypeError),
    (stall.ProfilingConfig, "max_samples", 2.5, TypeError),
    (stall.ProfilingConfig, "cpu_threshold", 150.0, ValueError),
    (stall.ProfilingConfig, "memory_threshold", float("nan"), ValueError),
    (stall.ProfilingConfig, "sampling_interval", 0.0, ValueError),
    (stall.BottleneckProfilerConfig, "profiling_level", None, TypeError),
    (stall.BottleneckProfilerConfig, "sampling_interval", 0, ValueError),
    (stall.BottleneckProfilerConfig, "bottleneck_threshold", 2, ValueError),
    (stall.BottleneckProfilerConfig, "memory_threshold", 80.0, ValueError),
    (stall.BottleneckProfilerConfig, "gpu_threshold", True, TypeError),
    (stall.BottleneckProfilerConfig, "profile_output_dir", "", ValueError),
    (stall.BottleneckProfilerConfig, "enable_io_tracking", "yes", TypeError),
    (stall.DataLoadingProfilerConfig, "batch_size_range", [16, 0], ValueError),
    (stall.DataLoadingProfilerConfig, "worker_range", [0, "2"], TypeError),
    (stall.DataLoadingProfilerConfig, "worker_range", [-1], ValueError),
    (stall.DataLoadingProfilerConfig, "profiling_duration", 0, ValueError),
    (stall.PreprocessingProfilerConfig, "cache_size", -1, ValueError),
    (stall.PreprocessingProfilerConfig, "enable_caching", None, TypeError),
    (stall.PreprocessingProfilerConfig, "batch_size_range", [], ValueError),
])
def test_configs_reject_bad_fields_naming_them(cls, field, value, exc):
    with pytest.raises(exc, match=field):
        cls(**{field: value})
    c = cls()
    setattr(c, field, value)
    with pytest.raises(exc, match=field):
        c.validate()


def test_nested_operations_stats():
    p = stall.BottleneckProfiler(cfg())
    sid = p.start_profiling_session("nested")
    assert isinstance(sid, str)
    for _ in range(7):
        with p.profile_operation("outer", BT.DATA_LOADING):
            burn(0.002)
            for _ in range(3):
                with p.profile_operation("inner", BT.PREPROCESSING):
                    time.sleep(0.001)
    live = p.get_session_summary(sid)
    assert live["active"] is True
    assert live["operations"]["outer"]["count"] == 7
    session = p.stop_profiling_session()
    assert session.session_id == sid and not session.active
    ops = p.get_session_summary(sid)["operations"]
    o, i = ops["outer"], ops["inner"]
    assert (o["count"], i["count"]) == (7, 21)
    assert (o["type"], i["type"]) == ("data_loading", "preprocessing")
    for op in (o, i):
        assert 0 < op["self_time"] <= op["total_time"]
        assert op["min_time"] <= op["p50_time"] <= op["p95_time"] <= op["p99_time"] <= op["max_time"]
        assert op["min_time"] <= op["mean_time"] <= op["max_time"]
        assert op["mean_time"] == pytest.approx(op["total_time"] / op["count"])
    assert i["min_time"] >= 0.001
    assert o["total_time"] >= i["total_time"] + 7 * 0.002 * 0.9
    assert o["self_time"] == pytest.approx(o["total_time"] - i["total_time"], rel=0.05, abs=1e-4)
    b = p.get_bottleneck_summary()
    assert b["session_id"] == sid and b["active"] is False
    assert {f["operation"] for f in b["bottlenecks"] if "operation" in f} >= {"outer", "inner"}
    for f in b["bottlenecks"]:
        assert 0 <= f["severity"] <= 1 and f["message"] and isinstance(f["evidence"], dict)
    texts = [s["suggestion"] for s in b["suggestions"]]
    assert any("num_workers" in t for t in texts) and any("pin_memory" in t for t in texts)


def test_several_named_sessions():
    p = stall.BottleneckProfiler(cfg())
    s1 = p.start_profiling_session("training_phase_1")
    with p.profile_operation("a", BT.CPU_COMPUTATION):
        time.sleep(0.01)
    s2 = p.start_profiling_session("training_phase_2")
    assert s1 != s2
    with p.profile_operation("b", BT.DATA_LOADING):
        time.sleep(0.01)
    sum1, sum2 = p.get_session_summary(s1), p.get_session_summary(s2)
    assert sum1["name"] == "training_phase_1" and sum2["name"] == "training_phase_2"
    assert set(sum1["operations"]) == {"a", "b"}  # s1 was open during both
    assert set(sum2["operations"]) == {"b"}
    assert p.get_bottleneck_summary()["session_id"] == s2  # the latest active
    assert p.stop_profiling_session().session_id == s2
    assert p.stop_profiling_session().session_id == s1
    with pytest.raises(KeyError):
        p.get_session_summary("nope")
    with pytest.raises(RuntimeError):
        p.stop_profiling_session()


def test_advanced_profiler_stop_profiling_dict():
    p = stall.AdvancedProfiler(stall.ProfilingConfig(level=stall.ProfilingLevel.DETAILED))
    p.start_profiling()
    with p.profile_operation("work", BT.CPU_COMPUTATION):
        burn(0.3)
    res = p.stop_profiling()
    assert {"cpu", "gpu", "data", "combined", "bottlenecks", "suggestions"} <= set(res)
    for k in ("cpu", "gpu", "data", "combined"):
        assert isinstance(res[k], stall.PerformanceMetrics)
        d = res[k].to_dict()
        json.dumps(d)
        assert isinstance(d["execution_time"], float)
    c = res["combined"]
    assert c.execution_time >= 0.3
    assert isinstance(c.cpu_time, float) and 0.05 <= c.cpu_time <= c.execution_time * 1.5
    assert isinstance(c.memory_usage, float) and 0 < c.memory_usage < 1024
    assert c.cpu_usage is None or 0 <= c.cpu_usage <= 100
    assert isinstance(res["bottlenecks"], list) and isinstance(res["suggestions"], list)
    assert c.bottleneck_type in set(BT) and c.bottleneck_severity > 0  # "work" is ~100% of the session
    s = p.get_profiling_summary()
    assert s["sessions"] and s["last_results"]["combined"]["execution_time"] == c.execution_time
    cm = stall.CPUMemoryProfiler(stall.ProfilingConfig())
    cm.start_profiling()
    burn(0.05)
    assert isinstance(cm.stop_profiling(), stall.PerformanceMetrics)
    assert isinstance(cm.get_bottlenecks(), list)
    g = stall.GPUProfiler(stall.ProfilingConfig())
    g.start_profiling()
    m = g.stop_profiling()
    assert isinstance(m, stall.PerformanceMetrics)
    assert isinstance(g.get_bottlenecks(), list)


def test_performance_metrics_seed_example():
    m = stall.PerformanceMetrics(execution_time=1.5, cpu_time=0.8, gpu_time=0.7, cpu_usage=75.0, memory_usage=4.2,
                                 gpu_usage=85.0, bottleneck_type=BT.CPU_BOUND, bottleneck_severity=0.8)
    d = m.to_dict()
    assert d["bottleneck_type"] == "cpu_bound" and d["cpu_usage"] == 75.0
    assert stall.PerformanceMetrics.from_dict(json.loads(json.dumps(d))) == m


def test_profile_function():
    @stall.profile_function()
    def step(x, y=1):
        """doc"""
        time.sleep(0.002)
        return x + y

    @stall.profile_function(name="named", type=BT.PREPROCESSING)
    def other():
        raise KeyError("boom")

    assert step.__name__ == "step" and step.__doc__ == "doc"
    p = stall.BottleneckProfiler(cfg())
    sid = p.start_profiling_session("fn")
    assert [step(i, y=2) for i in range(5)] == [2, 3, 4, 5, 6]
    with pytest.raises(KeyError):
        other()
    p.stop_profiling_session()
    ops = p.get_session_summary(sid)["operations"]
    q = [k for k in ops if k.endswith("step")]
    assert q and ops[q[0]]["count"] == 5 and ops[q[0]]["min_time"] >= 0.002
    assert ops["named"]["count"] == 1 and ops["named"]["kind"] == "preprocessing"


def test_profile_context_current_metrics_live():
    conf = stall.ProfilingConfig(level=stall.ProfilingLevel.DETAILED, sampling_interval=0.05)
    idle, busy, stamps = [], [], []
    with stall.profile_context("training_epoch", config=conf) as prof:
        for _ in range(3):
            time.sleep(0.3)
            m = prof.current_metrics
            assert isinstance(m, stall.PerformanceMetrics)
            idle.append(m.process_cpu_usage)
            stamps.append(m.timestamp)
            burn(0.3)
            m = prof.current_metrics
            busy.append(m.process_cpu_usage)
            stamps.append(m.timestamp)
            assert m.cpu_usage is None or 0 <= m.cpu_usage <= 100.0001  # all cores, like psutil
        assert prof.current_metrics.memory_usage > 0
    assert len(set(stamps)) == len(stamps)
    # live, fed by the sampler: this process's CPU use follows the block
    assert max(busy) > 40 and min(idle) < 30 and max(busy) > min(idle) + 20, (idle, busy)
    assert isinstance(prof.results["combined"], stall.PerformanceMetrics)


def test_save_load_round_trip_and_refusals(tmp_path):
    p = stall.BottleneckProfiler(cfg())
    sid = p.start_profiling_session("saved")
    with p.profile_operation("op", BT.DATA_LOADING):
        time.sleep(0.005)
    p.stop_profiling_session()
    path = tmp_path / "my_profile.pt"  # the seed's name: still JSON
    p.save_profiling_results(str(path))
    raw = path.read_bytes()
    doc = json.loads(raw)
    assert doc["format"] == "stall.profiling_results" and doc["version"] == 1
    q = stall.BottleneckProfiler(cfg())
    q.load_profiling_results(str(path))
    assert q.get_session_summary(sid)["operations"]["op"] == p.get_session_summary(sid)["operations"]["op"]
    assert q.get_bottleneck_summary(sid)["bottlenecks"] == p.get_bottleneck_summary(sid)["bottlenecks"]

    bad = tmp_path / "corrupt.json"
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="corrupt"):
        q.load_profiling_results(str(bad))
    foreign = tmp_path / "foreign.json"
    foreign.write_text('{"hello": 1}')
    with pytest.raises(ValueError, match="not a stall results file"):
        q.load_profiling_results(str(foreign))
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(dict(doc, version=99)))
    with pytest.raises(ValueError, match="version"):
        q.load_profiling_results(str(newer))

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    pk = tmp_path / "evil.pt"
    pk.write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(ValueError, match="pickle"):
        q.load_profiling_results(str(pk))
    assert not (tmp_path / "pwned").exists()


def test_autosave_to_profile_output_dir(tmp_path):
    p = stall.BottleneckProfiler(stall.BottleneckProfilerConfig(profile_output_dir=str(tmp_path / "out")))
    sid = p.start_profiling_session("auto")
    p.stop_profiling_session()
    f = tmp_path / "out" / f"{sid}.json"
    assert json.loads(f.read_text())["sessions"][0]["session_id"] == sid


class CustomBottleneckType:  # the seed's custom enum stand-in
    pass


def test_custom_detectors(caplog):
    import enum

    class Custom(enum.Enum):
        CUSTOM_ISSUE = "custom_issue"

    calls = []

    def detector(metrics):
        calls.append(metrics)
        if metrics["operations"].get("op", {}).get("count", 0) >= 3:
            return Custom.CUSTOM_ISSUE
        return None

    def broken(metrics):
        return metrics["custom_metric"] > 1  # KeyError, as the seed's example would

    p = stall.BottleneckProfiler(cfg())
    p.add_custom_bottleneck_detector(detector)
    p.add_custom_bottleneck_detector(broken)
    with pytest.raises(TypeError):
        p.add_custom_bottleneck_detector(42)
    sid = p.start_profiling_session("custom")
    for _ in range(3):
        with p.profile_operation("op", BT.CPU_COMPUTATION):
            pass
    with caplog.at_level(logging.ERROR, logger="stall"):
        live = p.get_bottleneck_summary()
        p.stop_profiling_session()
    assert "custom_issue" in [f["type"] for f in live["bottlenecks"]]
    assert "custom_issue" in [f["type"] for f in p.get_session_summary(sid)["bottlenecks"]]
    assert any("broken" in r.getMessage() for r in caplog.records)
    assert "cpu_usage" in calls[0] and "memory_used_share" in calls[0]


def test_custom_detector_joins_the_c_table():
    # its finding is sorted with the C detectors' by severity, it sees the
    # diagnosis' values and the findings found before it, its numeric
    # evidence and message are kept
    seen = []

    def weak(metrics):
        seen.append(metrics)
        return {"type": "tiny_issue", "severity": 0.01, "message": "barely there", "evidence": {"n": 3, "why": "text"}}

    p = stall.BottleneckProfiler(cfg())
    p.add_custom_bottleneck_detector(weak)
    sid = p.start_profiling_session("joined")
    with p.profile_operation("spin", BT.CPU_COMPUTATION):
        burn(0.2)
    p.stop_profiling_session(sid)
    b = p.get_session_summary(sid)["bottlenecks"]
    types = [f["type"] for f in b]
    assert types.index("cpu_computation") < types.index("tiny_issue")
    assert [f["severity"] for f in b] == sorted((f["severity"] for f in b), reverse=True)
    tiny = b[types.index("tiny_issue")]
    assert tiny["message"] == "barely there" and tiny["evidence"] == {"n": 3, "why": "text"}
    assert tiny["detector"] == "weak"
    m = seen[-1]
    assert m["duration_s"] > 0.15 and "usable_cores" in m
    assert "cpu_computation" in [f["type"].lower() for f in m["findings"]] or \
        "CPU_COMPUTATION" in [f["type"] for f in m["findings"]]
    spin = b[types.index("cpu_computation")]
    assert spin["operation"] == "spin" and spin["evidence"]["count"] == 1


def test_bottleneck_threshold_of_the_config_applies():
    def run(th):
        p = stall.BottleneckProfiler(stall.BottleneckProfilerConfig(bottleneck_threshold=th))
        sid = p.start_profiling_session("th")
        with p.profile_operation("half", BT.PREPROCESSING):
            time.sleep(0.1)
        time.sleep(0.1)
        p.stop_profiling_session(sid)
        return [f.get("operation") for f in p.get_session_summary(sid)["bottlenecks"]]

    assert "half" in run(0.3)
    assert "half" not in run(0.7)
    assert "half" in run(0.0)  # the configs allow 0: every operation counts (it once made diagnose() raise)


class _DS:
    """Tiny synthetic dataset whose __getitem__ records a span."""

    def __init__(self, prof):
        self.prof = prof

    def __len__(self):
        return 16

    def __getitem__(self, i):
        import torch
        with self.prof.profile_operation("load_item", BT.DATA_LOADING):
            with stall.span("decode_item", stall.SpanKind.PREPROCESSING):
                time.sleep(0.002)
        return torch.tensor([i, os.getpid()])


@pytest.mark.parametrize("ctx", ["fork", "spawn"])
def test_dataloader_workers_record_into_parent_session(ctx):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    p = stall.BottleneckProfiler(cfg())
    sid = p.start_profiling_session("loader-" + ctx)
    dl = DataLoader(_DS(p), batch_size=2, num_workers=2, multiprocessing_context=ctx)
    pids = set()
    for b in dl:
        pids.update(int(x) for x in b[:, 1])
    p.stop_profiling_session()
    ops = p.get_session_summary(sid)["operations"]
    assert len(pids) == 2 and os.getpid() not in pids
    assert ops["load_item"]["count"] == 16
    assert ops["load_item"]["processes"] >= 2
    assert ops["decode_item"]["count"] == 16
    assert ops["load_item"]["self_time"] <= ops["load_item"]["total_time"]
    assert p.get_session_summary(sid)["processes"] >= 2


def test_data_loading_profiler_serves_both_seeds():
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset

    dl = DataLoader(TensorDataset(torch.arange(100.0)), batch_size=10)
    p = stall.DataLoadingProfiler(stall.ProfilingConfig())
    r = p.profile_dataloader(dl, num_batches=5)
    assert r["num_batches"] == 5 and r["batch_time"]["count"] == 5
    r2 = p.profile_preprocessing(lambda d: d.float() / 255.0, torch.ones(10), num_iterations=4)
    assert r2["timing"]["count"] == 4
    assert isinstance(p.get_bottlenecks(), list)
    p2 = stall.DataLoadingProfiler(stall.DataLoadingProfilerConfig(batch_size_range=[16, 32], worker_range=[0, 2]))
    assert p2.config.worker_range == [0, 2]
    a = stall.AdvancedProfiler(stall.ProfilingConfig())
    assert a.profile_dataloader(dl, num_batches=3)["num_batches"] == 3
    with pytest.raises(TypeError, match="config"):
        stall.DataLoadingProfiler(stall.PreprocessingProfilerConfig())


def test_generate_optimization_report_writes_the_session_page(tmp_path):
    p = stall.BottleneckProfiler(stall.BottleneckProfilerConfig(profile_output_dir=str(tmp_path / "out")))
    with pytest.raises(RuntimeError, match="no session"):
        p.generate_optimization_report()
    sid = p.start_profiling_session("paged")
    with p.profile_operation("spin", BT.CPU_COMPUTATION):
        burn(0.3)
    p.stop_profiling_session(sid)
    page = p.generate_optimization_report()
    assert page == str(tmp_path / "out" / f"{sid}-report.html")
    rep = json.loads((tmp_path / "out" / f"{sid}-report.json").read_text())
    assert rep["schema"] == "stall.report/1"
    assert "spin" in [o["name"] for o in rep["ops"]]
    assert [b["type"] for b in rep["bottlenecks"]][:2] == ["CPU_BOUND", "CPU_COMPUTATION"] or \
        "CPU_COMPUTATION" in [b["type"] for b in rep["bottlenecks"]]
    assert 0.25 < rep["duration_s"] < 5
    html = open(page).read()
    assert html.lower().startswith("<!doctype html>") and '"schema":"stall.report/1"' in html.replace(" ", "")
    other = p.generate_optimization_report(tmp_path / "x" / "mine.html", session_id=sid)
    assert other == str(tmp_path / "x" / "mine.html") and (tmp_path / "x" / "mine.json").exists()
    with pytest.raises(ValueError, match="must end with .html"):
        p.generate_optimization_report(tmp_path / "mine.txt")
    with pytest.raises(KeyError):
        p.generate_optimization_report(session_id="nope")


def test_record_metric_reaches_custom_detectors_by_name():
    seen = []

    def detector(metrics):
        seen.append(metrics.get("custom_metric"))
        return "custom_issue" if metrics["custom_metric"] > 0.5 else None

    p = stall.BottleneckProfiler(cfg())
    p.add_custom_bottleneck_detector(detector)
    sid = p.start_profiling_session("user-metric")
    with pytest.raises(TypeError, match="name"):
        p.record_metric("", 1.0)
    with pytest.raises(TypeError, match="value"):
        p.record_metric("custom_metric", "high")
    p.record_metric("custom_metric", 0.2)
    assert "custom_issue" not in [f["type"] for f in p.get_session_summary(sid)["bottlenecks"]]
    p.record_metric("custom_metric", 0.9)
    p.stop_profiling_session()
    summary = p.get_session_summary(sid)
    assert "custom_issue" in [f["type"] for f in summary["bottlenecks"]]
    assert summary["user_metrics"] == {"custom_metric": 0.9}
    assert seen[0] == 0.2 and seen[-1] == 0.9


def test_profile_context_metrics_after_the_block_describe_the_block():
    with stall.profile_context("block") as prof:
        end = time.perf_counter() + 0.05
        while time.perf_counter() < end:
            pass
        live = prof.current_metrics
        assert live.cpu_usage is not None  # known from the first read (baseline samples)
    after = prof.current_metrics
    assert after.execution_time >= 0.05
    assert after is prof.results["combined"]


def test_tracemalloc_only_when_the_config_enables_it():
    import tracemalloc

    assert not tracemalloc.is_tracing()
    p = stall.BottleneckProfiler(cfg())
    sid = p.start_profiling_session("no-trace")
    assert not tracemalloc.is_tracing()
    assert p.get_session_summary(sid)["metrics"]["python_memory_current"] is None
    p.stop_profiling_session()

    c = stall.ProfilingConfig(enabled=True, level=stall.ProfilingLevel.DETAILED, enable_tracemalloc=True)
    a = stall.AdvancedProfiler(c)
    a.start_profiling()
    assert tracemalloc.is_tracing()
    blob = [bytes(1000) for _ in range(1000)]  # ~1 MB of Python objects
    m = a.current_metrics
    assert m.python_memory_current is not None and m.python_memory_current >= 1_000_000
    a.stop_profiling()
    assert not tracemalloc.is_tracing()  # stall stops what it started
    del blob

    # PRODUCTION never traces, even when asked
    c = stall.ProfilingConfig(enabled=True, level=stall.ProfilingLevel.PRODUCTION, enable_tracemalloc=True)
    a = stall.AdvancedProfiler(c)
    a.start_profiling()
    assert not tracemalloc.is_tracing()
    a.stop_profiling()
