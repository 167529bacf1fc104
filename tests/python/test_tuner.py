"""The DataLoader tuner (issue 8): DataLoadingProfiler.profile_configuration_range
(grid and model strategies), get_optimal_configuration, the tuning page,
CodeOptimizer.optimize_data_loading / get_optimization_report, auto_optimize,
and BottleneckProfiler's tuning loop, on real DataLoaders.

The datasets wait (time.sleep) per sample: that wait overlaps across
workers whatever the machine's cores and load, so which configuration is
fastest is known (more workers, up to the range's end) while the machine is
shared and noisy; the assertions compare rates with wide margins."""
import json
import logging
import os
import time

import pytest

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader, Dataset, IterableDataset, SequentialSampler  # noqa: E402

import stall  # noqa: E402
from stall import _native, tuner  # noqa: E402


class Waiting(Dataset):
    """n samples, each a small tensor made after waiting wait_s (storage)."""

    def __init__(self, n=512, wait_s=0.001):
        self.n, self.wait_s = n, wait_s

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        time.sleep(self.wait_s)
        return torch.full((8,), float(i)), i


class Broken(Waiting):
    def __getitem__(self, i):
        raise OSError(f"cannot read sample {i}")


class Stream(IterableDataset):
    def __iter__(self):
        return iter(range(10))


def dl_config(tmp_path, **kw):
    kw.setdefault("save_profiles", False)
    kw.setdefault("profile_output_dir", str(tmp_path / "out"))
    return stall.DataLoadingProfilerConfig(**kw)


def rates(confs):
    return {(c.batch_size, c.num_workers): c.samples_per_second for c in confs}


# ---------------------------------------------------------------- the model

def test_native_model_is_the_diagnosis_formula():
    m = _native.loader_model_batch_s
    assert m(0, consumer_s=0.01, producer_s=0.02, cores=2) == pytest.approx(0.03)
    # 4 CPU-bound workers on 2 spare cores: the producers run 2 at a time
    assert m(4, consumer_s=0.0, producer_s=0.02, producer_cpu_frac=1.0, cores=2) == pytest.approx(0.01)
    # workers that mostly wait overlap beyond the cores
    assert m(4, consumer_s=0.0, producer_s=0.02, producer_cpu_frac=0.1, cores=2) == pytest.approx(0.005)
    # the loop cannot go faster than its own work plus receiving a batch
    assert m(8, consumer_s=0.004, producer_s=0.02, producer_cpu_frac=0.1, cores=2, handover_s=0.002) == \
        pytest.approx(0.006)
    for bad in ({"producer_s": -1, "cores": 1}, {"producer_s": float("nan"), "cores": 1}, {"cores": 1}):
        with pytest.raises(ValueError, match="finite"):
            m(2, **bad)


def test_line_fit():
    assert tuner._line([(8, 0.010), (64, 0.066)]) == pytest.approx((0.002, 0.001))
    assert tuner._line([(8, 0.01)]) == (0.01, 0.0)
    c0, a = tuner._line([(8, 0.02), (64, 0.01)])  # falling: noise, all per batch
    assert (c0, a) == (pytest.approx(0.015), 0.0)


# ---------------------------------------------------------------- the search

def test_grid_measures_every_configuration(tmp_path):
    p = stall.DataLoadingProfiler(dl_config(tmp_path, batch_size_range=[8, 32], worker_range=[0, 2]))
    confs = p.profile_configuration_range(Waiting(), strategy="grid", measure_seconds=0.25, progress=False)
    assert [(c.batch_size, c.num_workers) for c in confs] == [(8, 0), (8, 2), (32, 0), (32, 2)]
    for c in confs:
        assert c.measured and c.error is None
        assert c.samples_per_second > 0 and c.throughput == c.samples_per_second
        assert c.batches >= tuner.MIN_BATCHES
        assert 0 < c.time_to_first_batch_s < 5
        assert c.peak_memory_bytes > 10 * 2**20      # a Python process with torch: tens of MB at least
        assert c.cpu_cores is not None and c.cpu_cores >= 0
    r = rates(confs)
    # two workers wait for their samples side by side
    assert r[(32, 2)] > 1.4 * r[(32, 0)]
    # worker processes add their memory to the tree's
    assert max(c.peak_memory_bytes for c in confs if c.num_workers) > min(c.peak_memory_bytes for c in confs)
    opt = p.get_optimal_configuration()
    assert opt.num_workers == 2 and opt.persistent_workers is True and opt.prefetch_factor == 2
    assert opt.pin_memory is False  # no CUDA here: pinning cannot help
    assert opt.throughput == max(c.samples_per_second for c in confs if (c.batch_size, c.num_workers) ==
                                 (opt.batch_size, opt.num_workers))
    kw = opt.loader_kwargs()
    DataLoader(Waiting(64), **kw)  # the kwargs are valid DataLoader arguments
    assert p._tuning.stop_reason == "every configuration measured"


def test_model_strategy_measures_fewer_and_finds_the_best(tmp_path):
    ds = Waiting(1024, 0.001)
    cfg = dl_config(tmp_path, batch_size_range=[16], worker_range=[0, 1, 2, 4])
    p = stall.DataLoadingProfiler(cfg)
    confs = p.profile_configuration_range(ds, measure_seconds=0.3, progress=False)  # model is the default
    res = p._tuning
    assert res.strategy == "model" and res.grid_size == 4
    assert len(confs) < 4, [(c.batch_size, c.num_workers) for c in confs]
    assert "predicted" in res.stop_reason or "measured" in res.stop_reason
    m = res.model
    assert m["per_sample_s"] + m["per_batch_s"] / 16 == pytest.approx(0.001, rel=0.6)
    assert m["cpu_frac"] < 0.5  # the samples wait: little CPU
    # the unmeasured ones carry the model's prediction
    assert all(c.predicted_samples_per_second for c in res.configurations if not c.measured)
    opt = p.get_optimal_configuration()
    assert opt.num_workers == 4
    assert opt.throughput > 2.0 * rates(confs)[(16, 0)]


def test_progress_line_on_request(tmp_path, capsys):
    p = stall.DataLoadingProfiler(dl_config(tmp_path, batch_size_range=[8], worker_range=[0]))
    p.profile_configuration_range(Waiting(128), strategy="grid", measure_seconds=0.1, progress=True)
    err = capsys.readouterr().err
    assert "stall tune [" in err and "batch_size=8 num_workers=0" in err and "samples/s" in err


def test_failures_are_recorded_not_raised(tmp_path):
    p = stall.DataLoadingProfiler(dl_config(tmp_path, batch_size_range=[4], worker_range=[0, 2]))
    confs = p.profile_configuration_range(Broken(64), strategy="grid", measure_seconds=0.1, progress=False)
    assert len(confs) == 2
    assert all("cannot read sample" in c.error and c.samples_per_second is None for c in confs)
    with pytest.raises(RuntimeError, match="cannot read sample"):
        p.get_optimal_configuration()


def test_bad_input(tmp_path):
    p = stall.DataLoadingProfiler(dl_config(tmp_path, batch_size_range=[8], worker_range=[0]))
    with pytest.raises(RuntimeError, match="profile_configuration_range"):
        p.get_optimal_configuration()
    with pytest.raises(TypeError, match="IterableDataset"):
        p.profile_configuration_range(Stream())
    with pytest.raises(TypeError, match="map-style"):
        p.profile_configuration_range([1, 2, 3].__iter__())
    with pytest.raises(ValueError, match="empty"):
        p.profile_configuration_range(Waiting(0))
    with pytest.raises(ValueError, match="larger than the dataset"):
        p.profile_configuration_range(Waiting(4))
    with pytest.raises(ValueError, match="strategy"):
        p.profile_configuration_range(Waiting(64), strategy="random")
    with pytest.raises(ValueError, match="measure_seconds"):
        p.profile_configuration_range(Waiting(64), measure_seconds=0)
    with pytest.raises(TypeError, match="measure_seconds"):
        p.profile_configuration_range(Waiting(64), measure_seconds="1")
    with pytest.raises(TypeError, match="DataLoadingProfilerConfig"):
        stall.DataLoadingProfiler(stall.ProfilingConfig()).profile_configuration_range(Waiting(64))


# ---------------------------------------------------------------- the page

def test_report_page_and_json(tmp_path):
    p = stall.DataLoadingProfiler(dl_config(tmp_path, batch_size_range=[8, 16], worker_range=[0, 2]))
    p.profile_configuration_range(Waiting(256), measure_seconds=0.2, progress=False)
    path = p.generate_optimization_report()
    assert path == str(tmp_path / "out" / "tuning-report.html")
    html = open(path, encoding="utf-8").read()
    assert "stall.tuning/1" in html
    doc = json.load(open(path[:-5] + ".json"))
    assert doc["schema"] == "stall.tuning/1" and doc["strategy"] == "model"
    assert doc["grid_size"] == 4 and len(doc["configurations"]) == 4
    assert doc["measured"] == sum(1 for c in doc["configurations"] if c["measured"])
    chosen = [c for c in doc["configurations"] if c["chosen"]]
    assert len(chosen) == 1
    assert (chosen[0]["batch_size"], chosen[0]["num_workers"]) == (doc["chosen"]["batch_size"],
                                                                   doc["chosen"]["num_workers"])
    assert doc["dataset"] == {"type": "Waiting", "length": 256}
    with pytest.raises(ValueError, match=r"\.html"):
        p.generate_optimization_report(str(tmp_path / "x.txt"))


def test_save_profiles_writes_the_search(tmp_path):
    p = stall.DataLoadingProfiler(dl_config(tmp_path, batch_size_range=[8], worker_range=[0], save_profiles=True))
    p.profile_configuration_range(Waiting(64), measure_seconds=0.1, progress=False)
    files = os.listdir(tmp_path / "out")
    assert len(files) == 1 and files[0].startswith("tuning-") and files[0].endswith(".json")


# ---------------------------------------------------------------- CodeOptimizer

def first_batches(loader, n):
    out = []
    for i, b in enumerate(loader):
        out.append(b)
        if i + 1 == n:
            break
    return out


def test_optimize_data_loading_keeps_dataset_sampler_collate(tmp_path):
    ds = Waiting(512, 0.001)
    calls = []

    def collate(batch):
        calls.append(len(batch))
        return torch.utils.data.default_collate(batch)

    sampler = SequentialSampler(ds)
    newcomer = DataLoader(ds, batch_size=16, sampler=sampler, collate_fn=collate)
    opt = stall.CodeOptimizer(stall.AdvancedProfiler(stall.ProfilingConfig()))
    tuned = opt.optimize_data_loading(newcomer, measure_seconds=0.25)
    assert tuned is not newcomer
    assert tuned.dataset is ds and tuned.sampler is sampler and tuned.collate_fn is collate
    assert tuned.batch_size == 16  # an AdvancedProfiler has no batch_size_range: kept
    assert tuned.num_workers >= 2 and tuned.persistent_workers
    rep = opt.get_optimization_report()
    assert rep["count"] == 1 and rep["applied"] == 1
    e = rep["optimizations"][0]
    assert e["kind"] == "data_loading" and e["applied"]
    assert e["changes"]["num_workers"] == [0, tuned.num_workers]
    assert e["measured_speedup"] > 1.5
    assert e["configurations_measured"] < e["grid_size"]
    json.dumps(rep)
    # same batches, in the same order
    a, b = first_batches(newcomer, 5), first_batches(tuned, 5)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_optimize_data_loading_with_batch_range_and_nothing_to_gain(tmp_path):
    ds = Waiting(1024, 0.0005)
    p = stall.DataLoadingProfiler(dl_config(tmp_path, batch_size_range=[8, 32], worker_range=[0, 4]))
    opt = stall.CodeOptimizer(p)
    tuned = opt.optimize_data_loading(DataLoader(ds, batch_size=8), measure_seconds=0.25)
    assert tuned.num_workers == 4
    # a loader already at the best setting is returned as it is
    again = opt.optimize_data_loading(tuned, measure_seconds=0.25)
    e = opt.get_optimization_report()["optimizations"][1]
    if again is tuned:
        assert not e["applied"] and e["changes"] == {}
    else:  # noise may find a batch size within the margin; then it measured a gain
        assert e["applied"] and e["measured_speedup"] >= 1 + tuner.MARGIN
    with pytest.raises(TypeError, match="DataLoader"):
        opt.optimize_data_loading(ds)


def test_auto_optimize_tunes_the_profiled_loader_in_place(tmp_path, caplog):
    dl = DataLoader(Waiting(512, 0.001), batch_size=16)
    p = stall.AdvancedProfiler(stall.ProfilingConfig(auto_optimize=True))
    with caplog.at_level(logging.WARNING, logger="stall"):
        r = p.profile_dataloader(dl, num_batches=5)
    assert r["auto_optimize"]["applied"]["num_workers"][0] == 0
    assert dl.num_workers >= 2 and dl.batch_size == 16
    assert any("auto_optimize" in m and "num_workers" in m for m in caplog.messages)
    # the CodeOptimizer reuses that search (no new search, a new baseline):
    # what is left is what torch would not change in place
    opt = stall.CodeOptimizer(p)
    searched = p._loader_tunings[dl][1].search_seconds
    opt.optimize_data_loading(dl)
    e = opt.get_optimization_report()["optimizations"][0]
    assert e["search_seconds"] == searched
    assert set(e["proposed_changes"]) <= {"persistent_workers"}
    assert e["baseline_samples_per_second"] > 0.5 * e["optimized_samples_per_second"]
    # without auto_optimize nothing changes
    dl2 = DataLoader(Waiting(64), batch_size=16)
    r2 = stall.AdvancedProfiler(stall.ProfilingConfig()).profile_dataloader(dl2, num_batches=2)
    assert "auto_optimize" not in r2 and dl2.num_workers == 0


# ---------------------------------------------------------------- BottleneckProfiler's loop

def test_bottleneck_profiler_tuning_loop():
    dl = DataLoader(Waiting(512, 0.001), batch_size=16)
    p = stall.BottleneckProfiler(stall.BottleneckProfilerConfig())
    with pytest.raises(RuntimeError, match="no DataLoader"):
        p.profile_current_configuration()
    p.start_profiling_session("loop")
    for _ in dl:
        pass
    p.stop_profiling_session()
    cur = p.profile_current_configuration(measure_seconds=0.3)
    assert cur["num_workers"] == 0 and cur["samples_per_second"] > 0
    sug = p.get_optimization_suggestions()
    nw = [s for s in sug if s.get("setting") == "num_workers"]
    assert nw and nw[0]["value"] >= 2 and nw[0]["current"] == 0 and not nw[0]["applied"]
    assert dl.num_workers == 0  # no auto_optimize: only suggested
    done = p.apply_optimizations(sug)
    assert done["applied"]["num_workers"] == [0, nw[0]["value"]] and dl.num_workers == nw[0]["value"]
    assert "persistent_workers" in done["not_applied"]  # torch refuses it after construction
    assert p.measure_improvement(measure_seconds=0.3) > 40.0
    with pytest.raises(TypeError, match="list of dicts"):
        p.apply_optimizations("num_workers=4")


def test_bottleneck_profiler_auto_optimize_applies_suggestions(caplog):
    dl = DataLoader(Waiting(256, 0.001), batch_size=16)
    p = stall.BottleneckProfiler(stall.BottleneckProfilerConfig(auto_optimize=True))
    p.start_profiling_session("auto")
    for _ in dl:
        pass
    with caplog.at_level(logging.WARNING, logger="stall"):
        sug = p.get_optimization_suggestions()
    assert any(s.get("setting") == "num_workers" and s["applied"] for s in sug)
    assert dl.num_workers >= 2
    assert any("auto_optimize" in m for m in caplog.messages)
    p.stop_profiling_session()
